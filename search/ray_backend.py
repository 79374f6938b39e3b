"""The Ray Tune backend: the same search, with trials spread over a Ray cluster.

The only module that imports ray. The pieces are the Optuna backend's:

- proposals come from the run's own Optuna study (same storage, same sampler, same
  define-by-run space) through Ray's ``OptunaSearch``; ``_StudySearcher`` extends it so a
  finished Ray trial is written to the study exactly as the Optuna backend writes one
  (``search.objective.record``: genome, metrics, budget constraints), plus the Ray node
  that ran it;
- a trial is ``search.objective.Objective.evaluate`` in a Ray worker; the evaluation context
  (data, cached teacher logits, budget) travels through Ray's object store, so worker
  machines need the package and nothing else;
- Pareto-aware early stopping needs the front and the finished curves, which live in the
  study: the driver reads them when it proposes a trial and they travel in the trial's
  config (``_DefineByRun``);
- results land in the same trials.csv / trials.parquet / pareto.csv / report.html.

Resuming: a rerun of the same run restores the interrupted Tune experiment
(``Tuner.restore``) and goes on; the study storage stays the record of what is done, so the
two are reconciled rather than trusted blindly:

- a trial the dead driver was running is failed in the study and queued again with the
  same parameters (``search.storage.retry_dead_local_trials``); ``OptunaSearch`` asks for
  queued trials first, so the restored experiment runs it again from the start;
- the restored experiment does not resume its own unfinished trials
  (``resume_unfinished=False``): its checkpoint can be older than the storage, and a
  trial finished after the checkpoint would otherwise run twice;
- the searcher stops proposing once the study holds the run's target (finished + running
  trials), whatever the restored experiment's ``num_samples`` says; if the run needs more
  than the restored experiment can give (a larger ``--trials``), a new experiment runs the
  rest;
- the restored searcher proposes with the new driver's storage and sampler (``_Live``),
  never the pickled ones: the pickle would hold the storage URL (and its password) and
  the sampler's random state at the checkpoint, which proposed again the candidates
  proposed since (the same trials trained twice).

A candidate the study already has results for is not trained again: the driver hands
the worker the earlier trial's metrics, as the Optuna backend's ``Objective`` reuses them.

An experiment that ended normally is marked done and never restored. Within one
experiment, Ray retries a trial whose node died
(``FailureConfig(max_failures=execution.max_retries)``).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import pickle
import socket
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna
import ray
from ray import tune
from ray.tune.search import ConcurrencyLimiter, Searcher
from ray.tune.search.optuna import OptunaSearch

from evaluators.budget import Budget
from evaluators.early_stopping import EarlyStopping
from evaluators.metrics import Metrics
from search.config import ConfigError, RunConfig
from search.objective import Objective, describe, record, same_candidate, stopping_inputs
from search.plugins import import_plugins
from search.report.formatting import counted
from search.runner import (
    ReportThrottle,
    RunResult,
    config_changed_elsewhere,
    masked,
    prepare,
    write_results,
)
from search.storage import (
    mark_worker,
    open_storage,
    retry_dead_local_trials,
    retry_unclaimed_trials,
)
from search.worker import TARGET
from search.worker import progress as study_progress
from spaces.candidate import Candidate
from spaces.space import SearchSpace

log = logging.getLogger("paretonas")

NODE = "ray_node"
# Ray flattens nested results before the searcher sees them: these travel as JSON text.
METRICS, CANDIDATE = "metrics_json", "candidate_json"
# The early-stopping context a trial's config carries from the driver (``_DefineByRun``).
STOPPING = "paretonas_stopping_json"
# An earlier trial of the same candidate (number, metrics, artifacts), likewise.
DUPLICATE = "paretonas_duplicate_json"
# Tune experiments live in <run>/ray/tune-<n>; this file marks one that ended normally.
EXPERIMENT_PREFIX, DONE_MARK = "tune-", ".paretonas-done"


@dataclass(frozen=True)
class _DefineByRun:
    """The define-by-run space for OptunaSearch (a picklable callable). It runs in the
    driver as soon as the trial exists, so it marks the driver first: a driver killed while
    the sampler still proposes leaves a trial that a rerun knows to be dead.

    With early stopping on, it also hands the trial what Pareto-aware early stopping needs
    from the study, which Ray workers do not open: the current front and the finished
    validation curves, as a constant of the trial's config (OptunaSearch adds a returned
    dict to it). They are read when the trial is proposed; trials finishing meanwhile are
    not seen, which only makes stopping more cautious."""

    space: SearchSpace
    objectives: tuple[str, ...] = ()
    budget: Budget | None = None
    early_stopping: bool = False

    def __call__(self, trial: optuna.Trial) -> dict[str, str] | None:
        mark_worker(trial.study, trial._trial_id)
        candidate = self.space.suggest(trial)
        # Recorded now, as the Optuna backend does: a trial its driver never finishes is
        # still listed with what it was (trials.csv's genome of an interrupted trial).
        trial.set_user_attr("genome", candidate.genome)
        constants = {}
        earlier = same_candidate(trial, candidate)
        if earlier is not None:
            # As on the Optuna backend: a candidate the study has results for is not trained
            # again; the worker hands back the earlier trial's metrics.
            constants[DUPLICATE] = json.dumps(
                {
                    "number": earlier.number,
                    "metrics": earlier.user_attrs["metrics"],
                    "artifacts": earlier.user_attrs.get("artifacts"),
                }
            )
        elif self.early_stopping and self.budget is not None:
            front, curves = stopping_inputs(trial.study, list(self.objectives), self.budget)
            constants[STOPPING] = json.dumps({"front": front, "curves": curves})
        return constants or None


def _stopping_context(params: dict) -> tuple[dict, list[dict], list[list[float]]]:
    """A Ray trial's config split into the candidate's parameters and the early-stopping
    context ``_DefineByRun`` added (front, finished curves; empty without it)."""
    params = {key: value for key, value in params.items() if key != DUPLICATE}
    context = json.loads(params.pop(STOPPING, None) or '{"front": [], "curves": []}')
    return params, context["front"], context["curves"]


@dataclass(frozen=True)
class _Live:
    """The driver's open storage and sampler, which Ray's pickles of the searcher and the
    results callback leave out (``_StudySearcher.__getstate__``): the storage's URL may hold
    a password, and the sampler's random state at a checkpoint would make a restored
    experiment propose again the candidates it proposed after that checkpoint."""

    storage: Any
    sampler: optuna.samplers.BaseSampler
    config: RunConfig | None = None  # the run's, to notice another process recording its own


# The run's live handles, by study name, set by ``run_ray`` before it builds or restores a
# Tune experiment; what Ray unpickles in the driver attaches to them.
_LIVE: dict[str, _Live] = {}


class _StudySearcher(OptunaSearch):
    """OptunaSearch that records a finished trial as the Optuna backend does; the driver
    process is marked on every trial it asks (``_DefineByRun``), so a dead driver's trials
    are retried.

    Tune pickles the searcher into the experiment folder (tuner.pkl, searcher-state-*.pkl)
    and restores it from there; those pickles hold neither the storage nor the sampler
    nor the study's trial handles (``_Live``), which are attached again on restore."""

    _DETACHED = ("_storage", "_sampler", "_ot_study")

    def __getstate__(self) -> dict[str, Any]:
        state = {key: value for key, value in self.__dict__.items() if key not in self._DETACHED}
        # Trials in flight at a checkpoint are not resumed (resume_unfinished=False).
        state["_ot_trials"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._attach()

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as file:
            pickle.dump(self.__getstate__(), file)

    def restore(self, checkpoint_path: str) -> None:
        super().restore(checkpoint_path)
        self._attach()

    def _attach(self) -> None:
        live = _LIVE.get(self._study_name)
        if live is None:  # unpickled outside a run: nothing to propose with
            self._storage = self._sampler = self._ot_study = None
            return
        self._storage, self._sampler = live.storage, live.sampler
        self._ot_study = optuna.load_study(
            study_name=self._study_name, storage=live.storage, sampler=live.sampler
        )

    def __init__(
        self,
        *args: Any,
        budget: Budget,
        objectives: list[str],
        feedback: str = EarlyStopping.feedback,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self._budget = budget
        self._objective_names = objectives
        self._feedback = feedback

    def suggest(self, trial_id: str) -> dict | str | None:
        # The study, not num_samples, says when the run is complete: a restored experiment
        # does not know the trials its dead driver ran after its last checkpoint.
        done, running = study_progress(self._ot_study)
        if done + running >= int(self._ot_study.user_attrs.get(TARGET, 0)):
            return Searcher.FINISHED
        why = self._config_changed()
        if why:
            if not getattr(self, "_said_changed", False):
                self._said_changed = True
                log.error(why)
            return Searcher.FINISHED
        return super().suggest(trial_id)

    def _config_changed(self) -> str | None:
        live = _LIVE.get(self._study_name)
        if live is None or live.config is None or self._ot_study is None:
            return None
        return config_changed_elsewhere(
            self._ot_study, live.config
        )  # _DefineByRun marks the driver on the trial

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        ot_trial = self._ot_trials[trial_id]
        stored = self._ot_study._storage.get_trial(ot_trial._trial_id)
        if stored.state.is_finished():  # failed already as a dead driver's trial
            self._completed_trials.add(trial_id)
            return
        if result and METRICS in result:
            metrics = Metrics.from_dict(json.loads(result[METRICS]))
            built = json.loads(result[CANDIDATE])  # null: its node could not build one
            candidate = Candidate.from_dict(built) if built is not None else None
        else:
            reason = "the Ray trial errored before reporting (its worker or node died)"
            metrics = Metrics(status="failed", reason=reason)
            candidate = None
        why = self._config_changed() if metrics.status != "failed" else None
        if why:  # computed under a config the run no longer has: not recorded as a result
            metrics = Metrics(status="failed", reason=why)
            candidate = None
        earlier = (result or {}).get("duplicate_of")
        if earlier is not None:
            ot_trial.set_user_attr("duplicate_of", int(earlier))
        if candidate is not None:
            values = record(
                ot_trial, candidate, metrics, self._budget, self._objective_names, self._feedback
            )
            # The line the Optuna backend logs per trial (Ray keeps its workers' logs).
            same = "" if earlier is None else f"  (same candidate as trial {int(earlier)})"
            log.info("trial %d %s%s", ot_trial.number, describe(metrics, candidate), same)
        else:
            log.info("trial %d failed  (%s)", ot_trial.number, metrics.reason)
            ot_trial.set_user_attr("metrics", metrics.to_dict())
            values = []
        for key in ("artifacts", "traceback", NODE):
            if result and result.get(key):
                ot_trial.set_user_attr(key, result[key])
        try:
            if metrics.status == "failed":
                self._ot_study.tell(ot_trial, state=optuna.trial.TrialState.FAIL)
            else:
                self._ot_study.tell(ot_trial, values)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # told already (a duplicate completion)
        self._completed_trials.add(trial_id)


class _Limiter(ConcurrencyLimiter):
    """ConcurrencyLimiter that starts a restored experiment with no trial in flight.

    The restored experiment skips the trials its dead driver left unfinished
    (``resume_unfinished=False``) without telling the searcher; the limiter would count
    them as live forever and, at its limit, never propose again."""

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        self.live_trials = set()
        self.num_unfinished_live_trials = 0


class _WriteResults(tune.Callback):
    """After every Ray trial, rewrite the run's tables and report from the study. Pickled
    into the experiment folder too: it holds the config with its storage password masked,
    and takes the storage from ``_LIVE``."""

    def __init__(self, config: RunConfig, run_dir: Path, facts: dict[str, Any]):
        self.config, self.run_dir, self.facts = masked(config), run_dir, facts
        self.throttle = ReportThrottle()
        self.study: optuna.Study | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "study": None}

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if self.study is None:
            storage = _LIVE[self.config.name].storage
            self.study = optuna.load_study(study_name=self.config.name, storage=storage)
        write_results(self.study, self.config, self.run_dir, self.facts, report=self.throttle.due())


def _evaluate_trial(
    params: dict, objective: Objective, threads: int, plugins: tuple[str, ...] = ()
) -> None:
    """One Ray trial: rebuild the candidate from the searcher's parameters and evaluate it
    with the Optuna backend's own code; failures are reported, not raised. ``plugins``: the
    config's, which register what the candidate may be built of in this process too."""
    import torch

    try:
        import_plugins(plugins, from_here=False)
    except ValueError as error:  # this node lacks the module: failed with its sentence
        failed = Metrics(status="failed", reason=str(error))
        tune.report(
            {
                **dict.fromkeys(objective.objectives, 0.0),
                METRICS: json.dumps(failed.to_dict()),
                CANDIDATE: "null",
                NODE: ray.get_runtime_context().get_node_id(),
            }
        )
        return
    torch.set_num_threads(max(1, threads))
    duplicate = json.loads(params.get(DUPLICATE) or "null")
    params, front, curves = _stopping_context(params)
    candidate = objective.space.suggest(optuna.trial.FixedTrial(params))
    if duplicate is not None:
        # Nothing is computed for it: it spends no seconds.
        metrics = replace(Metrics.from_dict(duplicate["metrics"]), seconds={})
        artifacts, failure = duplicate["artifacts"], None
    else:
        key = f"ray-{tune.get_context().get_trial_id()}"
        metrics, artifacts, failure = objective.evaluate(candidate, key, front, curves)
    values = {
        name: float(getattr(metrics, name) or 0.0) if metrics.status != "failed" else 0.0
        for name in objective.objectives
    }
    tune.report(
        {
            **values,
            METRICS: json.dumps(metrics.to_dict()),
            CANDIDATE: candidate.to_json(),
            "artifacts": artifacts,
            "traceback": failure,
            NODE: ray.get_runtime_context().get_node_id(),
            "duplicate_of": None if duplicate is None else duplicate["number"],
        }
    )


def ray_address(configured: str | None) -> str:
    """Where the run's Ray is: the configured address, else ``RAY_ADDRESS`` (set for a
    script submitted as a Ray job), else ``local``: a new Ray on this machine. Ray's own
    default would join whatever cluster was last started on this machine (it reads
    /tmp/ray/ray_current_cluster), which a config saying "local" must not do."""
    return configured or os.environ.get("RAY_ADDRESS") or "local"


def check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """Refuse a cluster address (HOST:PORT, or ray://HOST:PORT) nothing answers on, at
    once: ``ray.init`` would retry it for minutes, warning about another address."""
    if address in ("local", "auto"):
        return
    if address.startswith("ray://") and importlib.util.find_spec("grpc") is None:
        # Ray's own check (get_ray_client_dependency_error), made before any data is read.
        raise ConfigError(
            f"{address} is a Ray Client address, which needs Ray Client: install it with "
            "pip install 'ray[client]', or, on a machine that is part of the cluster, give "
            "the head's HOST:PORT (ray start --address) instead"
        )
    bare = address.removeprefix("ray://")
    host, _, port = bare.rpartition(":")
    if "://" in bare or not host or not port.isdigit():
        return  # not HOST:PORT: left to Ray, which says what it makes of it
    try:
        speaks = _speaks_grpc(host.strip("[]"), int(port), timeout_s)
    except OSError as error:
        raise ConfigError(
            f"cannot reach a Ray cluster at {address} ({error.strerror or error}); start it "
            "(ray start --head --port PORT) or fix --address / execution.ray.address"
        ) from None
    if speaks is False and not address.startswith("ray://"):
        raise ConfigError(
            f"{address} answers, but not as a Ray cluster's head (GCS) does; give the port "
            "`ray start --head --port PORT` was given (6379 unless set), or fix --address / "
            "execution.ray.address"
        )


ANSWER_S = 2.0  # a GCS answers the preface in milliseconds; silence is left to Ray
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_EMPTY_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # length 0, type 4, no flags


def _speaks_grpc(host: str, port: int, timeout_s: float) -> bool | None:
    """Whether what listens at host:port answers as a gRPC server (HTTP/2) does, as Ray's
    GCS does: its first frame after the connection preface is SETTINGS. None when it is
    not known (no answer in time; or TLS, which Ray may use and this probe does not speak).
    ``ray.init`` on a port where something else answers retries for minutes, printing
    warnings about another address."""
    with socket.create_connection((host, port), timeout=timeout_s) as connection:
        if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
            return None
        connection.settimeout(min(timeout_s, ANSWER_S))
        header = b""
        try:
            connection.sendall(_HTTP2_PREFACE + _EMPTY_SETTINGS)
            while len(header) < 9:
                chunk = connection.recv(9 - len(header))
                if not chunk:
                    break
                header += chunk
        except TimeoutError:
            return None
        except OSError:  # reset on a preface it did not expect
            return False
    return len(header) == 9 and header[3] == 0x04


def _import_on_a_worker(plugins: tuple[str, ...]) -> None:
    import_plugins(plugins, from_here=False)


def check_plugins_on_cluster(plugins: list[str]) -> None:
    """Import the config's plugins in one of the cluster's worker processes, before any
    trial: a module that only the driver's machine has would otherwise fail every trial,
    each after Ray's retries. (Other nodes may still lack it: their trials then fail with
    the same sentence.)"""
    if not plugins:
        return
    try:
        ray.get(ray.remote(num_cpus=0)(_import_on_a_worker).remote(tuple(plugins)))
    except ray.exceptions.RayTaskError as error:
        cause = error.cause if isinstance(error.cause, Exception) else error
        raise ConfigError(f"on the Ray cluster's workers, {cause}") from None


def join_cluster(address: str) -> None:
    """``ray.init`` on ``address``; a cluster that refuses this driver is one line that says
    what to do (Ray's own error is a traceback after a screen of warnings)."""
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    except (ConnectionError, ray.exceptions.AuthenticationError) as error:
        # Ray's ConnectionError says only that it failed; the cause says why.
        cause = error.__cause__
        reason = f"{error}: {cause}" if cause is not None else str(error)
        reason = " ".join(reason.split())[:300]
        raise ConfigError(
            f"cannot join the Ray cluster at {address} ({reason}); if the cluster uses token "
            "authentication, give this process its token (RAY_AUTH_TOKEN, or the file "
            "`ray get-auth-token` shows on the head node), or run the search on the head "
            "node with --address auto"
        ) from None


def run_ray(
    config: RunConfig, study: optuna.Study, url: str, target: int, *, progress: bool = True
) -> RunResult:
    execution = config.execution
    if not ray.is_initialized():
        check_reachable(ray_address(execution.ray.address))
    # Tune runs each trial in a working folder of its own: a relative results folder would
    # put the trials' model files there, out of the run's reach.
    config = config.model_copy(update={"results_dir": str(Path(config.results_dir).resolve())})
    run_dir = Path(config.results_dir) / config.name
    # Trials the previous driver left running are failed and queued again (same params).
    for number in retry_dead_local_trials(study, execution.max_retries):
        log.info("trial %d: the driver that ran it died; failed, queued again", number)
    for number in retry_unclaimed_trials(study, execution.max_retries, execution.grace_s):
        log.info("trial %d: no driver took it up; failed, queued again", number)
    session = prepare(config, study, progress=progress)
    done, _ = study_progress(study)
    todo = target - done
    if todo <= 0:
        return session.write()
    settings = execution.ray
    address = ray_address(settings.address)
    if not ray.is_initialized():
        join_cluster(address)
    check_plugins_on_cluster(config.plugins)
    log.info(
        "run %s: %d of %s finished; Ray cluster %s (%s CPUs); %d at once",
        config.name,
        done,
        counted(target, "trial"),
        address,
        ray.cluster_resources().get("CPU", 0),
        settings.concurrent,
    )
    # OptunaSearch keeps its own handle on the study, without heartbeats: Ray watches its
    # trials, and the driver marks them (a dead driver's trials are retried on rerun).
    storage = open_storage(url, heartbeats=False)
    _LIVE[config.name] = _Live(storage, study.sampler, config)
    searcher = _StudySearcher(
        space=_DefineByRun(
            config.search_space(),
            tuple(config.objectives),
            config.budget_value(),
            session.objective.context.early_stopping.enabled,
        ),
        metric=list(config.objectives),
        mode=["max" if d == "maximize" else "min" for d in config.directions],
        sampler=study.sampler,
        study_name=config.name,
        storage=storage,
        budget=config.budget_value(),
        objectives=list(config.objectives),
        feedback=session.objective.context.early_stopping.feedback,
    )
    trainable = tune.with_resources(
        tune.with_parameters(
            _evaluate_trial,
            objective=session.objective,
            threads=int(settings.cpus_per_trial),
            plugins=tuple(config.plugins),
        ),
        {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial},
    )
    # The study is the record: Tune's per-trial result files are not written, so its
    # end-of-run analysis would warn "Failed to fetch metrics" for every trial.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # Ctrl-C stops the search, as on the Optuna backend (exit 130; a rerun retries the
    # interrupted trials). Tune's own handler would end only the current experiment, quietly,
    # and the driver would start the next one.
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    # Tune's newer console output prints a box and two paths per experiment even at
    # verbose=0; the older one is silent there. The run logs one line per trial itself.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    experiments = run_dir / "ray"
    with session.written_on_interrupt():
        interrupted = _interrupted_experiment(experiments)
        if interrupted is not None:
            log.info("restoring the interrupted Tune experiment %s", interrupted.name)
            tuner = tune.Tuner.restore(
                str(interrupted), trainable=trainable, resume_unfinished=False
            )
            tuner.fit()
            (interrupted / DONE_MARK).touch()
        # A new experiment for what is still missing (all of it, on a first run).
        for _ in range(execution.max_retries + 1):
            done, _ = study_progress(study)
            if done >= target:
                break
            why = config_changed_elsewhere(study, config)
            if why:  # the searcher proposed no more: say why, with what is written kept
                session.write()
                raise ConfigError(why)
            name = f"{EXPERIMENT_PREFIX}{_experiment_number(experiments) + 1}"
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(
                    search_alg=_Limiter(searcher, max_concurrent=settings.concurrent),
                    num_samples=target - done,
                    # A new actor per trial pays a process start and the context fetch each
                    # time; reused, a no-op trial costs under 0.1 s here (benchmarks/scaling.py).
                    reuse_actors=True,
                    trial_dirname_creator=_trial_dirname,
                ),
                run_config=tune.RunConfig(
                    name=name,
                    storage_path=str(experiments),
                    failure_config=tune.FailureConfig(max_failures=execution.max_retries),
                    callbacks=[_WriteResults(config, run_dir, session.facts)],
                    verbose=0,
                ),
            )
            tuner.fit()
            (experiments / name / DONE_MARK).touch()
    return session.write()


def _trial_dirname(trial: Any) -> str:
    """Tune names a trial's folder after its config by default, which would spell out the
    early-stopping context; the study holds the parameters anyway."""
    return f"trial-{trial.trial_id}"


def _experiment_number(experiments: Path) -> int:
    numbers = [
        int(path.name.removeprefix(EXPERIMENT_PREFIX))
        for path in experiments.glob(f"{EXPERIMENT_PREFIX}*")
        if path.name.removeprefix(EXPERIMENT_PREFIX).isdigit()
    ]
    return max(numbers, default=0)


def _interrupted_experiment(experiments: Path) -> Path | None:
    """The last Tune experiment of the run, if its driver died and Tune can restore it."""
    number = _experiment_number(experiments)
    if number == 0:
        return None
    path = experiments / f"{EXPERIMENT_PREFIX}{number}"
    if (path / DONE_MARK).exists() or not tune.Tuner.can_restore(str(path)):
        return None
    return path
