"""The objective's measure of what a candidate would add to the front (early stopping's
min_gain), by hand, and wired through a real candidate's evaluation; what the sampler is
told a stopped candidate achieved."""

from __future__ import annotations

from dataclasses import replace

import optuna
import pytest

from evaluators.budget import Budget
from evaluators.early_stopping import EarlyStopping
from evaluators.metrics import Metrics
from search.objective import Objective, front_gain, objective_values
from spaces import get_candidate
from spaces.space import SearchSpace

OBJECTIVES = ["accuracy", "latency_ms"]
# Reference point (accuracy 0, the budget's 2 ms): the member dominates 0.8 x 1 = 0.8.
FRONT = [{"accuracy": 0.8, "latency_ms": 1.0, "number": 0}]


@pytest.mark.parametrize(
    ("point", "share"),
    [
        # accuracy 0.8 to 0.9 over 1.5 to 2 ms: 0.05 added.
        ({"accuracy": 0.9, "latency_ms": 1.5}, 0.05 / 0.8),
        # Faster than the member: the whole slab below 0.5 from 0.5 to 1 ms, 0.25.
        ({"accuracy": 0.5, "latency_ms": 0.5}, 0.25 / 0.8),
        ({"accuracy": 0.7, "latency_ms": 1.2}, 0.0),  # dominated
        ({"accuracy": 0.99, "latency_ms": 2.5}, 0.0),  # over budget
    ],
)
def test_front_gain_against_a_hand_computed_case(point, share):
    gain = front_gain(FRONT, OBJECTIVES, Budget(latency_ms=2.0))
    assert gain(point) == pytest.approx(share)


def test_front_gain_on_an_unbounded_cost_takes_its_reference_above_front_and_point():
    gain = front_gain(FRONT, OBJECTIVES, Budget())
    # Reference 1.1 x 1.5 = 1.65 ms: member 0.8 x 0.65 = 0.52, added 0.1 x 0.15.
    assert gain({"accuracy": 0.9, "latency_ms": 1.5}) == pytest.approx(0.015 / 0.52)
    # Nothing to add to: an empty front gains the whole share.
    assert front_gain([], OBJECTIVES, Budget())({"accuracy": 0.5, "latency_ms": 1.0}) == 1.0
    # Extra keys (the stopper passes every cost) are ignored: only the run's objectives count.
    assert gain({"accuracy": 0.9, "latency_ms": 1.5, "peak_memory_kb": 1e9}) == pytest.approx(
        0.015 / 0.52
    )


@pytest.mark.parametrize("min_gain", [0.0, 0.5])
def test_the_objective_stops_a_candidate_below_min_gain(tmp_path, digits_context, min_gain):
    # A perfect member that is slower but uses no memory: a real candidate is faster, so not
    # dominated, and with memory unbounded it could add at most ~10 % of the front's volume.
    front = [{"accuracy": 1.0, "latency_ms": 500.0, "peak_memory_kb": 0.0, "number": 0}]
    objective = Objective(
        SearchSpace(),
        digits_context(3, early_stopping=EarlyStopping(min_gain=min_gain)),
        ["accuracy", "latency_ms", "peak_memory_kb"],
        tmp_path,
    )
    metrics, _, failure = objective.evaluate(get_candidate("tiny_dsconv"), 1, front)
    assert failure is None
    if min_gain == 0:
        assert metrics.status == "ok" and metrics.epochs == 3
    else:
        assert metrics.status == "pruned" and metrics.epochs == 1
        assert "to the front's hypervolume (min_gain 50.00%)" in metrics.reason


def test_a_stopped_trial_tells_the_sampler_its_expected_accuracy_only_when_asked():
    stopped = Metrics(status="pruned", accuracy=0.6, expected_accuracy=0.8, latency_ms=1.0)
    assert objective_values(stopped, OBJECTIVES) == [0.6, 1.0]
    assert objective_values(stopped, OBJECTIVES, "expected") == [0.8, 1.0]
    # No prediction (too few finished curves): the measured figure.
    unpredicted = replace(stopped, expected_accuracy=None)
    assert objective_values(unpredicted, OBJECTIVES, "expected") == [0.6, 1.0]
    # A trained trial's values are its own whatever the setting.
    trained = Metrics(status="ok", accuracy=0.7, expected_accuracy=0.9, latency_ms=1.0)
    assert objective_values(trained, OBJECTIVES, "expected") == [0.7, 1.0]


@pytest.mark.parametrize("feedback", ["stopped", "expected"])
def test_the_study_holds_the_chosen_value_and_the_trial_both_figures(
    tmp_path, digits_context, feedback
):
    objectives = ["accuracy", "latency_ms", "peak_memory_kb"]
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    # Three finished trials: a perfect, free member that every candidate is dominated by,
    # and the curves that the expected accuracy is predicted from.
    for number, curve in enumerate([(0.2, 0.5, 0.7, 0.8), (0.3, 0.6, 0.7, 0.75)] * 2):
        done = {"status": "ok", "val_curve": list(curve), "latency_ms": 0.0}
        done.update(accuracy=1.0 if number == 0 else 0.5, peak_memory_kb=0.0)
        study.add_trial(
            optuna.trial.create_trial(
                values=[done["accuracy"], 0.0, 0.0],
                user_attrs={"metrics": done, "genome": f"done-{number}"},
            )
        )
    objective = Objective(
        SearchSpace(),
        digits_context(4, early_stopping=EarlyStopping(feedback=feedback)),
        objectives,
        tmp_path,
    )
    study.optimize(objective, n_trials=1)
    trial = study.trials[-1]
    metrics = Metrics.from_dict(trial.user_attrs["metrics"])
    assert metrics.status == "pruned" and metrics.epochs == 1
    assert metrics.expected_accuracy is not None
    told = metrics.expected_accuracy if feedback == "expected" else metrics.accuracy
    assert trial.values[0] == pytest.approx(told)
    assert trial.values[1] == pytest.approx(metrics.latency_ms)
