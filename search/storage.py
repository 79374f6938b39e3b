"""Where a study lives, and how a trial whose worker died is noticed and retried.

Storages, by URL:

- ``sqlite:///PATH``: one process (the default for a one-worker run: results/<run>/study.db).
- ``journal:///PATH`` (or a path ending in ``.journal``/``.log``): Optuna's JournalStorage on
  a file; safe for several processes on one machine or a shared file system (the default
  when a run has several local workers: results/<run>/study.journal).
- ``postgresql://...`` / ``mysql://...``: Optuna's RDBStorage, for workers on many machines.

A worker that dies (SIGKILL, power, OOM killer) leaves its trial RUNNING forever unless
someone notices. Two mechanisms, both ending in Optuna's
``RetryHeartbeatStaleTrialCallback`` (the trial is failed and a copy with the same
parameters is queued):

- heartbeats: every worker records one per running trial; a trial whose last heartbeat is
  older than the grace period is stale. RDBStorage does this itself; JournalStorage gets
  the same ``BaseHeartbeat`` interface here (``HeartbeatJournalStorage``), with heartbeats
  stored as trial system attributes.
- dead local workers: each trial records which process runs it (host, pid, process start
  time); a trial of a process on this host that no longer exists is stale at once, so a
  rerun after a crash retries it without waiting for the grace period.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import os
import re
import signal
import socket
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import (
    BaseStorage,
    JournalStorage,
    RDBStorage,
    RetryHeartbeatStaleTrialCallback,
)
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

HEARTBEAT = "paretonas:heartbeat"
WORKER = "paretonas:worker"
JOURNAL_SCHEME = "journal:///"
JOURNAL_SUFFIXES = (".journal", ".log")
_POOL = {"pool_pre_ping": True}  # a server restart or idle timeout is not a failed trial


class StorageError(Exception):
    """A storage that cannot be opened; the message hides any password in the URL."""


# Query parameters that carry a secret: libpq's password and sslpassword, and the like.
_SECRET_PARAMETER = re.compile(r"([?&][^=&]*(?:pass|pwd|secret|token)[^=&]*=)([^&]*)", re.I)


def safe_url(url: str) -> str:
    """The URL with its password masked, for logs and reports: the one before the host
    and any in the query (``?password=...``)."""
    if is_journal(url):
        return url
    scheme, found, rest = url.partition("://")
    shown = url
    userinfo = _userinfo(rest) if found else None
    if userinfo is not None and ":" in userinfo and not userinfo.startswith("/"):
        shown = f"{scheme}://{userinfo.partition(':')[0]}:***@{rest[len(userinfo) + 1 :]}"
    return _SECRET_PARAMETER.sub(r"\1***", shown)


# What follows the '@' that ends the user part: a host (name, IPv4 or [IPv6]), an optional
# port, then the path, the query or the end.
_HOST = re.compile(r"[\w.\-]+(:\d+)?([/?]|$)|\[[0-9a-fA-F:.]+\](:\d+)?([/?]|$)")


def _userinfo(rest: str) -> str | None:
    """The user part of a URL after its scheme (``user:password``), or None. A password
    may hold unescaped '@', ':', '/' or '?', which URL parsers read as the end of the user
    part (SQLAlchemy showed "bob:***@S3cret@host" for the password "Sup3r@S3cret"): it
    ends at the last '@' that a host follows. Erring that way can hide more than the
    password (an '@' in the query), never less."""
    for at in reversed([i for i, char in enumerate(rest) if char == "@"]):
        if _HOST.match(rest, at + 1):
            return rest[:at]
    return None


def _secrets(url: str) -> list[str]:
    """The passwords of a URL (before the host, and in its query) and their pieces, which a
    driver's message may quote when an unescaped ':' or '@' splits the URL in the wrong
    place. Pieces of one or two characters are left: masking them would garble the
    message more than they reveal."""
    from urllib.parse import unquote

    rest = url.partition("://")[2]
    found = [unquote(m.group(2)) for m in _SECRET_PARAMETER.finditer(rest)]
    found += [m.group(2) for m in _SECRET_PARAMETER.finditer(rest)]
    userinfo = _userinfo(rest)
    if userinfo is not None:
        password = userinfo.partition(":")[2]
        found += [password, *re.split(r"[:@?/]", password)]
    return sorted((p for p in set(found) if len(p) >= 3), key=len, reverse=True)


def is_journal(url: str) -> bool:
    return url.startswith(JOURNAL_SCHEME) or url.endswith(JOURNAL_SUFFIXES)


def journal_path(url: str) -> Path:
    return Path(url.removeprefix(JOURNAL_SCHEME) if url.startswith(JOURNAL_SCHEME) else url)


def local_file(url: str) -> Path | None:
    """The file of a journal or SQLite storage; None for a database server."""
    if is_journal(url):
        return journal_path(url)
    return Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:///") else None


def default_storage(run_dir: Path, workers: int = 1) -> str:
    """The run's own storage: the one already there, else SQLite for one worker and a
    journal file for several (SQLite's locking is not made for concurrent writers)."""
    sqlite = run_dir / "study.db"
    journal = run_dir / "study.journal"
    if sqlite.exists() and not journal.exists():
        return f"sqlite:///{sqlite.resolve()}"
    if journal.exists() or workers > 1:
        return f"{JOURNAL_SCHEME}{journal.resolve()}"
    return f"sqlite:///{sqlite.resolve()}"


# --- who runs a trial -----------------------------------------------------------------------

# Set, to the search's pid, for the workers `search --workers N` starts: the search speaks
# for them on Ctrl-C, and they stop when it is gone (``search.worker.stop_when_orphaned``).
LOCAL_WORKER_VARIABLE = "PARETONAS_LOCAL_WORKER"


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a live process
    from a new one that reuses a dead one's pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def worker_identity() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid) or '?'}"


def worker_host(identity: object) -> str | None:
    """The host of a ``worker_identity`` string; None for anything else (a blank table
    cell reads back as NaN)."""
    if not isinstance(identity, str) or identity.count(":") < 2:
        return None
    return identity.rsplit(":", 2)[0]


def is_dead_local_worker(identity: str) -> bool:
    """Whether ``identity`` names a process of this host that no longer runs. A worker on
    another host is never judged here (its heartbeat is)."""
    try:
        host, pid_text, started = identity.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != socket.gethostname():
        return False
    if Path("/proc").is_dir() and started != "?":
        return _start_time(pid) != started
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def mark_worker(study: optuna.Study, trial_id: int) -> None:
    study._storage.set_trial_system_attr(trial_id, WORKER, worker_identity())


# --- heartbeats on a journal file -----------------------------------------------------------


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """JournalStorage with Optuna's heartbeat interface, so ``study.optimize`` records
    heartbeats and fails stale trials as it does for RDBStorage."""

    def __init__(
        self,
        path: str | Path,
        heartbeat_interval: int,
        grace_period: int,
        stale_trial_callback: Callable[[optuna.Study, FrozenTrial], None] | None = None,
    ):
        super().__init__(_SignalSafeJournalFile(str(path)))
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self.stale_trial_callback = stale_trial_callback

    def record_heartbeat(self, trial_id: int) -> None:
        # The trial may have finished between two beats.
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            self.set_trial_system_attr(trial_id, HEARTBEAT, time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        stale = []
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            beat = trial.system_attrs.get(HEARTBEAT)
            if beat is None and trial.datetime_start is not None:
                beat = trial.datetime_start.timestamp()
            if beat is not None and now - float(beat) > self.grace_period:
                stale.append(trial._trial_id)
        return stale

    def get_heartbeat_interval(self) -> int | None:
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(
        self,
    ) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return self.stale_trial_callback


_DEFERRED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """A SIGINT or SIGTERM inside is acted on when the block ends, not in the middle of it
    (the CLI takes SIGTERM the Ctrl-C way: a batch scheduler's stop, or a local worker's
    own when its search is gone). Only the main thread receives Python's signal handlers;
    elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[tuple[int, Any]] = []

    def hold(signum: int, frame: Any) -> None:
        received.append((signum, frame))

    previous = {number: signal.signal(number, hold) for number in _DEFERRED_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if received:
            signum, frame = received[0]
            handler = previous[signum]
            if callable(handler):
                handler(signum, frame)  # raises KeyboardInterrupt now, at a safe point
            elif handler == signal.SIG_DFL:
                if signum == signal.SIGINT:
                    raise KeyboardInterrupt
                signal.raise_signal(signum)


class _SignalSafeJournalFile(JournalFileBackend):
    """Optuna's journal file, whose writes a Ctrl-C does not cut in half.

    Its file lock (taken by each write) is not safe against KeyboardInterrupt: interrupted
    while waiting, it releases the lock another process holds, and that process's next
    write fails (a RuntimeError, which Optuna records as a failed trial; a worker then went
    on with its Ctrl-C lost and ran the rest of the search). Deferred to the end of each
    write, the interrupt lands between two storage calls instead."""

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        with deferred_interrupts():
            super().append_logs(logs)


# A trial's outcome, as search.objective records it (user attributes).
_OUTCOME_ATTRS = ("metrics", "artifacts", "duplicate_of", "traceback")


class _RetryAnew:
    """Optuna's retry of a failed trial (a WAITING copy, same parameters), the copy without
    its owner: Optuna copies every system attribute, and a copy still marked with the dead
    worker (and its last heartbeat) was failed again as that worker's the moment a live
    worker had taken it up, before it had marked the copy its own. Nor with the dead
    trial's constraints (set when its result was recorded, before it died inside Optuna's
    tell): the copy's own would be ignored, with a warning."""

    def __init__(self, max_retry: int) -> None:
        # Optuna marks the callback experimental; a warning per storage opened is noise.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self._retry = RetryHeartbeatStaleTrialCallback(max_retry=max_retry)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        trial = copy.deepcopy(trial)
        trial.system_attrs = {
            key: value
            for key, value in trial.system_attrs.items()
            if key not in (WORKER, HEARTBEAT) and not key.startswith("constraints:")
        }
        # Nor with its outcome, recorded before it died inside Optuna's tell: the copy
        # waiting to run would be listed (and drawn on the front) with it.
        trial.user_attrs = {
            key: value for key, value in trial.user_attrs.items() if key not in _OUTCOME_ATTRS
        }
        self._retry(study, trial)


def _retry_callback(max_retry: int) -> _RetryAnew:
    return _RetryAnew(max_retry)


def open_storage(
    url: str,
    heartbeat_interval: int = 30,
    grace_period: int = 120,
    max_retry: int = 2,
    *,
    heartbeats: bool = True,
) -> BaseStorage:
    """An Optuna storage for ``url`` with heartbeats and retries of stale trials.

    SQLite gets no heartbeat: it is the one-process storage, whose dead trials are found by
    ``retry_dead_local_trials`` when the run is started again. ``heartbeats=False`` is for
    code that asks trials outside ``Study.optimize`` (Ray's searcher), which never beats.
    """
    retry = _retry_callback(max_retry)
    try:
        if is_journal(url):
            path = journal_path(url)
            path.parent.mkdir(parents=True, exist_ok=True)
            if not heartbeats:
                return JournalStorage(_SignalSafeJournalFile(str(path)))
            return HeartbeatJournalStorage(path, heartbeat_interval, grace_period, retry)
        if url.startswith("sqlite:") or not heartbeats:
            return _rdb_storage(url, engine_kwargs=None if url.startswith("sqlite:") else _POOL)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return _rdb_storage(
                url,
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period,
                heartbeat_stale_trial_callback=retry,
                engine_kwargs=_POOL,
            )
    except ImportError as error:
        # SQLAlchemy's default driver for the scheme is missing (postgresql:// means psycopg).
        if url.startswith("postgresql://") and importlib.util.find_spec("psycopg2"):
            # paretonas[postgres] installs psycopg2, which SQLAlchemy 2.1 no longer takes
            # for a bare postgresql:// URL.
            raise StorageError(
                f"cannot open storage {safe_url(url)}: SQLAlchemy takes postgresql:// for "
                f"psycopg 3 ({_first_line(error, url)}), and psycopg2 is what is installed: "
                "write the URL as postgresql+psycopg2://..."
            ) from None
        raise StorageError(
            f"cannot open storage {safe_url(url)}: its database driver is not installed "
            f"({_first_line(error, url)}); install it, or name an installed one in the URL, "
            "e.g. postgresql+psycopg2:// or mysql+pymysql://"
        ) from None
    except Exception as error:
        raise StorageError(
            f"cannot open storage {safe_url(url)} ({type(error).__name__}: "
            f"{_first_line(error, url)}); check the storage URL and that the server runs"
        ) from None


# What a process sees when another one created the same fresh database's tables (or its
# schema version row) between its own check and create: SQLite, PostgreSQL and MySQL words.
_CREATED_MEANWHILE = ("already exists", "unique constraint", "duplicate key", "duplicate entry")


def _rdb_storage(url: str, attempts: int = 3, **kwargs) -> RDBStorage:
    """``RDBStorage(url, **kwargs)``, tried again when another process was creating the same
    new database at the same moment (workers started together on a fresh study): RDBStorage
    checks for each table and then creates it, so one of two such processes fails; on the
    next try it finds the tables made."""
    for attempt in range(attempts - 1):
        try:
            return RDBStorage(url, **kwargs)
        except Exception as error:
            if not any(word in str(error).lower() for word in _CREATED_MEANWHILE):
                raise
            time.sleep(0.2 * (attempt + 1))
    return RDBStorage(url, **kwargs)


def _first_line(error: BaseException, url: str) -> str:
    # Drivers put the URL (with its password), or pieces of it, into some messages: never
    # repeat them.
    text = str(error).splitlines()[0][:200] if str(error) else ""
    text = text.split("@")[-1] if "://" in text else text
    for secret in _secrets(url):
        text = text.replace(secret, "***")
    return text


def retry_trial(study: optuna.Study, trial_id: int, max_retry: int = 2) -> None:
    """Queue a copy of a failed trial (same parameters), as for a dead worker's trial,
    unless it was retried ``max_retry`` times already."""
    trial = study._storage.get_trial(trial_id)
    if trial.state == TrialState.FAIL:
        _retry_callback(max_retry)(study, copy.deepcopy(trial))


def retry_dead_local_trials(study: optuna.Study, max_retry: int = 2) -> list[int]:
    """Fail the RUNNING trials whose worker was a process of this host that has died, and
    queue each one again (same parameters) unless it was retried ``max_retry`` times.
    Returns the numbers of the trials it failed."""
    return _retry_running(
        study, max_retry, lambda trial: is_dead_local_worker(str(trial.system_attrs[WORKER]))
    )


def retry_own_trials(study: optuna.Study, max_retry: int = 2) -> list[int]:
    """As ``retry_dead_local_trials``, for the RUNNING trials this process marked: those an
    interrupted Ray driver leaves behind, so that the run's tables list them as
    interrupted, not as running, without waiting for a rerun to find the driver dead."""
    me = worker_identity()
    return _retry_running(study, max_retry, lambda trial: trial.system_attrs[WORKER] == me)


def retry_unclaimed_trials(
    study: optuna.Study, max_retry: int = 2, grace_s: float = 90
) -> list[int]:
    """As ``retry_dead_local_trials``, for the RUNNING trials that this process has seen
    unmarked for ``grace_s``. A worker marks its trial first thing, so one unmarked that
    long was asked for by a process stopped inside Optuna's ``ask`` (a Ctrl-C or a kill
    there). Without a mark or a heartbeat nothing else would ever end it, and workers
    counting it as running would wait for it at the end of the run. Timed by this
    process's own clock from when it first saw the trial: a trial's ``datetime_start`` is
    the local time of the machine that created it, which another machine's clock or time
    zone cannot be compared with."""
    now = time.monotonic()
    seen = _UNCLAIMED.setdefault(study._storage, {})
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    unmarked = {t._trial_id for t in running if WORKER not in t.system_attrs}
    for trial_id in list(seen):
        if trial_id not in unmarked:  # marked, or finished, since
            del seen[trial_id]
    for trial_id in unmarked:
        seen.setdefault(trial_id, now)
    return _retry_running(
        study, max_retry, lambda trial: now - seen[trial._trial_id] >= grace_s, marked=False
    )


# Per storage object: when this process first saw each RUNNING trial no worker had marked.
_UNCLAIMED: weakref.WeakKeyDictionary[BaseStorage, dict[int, float]] = weakref.WeakKeyDictionary()


def _retry_running(
    study: optuna.Study,
    max_retry: int,
    dead: Callable[[FrozenTrial], bool],
    *,
    marked: bool = True,
) -> list[int]:
    """Fail and queue again the RUNNING trials, marked by a worker (``marked``) or not,
    that ``dead`` says no process will finish."""
    storage = study._storage
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if (WORKER in trial.system_attrs) != marked or not dead(trial):
            continue
        try:
            if not storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker got there first
        failed.append(trial.number)
        retry_trial(study, trial._trial_id, max_retry)
    return failed
