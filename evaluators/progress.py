"""Progress of long work: a bar on a terminal, a few plain lines in a log.

A tqdm bar redraws itself with carriage returns, which a terminal turns into one moving
line but a log file (``nohup``, CI, a cluster's job output) keeps as one endless line of
every redraw. Where the stream is not a terminal, ``progress_bar`` returns ``LineProgress``
instead: a whole line at most every ``interval`` seconds, with the share done, the
latest figures (epoch, loss) and an estimate of the time left, a last line when it ends,
and nothing for work that ends sooner.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

LOG_INTERVAL_S = 30.0


class LineProgress:
    """The part of tqdm's interface this project uses, written as whole lines."""

    def __init__(
        self,
        iterable: Iterable | None = None,
        *,
        total: int | None = None,
        desc: str = "",
        interval: float = LOG_INTERVAL_S,
        file: TextIO | None = None,
        clock=time.monotonic,
    ):
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable = iterable
        self.total = total
        self.desc = desc
        self.n = 0
        self.interval = interval
        self.file = file
        self._clock = clock
        self._started = clock()
        self._last = self._started
        self._postfix: dict[str, Any] = {}
        self._printed_at: int | None = None  # self.n at the last line written

    def __iter__(self) -> Iterator:
        for item in self.iterable or ():
            yield item
            self.update()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self._clock()
        if now - self._last >= self.interval:
            self._last = now
            self._write(now)

    def set_postfix(self, **values: Any) -> None:
        self._postfix = values

    def close(self) -> None:
        """A last line for work long enough to have written one, so that a log ends with
        where it ended, not where it was up to ``interval`` seconds before."""
        if self._printed_at is not None and self._printed_at != self.n:
            self._write(self._clock())

    def _write(self, now: float) -> None:
        self._printed_at = self.n
        print(self.line(now), file=self.file or sys.stderr, flush=True)

    def line(self, now: float) -> str:
        elapsed = now - self._started
        parts = [f"{self.n}/{self.total}" if self.total else f"{self.n} done"]
        if self.total:
            parts[0] += f" ({100 * self.n / self.total:.0f} %)"
        parts += [f"{key} {value}" for key, value in self._postfix.items()]
        parts.append(f"{_duration(elapsed)} elapsed")
        if self.total and 0 < self.n < self.total:
            parts.append(f"about {_duration(elapsed * (self.total - self.n) / self.n)} left")
        return f"{self.desc}: " + ", ".join(parts)


def progress_bar(
    iterable: Iterable | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    enabled: bool = True,
    leave: bool = False,
    stream: TextIO | None = None,
):
    """A tqdm bar where ``stream`` (stderr) is a terminal or a notebook; ``LineProgress``
    where it is a log; a silent bar where ``enabled`` is false."""
    from tqdm.auto import tqdm

    stream = stream or sys.stderr
    if enabled and not _interactive(stream):
        return LineProgress(iterable, total=total, desc=desc, file=stream)
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        disable=not enabled,
        leave=leave,
        mininterval=1.0,
        file=stream,
    )


def _interactive(stream: TextIO) -> bool:
    if "ipykernel" in sys.modules:
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"
