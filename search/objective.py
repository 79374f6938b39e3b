"""The Optuna objective: one trial = one candidate, judged by ``evaluators.pipeline``.

Per trial the storage holds, as user attributes, the candidate (``candidate``, ``genome``)
and its ``metrics``; the budget goes in as constraints (cost - bound) through
``Trial.set_constraint``, which Optuna's TPE, NSGA-II and GP samplers read. A candidate over
budget is never trained; its accuracy objective is 0 so that samplers learn from its cost.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from evaluators.budget import Budget
from evaluators.early_stopping import EarlyStopping, HypervolumeGain
from evaluators.metrics import Metrics
from evaluators.pipeline import EvaluationContext, evaluate_candidate
from search.config import OBJECTIVE_DIRECTIONS
from search.pareto import hypervolume, pareto_mask
from search.worker import TrialFailed
from spaces.candidate import Candidate
from spaces.space import SearchSpace

FAILURE_FILE = "traceback.txt"  # beside a failed trial's would-be artifacts

log = logging.getLogger("paretonas")

CHECKPOINTS = "checkpoints"


class Objective:
    def __init__(
        self,
        space: SearchSpace,
        context: EvaluationContext,
        objectives: list[str],
        run_dir: str | Path,
    ):
        self.space = space
        self.context = context
        self.objectives = objectives
        self.run_dir = Path(run_dir)

    def __call__(self, trial: optuna.Trial) -> list[float]:
        # The worker loop (search.worker.work) has marked the trial its own already.
        candidate = self.space.suggest(trial)
        trial.set_user_attr("genome", candidate.genome)
        trial.set_user_attr("candidate", candidate.to_dict())
        earlier = same_candidate(trial, candidate)
        if earlier is not None:
            # TPE re-proposes the same point in small spaces; the result would be the same.
            # Nothing was computed for this trial: it spends no seconds.
            metrics = replace(Metrics.from_dict(earlier.user_attrs["metrics"]), seconds={})
            trial.set_user_attr("duplicate_of", earlier.number)
            if "artifacts" in earlier.user_attrs:
                trial.set_user_attr("artifacts", earlier.user_attrs["artifacts"])
            artifacts = None
        else:
            front, curves = stopping_inputs(trial.study, self.objectives, self.context.budget)
            metrics, artifacts, failure = self.evaluate(candidate, trial.number, front, curves)
            if failure is not None:
                record(trial, candidate, metrics, self.context.budget)
                trial.set_user_attr("traceback", failure)
                raise TrialFailed(metrics.reason)
        if artifacts is not None:
            trial.set_user_attr("artifacts", artifacts)
        values = record(
            trial,
            candidate,
            metrics,
            self.context.budget,
            self.objectives,
            self.context.early_stopping.feedback,
        )
        same = f"  (same candidate as trial {earlier.number})" if earlier is not None else ""
        log.info("trial %d %s%s", trial.number, describe(metrics, candidate), same)
        return values

    def evaluate(
        self,
        candidate: Candidate,
        number: int | str,
        front: Sequence[Mapping[str, float]] = (),
        curves: Sequence[Sequence[float]] = (),
    ) -> tuple[Metrics, str | None, str | None]:
        """(metrics, artifact folder relative to the run, traceback when it failed). Any
        exception of the evaluation is a failed candidate, never a failed search."""
        artifacts = Path(CHECKPOINTS) / str(number)
        try:
            metrics = evaluate_candidate(
                candidate,
                self.context,
                artifact_dir=self.run_dir / artifacts,
                description=f"trial {number}",
                front=front,
                curves=curves,
                gain=front_gain(front, self.objectives, self.context.budget),
            )
        except Exception as error:
            reason = f"{type(error).__name__}: {error}".splitlines()[0][:500]
            said = traceback.format_exc()[-4000:]
            # Where in the candidate's code (a block of the user's own, say) it raised: the
            # log line carries the reason, the file the traceback.
            kept = self.run_dir / artifacts / FAILURE_FILE
            try:
                kept.parent.mkdir(parents=True, exist_ok=True)
                kept.write_text(said)
                where = f"; traceback in {kept}"
            except OSError as unwritable:  # the failure is still the trial's, not the search's
                where = f"; its traceback not kept ({unwritable.strerror or unwritable})"
            log.warning("trial %s failed: %s  [%s]%s", number, reason, candidate.genome, where)
            return Metrics(status="failed", reason=reason), None, said
        return metrics, str(artifacts) if metrics.status == "ok" else None, None


def current_front(
    study: optuna.Study, objectives: list[str], budget: Budget
) -> list[dict[str, float]]:
    """The objective values (and number) of the finished trials on the current front:
    trained (status ok) and within budget."""
    rows = []
    for other in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        metrics = other.user_attrs.get("metrics") or {}
        if metrics.get("status") != "ok" or other.user_attrs.get("duplicate_of") is not None:
            continue
        values = {name: metrics.get(name) for name in objectives}
        if any(v is None for v in values.values()):
            continue
        limits = budget.constraints(
            latency_ms=metrics.get("latency_ms"),
            peak_memory_kb=metrics.get("peak_memory_kb"),
            flash_kb=metrics.get("flash_kb"),
        )
        if Budget.violated(limits):
            continue
        rows.append({**{k: float(v) for k, v in values.items()}, "number": other.number})
    if not rows:
        return []
    directions = [OBJECTIVE_DIRECTIONS[name] for name in objectives]
    mask = pareto_mask(np.array([[r[n] for n in objectives] for r in rows]), directions)
    return [row for row, keep in zip(rows, mask, strict=True) if keep]


def stopping_inputs(
    study: optuna.Study, objectives: list[str], budget: Budget
) -> tuple[list[dict[str, float]], list[list[float]]]:
    """What Pareto-aware early stopping reads from the study for the next trial: the
    current front and the finished validation curves (both backends)."""
    return current_front(study, objectives, budget), finished_curves(study)


def finished_curves(study: optuna.Study) -> list[list[float]]:
    """The per-epoch validation curves of the study's trials trained to the end (one
    fidelity per study: a run refuses a changed config), each once: a duplicate trial
    carries its earlier trial's curve, and counting it twice would weight the quantile."""
    curves = []
    for other in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        metrics = other.user_attrs.get("metrics") or {}
        if other.user_attrs.get("duplicate_of") is not None:
            continue
        if metrics.get("status") == "ok" and metrics.get("val_curve"):
            curves.append(list(metrics["val_curve"]))
    return curves


def front_gain(
    front: Sequence[Mapping[str, float]], objectives: list[str], budget: Budget
) -> HypervolumeGain:
    """The share of ``front``'s hypervolume that a point (objective name -> value) would add.

    Reference point: 0 for accuracy (maximised), the budget on a bounded cost, else 10 %
    above the largest value of the front and the point. Accuracy from 0, not from the
    front's worst, so that a candidate cheaper than every member is credited with the whole
    slab below its accuracy: the small, fast models are the ones a front needs most.
    """
    directions = [OBJECTIVE_DIRECTIONS[name] for name in objectives]
    limits = asdict(budget)
    members = np.array(
        [[float(m[name]) for name in objectives] for m in front], dtype=float
    ).reshape(-1, len(objectives))

    def gain(point: Mapping[str, float]) -> float:
        values = np.array([float(point[name]) for name in objectives])
        reference = []
        for column, (name, direction) in enumerate(zip(objectives, directions, strict=True)):
            if direction == "maximize":
                reference.append(0.0)
            elif limits.get(name) is not None:
                reference.append(float(limits[name]))
            else:
                reference.append(1.1 * np.max(members[:, column], initial=values[column]))
        before = hypervolume(members, directions, reference)
        after = hypervolume(np.vstack([members, values]), directions, reference)
        return (after - before) / before if before > 0 else 1.0

    return gain


def record(
    trial: optuna.Trial,
    candidate: Candidate,
    metrics: Metrics,
    budget: Budget,
    objectives: list[str] | None = None,
    feedback: str = EarlyStopping.feedback,
) -> list[float]:
    """Store a trial's outcome in the study (user attributes and budget constraints) and
    return its objective values; the one place both backends write a result.
    ``feedback``: what a stopped trial's accuracy objective is (``EarlyStopping.feedback``)."""
    trial.set_user_attr("genome", candidate.genome)
    trial.set_user_attr("candidate", candidate.to_dict())
    trial.set_user_attr("metrics", metrics.to_dict())
    if metrics.status == "failed":
        return []
    constraints = budget.constraints(
        latency_ms=metrics.latency_ms,
        peak_memory_kb=metrics.peak_memory_kb,
        flash_kb=metrics.flash_kb,
    )
    for name, value in constraints.items():
        trial.set_constraint(name, value)
    return objective_values(metrics, objectives or [], feedback)


def objective_values(
    metrics: Metrics, objectives: list[str], feedback: str = "stopped"
) -> list[float]:
    """The values the sampler learns from. A stopped trial's accuracy is its accuracy when
    stopped, or with ``feedback="expected"`` its predicted final accuracy when there is one
    (the figures in the trial's metrics stay as measured)."""
    values = []
    for name in objectives:
        value: Any = getattr(metrics, name)
        if name == "accuracy" and value is None:
            value = 0.0  # never trained (over budget): the worst accuracy there is
        if (
            name == "accuracy"
            and metrics.status == "pruned"
            and feedback == "expected"
            and metrics.expected_accuracy is not None
        ):
            value = metrics.expected_accuracy
        values.append(float(value))
    return values


def describe(metrics: Metrics, candidate: Candidate) -> str:
    # "pruned" is also what compression does to channels, and the genome beside it says p0.25.
    status = "stopped early" if metrics.status == "pruned" else metrics.status
    parts = [f"{status:<10}"]
    if metrics.accuracy is not None:
        parts.append(f"val acc {metrics.accuracy:.4f}")
    if metrics.status == "pruned" and metrics.expected_accuracy is not None:
        # The final accuracy predicted for it (what early_stopping_feedback "expected" tells
        # the sampler), marked as a prediction.
        parts.append(f"(expected {metrics.expected_accuracy:.4f} by the end, predicted)")
    if metrics.latency_ms is not None:
        # "measured: ..." or "predicted (...)": the log says which, as the report does.
        how = (metrics.latency_source or "").split(" ")[0].rstrip(":")
        parts.append(f"latency {metrics.latency_ms:.3f} ms" + (f" ({how})" if how else ""))
    if metrics.peak_memory_kb is not None:
        parts.append(f"peak mem {metrics.peak_memory_kb:.1f} KB")
    parts.append(f"{metrics.seconds_total:.1f} s")
    if metrics.reason:
        parts.append(f"({metrics.reason})")
    lost = compression_loss(metrics) if _compresses(candidate) else None
    if lost is not None:
        parts.append(
            f"(compression cost {100 * lost:.0f} points: {metrics.val_curve[-1]:.4f} after "
            f"training, {metrics.accuracy:.4f} deployed; more compression.finetune_epochs or "
            "qat_epochs, or lower prune ratios, may recover it)"
        )
    return "  ".join(parts) + f"  [{candidate.genome}]"


# A deployed model this far below its trained self was broken by compression, not by
# training: the log says so, since the trial is still "ok" and its accuracy alone hides it.
COMPRESSION_LOSS_NOTED = 0.10


def _compresses(candidate: Candidate) -> bool:
    policy = candidate.policy
    return (
        policy.quantized
        or policy.sparse
        or any(stage.prune_ratio > 0 or stage.factorizes for stage in policy.stages)
    )


def compression_loss(metrics: Metrics) -> float | None:
    """How much validation accuracy compression (pruning, factorization, quantization)
    took from a trained candidate, when it is more than ``COMPRESSION_LOSS_NOTED``."""
    if metrics.status != "ok" or not metrics.val_curve or metrics.accuracy is None:
        return None
    lost = metrics.val_curve[-1] - metrics.accuracy
    return lost if lost > COMPRESSION_LOSS_NOTED else None


def same_candidate(trial: optuna.Trial, candidate: Candidate) -> optuna.trial.FrozenTrial | None:
    """An earlier completed trial of this study with the same genome (the fidelity is fixed
    per study: a run refuses a changed config)."""
    for other in trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if other.user_attrs.get("genome") == candidate.genome and "metrics" in other.user_attrs:
            return other
    return None
