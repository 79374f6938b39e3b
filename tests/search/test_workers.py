"""Several workers on one study, dead workers, crashes, time limits, determinism.

Real processes and real storages (SQLite, Optuna's journal file); the searches are digits
with a tiny teacher so that a trial takes a few seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState

from search.config import parse_config
from search.results import trials_frame
from search.runner import run_search
from search.storage import (
    WORKER,
    HeartbeatJournalStorage,
    StorageError,
    default_storage,
    open_storage,
    retry_dead_local_trials,
    retry_own_trials,
    retry_unclaimed_trials,
    worker_identity,
)
from search.worker import SURPLUS, finished, progress, work

ROOT = Path(__file__).resolve().parents[2]

TINY = {
    "seed": 0,
    "dataset": {"name": "digits"},
    "teacher": {"widths": [8], "blocks": [1], "epochs": 1},
    "training": {"train_subset": 1200, "epochs": 2, "batch_size": 64},
    "space": {"num_stages": [1, 2], "width": [8, 16], "stem_width": [8], "depth": [1, 1]},
    "compression": {"finetune_epochs": 0, "qat_epochs": 0},
    "device": {"runs": 5, "warmup": 1},
    "budget": {"latency_ms": 50},
    "execution": {"heartbeat_s": 1, "grace_s": 3},
}


# For the tests that kill or interrupt a run during a trial: ~2 s per trial on 2 cores,
# not the ~0.2 s of TINY's, which a run of 3 trials once finished before the test had seen
# one of them in progress; no early stopping, which would cut a trial short.
LONG_TRIALS = {**TINY["training"], "epochs": 30, "early_stopping": False}


def _write_config(tmp_path: Path, name: str, **changes) -> Path:
    data = json.loads(json.dumps(TINY))
    data.update({"name": name, "results_dir": str(tmp_path / "results"), **changes})
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "search.cli", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _study(url: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(url))


def _wait_for(condition, timeout: float, what: str, process=None, log=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if process is not None and process.poll() is not None:
            said = f"; it said: {log.read_text()[-3000:]}" if log is not None else ""
            pytest.fail(f"the search exited ({process.returncode}) before {what}{said}")
        time.sleep(0.2)
    said = f"; the log ends: {log.read_text()[-3000:]}" if log is not None else ""
    pytest.fail(f"timed out waiting for {what}{said}")


def _trials_or_none(url: str, name: str):
    try:
        return _study(url, name).get_trials(deepcopy=False)
    except Exception:  # not created yet, or a write in progress
        return None


def _kill_during_a_trial(command: list[str], url: str, name: str, group: bool) -> set[int]:
    """Start ``command``, SIGKILL it (its process group when ``group``) while a trial is
    being trained after at least one finished; return the numbers of the trials it left
    RUNNING."""
    log = Path(tempfile.mkdtemp(prefix="paretonas-kill-")) / "stderr.txt"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )

    def mid_trial() -> bool:
        trials = _trials_or_none(url, name)
        if not trials:
            return False
        done = sum(finished(t) for t in trials)
        running = [t for t in trials if t.state == TrialState.RUNNING]
        # Parameters are set once the candidate is proposed: the trial is past its first step.
        return done >= 1 and any(t.params for t in running)

    def signal_it(number: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            (os.killpg if group else os.kill)(process.pid, number)

    def frozen_mid_trial() -> bool:
        # On a loaded machine the trial seen running may finish before the kill lands
        # (reading the study takes a while): freeze the run, look again, and kill it frozen.
        if not mid_trial():
            return False
        signal_it(signal.SIGSTOP)
        if mid_trial():
            return True
        signal_it(signal.SIGCONT)
        return False

    try:
        _wait_for(frozen_mid_trial, 240, "a trial in progress after one finished", process, log)
    finally:
        with contextlib.suppress(ProcessLookupError):  # it may have exited on its own
            if group:
                os.killpg(process.pid, signal.SIGKILL)
            else:
                process.kill()
        process.wait()
    trials = _study(url, name).get_trials(deepcopy=False)
    return {t.number for t in trials if t.state == TrialState.RUNNING}


def _interrupt_mid_trial(
    command: list[str],
    url: str,
    name: str,
    tmp_path: Path,
    *,
    cwd: Path = ROOT,
    group: bool = True,
    after: int = 0,
    freeze: bool = True,
    sig: int = signal.SIGINT,
) -> tuple[int, str]:
    """Start ``command`` in a session of its own and send SIGINT once a trial is in
    progress after ``after`` finished ones: to its whole process group, as Ctrl-C at a
    terminal does, or (``group`` false) to it alone. With ``freeze`` the group is stopped
    while the study is read again, so that the trial seen running is still running when
    the signal follows. Its exit code and stderr."""
    log = tmp_path / "stderr.txt"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            command, cwd=cwd, env=_env(), stdout=subprocess.DEVNULL, stderr=stderr,
            start_new_session=True,
        )  # fmt: skip

    def mid_trial() -> bool:
        trials = _trials_or_none(url, name)
        return (
            bool(trials)
            and sum(finished(t) for t in trials) >= after
            and any(t.params for t in trials if t.state == TrialState.RUNNING)
        )

    def frozen_mid_trial() -> bool:
        if not mid_trial():
            return False
        if not freeze:
            return True
        os.killpg(process.pid, signal.SIGSTOP)
        if mid_trial():
            return True
        os.killpg(process.pid, signal.SIGCONT)
        return False

    try:
        _wait_for(frozen_mid_trial, 240, f"a trial in progress after {after}", process, log)
        if freeze:
            # Let them go on first: a SIGINT pending while stopped was once not seen by
            # a search waiting on its workers until they had finished.
            os.killpg(process.pid, signal.SIGCONT)
        (os.killpg if group else os.kill)(process.pid, sig)
        code = process.wait(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    return code, log.read_text()


def _check_complete(url: str, name: str, target: int, interrupted: set[int]) -> pd.DataFrame:
    trials = _study(url, name).get_trials(deepcopy=False)
    done = [t for t in trials if finished(t)]
    assert len(done) == target
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    for number in interrupted:
        crashed = trials[number]
        # Killed before the study was told: not finished, whatever it had recorded so far.
        assert crashed.state == TrialState.FAIL and not finished(crashed)
        retries = [t for t in done if t.system_attrs.get("failed_trial") == number]
        assert len(retries) == 1, f"trial {number} was not retried exactly once"
        # Same parameters: all those the crashed trial had been given (a kill while it was
        # still being proposed leaves the rest to be proposed afresh).
        assert crashed.params and {k: retries[0].params[k] for k in crashed.params} == (
            crashed.params
        )
    return pd.DataFrame([{"number": t.number, "genome": t.user_attrs.get("genome")} for t in done])


@pytest.mark.slow
def test_sigkill_during_a_trial_then_rerun_keeps_all_and_retries(tmp_path):
    config = _write_config(tmp_path, "crash", training=LONG_TRIALS)
    command = _cli("search", "--config", str(config), "--trials", "4", "--no-progress")
    run_dir = tmp_path / "results" / "crash"
    url = default_storage(run_dir)
    interrupted = _kill_during_a_trial(command, url, "crash", group=False)
    assert len(interrupted) == 1
    before = [t.number for t in _study(url, "crash").get_trials() if finished(t)]

    rerun = subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "queued again" in rerun.stderr
    _check_complete(url, "crash", 4, interrupted)
    after = pd.read_csv(run_dir / "trials.csv")
    assert set(before) <= set(after["number"])  # every trial finished before the kill is kept
    # Finished: trained (ok), over budget, failed, or stopped early by the Pareto-aware
    # early stopping (pruned), which a candidate that cannot reach the front may meet.
    finished_statuses = ["ok", "infeasible", "failed", "pruned"]
    assert len(after[after["status"].isin(finished_statuses)]) == 4, after[["number", "status"]]
    (crashed,) = interrupted
    row = after[after["number"] == crashed].iloc[0]
    assert row["status"] == "interrupted" and "retried as trial" in row["reason"]
    assert "1 interrupted" in (run_dir / "report.html").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("whom", ["group", "search"])
def test_ctrl_c_with_local_workers_queues_their_trials_again(tmp_path, whom):
    # "group": Ctrl-C at a terminal (every process of its group gets SIGINT); "search":
    # the search alone is signalled (kill -INT PID), and passes it on to its workers.
    # Long trials: the trial seen running must still run when the signal lands and when
    # the search passes it on (with 4 epochs, ~0.3 s, it once had finished and the next
    # was still being proposed, so no trial was queued again); and more of them than can
    # finish while a loaded machine reads the study (with 6, the run was once all but done
    # by then).
    config = _write_config(tmp_path, "stop", training=LONG_TRIALS)
    command = _cli(
        "search", "--config", str(config), "--trials", "40", "--workers", "2", "--no-progress"
    )  # fmt: skip
    url = default_storage(tmp_path / "results" / "stop", workers=2)
    # Signalled as a user would, without stopping the processes first.
    code, text = _interrupt_mid_trial(
        command, url, "stop", tmp_path, group=whom == "group", freeze=False
    )
    assert code == 130, text[-3000:]
    assert text.count("interrupted; completed trials are kept") == 1  # the search's alone
    assert "did not stop within" not in text
    trials = _study(url, "stop").get_trials()
    # Each worker queued its trial again before it exited: no trial that had begun is left
    # running. (One Optuna was still creating when the signal came may be, without
    # parameters; a rerun fails it as a dead worker's, or as one no worker took up.)
    assert not [t.number for t in trials if t.state == TrialState.RUNNING and t.params]
    assert [t for t in trials if t.state == TrialState.WAITING], text[-3000:]
    assert not Path(f"{url.removeprefix('journal:///')}.lock").exists()
    # The search rewrote its tables after its workers stopped: what they were running is
    # listed as interrupted and queued again, not as running.
    listed = pd.read_csv(tmp_path / "results" / "stop" / "trials.csv")
    interrupted = listed[listed["status"] == "interrupted"]
    assert len(interrupted) and interrupted["reason"].str.contains("retried as trial").all()
    assert listed.loc[listed["status"] == "running", "genome"].isna().all()


def _live_in_group(group: int) -> list[int]:
    """Pids of the processes of a process group that have not exited (zombies excluded:
    in a container nothing may reap an orphan's corpse)."""
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after it.
            state, _, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
            if int(pgrp) == group and state != "Z":
                live.append(int(stat.parent.name))
    return live


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_local_workers_stop_when_their_search_is_killed(tmp_path):
    # SIGKILL (or the OOM killer) gives the search no chance to stop its workers: they
    # must notice, queue their trials again and exit, not run the rest of the run unseen.
    config = _write_config(tmp_path, "orphans", training=LONG_TRIALS)
    command = _cli(
        "search", "--config", str(config), "--trials", "40", "--workers", "2", "--no-progress"
    )  # fmt: skip
    url = default_storage(tmp_path / "results" / "orphans", workers=2)
    log = tmp_path / "stderr.txt"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            command, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=stderr,
            start_new_session=True,
        )  # fmt: skip
    try:
        _wait_for(
            lambda: any(t.params for t in _trials_or_none(url, "orphans") or [] if
                        t.state == TrialState.RUNNING),
            240, "a trial in progress", process, log,
        )  # fmt: skip
        process.kill()  # the search alone
        process.wait()
        # Up to Optuna's journal-lock grace (30 s) more when the search died holding the
        # lock: the workers' last writes wait for it.
        _wait_for(lambda: not _live_in_group(process.pid), 120, "the workers to exit", log=log)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    text = log.read_text()
    # Each worker said so: stopping, or, one still starting when the search died, not
    # starting at all.
    assert (
        text.count("that started this worker is gone; not starting")
        + text.count("is gone; stopping, its trial is queued again")
        == 2
    ), text[-3000:]
    trials = _study(url, "orphans").get_trials()
    assert not [t.number for t in trials if t.state == TrialState.RUNNING and t.params]
    assert [t for t in trials if t.state == TrialState.WAITING], text[-3000:]
    assert sum(finished(t) for t in trials) < 40


@pytest.mark.slow
def test_sigterm_stops_a_search_as_ctrl_c_does(tmp_path):
    # A batch scheduler (SLURM, Kubernetes) stops a job with SIGTERM, to the search alone.
    config = _write_config(tmp_path, "term", training=LONG_TRIALS)
    command = _cli("search", "--config", str(config), "--trials", "6", "--no-progress")
    url = default_storage(tmp_path / "results" / "term")
    code, text = _interrupt_mid_trial(
        command, url, "term", tmp_path, group=False, sig=signal.SIGTERM
    )
    assert code == 143, text[-3000:]
    assert "stopped (SIGTERM); completed trials are kept" in text
    trials = _study(url, "term").get_trials()
    assert not [t.number for t in trials if t.state == TrialState.RUNNING and t.params]
    assert [t for t in trials if t.state == TrialState.WAITING], text[-3000:]
    listed = pd.read_csv(tmp_path / "results" / "term" / "trials.csv")
    assert listed.loc[listed["status"] == "interrupted", "reason"].str.contains("retried as").all()


@pytest.mark.slow
def test_two_local_workers_share_one_journal_study_and_survive_a_kill(tmp_path):
    config = _write_config(tmp_path, "pair", training=LONG_TRIALS)
    command = _cli(
        "search", "--config", str(config), "--trials", "6", "--workers", "2", "--no-progress"
    )
    run_dir = tmp_path / "results" / "pair"
    url = default_storage(run_dir, workers=2)
    assert url.startswith("journal:///")
    interrupted = _kill_during_a_trial(command, url, "pair", group=True)
    assert 1 <= len(interrupted) <= 2

    rerun = subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    _check_complete(url, "pair", 6, interrupted)
    workers = {t.system_attrs.get(WORKER) for t in _study(url, "pair").get_trials()}
    assert len(workers - {None}) >= 3  # two workers before the kill, at least one after
    trials = pd.read_csv(run_dir / "trials.csv")
    assert (run_dir / "report.html").exists() and len(trials) == len(set(trials["number"]))


# The test asks for a trial by hand, as a dying worker would, outside Study.optimize.
@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")
def test_a_dead_local_workers_trial_is_failed_and_queued_again(tmp_path):
    storage = open_storage(f"journal:///{tmp_path / 'dead.journal'}")
    study = optuna.create_study(study_name="dead", storage=storage)
    trial = study.ask()
    trial.suggest_int("width", 8, 64)
    # A process that has exited: its pid names no live process started at that time.
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "from search.storage import worker_identity; print(worker_identity())",
        ],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    storage.set_trial_system_attr(trial._trial_id, WORKER, child.stdout.strip())
    alive = study.ask()
    storage.set_trial_system_attr(alive._trial_id, WORKER, worker_identity())

    assert retry_dead_local_trials(study) == [trial.number]
    trials = study.get_trials()
    assert trials[trial.number].state == TrialState.FAIL
    assert trials[alive.number].state == TrialState.RUNNING  # this process lives
    queued = [t for t in trials if t.state == TrialState.WAITING]
    assert len(queued) == 1 and queued[0].params == trials[trial.number].params
    assert queued[0].system_attrs["failed_trial"] == trial.number
    # The copy is nobody's yet: kept, the dead worker's mark failed it again as soon as a
    # live worker had taken it up, before that worker had marked it its own.
    assert WORKER not in queued[0].system_attrs


def test_an_interrupted_process_queues_its_own_running_trials_only():
    # What an interrupted Ray driver does before it exits (Session.written_on_interrupt).
    study = optuna.create_study()
    mine, theirs, unmarked = study.ask(), study.ask(), study.ask()
    mine.suggest_int("width", 8, 64)
    study._storage.set_trial_system_attr(mine._trial_id, WORKER, worker_identity())
    study._storage.set_trial_system_attr(theirs._trial_id, WORKER, "otherhost:1:1")
    assert retry_own_trials(study) == [mine.number]
    trials = study.get_trials()
    assert trials[mine.number].state == TrialState.FAIL
    assert trials[theirs.number].state == trials[unmarked.number].state == TrialState.RUNNING
    (queued,) = [t for t in trials if t.state == TrialState.WAITING]
    assert queued.params == trials[mine.number].params


def test_a_trial_no_worker_took_up_is_failed_after_the_grace_period(monkeypatch):
    # A process stopped inside Optuna's ask() leaves a RUNNING trial with neither a
    # worker's mark nor a heartbeat. Counted as running, it made the workers wait for it
    # forever once the rest of the run was done.
    import threading
    from datetime import datetime, timedelta

    from search import storage as storage_module

    study = optuna.create_study()
    # Created long ago by another machine's clock (or time zone): that says nothing here;
    # only how long this process has seen it unmarked counts.
    ghost = optuna.trial.create_trial(state=TrialState.RUNNING)
    ghost.datetime_start = datetime.now() - timedelta(hours=2)
    study.add_trial(ghost)
    clock = [1000.0]
    monkeypatch.setattr(storage_module.time, "monotonic", lambda: clock[0])
    assert retry_unclaimed_trials(study, grace_s=20) == []  # first seen now
    clock[0] += 10
    marked = study.ask()  # unmarked when first seen, marked by its worker since
    assert retry_unclaimed_trials(study, grace_s=20) == []
    study._storage.set_trial_system_attr(marked._trial_id, WORKER, worker_identity())
    clock[0] += 15
    assert retry_unclaimed_trials(study, grace_s=20) == [0]
    ghost, marked, queued = study.get_trials()
    assert ghost.state == TrialState.FAIL and marked.state == TrialState.RUNNING
    assert queued.state == TrialState.WAITING and queued.system_attrs["failed_trial"] == 0
    monkeypatch.undo()

    study = optuna.create_study()
    study.add_trial(optuna.trial.create_trial(state=TrialState.RUNNING))
    done = threading.Event()

    def run() -> None:
        work(study, lambda trial: trial.suggest_float("x", 0, 1), 1, grace_s=0.5, poll_seconds=0.05)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(60), "the worker waited for a trial nobody runs"
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.COMPLETE]


@pytest.mark.parametrize("then", ["returns", "writes to it"])
def test_a_worker_whose_trial_another_failed_meanwhile_goes_on(caplog, then):
    # Another process took this worker's trial for a dead one's and failed it (and queued
    # a copy): Optuna cannot record the result, and the worker must not crash on that.
    study = optuna.create_study()

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        if trial.number == 0:
            study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
            if then == "writes to it":  # as the pipeline records its metrics
                trial.set_user_attr("metrics", {})
        return x

    with caplog.at_level("WARNING", logger="paretonas"):
        work(study, objective, 1, poll_seconds=0.05)
    assert "trial 0: failed meanwhile by another worker" in caplog.text
    states = [t.state for t in study.get_trials()]
    assert states[0] == TrialState.FAIL and states[-1] == TrialState.COMPLETE


# The test asks for a trial by hand, as a dying worker would, outside Study.optimize.
@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")
def test_journal_heartbeats_fail_a_silent_trial_after_the_grace_period(tmp_path):
    storage = open_storage(f"journal:///{tmp_path / 'beat.journal'}", 1, 2)
    assert isinstance(storage, HeartbeatJournalStorage)
    study = optuna.create_study(study_name="beat", storage=storage)
    silent, beating = study.ask(), study.ask()
    silent.suggest_float("x", 0, 1)
    storage.record_heartbeat(silent._trial_id)
    time.sleep(1.5)
    storage.record_heartbeat(beating._trial_id)
    time.sleep(1.0)  # silent: 2.5 s without a beat; beating: 1.0 s
    assert storage._get_stale_trial_ids(study._study_id) == [silent._trial_id]
    optuna.storages.fail_stale_trials(study)
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING]


def test_a_trial_past_its_time_limit_is_failed_with_the_reason(tmp_path):
    data = json.loads(json.dumps(TINY))
    data.update(name="slow", results_dir=str(tmp_path), execution={"trial_timeout_s": 0.01})
    result = run_search(parse_config(data), trials=2, progress=False)
    trials = pd.read_csv(result.run_dir / "trials.csv")
    assert len(trials) == 2 and set(trials["status"]) == {"failed"}
    assert trials["reason"].str.contains("TrialTimeout: ran past its time limit").all()


def test_same_seed_and_config_propose_the_same_candidates(tmp_path):
    genomes = []
    for name in ("first", "second"):
        data = json.loads(json.dumps(TINY))
        # Over budget, so nothing trains: 7 proposals (5 random start-up, 2 by TPE) in seconds.
        # Computed objectives only: with a measured latency among them, TPE's proposals after
        # the start-up would follow the measurement noise, which no seed fixes.
        data.update(
            name=name,
            results_dir=str(tmp_path),
            objectives=["accuracy", "peak_memory_kb", "params"],
            budget={"peak_memory_kb": 0.001},
        )
        result = run_search(parse_config(data), trials=7, progress=False)
        genomes.append(list(pd.read_csv(result.run_dir / "trials.csv")["genome"]))
    assert genomes[0] == genomes[1]
    assert len(set(genomes[0])) > 1


def test_progress_counts_failures_with_a_reason_but_not_dead_workers(tmp_path):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}")
    study.tell(study.ask(), 1.0)
    failed = study.ask()
    failed.set_user_attr("metrics", {"status": "failed", "reason": "boom"})
    study.tell(failed, state=TrialState.FAIL)
    study.tell(study.ask(), state=TrialState.FAIL)  # no metrics: its worker died
    study.ask()
    assert progress(study) == (2, 1)


def test_a_trial_begun_when_the_run_already_has_enough_steps_aside(capfd):
    """Two workers can both see one trial missing and both ask for one: the later trial is
    failed before any work, is not counted, is not listed, and Optuna does not report it
    as a failed trial with a traceback."""
    study = optuna.create_study(directions=["maximize"])
    study.set_user_attr("target_trials", 1)
    study.ask()  # another worker's trial, still running: the run's one trial
    calls = []

    def objective(trial):
        calls.append(trial.number)
        return [1.0]

    # work() itself would wait for the running trial; ask as a racing worker would.
    from search.worker import _unless_surplus

    study.optimize(_unless_surplus(objective, 1), n_trials=1, catch=(Exception,))
    surplus = study.trials[1]
    assert calls == [] and surplus.state == TrialState.FAIL
    assert surplus.user_attrs[SURPLUS] is True and not finished(surplus)
    assert 1 not in set(trials_frame(study)["number"])
    err = capfd.readouterr().err
    assert "Trial 1 failed" not in err and "Traceback" not in err

    # With nothing ahead of it, a trial runs.
    fresh = optuna.create_study(directions=["maximize"])
    assert work(fresh, objective, 1) == 1 and calls == [0]


def test_ctrl_c_during_a_trial_queues_it_again_without_a_traceback(capfd):
    """Ctrl-C reaches work() as KeyboardInterrupt in the middle of a trial: it must still
    stop the run, and the interrupted trial must be retried on resume like a dead
    worker's, not reported as a failure with a traceback."""
    study = optuna.create_study(directions=["maximize"])
    calls = []

    def objective(trial):
        width = trial.suggest_int("width", 8, 64)
        calls.append(width)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return [1.0]

    with pytest.raises(KeyboardInterrupt):
        work(study, objective, 3)
    interrupted = study.trials[1]
    assert interrupted.state == TrialState.FAIL
    queued = [t for t in study.trials if t.state == TrialState.WAITING]
    assert len(queued) == 1 and queued[0].params == interrupted.params
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Trial 1 failed" not in err

    # The rerun runs the queued copy first, with the same parameters.
    assert work(study, objective, 3) == 2
    assert calls[2] == calls[1]
    assert "retried as trial 2" in trials_frame(study).set_index("number").loc[1, "reason"]


def test_a_stop_inside_optunas_tell_still_queues_the_trial_again(monkeypatch):
    # The signal may land after the objective returned, while Optuna records the result:
    # the trial is then still running, and must be failed and queued, as the log says.
    import optuna.study._optimize as optimize

    study = optuna.create_study(directions=["maximize"])
    told = optimize._tell_with_warning

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    def objective(trial):
        # As search.objective.record does: the outcome, then the constraints.
        trial.set_user_attr("metrics", {"status": "ok", "accuracy": 0.9})
        trial.set_user_attr("artifacts", "checkpoints/0")
        trial.set_constraint("latency_ms", 5.0)
        return [float(trial.suggest_int("width", 8, 64))]

    monkeypatch.setattr(optimize, "_tell_with_warning", interrupted)
    with pytest.raises(KeyboardInterrupt):
        work(study, objective, 2)
    (first, *queued) = study.trials
    assert first.state == TrialState.FAIL
    assert [t.state for t in queued] == [TrialState.WAITING]
    assert queued[0].params == first.params
    # The copy records its own outcome and constraints, not the dead trial's (listed as ok
    # while it waits, and ignored with a warning when it ran).
    assert not [key for key in queued[0].system_attrs if key.startswith("constraints")]
    assert not {"metrics", "artifacts"} & set(queued[0].user_attrs)
    listed = trials_frame(study).set_index("number")
    assert listed.loc[1, "status"] != "ok" and listed.loc[0, "status"] == "interrupted"
    monkeypatch.setattr(optimize, "_tell_with_warning", told)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert work(study, objective, 2) == 2


def test_a_trial_ending_after_another_process_changed_the_config_is_failed_and_the_worker_stops():
    from search.config import ConfigError

    study = optuna.create_study(directions=["maximize"])
    said: list[str | None] = [None, None, None]  # before and after trial 0, before trial 1

    def changed():
        return said.pop(0) if said else "another process recorded a different config"

    def objective(trial):
        trial.suggest_int("width", 8, 64)
        trial.set_user_attr("metrics", {"status": "ok", "accuracy": 0.9})
        return [0.9]

    with pytest.raises(ConfigError, match="another process recorded a different config"):
        work(study, objective, 5, config_changed=changed)
    first, second = study.trials
    assert first.state == TrialState.COMPLETE
    # The second trial ended under the other config: failed with the reason, not recorded.
    assert second.state == TrialState.FAIL
    assert second.user_attrs["metrics"]["status"] == "failed"
    assert "different config" in second.user_attrs["metrics"]["reason"]
    assert trials_frame(study).set_index("number").loc[1, "status"] == "failed"


def test_a_search_stopped_by_another_config_leaves_the_runs_config_in_its_folder(
    tmp_path, monkeypatch
):
    import yaml

    from search.config import ConfigError, parse_config
    from search.runner import CONFIG, Session, record_config

    study = optuna.create_study(directions=["maximize"])
    mine = parse_config({"name": "race", "budget": {"peak_memory_kb": 16}})
    other = parse_config({"name": "race", "budget": {"peak_memory_kb": 32}})
    record_config(study, other)  # the other process recorded its config last
    (tmp_path / "config.yaml").write_text(mine.to_yaml())  # but this one wrote the file last
    session = Session.__new__(Session)
    session.config, session.study, session.run_dir = mine, study, tmp_path
    session.objective = lambda trial: [0.0]
    with pytest.raises(ConfigError, match="another process recorded a different config"):
        session.work(3)
    assert yaml.safe_load((tmp_path / "config.yaml").read_text()) == study.user_attrs[CONFIG]
    assert not study.trials


def test_the_recorded_config_is_compared_but_for_what_a_run_may_change():
    from search.config import parse_config
    from search.runner import CONFIG, config_changed_elsewhere, record_config

    study = optuna.create_study(directions=["maximize"])
    mine = parse_config({"name": "race", "budget": {"peak_memory_kb": 16}})
    assert config_changed_elsewhere(study, mine) is None  # nothing recorded yet
    record_config(study, mine)
    assert config_changed_elsewhere(study, mine) is None
    threads = mine.model_copy(
        update={"execution": mine.execution.model_copy(update={"workers": 2})}
    )
    assert config_changed_elsewhere(study, threads) is None  # may change between invocations
    other = parse_config({"name": "race", "budget": {"peak_memory_kb": 32}})
    record_config(study, other)
    why = config_changed_elsewhere(study, mine)
    assert (
        why is not None and "(changed: budget.peak_memory_kb (run: 32.0, this config: 16.0))" in why
    )
    assert CONFIG in study.user_attrs


def test_a_chain_of_retries_names_each_trials_own_retry():
    from search.storage import retry_trial

    study = optuna.create_study(directions=["maximize"])
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL, params={"w": 8},
                    distributions={"w": optuna.distributions.IntDistribution(8, 64)}))  # fmt: skip
    retry_trial(study, study.trials[0]._trial_id, max_retry=3)  # trial 1, queued
    first_retry = study.ask()  # runs the queued copy, and dies too
    study.tell(first_retry, state=TrialState.FAIL)
    retry_trial(study, study.trials[1]._trial_id, max_retry=3)  # trial 2
    frame = trials_frame(study).set_index("number")
    assert "retried as trial 1" in frame.loc[0, "reason"]
    assert "retried as trial 2" in frame.loc[1, "reason"]  # not "not retried"
    assert frame.loc[2, "retry_of"] == 1 and frame.loc[1, "retry_of"] == 0


def test_a_missing_database_driver_is_named_with_a_fix(monkeypatch):
    import search.storage

    def missing_driver(*args, **kwargs):
        raise ImportError("Failed to import DB access module for the specified storage URL.")

    monkeypatch.setattr(search.storage, "RDBStorage", missing_driver)
    installed = {"psycopg2": False}
    monkeypatch.setattr(
        search.storage.importlib.util, "find_spec", lambda name: installed.get(name, True)
    )
    with pytest.raises(
        StorageError, match=r"driver is not installed.*postgresql\+psycopg2://"
    ) as e:
        open_storage("postgresql://nas:s3cret-pw@db.example/nas")
    assert "s3cret-pw" not in str(e.value)
    # paretonas[postgres] installs psycopg2, which a bare postgresql:// no longer takes.
    installed["psycopg2"] = True
    with pytest.raises(
        StorageError,
        match=r"psycopg2 is what is installed: write the URL as postgresql\+psycopg2://",
    ) as e:
        open_storage("postgresql://nas:s3cret-pw@db.example/nas")
    assert "s3cret-pw" not in str(e.value)


def test_a_trial_killed_between_recording_and_telling_is_interrupted_not_finished():
    from search.results import trials_frame

    study = optuna.create_study()
    recorded = study.ask()  # its worker recorded an outcome, then died before telling
    recorded.set_user_attr("metrics", {"status": "ok", "accuracy": 0.9})
    study.tell(recorded, state=TrialState.FAIL)
    evaluated = study.ask()  # an evaluated failure: its reason is the outcome
    evaluated.set_user_attr("metrics", {"status": "failed", "reason": "out of memory"})
    study.tell(evaluated, state=TrialState.FAIL)
    first, second = study.get_trials()
    assert not finished(first) and finished(second)
    assert list(trials_frame(study)["status"]) == ["interrupted", "failed"]


def test_a_worker_waits_for_the_study_the_search_creates(tmp_path):
    import threading

    from search.runner import TARGET, record_config, run_worker

    url = f"sqlite:///{tmp_path}/study.db"
    optuna.create_study(study_name="other", storage=url)  # the file is there, the study not
    config = parse_config({**TINY, "name": "late", "results_dir": str(tmp_path)})

    def search_starts() -> None:
        time.sleep(1.5)
        study = optuna.create_study(study_name="late", storage=url, directions=config.directions)
        record_config(study, config)
        study.set_user_attr(TARGET, 0)  # nothing to do: the worker leaves once it has joined

    thread = threading.Thread(target=search_starts)
    thread.start()
    result = run_worker(url, "late", wait_s=60)
    thread.join()
    assert result.trials.empty
    with pytest.raises(StorageError, match=r"no study named 'nosuch' .*\(waited 1 s\).*--wait"):
        run_worker(url, "nosuch", wait_s=1)


@pytest.mark.parametrize("kind", ["sqlite:///{}/late.db", "{}/late.journal"])
def test_a_worker_waits_for_the_study_file_too(tmp_path, kind):
    import threading

    from search.runner import TARGET, record_config, run_worker
    from search.storage import open_storage

    url = kind.format(tmp_path)
    config = parse_config({**TINY, "name": "late", "results_dir": str(tmp_path)})

    def search_starts() -> None:
        time.sleep(1.5)  # the worker was started first: the file is not there yet
        study = optuna.create_study(
            study_name="late", storage=open_storage(url), directions=config.directions
        )
        record_config(study, config)
        study.set_user_attr(TARGET, 0)

    thread = threading.Thread(target=search_starts)
    thread.start()
    result = run_worker(url, "late", wait_s=60)
    thread.join()
    assert result.trials.empty
    missing = kind.format(tmp_path / "nowhere")
    with pytest.raises(StorageError, match=r"no study storage at .*\(waited 1 s\)"):
        run_worker(missing, "late", wait_s=1)


def test_an_orphaned_worker_starts_no_trial_even_if_its_interrupt_was_lost():
    # The watcher's SIGTERM can be swallowed (raised inside a __del__, it is only printed),
    # and the CLI ignores any SIGTERM after the first: the flag it set still stops the
    # worker before its next trial.
    from search import worker

    study = optuna.create_study(directions=["maximize"])
    worker._ORPHANED.set()
    try:
        with pytest.raises(worker.Orphaned):
            worker.work(study, lambda trial: pytest.fail("no trial once orphaned"), 3)
    finally:
        worker._ORPHANED.clear()
    assert not study.trials
