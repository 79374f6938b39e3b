"""One worker's loop on a shared study: take the next trial until the run has enough.

Any number of workers (processes on this machine, or on others sharing the storage) run
this loop on one study; Optuna's storage hands each a different trial. A run's size is the
number of *finished* trials: evaluated to an outcome (ok, infeasible, pruned, or failed with
a reason). A trial whose worker died is not finished: it is failed without an outcome and a
copy is queued (``search.storage``), which the next free worker takes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import threading
import time
import warnings
from collections.abc import Callable

import optuna
from optuna.trial import TrialState

from search.config import ConfigError
from search.results import BASELINE, SURPLUS
from search.storage import (
    deferred_interrupts,
    mark_worker,
    retry_dead_local_trials,
    retry_trial,
    retry_unclaimed_trials,
)

log = logging.getLogger("paretonas")

TARGET = "target_trials"  # study user attribute: how many finished trials the run wants


class SurplusTrial(RuntimeError):
    """Raised in a trial that other workers' trials already make unnecessary."""


class RunConfigChanged(RuntimeError):
    """Raised in a trial that ends after another process recorded a different config for
    its run: what it computed belongs to a config the run no longer has."""


class TrialFailed(Exception):
    """The candidate's evaluation raised; its reason is in the trial's metrics, and its
    traceback in the trial's folder (``search.objective``)."""


class Orphaned(KeyboardInterrupt):
    """This local worker's search is gone (``stop_when_orphaned``): it stops as on Ctrl-C."""


# Set by the watcher of ``stop_when_orphaned``. The signal it sends cuts the running trial
# short; this is what stops the worker should that interrupt be lost (a signal handler's
# exception raised inside a __del__ or a weakref callback is only printed, and the CLI
# ignores SIGTERM once it has taken the first).
_ORPHANED = threading.Event()


class WorkersFailed(RuntimeError):
    """The local workers of ``search --workers N`` stopped with errors before the run was
    done; what they finished is kept."""


class _QuietSurplus(logging.Filter):
    """Optuna logs every failed trial as two warnings in a row, the first with the
    traceback; a trial stepping aside is not a failure the user must read about (it gets
    one info line), nor one failed for a changed config (the worker stops with one
    sentence), and a failed candidate's was said already, with where its traceback is
    (Optuna's would show only the objective re-raising it). The first is known by its exception; the second by following it."""

    _FAILED = re.compile(r"Trial (\d+) failed ")

    def __init__(self) -> None:
        super().__init__()
        self.pending: set[int] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        failed = self._FAILED.match(record.getMessage())
        if failed is None:
            return True
        number = int(failed.group(1))
        if record.exc_info and isinstance(
            record.exc_info[1], SurplusTrial | RunConfigChanged | TrialFailed
        ):
            self.pending.add(number)
            return False
        if number in self.pending:
            self.pending.discard(number)
            return False
        return True


_quiet_surplus = _QuietSurplus()
logging.getLogger("optuna.study._optimize").addFilter(_quiet_surplus)


def finished(trial: optuna.trial.FrozenTrial) -> bool:
    """Evaluated to an outcome (a failure with a reason counts; a dead worker's does not).
    Hand-designed baselines (``search.baselines``) are not trials of the search."""
    if BASELINE in trial.user_attrs or SURPLUS in trial.user_attrs:
        return False
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    # An evaluated failure keeps its reason in metrics (status "failed"). Metrics that say
    # otherwise on a FAIL trial were recorded by a worker that died before telling the
    # study: that trial was interrupted, and is retried like one that recorded nothing.
    return (
        trial.state == TrialState.FAIL
        and (trial.user_attrs.get("metrics") or {}).get("status") == "failed"
    )


def progress(study: optuna.Study) -> tuple[int, int]:
    """(finished trials, trials running now)."""
    trials = study.get_trials(deepcopy=False)
    done = sum(finished(t) for t in trials)
    running = sum(t.state == TrialState.RUNNING for t in trials)
    return done, running


def fail_stale(study: optuna.Study, max_retry: int, grace_s: float = 90) -> None:
    """Fail and requeue the trials of dead workers: local ones at once, others by heartbeat,
    and trials no worker claimed after ``grace_s``."""
    for number in retry_dead_local_trials(study, max_retry):
        log.info("trial %d: its worker died; failed, queued again", number)
    for number in retry_unclaimed_trials(study, max_retry, grace_s):
        log.info("trial %d: no worker took it up in %g s; failed, queued again", number, grace_s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _unless_surplus(
    objective: Callable[[optuna.Trial], list[float]], target: int
) -> Callable[[optuna.Trial], list[float]]:
    """``objective``, unless the trials numbered before this one (finished or running)
    already reach ``target``: workers check the count and then ask for a trial, so two
    can ask at once; the later trial steps aside before any work."""

    def guarded(trial: optuna.Trial) -> list[float]:
        ahead = sum(
            1
            for t in trial.study.get_trials(deepcopy=False)
            if t.number < trial.number
            and (finished(t) or (t.state == TrialState.RUNNING and BASELINE not in t.user_attrs))
        )
        if ahead >= target:
            trial.set_user_attr(SURPLUS, True)
            log.info("trial %d: not needed, the run already has its trials", trial.number)
            raise SurplusTrial(f"the run had its {target} trials when trial {trial.number} began")
        return objective(trial)

    return guarded


class _QuietInterrupt(logging.Filter):
    """Drops Optuna's report of a trial failed by Ctrl-C (a traceback, then its value): the
    user pressed it, the CLI says what happens next, and the trial is retried on resume."""

    def __init__(self) -> None:
        super().__init__()
        self.trials: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        number = re.match(r"Trial (\d+) failed", record.getMessage())
        if record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt):
            if number:
                self.trials.add(number.group(1))
            return False
        return not (number and number.group(1) in self.trials)


def work(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], list[float]],
    target: int,
    *,
    after_trial: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
    max_retry: int = 2,
    grace_s: float = 90,
    poll_seconds: float = 2.0,
    config_changed: Callable[[], str | None] | None = None,
) -> int:
    """Run trials until the study holds ``target`` finished ones; return how many this
    worker ran. While the last trials run elsewhere, wait for them rather than overshoot:
    if their worker dies, one of those waiting retries them.

    ``config_changed`` says why this process may no longer add trials to the run (another
    process, started at the same moment with another config, recorded its own), else None:
    asked before each trial, which then stops the worker with ``ConfigError``, and when a
    trial ends, which then fails it instead of recording a result of the wrong config."""
    ran = []

    def count(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if SURPLUS not in trial.user_attrs:
            ran.append(trial.number)

    callbacks = [count] + ([after_trial] if after_trial else [])
    guarded = _unless_surplus(objective, target)
    current: list[optuna.Trial] = []

    def tracked(trial: optuna.Trial) -> list[float]:
        current[:] = [trial]
        # First, before the guard reads the study: an unmarked trial is taken for one
        # whose worker was stopped inside Optuna's ask (retry_unclaimed_trials).
        mark_worker(study, trial._trial_id)
        values = guarded(trial)
        why = config_changed() if config_changed else None
        if why:
            recorded = trial.user_attrs.get("metrics") or {}
            trial.set_user_attr("metrics", {**recorded, "status": "failed", "reason": why})
            raise RunConfigChanged(why)
        return values

    while True:
        if _ORPHANED.is_set():
            raise Orphaned
        fail_stale(study, max_retry, grace_s)
        done, running = progress(study)
        if done >= target:
            return len(ran)
        if done + running >= target:
            time.sleep(poll_seconds)
            continue
        why = config_changed() if config_changed else None
        if why:
            raise ConfigError(why)
        current.clear()  # a Ctrl-C before this round's trial starts retries nothing
        quiet = _QuietInterrupt()
        optimize_log = logging.getLogger("optuna.study._optimize")
        optimize_log.addFilter(quiet)
        try:
            study.optimize(
                tracked,
                n_trials=1,
                catch=(Exception,),
                callbacks=callbacks,
                gc_after_trial=False,
                show_progress_bar=False,
            )
        except (ValueError, AssertionError) as error:
            # Optuna's tell refuses a trial already failed ("Cannot tell a FAIL trial"), and
            # when the objective had returned a value its cleanup then fails an assertion
            # ("Should not reach.") instead.
            said = str(error)
            if not (current and said.startswith(("Cannot tell a", "Should not reach"))):
                raise
            if not study._storage.get_trial(current[0]._trial_id).state.is_finished():
                raise
            # Another process failed this trial as a dead worker's while it ran here (a
            # clock or a mark it could not see in time): its copy is queued, and what was
            # computed here cannot be recorded on it.
            log.warning(
                "trial %d: failed meanwhile by another worker, which took it for a dead one's; "
                "its result here is dropped and its queued copy will run",
                current[0].number,
            )
        except KeyboardInterrupt:
            _queue_again(study, current, max_retry)
            raise
        except UnboundLocalError as error:
            # Stopped inside Optuna's tell (after the objective returned), its cleanup
            # trips over a variable the tell never set: the stop is what happened.
            if not isinstance(error.__context__, KeyboardInterrupt):
                raise
            _queue_again(study, current, max_retry)
            raise error.__context__ from None
        finally:
            optimize_log.removeFilter(quiet)


def _queue_again(study: optuna.Study, current: list[optuna.Trial], max_retry: int) -> None:
    """The trial a stop (Ctrl-C, SIGTERM) cut short, failed and queued again, as a rerun
    retries one whose worker died. A second stop (pressed again, or passed on by the search
    that started this worker) must not cut that short."""
    with deferred_interrupts():
        if not current:
            return
        trial_id = current[0]._trial_id
        # Optuna fails the trial its objective was running; one stopped after the
        # objective returned, inside Optuna's tell, is still running: failed here.
        if study._storage.get_trial(trial_id).state == TrialState.RUNNING:
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                study._storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
        retry_trial(study, trial_id, max_retry)


def stop_when_orphaned(parent_pid: int, poll_s: float = 1.0) -> threading.Thread:
    """Stop this worker, as SIGTERM stops it, once the process that started it is gone.

    A search killed without a chance to stop its workers (SIGKILL, the OOM killer) would
    leave them running the rest of the run unannounced; resumed, the run would then have
    twice the workers on its cores. The SIGTERM path queues the running trial again, so the
    resumed run retries it. Polled rather than prctl's parent-death signal: portable, and
    one ``getppid`` a second costs nothing."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        log.warning(
            "worker %d: the search that started it (pid %d) is gone; stopping, its trial "
            "is queued again for the next run",
            os.getpid(),
            parent_pid,
        )
        _ORPHANED.set()
        # To the main thread: the handler raises there, and a sleep there is cut short.
        if hasattr(signal, "pthread_kill"):
            signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)
        else:  # pragma: no cover - Windows
            os.kill(os.getpid(), signal.SIGTERM)

    watcher = threading.Thread(target=watch, name="paretonas-parent-watch", daemon=True)
    watcher.start()
    return watcher
