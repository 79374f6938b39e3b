"""The Optuna objective: one trial = one candidate, judged by ``evaluators.pipeline``.

Per trial the storage holds, as user attributes, the candidate (``candidate``, ``genome``)
and its ``metrics``; the budget goes in as constraints (cost - bound) through
``Trial.set_constraint``, which Optuna's TPE and NSGA-II samplers read. A candidate over
budget is never trained; its accuracy objective is 0 so that samplers learn from its cost.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna

from evaluators.metrics import Metrics
from evaluators.pipeline import EvaluationContext, evaluate_candidate
from spaces.candidate import Candidate
from spaces.space import SearchSpace

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
        candidate = self.space.suggest(trial)
        trial.set_user_attr("genome", candidate.genome)
        trial.set_user_attr("candidate", candidate.to_dict())
        earlier = _same_candidate(trial, candidate)
        if earlier is not None:
            # TPE re-proposes the same point in small spaces; the result would be the same.
            # Nothing was computed for this trial: it spends no seconds.
            metrics = replace(Metrics.from_dict(earlier.user_attrs["metrics"]), seconds={})
            trial.set_user_attr("duplicate_of", earlier.number)
            if "artifacts" in earlier.user_attrs:
                trial.set_user_attr("artifacts", earlier.user_attrs["artifacts"])
        else:
            artifacts = Path(CHECKPOINTS) / str(trial.number)
            try:
                metrics = evaluate_candidate(
                    candidate,
                    self.context,
                    artifact_dir=self.run_dir / artifacts,
                    description=f"trial {trial.number}",
                )
            except Exception as error:
                reason = f"{type(error).__name__}: {error}".splitlines()[0][:500]
                trial.set_user_attr("metrics", Metrics(status="failed", reason=reason).to_dict())
                trial.set_user_attr("traceback", traceback.format_exc()[-4000:])
                log.warning("trial %d failed: %s  [%s]", trial.number, reason, candidate.genome)
                raise
            if metrics.status == "ok":
                trial.set_user_attr("artifacts", str(artifacts))
        trial.set_user_attr("metrics", metrics.to_dict())
        constraints = self.context.budget.constraints(
            latency_ms=metrics.latency_ms,
            peak_memory_kb=metrics.peak_memory_kb,
            flash_kb=metrics.flash_kb,
        )
        for name, value in constraints.items():
            trial.set_constraint(name, value)
        same = f"  (same candidate as trial {earlier.number})" if earlier is not None else ""
        log.info("trial %d %s%s", trial.number, describe(metrics, candidate), same)
        return objective_values(metrics, self.objectives)


def objective_values(metrics: Metrics, objectives: list[str]) -> list[float]:
    values = []
    for name in objectives:
        value: Any = getattr(metrics, name)
        if name == "accuracy" and value is None:
            value = 0.0  # never trained (over budget): the worst accuracy there is
        values.append(float(value))
    return values


def describe(metrics: Metrics, candidate: Candidate) -> str:
    parts = [f"{metrics.status:<10}"]
    if metrics.accuracy is not None:
        parts.append(f"val acc {metrics.accuracy:.4f}")
    if metrics.latency_ms is not None:
        parts.append(f"latency {metrics.latency_ms:.3f} ms")
    if metrics.peak_memory_kb is not None:
        parts.append(f"peak mem {metrics.peak_memory_kb:.1f} KB")
    parts.append(f"{metrics.seconds_total:.1f} s")
    if metrics.reason:
        parts.append(f"({metrics.reason})")
    return "  ".join(parts) + f"  [{candidate.genome}]"


def _same_candidate(trial: optuna.Trial, candidate: Candidate) -> optuna.trial.FrozenTrial | None:
    """An earlier completed trial of this study with the same genome (the fidelity is fixed
    per study: a run refuses a changed config)."""
    for other in trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if other.user_attrs.get("genome") == candidate.genome and "metrics" in other.user_attrs:
            return other
    return None
