"""The small-student distillation benchmark's pairing of gains by seed."""

import pytest

from benchmarks.kd_small_student import RECIPES, summary


def _rows(accuracies: dict[str, list[float]]) -> list[dict]:
    return [
        {"recipe": recipe, "seed": seed, "test_accuracy": accuracy}
        for recipe, values in accuracies.items()
        for seed, accuracy in enumerate(values)
    ]


def test_gains_are_paired_by_seed_not_by_mean():
    # Listed out of seed order on purpose: seed 1's KD must be compared with seed 1's plain.
    names = [name for name, *_ in RECIPES]
    accuracies = {name: [0.70, 0.80] for name in names}
    accuracies["KD T=4"] = [0.72, 0.79]
    rows = _rows(accuracies)
    rows.reverse()
    by_recipe = {s["recipe"]: s for s in summary(rows)}
    kd = by_recipe["KD T=4"]
    assert kd["gain_points"] == pytest.approx([2.0, -1.0])
    assert kd["gain_mean"] == pytest.approx(0.5)
    assert kd["gain_std"] == pytest.approx(2.1213, abs=1e-4)
    assert kd["gain_standard_error"] == pytest.approx(1.5, abs=1e-4)
    assert kd["gains_above_zero"] == 1
    assert kd["test_accuracy_mean"] == pytest.approx(0.755)
    assert by_recipe["plain"]["gain_mean"] == 0
    assert by_recipe["KD T=1"]["gains_above_zero"] == 0
