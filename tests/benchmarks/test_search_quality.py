"""The search-quality benchmark's analysis: hypervolume at a reference accuracy, curves of
compute against hypervolume, and when a curve reaches a target."""

import pandas as pd
import pytest

from benchmarks.search_quality import (
    BUDGET,
    anytime_summary,
    compute_curve,
    first_reach,
    hypervolume,
)


def _trials(rows):
    """Trials as trials.csv has them: (accuracy, latency share, memory share, seconds,
    epochs, status), in trial order."""
    return pd.DataFrame(
        {
            "number": i,
            "status": status,
            "feasible": latency <= 1 and memory <= 1,
            "accuracy": accuracy,
            "latency_ms": latency * BUDGET["latency_ms"],
            "peak_memory_kb": memory * BUDGET["peak_memory_kb"],
            "seconds_train": seconds,
            "epochs": epochs,
        }
        for i, (accuracy, latency, memory, seconds, epochs, status) in enumerate(rows)
    )


def test_hypervolume_is_the_box_of_one_point_and_a_floor_rescales_accuracy():
    one = _trials([(0.8, 0.5, 0.5, 1.0, 4, "ok")])
    assert hypervolume(one) == pytest.approx(0.8 * 0.5 * 0.5)
    # Above a floor of 0.6 the point holds (0.8 - 0.6) / (1 - 0.6) of the accuracy axis.
    assert hypervolume(one, accuracy_floor=0.6) == pytest.approx(0.5 * 0.5 * 0.5)
    assert hypervolume(one, accuracy_floor=0.8) == 0.0


def test_compute_curve_sums_training_in_trial_order_and_counts_only_feasible_trained():
    trials = _trials(
        [
            (0.5, 0.5, 0.5, 2.0, 4, "ok"),
            (0.9, 2.0, 0.5, 3.0, 4, "ok"),  # over the latency budget
            (0.7, 0.5, 0.5, 1.0, 2, "pruned"),
            (0.6, 0.5, 0.5, 4.0, 4, "ok"),
        ]
    ).iloc[::-1]  # trials.csv order is not trial order
    curve = compute_curve(trials)
    assert [p["training_seconds"] for p in curve] == [2.0, 5.0, 6.0, 10.0]
    assert [p["training_epochs"] for p in curve] == [4, 8, 10, 14]
    assert [p["hypervolume"] for p in curve] == pytest.approx([0.125, 0.125, 0.125, 0.15])
    assert first_reach(curve, 0.13)["trials"] == 4
    assert first_reach(curve, 0.125)["trials"] == 1
    assert first_reach(curve, 0.2) is None


def test_anytime_summary_shares_of_the_reference_compute_over_the_seeds_that_reach():
    def row(seed, reach):
        return {
            "seed": seed,
            "reference_training_seconds": 100.0,
            "reference_training_epochs": 50,
            "reach": reach,
        }

    rows = [
        row(
            0,
            [
                {
                    "target": 0.95,
                    "search": "live",
                    "reached": True,
                    "training_seconds": 40.0,
                    "training_epochs": 20,
                }
            ],
        ),
        row(
            1,
            [
                {
                    "target": 0.95,
                    "search": "live",
                    "reached": True,
                    "training_seconds": 60.0,
                    "training_epochs": 40,
                }
            ],
        ),
        row(2, [{"target": 0.95, "search": "live", "reached": False}]),
    ]
    (summary,) = anytime_summary(rows)
    assert summary["seeds"] == 3 and summary["reached"] == 2
    assert summary["seconds_share_mean"] == pytest.approx(0.5)
    assert summary["epochs_share_mean"] == pytest.approx(0.6)
