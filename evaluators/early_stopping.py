"""Pareto-aware early stopping: stop training a candidate that cannot reach the front, or
would add little to it.

Optuna's pruners and Ray's ASHA compare a trial with others at the same step on one
objective; in a multi-objective search that would stop exactly the small, fast candidates
the front needs (they learn slower). Here a candidate's costs (latency, memory, flash,
params, MACs) are known before training, so the question is sharper: could this candidate,
at its cost, still end up non-dominated?

After each epoch (from ``min_epochs`` on) the validation accuracy is extrapolated
optimistically. Once ``MIN_CURVES`` finished trials of the run have recorded their
per-epoch validation curves (same schedule, same epochs), the extrapolation is empirical:
from epoch e on, the candidate is granted the largest share of its remaining error that any
of them closed from epoch e to the end (``1 - acc_e`` times that share), plus ``slack``
(``quantile`` below 1 grants that quantile of the shares instead: less optimistic, stops
more, may lose front members);
this follows the run's own learning-rate schedule (a one-cycle schedule's last epochs gain
the most) instead of assuming a shape. Before that, no candidate is stopped: extrapolating
the last epoch's gain once stopped, after two flat epochs at chance, a candidate whose twin
in the same run had been flat for six epochs and then learned. Compression after training
only lowers accuracy, so
it is not counted: the bound (fp32, PyTorch, on the first ``pipeline.VAL_CHECK`` validation
images) is held against what the front's members achieved as deployed (the ONNX file's
accuracy on the whole validation split), which keeps the rule safe; comparing with their
fp32 curves instead would stop a plain candidate because a member that later lost accuracy
to int8 had once been more accurate. The subset's sampling error (about one point at 1000
images) is what ``slack`` covers. If a finished trial on the current front costs no more on every cost
objective and is at least that accurate, the candidate is dominated whatever happens next
and its training stops: the trial is recorded as ``pruned`` with the epoch.

A candidate the front does not dominate may still be worth little: a little cheaper than a
member on one cost and a little less accurate. With ``min_gain`` above 0 (the default, 0.02)
it is also stopped when, at its optimistic accuracy, it would add less than that share to
the front's hypervolume. With ``keep_contenders`` (off by default) a candidate whose
optimistic accuracy is above every member's is spared: it could still become the run's most
accurate model within budget (what the report recommends for the budget), however little it
would add near the budget's edge, where costs scaled by the budget leave an accurate model
little volume. The search supplies the measure (``HypervolumeGain``; evaluators do not
import ``search``): ``search.objective.front_gain``, with accuracy 0 and the budget as the
reference point, so a candidate cheaper than every member keeps the whole slab of accuracy
below it and the small, fast models the front needs are not stopped. Because the hypervolume
is submodular, what the stopped candidates could together have added is at most the sum of
their gains, each below ``min_gain`` of the front when it was stopped.

What the sampler is told a stopped candidate achieved is ``feedback``: ``"stopped"``, its
validation accuracy when stopped (measured, but a few epochs short of a trained
candidate's, so the sampler reads the candidate's region as worse than it is), or
``"expected"``, the final accuracy predicted from the run's finished curves at their
median (``expected_accuracy``): the typical, not the most optimistic, rest of the curve.
Either way the trial keeps both figures and is never a front member.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EarlyStopping:
    """Settings (``training.early_stopping*`` in the config)."""

    enabled: bool = True
    min_epochs: int = 1
    slack: float = 0.02
    quantile: float = 1.0
    # 0.02 with "expected", not 0 with "stopped" (which stops only what the front dominates):
    # on three sets of whole searches (6, 6 and 12 seeds) it saved 30-39 % of training seconds
    # for 96-99 % of the hypervolume at the same number of trials, where 0 saved 3 %; on 2 CPU cores hours, not
    # trials, are what a search runs out of (benchmarks/early_stopping.py; README, "Early
    # stopping by setting").
    min_gain: float = 0.02
    feedback: str = "expected"
    # Whether a candidate that could still become the run's most accurate model within
    # budget (its optimistic accuracy above every member's) is spared min_gain. Off: on 12
    # seeds of whole searches keeping them saved 27 % of training instead of 37 %, and the
    # most accurate model within budget was not measurably better (0.803; without keeping
    # them 0.810, and 0.800 in an earlier run of the same seeds; 0.812 without early
    # stopping; README, "Early stopping by setting").
    keep_contenders: bool = False

    def __post_init__(self) -> None:
        if self.feedback not in FEEDBACK:
            raise ValueError(f"feedback must be one of {FEEDBACK}, got {self.feedback!r}")


# What the sampler is told a stopped candidate's accuracy is (module docstring).
FEEDBACK = ("stopped", "expected")

# The share of the current front's hypervolume that a point (objective name -> value) would
# add to it; 0 when it adds nothing. Built by the search from the front and the budget.
HypervolumeGain = Callable[[Mapping[str, float]], float]


# Finished curves needed before a candidate is granted less than a perfect final accuracy.
MIN_CURVES = 3


class StoppedEarly(Exception):
    """Training was stopped: the candidate cannot reach the front."""

    def __init__(self, reason: str, epoch: int, accuracy: float, expected: float | None = None):
        super().__init__(reason)
        self.reason, self.epoch, self.accuracy = reason, epoch, accuracy
        self.expected = expected


def optimistic_accuracy(
    history: Sequence[float],
    total_epochs: int,
    slack: float,
    curves: Sequence[Sequence[float]] = (),
    quantile: float = 1.0,
) -> float:
    """The most the final accuracy can plausibly be, from the per-epoch accuracies so far
    and the full curves (``total_epochs`` long) of finished trials."""
    if not history:
        return 1.0
    epoch = len(history)
    now = history[-1]
    if epoch >= total_epochs:
        return now
    finished = [c for c in curves if len(c) == total_epochs]
    if len(finished) < MIN_CURVES:
        # No shape is assumed: a curve flat for its first epochs then rising (seen on a
        # search's own data), or a one-cycle schedule's late gains, would break any guess.
        return 1.0
    share = float(np.quantile([closed_share(c, epoch) for c in finished], quantile))
    return min(1.0, now + share * (1.0 - now) + slack)


def expected_accuracy(
    history: Sequence[float], total_epochs: int, curves: Sequence[Sequence[float]] = ()
) -> float | None:
    """The final accuracy a curve stopped after ``len(history)`` epochs would typically have
    reached: the median share of the remaining error that the finished curves closed from
    that epoch on, without slack. None with fewer than ``MIN_CURVES`` finished curves (no
    prediction is better than a guessed shape)."""
    finished = [c for c in curves if len(c) == total_epochs]
    if not history or len(finished) < MIN_CURVES:
        return None
    epoch, now = len(history), history[-1]
    if epoch >= total_epochs:
        return now
    share = float(np.median([closed_share(c, epoch) for c in finished]))
    return now + share * (1.0 - now)


def closed_share(curve: Sequence[float], epoch: int) -> float:
    """The share of its remaining error a finished curve closed from ``epoch`` (1-based) to
    its end, in [0, 1]."""
    at, end = curve[epoch - 1], curve[-1]
    if at >= 1.0:
        return 0.0
    return min(1.0, max(0.0, (end - at) / (1.0 - at)))


@dataclass(frozen=True)
class ParetoStopper:
    """Judges one candidate against the front of the trials finished so far.

    ``front`` holds each finished feasible trial's objective values (name -> value);
    ``costs`` the candidate's values of the cost objectives (all minimised); ``curves`` the
    per-epoch validation accuracies of the run's finished trained trials; ``gain`` the
    front's hypervolume gain (used when ``settings.min_gain`` is above 0).
    """

    front: tuple[Mapping[str, float], ...]
    costs: Mapping[str, float]
    settings: EarlyStopping = EarlyStopping()
    curves: tuple[tuple[float, ...], ...] = ()
    gain: HypervolumeGain | None = None

    def dominator(self, accuracy: float) -> Mapping[str, float] | None:
        """A front member at least as accurate as ``accuracy`` and no costlier on any cost
        objective (strictly better somewhere), or None."""
        for member in self.front:
            if member.get("accuracy") is None or member["accuracy"] < accuracy:
                continue
            # Only the run's own objectives count: the member holds exactly those.
            costs = [(member[k], v) for k, v in self.costs.items() if k in member]
            if any(m > v for m, v in costs):
                continue
            if member["accuracy"] > accuracy or any(m < v for m, v in costs):
                return member
        return None

    def check(self, history: Sequence[float], total_epochs: int) -> str | None:
        """Why training should stop now, or None to go on."""
        epoch = len(history)
        if not self.settings.enabled or epoch < self.settings.min_epochs or epoch >= total_epochs:
            return None
        bound = optimistic_accuracy(
            history, total_epochs, self.settings.slack, self.curves, self.settings.quantile
        )
        learned = len([c for c in self.curves if len(c) == total_epochs]) >= MIN_CURVES
        so_far = (
            f"stopped after epoch {epoch} of {total_epochs}: validation accuracy "
            f"{history[-1]:.4f}, at best {bound:.4f} by the end"
            + (" as the run's finished curves go" if learned else "")
        )
        member = self.dominator(bound)
        if member is not None:
            trial = member.get("number")
            which = f"trial {int(trial)}" if trial is not None else "a front member"
            return f"{so_far}, and {which} reaches {member['accuracy']:.4f} at no higher cost"
        if self.settings.min_gain <= 0 or self.gain is None or not self.front:
            return None
        if self.settings.keep_contenders and bound > max(
            (m.get("accuracy") or 0.0) for m in self.front
        ):
            # It could still become the run's most accurate model within budget, the one
            # the report recommends, however little hypervolume it adds near the budget.
            return None
        share = self.gain({**self.costs, "accuracy": bound})
        if share >= self.settings.min_gain:
            return None
        return (
            f"{so_far}, which would add at most {share:.2%} to the front's hypervolume "
            f"(min_gain {self.settings.min_gain:.2%})"
        )
