"""Where in a user's own code (a plugin, a dataset loader) an error was raised.

An extension's failure is said in one sentence; the line that sentence points at is the
user's, not this project's that refused what it was given, nor the standard library's or
an installed package's that raised inside it.
"""

from __future__ import annotations

import sysconfig
import traceback
from pathlib import Path

_NOT_THE_USERS = [
    Path(__file__).resolve().parents[1] / name for name in ("spaces", "evaluators", "search")
] + [Path(sysconfig.get_paths()[key]).resolve() for key in ("stdlib", "purelib", "platlib")]


def users_line(error: BaseException) -> str:
    """`` (FILE, line N)`` of the innermost frame of ``error`` in the user's code, or ""."""
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if "importlib" not in frame.filename
        and not any(Path(frame.filename).resolve().is_relative_to(p) for p in _NOT_THE_USERS)
    ]
    return f" ({frames[-1].filename}, line {frames[-1].lineno})" if frames else ""


def said(error: BaseException) -> str:
    """``Type: message`` on one line, at most 300 characters of message."""
    return f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"
