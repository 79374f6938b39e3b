"""Hand-designed baselines evaluated into a run (``paretonas baselines --config FILE``).

The report compares the front with the networks a user would otherwise ship (MobileNetV2
at 0.35 and 0.5, a ShuffleNet, a plain CNN: ``spaces.baselines``). For the comparison to be
like for like, each baseline goes through the run's own evaluation, ``Objective.evaluate``:
the same data, cached teacher, distillation recipe (subset, epochs, temperature), export and
latency measurement as every searched candidate; its outcome is written by the same
``search.objective.record`` (metrics, genome, budget constraints).

Each baseline becomes one trial of the run's study, marked with the user attribute
``baseline`` (its name; the ``baseline`` column of trials.csv), its files under
checkpoints/baseline-<name>/. It is added with ``Study.add_trial`` in state FAIL whatever
its outcome (the outcome is ``metrics.status``, as for every trial): FAIL is the one finished
state that every part of Optuna leaves alone, and a COMPLETE trial with no parameters would
mislead all of them:

- TPE counts COMPLETE trials towards ``n_startup_trials`` (four baselines would end random
  start-up after one searched trial) and gives its "good" quota to trials it then drops for
  lacking parameters;
- NSGA-II and fANOVA importance take the intersection of the COMPLETE trials' parameters,
  which one parameterless trial empties (NSGA-II would sample at random from then on);
- ``Objective``'s duplicate check and early stopping's current front read COMPLETE trials.

Baselines are not search trials: they never count towards the run's size (see
``search.worker.finished``) and are never on the front (``search.results.pareto_frame``).

Budget: by default a baseline is trained even when it is over the budget (a searched
candidate over budget is not), so the report can say what it would have reached; its
constraints are recorded against the real budget, so trials.csv calls it infeasible all the
same. Bit-widths: baselines are fp32; on a device that cannot run fp32 (an int8-only MCU)
they take the widest bit-widths the device runs, trained with the run's quantization recipe,
because that is what a user would ship there.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from datetime import datetime
from pathlib import Path

import optuna
from optuna.trial import TrialState

from evaluators.budget import Budget
from evaluators.devices import BLOCK_OPS, Device
from evaluators.metrics import Metrics
from search.config import ConfigError, RunConfig
from search.objective import Objective, describe, record
from search.results import BASELINE
from search.runner import (
    RunResult,
    _cores,
    _open,
    _set_threads,
    check_saved_config,
    check_study_config,
    prepare,
    record_config,
    save_config,
)
from search.storage import default_storage
from spaces.baselines import BASELINES
from spaces.build import get_candidate, list_models
from spaces.candidate import Candidate, CompressionPolicy, StagePolicy

log = logging.getLogger("paretonas")

ARTIFACT_PREFIX = "baseline-"  # checkpoints/baseline-<name>/


def run_baselines(
    config: RunConfig,
    names: list[str] | None = None,
    progress: bool = False,
    *,
    train_over_budget: bool = True,
) -> RunResult:
    """Evaluate the baselines ``names`` (default: ``spaces.baselines.BASELINES``; any
    registered model name works) into the run of ``config``, each once: a baseline already
    in the run is kept, not evaluated again. Opens (or creates) the run exactly as
    ``run_search`` does, so it may come before, after or between searches of the run.
    Returns the run's tables, rewritten."""
    names = list(dict.fromkeys(names or BASELINES))
    unknown = [name for name in names if name not in list_models()]
    if unknown:
        raise ConfigError(
            f"unknown baseline(s) {', '.join(unknown)}; registered models: "
            f"{', '.join(list_models())}"
        )
    run_dir = Path(config.results_dir) / config.name
    run_dir.mkdir(parents=True, exist_ok=True)
    check_saved_config(config, run_dir)
    save_config(config, run_dir)
    url = config.storage or default_storage(run_dir, config.execution.workers)
    study = _open(config, url)
    check_study_config(study, config)
    record_config(study, config)
    save_config(config, run_dir)
    done = baselines_in(study)
    todo = [name for name in names if name not in done]
    session = prepare(config, study, progress=progress)
    if not todo:
        log.info("run %s: baselines %s are already evaluated", config.name, ", ".join(names))
        return session.write()
    _set_threads(config.execution.threads_per_worker or _cores())
    device = config.target()
    objective = session.objective
    if train_over_budget:
        objective = Objective(
            objective.space,
            dataclasses.replace(objective.context, budget=Budget()),
            objective.objectives,
            objective.run_dir,
        )
    for name in todo:
        candidate = for_device(get_candidate(name), device)
        started = datetime.now()
        begin = time.perf_counter()
        missing = missing_ops(candidate, device)
        if missing:
            reason = f"device {device.name} does not execute {', '.join(missing)}"
            metrics, artifacts, failure = Metrics(status="failed", reason=reason), None, None
        else:
            metrics, artifacts, failure = objective.evaluate(candidate, ARTIFACT_PREFIX + name)
        trial = optuna.trial.create_trial(state=TrialState.FAIL)
        trial.datetime_start = started
        # Constraints against the run's real budget, whatever budget the training used.
        record(trial, candidate, metrics, session.context.budget, config.objectives)  # type: ignore[arg-type]
        trial.set_user_attr(BASELINE, name)
        if artifacts is not None:
            trial.set_user_attr("artifacts", artifacts)
        if failure is not None:
            trial.set_user_attr("traceback", failure)
        study.add_trial(trial)
        log.info(
            "baseline %s %s  (%.0f s)",
            name,
            describe(metrics, candidate),
            time.perf_counter() - begin,
        )
        session.write(report=session.throttle.due())
    return session.write()


def baselines_in(study: optuna.Study) -> set[str]:
    """Names of the baselines the study already holds."""
    return {
        str(t.user_attrs[BASELINE])
        for t in study.get_trials(deepcopy=False)
        if t.user_attrs.get(BASELINE) is not None
    }


def for_device(candidate: Candidate, device: Device) -> Candidate:
    """``candidate`` at the widest weight and activation bit-widths ``device`` runs (fp32
    where it can; int8 on an int8-only MCU), keeping its pruning ratios and sparsity."""
    weight_bits, activation_bits = max(device.weight_bits), max(device.activation_bits)
    policy = CompressionPolicy(
        tuple(
            StagePolicy(
                prune_ratio=stage.prune_ratio,
                weight_bits=min(stage.weight_bits, weight_bits),
                activation_bits=min(stage.activation_bits, activation_bits),
                sparsity=stage.sparsity,
            )
            for stage in candidate.policy.stages
        )
    )
    return dataclasses.replace(candidate, policy=policy)


def missing_ops(candidate: Candidate, device: Device) -> list[str]:
    """The op kinds ``candidate``'s blocks need that ``device`` does not execute (a
    registered user kind declares none: the device's own checks judge it)."""
    ops = set(device.executes.ops)
    needed = {op for stage in candidate.arch.stages for op in BLOCK_OPS.get(stage.kind, ())}
    return sorted(needed - ops)
