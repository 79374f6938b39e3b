"""The objective's measure of what a candidate would add to the front (early stopping's
min_gain), by hand, and wired through a real candidate's evaluation."""

from __future__ import annotations

import pytest

from evaluators.budget import Budget
from evaluators.early_stopping import EarlyStopping
from search.objective import Objective, front_gain
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
