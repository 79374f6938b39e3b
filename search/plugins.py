"""The user's own modules a run imports first: they register block kinds, datasets,
devices or named models (``spaces.register_block``, ``evaluators.data.register_dataset``,
``evaluators.devices.register_device``, ``spaces.register_model``).

Named in the run's config (``plugins: [my_blocks]``) rather than imported by a wrapper
script, because every process of a run reads that config: the search, the workers it
starts, workers on other machines (from the study), Ray's trial processes, ``export`` and
``baselines``. Each imports them before anything in the config that may name what they
register is checked.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path

_PACKAGES = [
    Path(__file__).resolve().parents[1] / name for name in ("spaces", "evaluators", "search")
]
_MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def import_plugins(names: Iterable[object]) -> None:
    """Import each module once; ValueError, one sentence, for a name that is not a module
    name or a module that cannot be imported."""
    for name in names:
        if not isinstance(name, str) or not _MODULE_NAME.fullmatch(name):
            raise ValueError(
                f"plugins: {name!r} is not a Python module name; give the module's import "
                "name (my_blocks, or mypackage.blocks), not a file path"
            )
        if name in sys.modules:
            continue
        # As `python -m` does: a module beside the folder the command runs in is found.
        # Appended, so that it never shadows an installed package.
        here = os.getcwd()
        if here not in sys.path:
            sys.path.append(here)
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name != name and not name.startswith(f"{error.name}."):
                raise ValueError(_failed(name, error)) from None
            raise ValueError(
                f"plugins: no module named {name!r}; run from the folder that holds "
                f"{name.replace('.', '/')}.py, put that folder on PYTHONPATH, or pip-install "
                "the package (on every machine of the run)"
            ) from None
        except Exception as error:
            raise ValueError(_failed(name, error)) from None


def _failed(name: str, error: Exception) -> str:
    """Where in the plugin's own code its import failed, in one sentence."""
    frames = traceback.extract_tb(error.__traceback__)
    # The user's line (a register_block call, say), not ours that refused it.
    own = [
        frame
        for frame in frames
        if "importlib" not in frame.filename
        and not any(Path(frame.filename).is_relative_to(p) for p in _PACKAGES)
    ]
    where = f" ({own[-1].filename}, line {own[-1].lineno})" if own else ""
    said = str(error).splitlines()[0] if str(error) else ""
    return f"plugins: importing {name!r} failed: {type(error).__name__}: {said}{where}"
