"""From run folders to report files: read a run's files, render its page (or the overlay of
several runs), and move the page into place whole, so a reader never sees half a report."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from search.report.comparison import comparison_notes, render_comparison
from search.report.run_page import render_report
from search.summary import read_importance, summarise, write_summary

# The package's name, "search.report": the logger users (and tests) listen to.
log = logging.getLogger(__package__)

REPORT = "report.html"
COMPARE = "report-compare.html"


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Render ``run_dir/report.html`` (or ``out``) and ``run_dir/summary.json`` from the run's
    files, and return the report's path.

    Both are written to a temporary name and moved into place, so a reader (or a browser
    refresh while the search is running) never sees half a report.
    """
    run_dir = Path(run_dir)
    run, trials, pareto = read_run(run_dir)
    summary = summarise(run, pareto, trials)  # once: the page shows what the file says
    page = render_report(
        run, trials, pareto, importance=read_importance(run_dir), tiers=summary["tiers"]
    )
    target = Path(out) if out is not None else run_dir / REPORT
    _write_html(target, page)
    write_summary(run_dir, summary)
    return target


def write_comparison(run_dirs: Sequence[str | Path], out: str | Path | None = None) -> Path:
    """Render one overlay report of several runs (each front in its own colour) to ``out``,
    by default ``report-compare.html`` in the first run's folder; return its path."""
    runs = []
    for run_dir in run_dirs:
        run, trials, pareto = read_run(Path(run_dir))
        runs.append((Path(run_dir), run, trials, pareto))
    target = Path(out) if out is not None else Path(run_dirs[0]) / COMPARE
    for note in comparison_notes(runs):
        log.warning("%s", note)
    _write_html(target, render_comparison(runs))
    return target


def read_run(run_dir: Path) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """(run.json, trials.csv, pareto.csv) of a run folder; missing tables read as empty."""
    run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    return run, _read_csv(run_dir / "trials.csv"), _read_csv(run_dir / "pareto.csv")


def _read_csv(path: Path) -> pd.DataFrame:
    """A missing or empty file is an empty table: a run that just started has no trials yet."""
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame()
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


# mkstemp makes its file private (0600); the page is to be read like the run's other files.
_UMASK = os.umask(0)
os.umask(_UMASK)


def _write_html(target: Path, page: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=".html.tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(page)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
