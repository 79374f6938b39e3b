"""One host, many workers: latency is timed while no worker on the host computes.

``search --workers N``, Ray's workers on one node and separate searches on one machine
train on the same cores that time candidates. A model timed while another process trains
shares caches and memory bandwidth with it and runs slower, and the baselines a report
sets beside the front were timed alone (``benchmarks/timing_lock.py`` measures the
difference). So every process on the host takes one lock file: a measurement holds it
exclusively, and each training step and each batch of evaluation hold it shared. A
measurement waits for the steps in flight (one batch each), and new steps wait for the
measurement (tens of milliseconds). A second lock file, a turnstile that a measurement
holds while it waits, keeps a stream of steps from starving it: Linux's ``flock`` lets new
shared holders in past a waiting exclusive one.

The files live in the system's temporary folder (``PARETONAS_TIMING_LOCK`` names another
base path, or ``off`` turns the lock off). Where ``fcntl`` is missing (Windows) or the
files cannot be opened, measurements are taken as before, unguarded, with one warning.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
from collections.abc import Iterator

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

ENVIRONMENT = "PARETONAS_TIMING_LOCK"
DEFAULT_NAME = "paretonas-timing"


class _HostLock:
    """This process's handle on the host's lock files (reopened after a fork: ``flock``
    locks belong to the open file, which a forked child would share with its parent)."""

    def __init__(self) -> None:
        self._guard = threading.RLock()
        self._pid: int | None = None
        self._base: str | None = None
        self._files: tuple[int, int] | None = None
        self._computing = 0
        self._timing = 0
        self._held: str | None = None
        self._warned = False

    def _open(self) -> tuple[int, int] | None:
        setting = os.environ.get(ENVIRONMENT, "")
        if setting.lower() == "off" or fcntl is None:
            return None
        base = setting or os.path.join(tempfile.gettempdir(), DEFAULT_NAME)
        if self._pid == os.getpid() and self._base == base:
            return self._files
        self._close()
        self._pid, self._base = os.getpid(), base
        try:
            # Read-only is enough for flock, so another user's file serves this user too.
            self._files = tuple(  # type: ignore[assignment]
                os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
                for path in (base + ".lock", base + ".turnstile")
            )
        except OSError as error:
            self._files = None
            if not self._warned:
                self._warned = True
                log.warning(
                    "latency is timed without the host's timing lock (%s): workers on this "
                    "machine may slow each other's measurements",
                    error,
                )
        return self._files

    def _close(self) -> None:
        if self._files is not None and self._pid == os.getpid():
            for descriptor in self._files:
                os.close(descriptor)
        self._files = None
        self._computing = self._timing = 0
        self._held: str | None = None  # what this process holds: "shared", "exclusive"

    @contextlib.contextmanager
    def computing(self) -> Iterator[None]:
        with self._guard:
            files = self._open()
            if files is not None and self._held is None:
                lock, turnstile = files
                fcntl.flock(turnstile, fcntl.LOCK_EX)
                try:
                    fcntl.flock(lock, fcntl.LOCK_SH)
                finally:
                    fcntl.flock(turnstile, fcntl.LOCK_UN)
                self._held = "shared"
            self._computing += 1
        try:
            yield
        finally:
            with self._guard:
                self._computing -= 1
                if self._computing == 0 and self._held == "shared":
                    fcntl.flock(self._files[0], fcntl.LOCK_UN)
                    self._held = None

    @contextlib.contextmanager
    def timing(self) -> Iterator[None]:
        with self._guard:
            files = self._open()
            if files is not None and self._held != "exclusive":
                lock, turnstile = files
                if self._held == "shared":
                    # Inside this process's own step: let go of the shared hold before
                    # queueing, or two processes doing this would wait for each other.
                    fcntl.flock(lock, fcntl.LOCK_UN)
                    self._held = None
                fcntl.flock(turnstile, fcntl.LOCK_EX)
                fcntl.flock(lock, fcntl.LOCK_EX)
                self._held = "exclusive"
            self._timing += 1
        try:
            yield
        finally:
            with self._guard:
                self._timing -= 1
                if self._timing == 0 and self._held == "exclusive":
                    lock, turnstile = self._files
                    # Back to a shared hold if this process is still inside its step.
                    fcntl.flock(lock, fcntl.LOCK_SH if self._computing else fcntl.LOCK_UN)
                    self._held = "shared" if self._computing else None
                    fcntl.flock(turnstile, fcntl.LOCK_UN)


_HOST = _HostLock()


def computing() -> contextlib.AbstractContextManager[None]:
    """Hold around one unit of heavy work (a training step, a batch of inference): it waits
    while a measurement runs on this host and delays measurements until it ends."""
    return _HOST.computing()


def timing() -> contextlib.AbstractContextManager[None]:
    """Hold around a latency measurement: no process on this host computes meanwhile."""
    return _HOST.timing()
