"""One search run, end to end: config -> data -> teacher -> study -> results/<run>/."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import yaml
from optuna.distributions import CategoricalDistribution
from pydantic import BaseModel

from evaluators.data import Dataset
from evaluators.devices import Device, DeviceError, alike_note
from evaluators.distill import resolve_device
from evaluators.early_stopping import EarlyStopping
from evaluators.files import write_text_atomic
from evaluators.hardware import Host
from evaluators.latency import LatencyOracle
from evaluators.pipeline import EvaluationContext
from evaluators.predictor import fitted_input_shape, predictor_dir
from evaluators.teacher import Teacher, prepare_teacher, with_measured_latency
from search.config import ConfigError, RunConfig, parse_config
from search.objective import Objective
from search.report import write_report
from search.report.formatting import counted
from search.results import (
    TRIALS_FILE,
    all_failed,
    budget_unmet,
    export_pareto_models,
    pareto_frame,
    trials_frame,
    write_tables,
)
from search.storage import (
    LOCAL_WORKER_VARIABLE,
    StorageError,
    default_storage,
    deferred_interrupts,
    is_journal,
    local_file,
    open_storage,
    retry_own_trials,
    safe_url,
    worker_identity,
)
from search.study import open_study
from search.summary import write_importance
from search.worker import TARGET, WorkersFailed, work
from search.worker import progress as worker_progress
from spaces.candidate import Candidate
from spaces.params import Choice

log = logging.getLogger("paretonas")

# Settings that may change between invocations of the same run without invalidating it.
# A plugin added later (a model for `baselines`) changes no trial's meaning; one whose kinds
# the run draws cannot be dropped, since the config would not validate without it.
_RESUMABLE = {"trials", "name", "results_dir", "execution", "tiers", "plugins"}
REPORT_EVERY_S = 15.0  # report.html is rewritten at most this often while trials finish
CONFIG = "config"  # study user attribute: the run's config, for workers on other machines
# Where `paretonas worker` finds the storage URL when not given --storage.
STORAGE_VARIABLE = "PARETONAS_STORAGE"


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    trials: pd.DataFrame
    pareto: pd.DataFrame


@dataclass
class ReportThrottle:
    """Says when the report is due again: at most once per ``seconds`` during a run."""

    seconds: float = REPORT_EVERY_S
    last: float = float("-inf")

    def due(self) -> bool:
        now = time.monotonic()
        if now - self.last < self.seconds:
            return False
        self.last = now
        return True


def run_search(config: RunConfig, *, trials: int | None = None, progress: bool = True) -> RunResult:
    """Run (or resume) the search until the run holds ``trials`` finished trials (default:
    the config's ``trials``), on the configured backend and number of workers."""
    run_dir = Path(config.results_dir) / config.name
    run_dir.mkdir(parents=True, exist_ok=True)
    check_saved_config(config, run_dir)
    # Kept even when the start fails below (a broken storage URL): the folder says what ran.
    save_config(config, run_dir)
    execution = config.execution
    # Cheap checks first: a broken storage URL or a missing dataset must not cost a teacher.
    url = config.storage or default_storage(run_dir, execution.workers)
    if execution.workers > 1 and url.startswith("sqlite:"):
        log.warning(
            "run %s keeps its SQLite storage with %d workers: SQLite serialises their writes "
            "and may time out under load; for many workers start a new run (--name), which "
            "gets a journal file, or give storage: a PostgreSQL URL",
            config.name,
            execution.workers,
        )
    study = _open(config, url)
    for note in config.budget_beyond_device():
        log.warning(note)
    alike = alike_note(config.search_space(), config.target())
    if alike:
        # A run's space is fixed once it has trials: the advice is for the next one.
        log.warning(alike + (" (in a new run, --name)" if study.trials else ""))
    target = trials if trials is not None else config.trials
    check_study_config(study, config)
    check_study_space(study, config)
    record_config(study, config)
    save_config(config, run_dir)  # again, after the study's: one started beside it may differ
    study.set_user_attr(TARGET, target)
    start = time.perf_counter()
    # What the end line's seconds cover: the Ray backend prepares inside run_ray.
    # Wall time of this command, not the trials' compute: several workers, and earlier
    # invocations of a resumed run, are in trials.csv's seconds_total.
    timed = " s of wall time in this invocation, with data, teacher and Ray's start"
    if execution.backend == "ray":
        from search.ray_backend import run_ray

        result = run_ray(config, study, url, target, progress=progress)
    else:
        timed = " s of wall time in this invocation, for its trials"
        session = prepare(config, study, progress=progress and execution.workers == 1)
        done, _ = worker_progress(study)
        log.info(
            "run %s: %d of %s finished; storage %s; %s",
            config.name,
            done,
            counted(target, "trial"),
            safe_url(url),
            counted(execution.workers, "worker"),
        )
        start = time.perf_counter()
        with session.written_on_interrupt():
            failed_workers: list[int] = []
            if execution.workers == 1:
                _set_threads(execution.threads_per_worker or _cores())
                session.work(target)
            else:
                failed_workers = _run_local_workers(config, url, execution.workers)
        result = session.write()
        done, _ = worker_progress(study)
        if failed_workers:
            how = ", ".join(
                f"killed by signal {-code}" if code < 0 else f"exit code {code}"
                for code in failed_workers
            )
            stopped = f"{len(failed_workers)} of {counted(execution.workers, 'worker')} ({how})"
            if done < target:
                raise WorkersFailed(
                    f"{stopped} stopped before run {config.name} held its "
                    f"{counted(target, 'trial')} ({done} finished, kept); see their lines "
                    "above, fix what they said and run the same command to resume"
                )
            log.warning("%s stopped early; the others finished the run", stopped)
    # The run's --trials counts finished trials, the rule of search.worker.finished; the
    # interrupted ones are listed in trials.csv (retried, unless out of retries) besides.
    finished, _ = worker_progress(study)
    status = result.trials.get("status", pd.Series(dtype=str))
    interrupted = int((status == "interrupted").sum())
    log.info(
        "run %s: %d finished trial%s%s, %d Pareto member%s, %.0f%s; report: %s",
        config.name,
        finished,
        "" if finished == 1 else "s",
        f" (and {interrupted} interrupted)" if interrupted else "",
        len(result.pareto),
        "" if len(result.pareto) == 1 else "s",
        time.perf_counter() - start,
        timed,
        run_dir / "report.html",
    )
    _warn_if_nothing_fits(result.trials, config)
    return result


def _warn_if_nothing_fits(trials: pd.DataFrame, config: RunConfig) -> None:
    message = all_failed(trials) or budget_unmet(trials, config.budget.model_dump())
    if message:
        log.warning("run %s: %s", config.name, message)


def run_worker(
    storage: str,
    study_name: str,
    results_dir: str | None = None,
    progress: bool = False,
    wait_s: float = 0.0,
) -> RunResult:
    """Join a running study as one more worker (``paretonas worker``): the config comes from
    the storage, the dataset and teacher are prepared here (cached under results/).
    ``wait_s``: how long to wait for ``paretonas search`` to create the study (workers
    started together with it)."""
    deadline = time.monotonic() + wait_s
    local = local_file(storage)
    # A worker started with the search may come first: the file appears when it opens.
    while local is not None and not local.is_file() and time.monotonic() < deadline:
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    if local is not None and not local.is_file():
        # Opening it would create an empty database and then report no study in it.
        raise StorageError(
            f"no study storage at {local}"
            + (f" (waited {wait_s:g} s)" if wait_s else "")
            + "; give the file the search writes (sqlite:///results/<run>/study.db or "
            "results/<run>/study.journal), or start the run with `paretonas search` first"
        )
    probe = open_storage(storage)
    while True:
        try:
            saved = optuna.load_study(study_name=study_name, storage=probe).user_attrs
        except KeyError:
            saved = None
        # The search creates the study, then records its config in it, a moment later.
        if (saved is not None and CONFIG in saved) or time.monotonic() >= deadline:
            break
        time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
    waited = f" (waited {wait_s:g} s)" if wait_s else ""
    if saved is None:
        raise StorageError(
            f"no study named {study_name!r} in {safe_url(storage)}{waited}; start the run with "
            "`paretonas search` first, check --study, or give the worker --wait SECONDS"
        )
    if CONFIG not in saved:
        raise StorageError(
            f"study {study_name!r} in {safe_url(storage)} was not created by paretonas search"
            f"{waited}"
        )
    # A run recorded before a setting existed goes on as it began, not under its new default.
    config = parse_config(_with_settings_it_predates(saved[CONFIG]), f"study {study_name}")
    if results_dir is not None:
        config = config.model_copy(update={"results_dir": results_dir})
    execution = config.execution
    study = _open(config, storage, worker=True)
    check_study_space(study, config)
    target = int(study.user_attrs.get(TARGET, config.trials))
    done, _ = worker_progress(study)
    if done >= target:
        # Before the dataset and teacher: on a new machine the teacher alone takes minutes.
        log.info("worker: run %s already holds %d of %d finished trials", config.name, done, target)
        trials = trials_frame(study)
        pareto = pareto_frame(trials, config.objectives, config.directions)
        return RunResult(Path(config.results_dir) / config.name, trials, pareto)
    session = prepare(config, study, progress=progress)
    # A worker started by `search --workers N` is told its share of the cores.
    shared = int(os.environ.get("PARETONAS_THREADS", "0"))
    _set_threads(shared or execution.threads_per_worker or _cores())
    ran = session.work(target)
    log.info("worker: %s run here", counted(ran, "trial"))
    return session.write()


def _open(config: RunConfig, url: str, *, worker: bool = False) -> optuna.Study:
    """The run's study; ``worker`` for a process that shares it with others (its sampler
    gets a seed of its own)."""
    execution = config.execution
    storage = open_storage(url, execution.heartbeat_s, execution.grace_s, execution.max_retries)
    latency = LatencyOracle.for_device(config.target(), config.results_dir)  # missing: now
    seed = config.seed if config.sampler_seed is None else config.sampler_seed
    identity = worker_identity() if worker else None
    study = open_study(config.name, storage, config.directions, config.sampler, seed, identity)
    if not latency.measures:
        _check_latency_model(study, latency, config, worker=worker)
    _check_cost_model(study, config, worker=worker)
    return study


def _costed_otherwise(study: optuna.Study, device: Device) -> bool:
    """Whether a finished trial (baselines included) has a stage the device holds at other
    widths than its policy's, read from the candidate the trial recorded: one the costing
    before held widths got wrong."""
    for trial in study.trials:
        recorded = trial.user_attrs.get("candidate")
        if not trial.state.is_finished() or not isinstance(recorded, dict):
            continue
        try:
            stages = Candidate.from_dict(recorded).policy.stages
            if any(device.held_widths(stage) != stage for stage in stages):
                return True
        except (DeviceError, KeyError, TypeError, ValueError):
            continue  # another version's record, or widths this device cannot run
    return False


COST_MODEL = "cost_model"  # study user attribute: how memory and flash were computed
HELD_WIDTHS = "held widths"  # evaluators.cost.held_candidate, from 2026-11-29


def _check_cost_model(study: optuna.Study, config: RunConfig, *, worker: bool = False) -> None:
    """A run begun before memory and flash were computed at the widths the device holds a
    stage at has trials whose mixed-width stages (8-bit weights or activations alone) were
    costed at their 8-bit side: said once, since its front may compare the two."""
    if study.user_attrs.get(COST_MODEL) == HELD_WIDTHS:
        return
    if _costed_otherwise(study, config.target()):
        log.warning(
            "run %s began before memory and flash were computed at the bit-widths the device "
            "runs a stage at: its earlier trials with 8-bit weights or activations alone were "
            "costed as 8-bit, later ones as the fp32 they run as; start a new run (--name) "
            "to compare like with like",
            config.name,
        )
    if not worker:
        study.set_user_attr(COST_MODEL, HELD_WIDTHS)


PRUNE_ALIGN = "prune_align"  # study user attribute: pruned channel counts' multiple
LATENCY_MODEL = "latency_model"  # study user attribute: what predicts the run's latency
DATA_SHAPE = "data_shape"  # study user attribute: the input and classes the run trains on


def _check_data(study: optuna.Study, dataset: Dataset, config: RunConfig) -> None:
    """The same config can load other data later (files added to an image folder, a new
    paretonas reading a layout differently); a run's trials must all take one input and
    one set of classes, or its front compares models of two tasks."""
    shape = {
        "input_shape": list(dataset.input_shape),
        "class_names": list(dataset.class_names),
    }
    recorded = study.user_attrs.get(DATA_SHAPE)
    if recorded is None or not study.trials:
        study.set_user_attr(DATA_SHAPE, shape)
    elif recorded != shape:
        raise ConfigError(
            f"run {config.name} trained on inputs {recorded['input_shape']} with classes "
            f"{', '.join(recorded['class_names'])}, but dataset {dataset.name} now loads as "
            f"{shape['input_shape']} with classes {', '.join(shape['class_names'])}; give "
            "the new data a new run (--name), or restore the data as it was"
        )


def _check_latency_model(
    study: optuna.Study, latency: LatencyOracle, config: RunConfig, *, worker: bool = False
) -> None:
    """A device's latency is predicted: every trial of a run must be costed by the same
    model, or the front ranks one model's figures against another's. The run's own start
    records the model (again, while the run has no trial); a later start with another (a
    predictor calibrated, or refitted, in between) is refused, and so is a worker, on this
    machine or another, whose results folder holds another model."""
    recorded = study.user_attrs.get(LATENCY_MODEL)
    if not worker and (recorded is None or not study.trials):
        study.set_user_attr(LATENCY_MODEL, latency.model)
        return
    if recorded is None or recorded == latency.model:
        return
    folder = predictor_dir(latency.device.name, config.results_dir)
    if worker:
        raise ConfigError(
            f"run {config.name} costs its trials with {recorded}, but this worker has "
            f"{latency.model} (from {folder}); copy the run's predictor folder there, or "
            "point results_dir at it"
        )
    # Which way back depends on what changed: a predictor that appeared since (the run
    # used the roofline) is moved aside; one refitted or removed since is put back.
    if latency.predictor is None and recorded.startswith("the roofline"):
        back = f"put {config.device.name}'s device file (its public numbers) back as it was"
    elif recorded.startswith("the roofline"):
        back = f"move {folder} aside while this run finishes"
    else:
        back = f"put back the predictor folder it was fitted with at {folder}"
    raise ConfigError(
        f"run {config.name} costed its trials with {recorded}, but {config.device.name} "
        f"now has {latency.model}; continue with the new model under a new --name (the "
        f"report can overlay both runs), or {back}"
    )


@dataclass
class Session:
    """What evaluating trials of one run needs in this process."""

    config: RunConfig
    run_dir: Path
    study: optuna.Study
    dataset: Dataset
    teacher: Teacher
    context: EvaluationContext
    objective: Objective
    facts: dict[str, Any]
    throttle: ReportThrottle = field(default_factory=ReportThrottle)

    def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.write(report=self.throttle.due())

    def write(self, report: bool = True) -> RunResult:
        return write_results(self.study, self.config, self.run_dir, self.facts, report=report)

    def work(self, target: int) -> int:
        """Run trials in this process until the study holds ``target`` finished ones
        (``search.worker.work``); how many ran here."""
        execution = self.config.execution
        try:
            return work(
                self.study,
                self.objective,
                target,
                after_trial=self.after_trial,
                max_retry=execution.max_retries,
                grace_s=execution.grace_s,
                config_changed=lambda: config_changed_elsewhere(self.study, self.config),
            )
        except ConfigError:
            kept = self.study.user_attrs.get(CONFIG)
            if kept is not None and config_changed_elsewhere(self.study, self.config):
                # The other process's config is the run's now: the folder's copy says so,
                # whichever of the two wrote it last.
                text = yaml.safe_dump(kept, sort_keys=False)
                write_text_atomic(self.run_dir / "config.yaml", text)
            raise

    @contextlib.contextmanager
    def written_on_interrupt(self) -> Iterator[None]:
        """On Ctrl-C inside, queue again the trials this process was running and rewrite
        the tables and report before the interrupt goes on: trials.csv then lists them as
        interrupted, not as running until the next run. (A worker of ``work`` has queued
        its own trial already; a Ray driver has not.) A second Ctrl-C waits for the write."""
        try:
            yield
        except KeyboardInterrupt:
            with deferred_interrupts():
                retry_own_trials(self.study, self.config.execution.max_retries)
                self.write()
            raise


def predictor_input_mismatch(
    latency: LatencyOracle, results_dir: str | Path, input_shape: tuple[int, ...]
) -> str | None:
    """A warning when the fitted predictor's probes were made at another input size than the
    run's: its error was measured on other shapes, and kernels at this size are
    extrapolated."""
    if latency.predictor is None or latency.measures:  # the host's only sits beside
        return None
    folder = predictor_dir(latency.device.name, results_dir)
    fitted = fitted_input_shape(folder)
    if fitted is None or tuple(fitted) == tuple(input_shape):
        return None
    shape = "x".join(map(str, input_shape))
    return (
        f"the latency predictor in {folder} was fitted on probes of {'x'.join(map(str, fitted))} "
        f"inputs and this run's are {shape}: its predictions here are extrapolated; for "
        f"figures to trust, probe with this run's config (paretonas probe --config) and "
        "calibrate again, under a new results folder or after this run"
    )


def predictor_mismatch(latency: LatencyOracle, threads: int) -> str | None:
    """Why the host's predicted and measured latency would differ by construction: its
    predictor was calibrated at another thread count than the run measures with."""
    calibrated = latency.predictor.meta.get("threads") if latency.predictor else None
    if not latency.measures or not calibrated or calibrated == threads:
        return None
    return (
        f"the host's latency predictor was calibrated with {calibrated} thread(s) and this run "
        f"measures with {threads}: predicted and measured latency will differ for that reason "
        f"alone; run `paretonas calibrate --device host --threads {threads}` to compare like "
        "with like"
    )


def prepare(config: RunConfig, study: optuna.Study, *, progress: bool = True) -> Session:
    """Dataset, teacher (trained once, then cached) and the evaluation context."""
    run_dir = Path(config.results_dir) / config.name
    run_dir.mkdir(parents=True, exist_ok=True)
    latency = LatencyOracle.for_device(config.target(), config.results_dir)
    mismatch = predictor_mismatch(latency, config.device.threads)
    if mismatch:
        log.warning(mismatch)
    if not latency.measures and latency.predictor is None:
        # A measured latency is said with the teacher's, a fitted predictor as it loads.
        log.info("latency: %s", _describe_latency(latency, config.host()))
    dataset = config.load_dataset()
    log.info(
        "dataset %s: %d train / %d val / %d test, shape %s (%s)",
        dataset.name,
        len(dataset.train),
        len(dataset.val),
        len(dataset.test),
        dataset.input_shape,
        dataset.source,
    )
    _check_data(study, dataset, config)
    mismatch = predictor_input_mismatch(latency, config.results_dir, dataset.input_shape)
    if mismatch:
        log.warning(mismatch)
    device = resolve_device(config.training.device)
    teacher = prepare_teacher(
        dataset,
        config.teacher_config(),
        Path(config.results_dir) / "teachers",
        progress=progress,
        device=device,
    )
    host = config.host()
    if latency.measures:
        teacher = _teacher_latency(study, teacher, config, dataset, host)
    context = EvaluationContext.create(
        dataset,
        teacher.train_logits,
        config.budget_value(),
        host,
        config.train_config(),
        config.training.train_subset,
        compression=config.compression_config(),
        latency=latency,
        progress=progress,
        device=device,
        timeout_s=config.execution.trial_timeout_s,
        early_stopping=EarlyStopping(
            config.training.early_stopping,
            config.training.early_stopping_min_epochs,
            config.training.early_stopping_slack,
            config.training.early_stopping_quantile,
            config.training.early_stopping_min_gain,
            config.training.early_stopping_feedback,
            config.training.early_stopping_keep_contenders,
        ),
    )
    objective = Objective(config.search_space(), context, config.objectives, run_dir)
    return Session(
        config,
        run_dir,
        study,
        dataset,
        teacher,
        context,
        objective,
        run_facts(dataset, teacher, _describe_latency(latency, host), _latency_model(latency)),
    )


TEACHER_LATENCY = "teacher_latency"


def _teacher_latency(
    study: optuna.Study, teacher: Teacher, config: RunConfig, dataset: Dataset, host: Host
) -> Teacher:
    """The teacher's latency, measured by the first process to prepare the run and kept in
    the study, so that every worker, resume and rewrite of run.json quotes one figure."""
    kept = study.user_attrs.get(TEACHER_LATENCY)
    if kept:
        return replace(teacher, latency_ms=kept["latency_ms"], latency_source=kept["source"])
    teacher = with_measured_latency(teacher, config.teacher_config(), dataset, host)
    if teacher.latency_ms is not None:
        study.set_user_attr(
            TEACHER_LATENCY, {"latency_ms": teacher.latency_ms, "source": teacher.latency_source}
        )
    return teacher


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, threads))


def _run_local_workers(config: RunConfig, url: str, workers: int) -> list[int]:
    """Start ``workers`` processes of ``paretonas worker`` on the study and wait for them.

    Each gets an equal share of the cores. They share this process's group, so stopping
    the search (Ctrl-C, or a kill of the group) stops them too; a worker that dies leaves
    its trial to the others, who retry it. Stopped by Ctrl-C, the search waits for the
    workers to queue their trials again (``_stop_workers``). Returns the exit codes of
    those that stopped with an error.
    """
    threads = config.execution.threads_per_worker or max(1, _cores() // workers)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "PARETONAS_THREADS": str(threads),
        # Not on the command line, which every user of the machine can read (ps).
        STORAGE_VARIABLE: url,
        LOCAL_WORKER_VARIABLE: str(os.getpid()),
    }
    command = [
        sys.executable, "-m", "search.cli", "worker",
        "--study", config.name, "--results", config.results_dir,
        "--no-progress",  # N bars or N streams of lines in one log would not read
    ]  # fmt: skip
    processes = [
        # Their logs go to stderr with this process's; the report path on stdout is ours.
        subprocess.Popen(
            command, env=env, cwd=os.getcwd(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        )
        for _ in range(workers)
    ]
    log.info("started %d local workers (%d thread(s) each)", workers, threads)
    try:
        # Polled, not waited on: the kernel may hand a SIGINT for this process to one of
        # its other threads (torch's), and then a blocking wait for a worker would not
        # return, nor the search notice, until the workers had finished the whole run.
        while any(process.poll() is None for process in processes):
            time.sleep(0.2)
        codes = [process.returncode for process in processes]
    except BaseException:
        _stop_workers(processes)
        raise
    return [code for code in codes if code != 0]


def _stop_workers(processes: list[subprocess.Popen], grace_s: float = 20.0) -> None:
    """Stop the local workers so that each queues its trial again, as Ctrl-C makes it do.

    Ctrl-C at a terminal reached them already (they share its process group): they get a
    second to stop on their own, then those still running are sent SIGINT (the search may
    have been signalled alone; a second SIGINT while a worker queues its trial waits for it).
    Only a worker still running after ``grace_s`` is terminated; terminating at once killed
    workers before they had queued their trials, and mid-write to a journal file, whose
    lock the next run then waited 30 s to break."""

    def wait_until(deadline: float) -> list[subprocess.Popen]:
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
        return [process for process in processes if process.poll() is None]

    for process in wait_until(time.monotonic() + 1.0):
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGINT)
    live = wait_until(time.monotonic() + grace_s)
    for process in live:
        log.warning("worker %d did not stop within %g s; terminating it", process.pid, grace_s)
        process.terminate()
    for process in wait_until(time.monotonic() + 5.0):
        process.kill()


def _describe_latency(latency: LatencyOracle, host: Host) -> str:
    device = latency.device
    if latency.measures:
        return host.description
    how = (
        latency.predictor.source
        if latency.predictor is not None
        else "predicted (roofline of its public numbers: a lower bound)"
    )
    return f"{device.name} ({device.description}): latency {how}, not measured"


def _latency_model(latency: LatencyOracle) -> str:
    """How the run's latency axis is known: ``measured`` here, ``predicted`` by a fitted
    predictor, or the device's ``roofline`` (a lower bound)."""
    if latency.measures:
        return "measured"
    return "predicted" if latency.predictor is not None else latency.device.latency.source


def run_facts(
    dataset: Dataset, teacher: Teacher, device_description: str, latency_model: str | None = None
) -> dict[str, Any]:
    """What run.json says besides the config: the data, the teacher and the device, fixed
    for the run (small and plain, so a Ray callback can carry it)."""
    return {
        "latency_model": latency_model,
        "dataset": dataset.name,
        "dataset_source": dataset.source,
        "input_shape": list(dataset.input_shape),
        "num_classes": dataset.num_classes,
        "class_names": list(dataset.class_names),
        # What a deployed model must do to its images first (export's manifest.json).
        "preprocessing": dataset.preprocessing.to_dict() if dataset.preprocessing else None,
        "teacher": teacher.summary(),
        "device_description": device_description,
        "train_images": len(dataset.train),
        "splits": dataset.split_fingerprints(),
        "split_sizes": {
            "train": len(dataset.train),
            "validation": len(dataset.val),
            "test": len(dataset.test),
        },
    }


def write_results(
    study: optuna.Study,
    config: RunConfig,
    run_dir: Path,
    facts: dict[str, Any],
    *,
    report: bool = True,
) -> RunResult:
    """Rewrite the run's tables, models, run.json and (``report``) report.html from the
    study. The tables are cheap; the report costs ~0.3-0.8 s, so per-trial callers throttle
    it (``ReportThrottle``) and the end of a run always writes it."""
    trials = trials_frame(study)
    pareto = pareto_frame(trials, config.objectives, config.directions)
    write_tables(run_dir, trials, pareto)
    export_pareto_models(run_dir, pareto)
    run_info = {
        "name": config.name,
        "dataset": facts["dataset"],
        "dataset_source": facts["dataset_source"],
        "input_shape": facts["input_shape"],
        "num_classes": facts["num_classes"],
        "class_names": facts.get("class_names"),
        "preprocessing": facts.get("preprocessing"),
        "teacher": facts["teacher"],
        # Which images each split holds: runs compared side by side should share them.
        "data_splits": facts.get("splits"),
        # Images per split: how far a test accuracy can be trusted (the report's +-).
        "split_sizes": facts.get("split_sizes"),
        "budget": asdict(config.budget_value()),  # with the device's SRAM and flash
        "tiers": [tier.model_dump() for tier in config.tiers],
        "objectives": [
            {"name": name, "direction": direction}
            for name, direction in zip(config.objectives, config.directions, strict=True)
        ],
        "device": {
            # The device's own name: the config may name it by a path that means nothing
            # where the run's files are read later.
            "name": config.target().name,
            **({"file": config.device.name} if config.device.name != config.target().name else {}),
            "description": facts["device_description"],
            # Whether the latency axis is measured here or predicted for a device we cannot run.
            # What the run used: a fitted predictor replaces the device's roofline.
            "latency": facts.get("latency_model") or config.target().latency.source,
            # What the device physically has: no tier of the report may allow more.
            "memory_limits": {
                "peak_memory_kb": config.target().memory.sram_kb,
                "flash_kb": config.target().memory.flash_kb,
            },
        },
        "fidelity": {
            "train_subset": min(
                config.training.train_subset or facts["train_images"], facts["train_images"]
            ),
            "epochs": config.training.epochs,
            # Extra training a compressed candidate gets (after pruning; under QAT).
            "finetune_epochs": config.compression.finetune_epochs,
            "qat_epochs": config.compression.qat_epochs,
            # Which candidates were stopped early, and what the sampler learnt of them.
            "early_stopping": {
                "enabled": config.training.early_stopping,
                "min_epochs": config.training.early_stopping_min_epochs,
                "slack": config.training.early_stopping_slack,
                "quantile": config.training.early_stopping_quantile,
                "min_gain": config.training.early_stopping_min_gain,
                "feedback": config.training.early_stopping_feedback,
                "keep_contenders": config.training.early_stopping_keep_contenders,
            },
        },
        "backend": config.execution.backend,
        "sampler": config.sampler,
        "seed": config.seed,
        # What drew the candidates (the data split follows ``seed``).
        "sampler_seed": config.seed if config.sampler_seed is None else config.sampler_seed,
        "updated": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_text_atomic(run_dir / "run.json", json.dumps(run_info, indent=2))
    if report:
        write_importance(study, run_dir, config.objectives)
        write_report(run_dir)
    return RunResult(run_dir, trials, pareto)


def check_saved_config(config: RunConfig, run_dir: Path) -> None:
    """Refuse to mix a changed config into an existing run. A run that has recorded no
    trial yet (its first start failed: a wrong dataset path, a broken storage URL) takes
    the corrected config, as the error told the user to fix it."""
    path = run_dir / "config.yaml"
    if path.exists() and (run_dir / TRIALS_FILE).exists():
        changes = _changes(yaml.safe_load(path.read_text()), config, str(path))
        if changes:
            raise ConfigError(
                f"{run_dir} already holds a run with a different config (changed: "
                f"{_said_changes(changes)}); use another --name, or the config it was started "
                f"with{_new_defaults(changes, config)}"
            )


def save_config(config: RunConfig, run_dir: Path) -> None:
    """Save the resolved config in the run's folder (its password masked)."""
    write_text_atomic(run_dir / "config.yaml", masked(config).to_yaml())


def check_study_config(study: optuna.Study, config: RunConfig) -> None:
    """Refuse to add trials of a changed config to a study that has some: a search started
    on another machine (or with another results folder) shares the study, not the results
    folder that ``check_saved_config`` checks. The storage URL may differ (another host name for
    one server); the study is the same either way."""
    saved = study.user_attrs.get(CONFIG)
    if saved is None or not study.get_trials(deepcopy=False):
        return
    changes = _changes(saved, config, f"study {config.name}")
    changes.pop("storage", None)
    if changes:
        raise ConfigError(
            f"study {config.name} in the storage already holds trials of a different config "
            f"(changed: {_said_changes(changes)}); use another --name, or the config it was "
            "started with (`paretonas worker` joins with the study's own)"
            f"{_new_defaults(changes, config)}"
        )


def check_study_space(study: optuna.Study, config: RunConfig) -> None:
    """Refuse a study whose trials drew a parameter from other options than this version
    makes of the same config (the device's channel alignment, say, rounds widths that an
    older version searched as written): Optuna would fail every new trial on it."""
    space = config.search_space()
    recorded: dict[str, Any] = {}
    for trial in study.get_trials(deepcopy=False):
        for name, distribution in trial.distributions.items():
            recorded.setdefault(name, distribution)
    changed = []
    for name, distribution in recorded.items():
        dimension = getattr(space, re.sub(r"^[sp]\d+_", "", name), None)
        if not (isinstance(dimension, Choice) and len(dimension.options) > 1):
            continue  # a constant is not asked of the trial, so it cannot clash
        if isinstance(distribution, CategoricalDistribution) and (
            tuple(distribution.choices) != dimension.options
        ):
            changed.append(f"{name} {list(distribution.choices)} now {list(dimension.options)}")
    # Pruned counts are multiples of the device's channel_align too: a run begun when they
    # followed compression.align alone (the recorded default) would build the same genome
    # at other channel counts.
    align = config.compression_config().align
    has_trials = bool(study.get_trials(deepcopy=False))
    before = study.user_attrs.get(PRUNE_ALIGN, config.compression.align if has_trials else align)
    if before != align:
        changed.append(f"pruned channel counts in multiples of {before} now {align}")
    if changed:
        raise ConfigError(
            f"study {config.name} drew its trials from another search space than this version "
            f"makes of its config ({'; '.join(changed[:3])}); start a new run (--name), or "
            "finish this one with the version that began it"
        )
    if PRUNE_ALIGN not in study.user_attrs:
        study.set_user_attr(PRUNE_ALIGN, align)


def _changed_keys(saved: Any, config: RunConfig, source: str) -> list[str]:
    """The settings (dotted keys) in which ``config`` differs from the ``saved`` one, leaving
    out those a run may change between invocations (``_RESUMABLE``)."""
    return list(_changes(saved, config, source))


# How many changed settings a refusal names: enough to act on, one line still.
_SAID_CHANGES = 5


def _said_changes(changes: dict[str, tuple[Any, Any]]) -> str:
    """'key (run: value, this config: value)', for the first ``_SAID_CHANGES`` changes; a
    storage URL as safe_url shows it (a config.yaml of an older run may hold its password)."""

    def shown(key: str, value: Any) -> str:
        return repr(safe_url(value) if key == "storage" and isinstance(value, str) else value)

    said = [
        f"{key} (run: {shown(key, before)}, this config: {shown(key, now)})"
        for key, (before, now) in list(changes.items())[:_SAID_CHANGES]
    ]
    more = f" and {len(changes) - _SAID_CHANGES} more" if len(changes) > _SAID_CHANGES else ""
    return "; ".join(said) + more


def _new_defaults(changes: dict[str, tuple[Any, Any]], config: RunConfig) -> str:
    """What to write to resume when a named setting is one the user's config does not set:
    it takes today's default, which a newer paretonas may have changed (early stopping's,
    2026-11-30); writing the run's value resumes the run."""
    unwritten = []
    for key, (before, _) in list(changes.items())[:_SAID_CHANGES]:
        *sections, name = key.split(".")
        section: Any = config
        for part in sections:
            section = getattr(section, part, None)
        if isinstance(section, BaseModel) and name not in section.model_fields_set:
            unwritten.append(f"{key}: {json.dumps(before)}")
    if not unwritten:
        return ""
    return (
        f"; not in your config, so at today's default: write {', '.join(unwritten)} in it to resume"
    )


# Settings added since a run may have been saved, with the value that run had in effect when
# its default is no longer that: a run saved before
# early_stopping_min_gain existed stopped only dominated candidates, and would otherwise go
# on, unannounced, under the new default; before early_stopping_keep_contenders existed,
# contenders were stopped like any candidate.
_INTRODUCED_AS: dict[tuple[str, str], Any] = {
    ("training", "early_stopping_min_gain"): 0.0,
    ("training", "early_stopping_feedback"): "stopped",
    ("training", "early_stopping_keep_contenders"): False,
}


def _with_settings_it_predates(saved: Any) -> Any:
    """``saved`` with each setting of ``_INTRODUCED_AS`` it lacks at the value it then had
    (anything but a mapping as it is: the comparisons say what is wrong with it)."""
    if not isinstance(saved, dict):
        return saved
    saved = dict(saved)
    for (section, key), value in _INTRODUCED_AS.items():
        if isinstance(saved.get(section), dict) and key not in saved[section]:
            saved[section] = {**saved[section], key: value}
    return saved


def _changes(saved: Any, config: RunConfig, source: str) -> dict[str, tuple[Any, Any]]:
    """``_changed_keys`` with each setting's value in the saved config and in ``config``."""
    current = masked(config).model_dump(mode="json")
    saved = _with_settings_it_predates(saved) if isinstance(saved, dict) else {}
    # The settings a run may change are taken from now: a saved execution section that
    # a newer paretonas refuses (say, backend ray with workers) must not block a resume.
    merged = {**saved, **{key: current[key] for key in _RESUMABLE if key in current}}
    try:
        # Re-validated, so settings added to the schema since take their defaults.
        before = _flatten(parse_config(merged, source).model_dump(mode="json"))
        keys = set(before) | set(_flatten(current))
    except ConfigError:
        before = _flatten(merged)  # as written: only the settings it names are compared
        keys = set(before)
    now = _flatten(current)
    return {
        key: (before.get(key), now.get(key))
        for key in sorted(keys)
        if key.split(".")[0] not in _RESUMABLE
        and _comparable(key, before.get(key)) != _comparable(key, now.get(key))
    }


def _comparable(key: str, value: Any) -> Any:
    """A saved setting as it compares: a storage URL as SQLAlchemy renders it, since the
    masked URLs of older runs were written that way (query sorted, names re-encoded)."""
    if key != "storage" or not isinstance(value, str) or is_journal(value):
        return value
    try:
        from sqlalchemy.engine import make_url

        return make_url(value).render_as_string(hide_password=True)
    except Exception:
        return value


def config_changed_elsewhere(study: optuna.Study, config: RunConfig) -> str | None:
    """Why this process may no longer add trials to its run: the study's recorded config
    is no longer its own (another search with the run's name but another config recorded
    its own at the same moment, before either had a trial to refuse the other by); None
    while it is the same, but for settings a run may change between invocations."""
    saved = study.user_attrs.get(CONFIG)
    if saved is None:
        return None
    if _fixed(_with_settings_it_predates(saved)) == _fixed(masked(config).model_dump(mode="json")):
        return None  # asked twice per trial: the re-validating comparison only on a change
    changes = _changes(saved, config, f"study {config.name}")
    changes.pop("storage", None)
    if not changes:
        return None
    return (
        f"another process recorded a different config for run {config.name} (changed: "
        f"{_said_changes(changes)}) since this one started, so this one stops; give one of the "
        "two configs another --name, or join the run with `paretonas worker`"
    )


def _fixed(settings: Any) -> Any:
    """A saved config without the settings a run may change between invocations."""
    if not isinstance(settings, dict):
        return settings
    return {key: value for key, value in settings.items() if key not in _RESUMABLE}


def record_config(study: optuna.Study, config: RunConfig) -> None:
    """Keep the run's config in the study, for workers on other machines: their storage URL
    they are given, so the one kept has its password masked (anyone who can read the study,
    a dashboard say, would see it)."""
    study.set_user_attr(CONFIG, masked(config).model_dump(mode="json"))


def masked(config: RunConfig) -> RunConfig:
    """The config as saved in the results folder: a storage password never lands there."""
    if config.storage is None:
        return config
    return config.model_copy(update={"storage": safe_url(config.storage)})


def _flatten(data: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
