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
from pathlib import Path

from evaluators.users_code import said, users_line

_MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def import_plugins(names: object, *, from_here: bool = True) -> None:
    """Import each module once; ValueError, one sentence, for a name that is not a module
    name or a module that cannot be imported. ``from_here``: the folder the command runs
    in comes first on the path (not in a Ray trial, whose folder is the trial's own)."""
    if not isinstance(names, list | tuple):
        raise ValueError(
            f"plugins: must be a list of module names, e.g. plugins: [{names}] (got {names!r})"
        )
    for name in names:
        _import(name, from_here)


def _import(name: object, from_here: bool) -> None:
    if not isinstance(name, str) or not _MODULE_NAME.fullmatch(name):
        bare = name.removesuffix(".py").replace("/", ".") if isinstance(name, str) else None
        hint = f" ({bare!r})" if bare and _MODULE_NAME.fullmatch(bare) else ""
        raise ValueError(
            f"plugins: {name!r} is not a Python module name; give the module's import "
            f"name{hint}, not a file path"
        )
    # As `python -m` does (and the workers of --workers N run so): the folder the command
    # runs in comes first, so that the search and its workers import the same file.
    try:
        here = os.getcwd()
    except OSError:  # the folder was deleted under the command: nothing to find there
        here, from_here = "", False
    if from_here and here not in sys.path:
        sys.path.insert(0, here)
    if name not in sys.modules:
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
        except (Exception, SystemExit) as error:
            raise ValueError(_failed(name, error)) from None
    if from_here:
        _check_not_shadowed(name, Path(here))


def _check_not_shadowed(name: str, here: Path) -> None:
    """A module of the user's named like one of the standard library or an installed
    package: which one an import finds depends on the entry point and on what was imported
    first, so the name is refused rather than guessed."""
    top = name.partition(".")[0]
    # What an import could take from here (a data folder of that name is no module).
    if (here / f"{top}.py").is_file():
        local = here / f"{top}.py"
    elif (here / top / "__init__.py").is_file():
        local = here / top
    else:
        return
    found = getattr(sys.modules.get(top), "__file__", None)
    if found is not None and not Path(found).resolve().is_relative_to(local.resolve()):
        raise ValueError(
            f"plugins: {top!r} in {here} has the name of another module ({found}), which "
            "was imported instead; rename yours"
        )


def _failed(name: str, error: BaseException) -> str:
    """Where in the plugin's own code its import failed, in one sentence."""
    return f"plugins: importing {name!r} failed: {said(error)}{users_line(error)}"
