"""Pareto-aware early stopping: the rule by hand, then a real candidate stopped mid-training."""

from __future__ import annotations

import pytest

from evaluators.early_stopping import (
    EarlyStopping,
    ParetoStopper,
    closed_share,
    expected_accuracy,
    optimistic_accuracy,
)
from evaluators.pipeline import evaluate_candidate
from spaces import get_candidate

MEMBER = {"accuracy": 0.9, "latency_ms": 1.0, "peak_memory_kb": 10.0, "number": 3}
# Finished curves that close a quarter of the remaining error from epoch 2 on.
CURVES = ((0.5, 0.6, 0.65, 0.7),) * 3


def test_without_three_finished_curves_no_shape_is_assumed():
    # Flat at chance for two epochs, as a candidate was that then learned: the last
    # epoch's gain (none) said it would end at 0.124, and it was stopped.
    assert optimistic_accuracy([0.104, 0.104], 20, 0.02) == 1.0
    assert optimistic_accuracy([0.5, 0.55], 4, 0.02, CURVES[:2]) == 1.0
    assert optimistic_accuracy([0.6, 0.5, 0.55], 3, 0.0) == pytest.approx(0.55)  # the end


def test_with_three_finished_curves_the_extrapolation_follows_them():
    # Shares of the remaining error closed from epoch 2 to the end: 0.5, 0.25, 0 (fell).
    curves = [(0.4, 0.6, 0.7, 0.8), (0.5, 0.6, 0.65, 0.7), (0.5, 0.7, 0.7, 0.6)]
    assert [closed_share(c, 2) for c in curves] == pytest.approx([0.5, 0.25, 0.0])
    # 0.5 + 0.5 x (1 - 0.5) + slack 0.02: the largest share, not the last epoch's gain.
    assert optimistic_accuracy([0.3, 0.5], 4, 0.02, curves) == pytest.approx(0.77)
    # From epoch 3 the shares are 1/3, 1/7, 0.
    assert optimistic_accuracy([0.3, 0.5, 0.55], 4, 0.0, curves) == pytest.approx(0.7)
    # After epoch 1, the shares from epoch 1 (0.67, 0.4, 0.2) apply.
    assert optimistic_accuracy([0.4], 4, 0.0, curves) == pytest.approx(0.8)
    # A lower quantile grants less: the median share 0.25, so 0.5 + 0.25 x 0.5 + 0.02.
    assert optimistic_accuracy([0.3, 0.5], 4, 0.02, curves, quantile=0.5) == pytest.approx(0.645)
    # Two curves, or curves of another length, are not enough: anything may still happen.
    assert optimistic_accuracy([0.3, 0.5], 4, 0.02, curves[:2]) == 1.0
    assert optimistic_accuracy([0.3, 0.5], 4, 0.02, [c[:3] for c in curves]) == 1.0


def test_expected_accuracy_is_the_median_continuation_without_slack():
    curves = [(0.4, 0.6, 0.7, 0.8), (0.5, 0.6, 0.65, 0.7), (0.5, 0.7, 0.7, 0.6)]
    # Shares from epoch 2: 0.5, 0.25, 0; the median 0.25 closes a quarter of 0.5.
    assert expected_accuracy([0.3, 0.5], 4, curves) == pytest.approx(0.625)
    # Below the optimistic bound of the same curves, even without its slack.
    assert expected_accuracy([0.3, 0.5], 4, curves) < optimistic_accuracy(
        [0.3, 0.5], 4, 0.0, curves
    )
    # From epoch 1 the shares are 2/3, 0.4, 0.2: 0.4 + 0.4 x 0.6.
    assert expected_accuracy([0.4], 4, curves) == pytest.approx(0.64)
    # Too few finished curves, or none of this length: no prediction rather than a guess.
    assert expected_accuracy([0.3, 0.5], 4, curves[:2]) is None
    assert expected_accuracy([0.3, 0.5], 4, [c[:3] for c in curves]) is None
    assert expected_accuracy([], 4, curves) is None


def test_feedback_must_be_a_known_choice():
    with pytest.raises(ValueError, match="feedback must be one of"):
        EarlyStopping(feedback="optimistic")


def test_only_the_runs_finished_curves_stop_a_candidate():
    costs = {"latency_ms": 2.0, "peak_memory_kb": 20.0}
    history = [0.3, 0.6]
    assert ParetoStopper((MEMBER,), costs).check(history, 4) is None
    # 0.6 + 0.25 x 0.4 + 0.02 = 0.72 < 0.9
    reason = ParetoStopper((MEMBER,), costs, curves=CURVES).check(history, 4)
    assert reason is not None and "at best 0.7200 by the end" in reason


def test_a_costlier_candidate_that_cannot_catch_up_is_stopped():
    stopper = ParetoStopper((MEMBER,), {"latency_ms": 2.0, "peak_memory_kb": 20.0}, curves=CURVES)
    reason = stopper.check([0.5, 0.55], 4)
    # 0.55 + 0.25 x 0.45 + 0.02
    assert reason is not None
    assert "after epoch 2 of 4" in reason and "at best 0.6825" in reason and "trial 3" in reason


@pytest.mark.parametrize(
    ("costs", "history", "total", "why"),
    [
        ({"latency_ms": 0.5, "peak_memory_kb": 20.0}, [0.5, 0.55], 4, "cheaper on latency"),
        # 0.85 + 0.25 x 0.15 + 0.02 = 0.9075: it may still pass the member's 0.9.
        ({"latency_ms": 2.0, "peak_memory_kb": 20.0}, [0.6, 0.85], 4, "close behind"),
        ({"latency_ms": 2.0, "peak_memory_kb": 20.0}, [0.5, 0.5, 0.5, 0.5], 4, "last epoch"),
    ],
)
def test_candidates_that_may_still_reach_the_front_go_on(costs, history, total, why):
    assert ParetoStopper((MEMBER,), costs, curves=CURVES).check(history, total) is None, why


def test_without_finished_curves_only_a_member_no_accuracy_can_beat_stops_a_candidate():
    costs = {"latency_ms": 2.0, "peak_memory_kb": 20.0}
    assert ParetoStopper((MEMBER,), costs).check([0.1, 0.1], 20) is None  # flat, at chance
    perfect = {**MEMBER, "accuracy": 1.0}
    reason = ParetoStopper((perfect,), costs).check([0.1, 0.1], 20)
    assert reason is not None and "as the run's finished curves go" not in reason


def test_disabled_never_stops():
    stopper = ParetoStopper(
        (MEMBER,), {"latency_ms": 2.0, "peak_memory_kb": 20.0}, EarlyStopping(enabled=False)
    )
    assert stopper.check([0.1, 0.1], 4) is None


def test_only_the_runs_objectives_decide_dominance():
    # The member holds accuracy and latency only (the run's objectives): memory is ignored.
    member = {"accuracy": 0.9, "latency_ms": 1.0}
    costs = {"latency_ms": 2.0, "peak_memory_kb": 1.0}
    assert ParetoStopper((member,), costs, curves=CURVES).check([0.5, 0.5], 4) is not None


def test_min_gain_stops_a_candidate_that_would_add_little_to_the_front():
    # Cheaper on latency than the member, so not dominated: the dominance rule lets it go on.
    costs = {"latency_ms": 0.9, "peak_memory_kb": 20.0}
    history = [0.5, 0.55]  # at best 0.6825 by the end
    shares = []

    def gain(point):
        shares.append(dict(point))
        return 0.004

    settings = EarlyStopping(min_gain=0.01)
    reason = ParetoStopper((MEMBER,), costs, settings, CURVES, gain).check(history, 4)
    assert reason is not None and "at best 0.6825" in reason
    assert "add at most 0.40% to the front's hypervolume" in reason
    # The gain is asked of the candidate's costs at its optimistic accuracy.
    assert shares == [{**costs, "accuracy": pytest.approx(0.6825)}]


@pytest.mark.parametrize(
    ("min_gain", "share", "with_gain"),
    [(0.01, 0.02, True), (0.0, 0.0, True), (0.01, 0.0, False)],
    ids=["gain above min_gain", "min_gain off", "no gain measure"],
)
def test_min_gain_lets_a_candidate_worth_training_go_on(min_gain, share, with_gain):
    costs = {"latency_ms": 0.9, "peak_memory_kb": 20.0}
    gain = (lambda point: share) if with_gain else None
    stopper = ParetoStopper((MEMBER,), costs, EarlyStopping(min_gain=min_gain), gain=gain)
    assert stopper.check([0.5, 0.55], 4) is None


def test_min_gain_lets_a_candidate_go_on_that_could_still_be_the_most_accurate():
    # Near the budget's edge an accurate candidate adds little hypervolume (costs are scaled
    # by the budget), yet it could become the model the report recommends for the budget.
    costs = {"latency_ms": 0.9, "peak_memory_kb": 20.0}
    settings = EarlyStopping(min_gain=0.5, keep_contenders=True)
    little = lambda point: 0.001  # noqa: E731
    history = [0.5, 0.55]  # at best 0.6825 by the end
    below = ParetoStopper((MEMBER,), costs, settings, CURVES, little).check(history, 4)
    assert below is not None and "min_gain" in below  # the member's 0.9 is out of reach
    modest = {**MEMBER, "accuracy": 0.68}  # now the bound 0.6825 is above every member
    assert ParetoStopper((modest,), costs, settings, CURVES, little).check(history, 4) is None
    level = {**MEMBER, "accuracy": 0.6825}  # level with the best is not above it
    assert ParetoStopper((level,), costs, settings, CURVES, little).check(history, 4) is not None
    # Unless contenders are not kept (the default): then the gain alone decides.
    spent = EarlyStopping(min_gain=0.5)
    assert ParetoStopper((modest,), costs, spent, CURVES, little).check(history, 4) is not None


def test_a_dominated_candidate_is_stopped_before_its_gain_is_asked():
    def gain(point):
        raise AssertionError("dominance decides first")

    costs = {"latency_ms": 2.0, "peak_memory_kb": 20.0}
    stopper = ParetoStopper((MEMBER,), costs, EarlyStopping(min_gain=0.5), CURVES, gain)
    reason = stopper.check([0.5, 0.55], 4)
    assert reason is not None and "trial 3" in reason


def test_a_real_candidate_is_stopped_and_recorded_as_pruned(digits_context):
    context = digits_context(4)
    # A front member that is perfect and free: nothing can reach it.
    front = [{"accuracy": 1.0, "latency_ms": 0.0, "peak_memory_kb": 0.0, "number": 0}]
    metrics = evaluate_candidate(get_candidate("tiny_dsconv"), context, front=front)
    assert metrics.status == "pruned"
    assert metrics.epochs == 1 and "stopped after epoch 1 of 4" in metrics.reason
    assert metrics.accuracy is not None and metrics.latency_ms > 0
    assert metrics.val_curve == [metrics.accuracy]
    assert "export" not in metrics.seconds  # never compressed or exported
    # Without a front (the first trials), the same candidate trains to the end, and its
    # curve is recorded for the extrapolation of later trials.
    full = evaluate_candidate(get_candidate("tiny_dsconv"), context)
    assert full.status == "ok" and len(full.val_curve) == 4
    assert full.val_curve[0] == pytest.approx(metrics.accuracy)  # same seed, same start


def test_a_stopped_candidate_records_its_expected_accuracy(digits_context):
    context = digits_context(4)
    front = [{"accuracy": 1.0, "latency_ms": 0.0, "peak_memory_kb": 0.0, "number": 0}]
    curves = [(0.2, 0.5, 0.7, 0.8), (0.3, 0.6, 0.7, 0.75), (0.1, 0.3, 0.5, 0.6)]
    metrics = evaluate_candidate(get_candidate("tiny_dsconv"), context, front=front, curves=curves)
    assert metrics.status == "pruned" and metrics.epochs == 1
    # Measured accuracy when stopped, and the prediction from the three curves beside it.
    assert metrics.expected_accuracy == pytest.approx(
        expected_accuracy([metrics.accuracy], 4, curves)
    )
    assert metrics.expected_accuracy > metrics.accuracy  # every curve rose after epoch 1
    # Without finished curves there is nothing to predict from.
    alone = evaluate_candidate(get_candidate("tiny_dsconv"), context, front=front)
    assert alone.status == "pruned" and alone.expected_accuracy is None
