"""The run's one-page report: ``report.html``, readable by a decision maker, offline.

It is rebuilt from the run's files alone (``run.json``, ``trials.csv``, ``pareto.csv``), so a
report can be regenerated for a run that is still going, or for an old run, without Optuna.
The page embeds plotly.js once (first figure) and nothing else from outside, so it can be
mailed or archived as a single file.

Every number says where it came from: latency is measured on the device named in
``run.json``; peak memory and flash are computed from the model at the bit-widths the device
runs each stage at (``evaluators.devices.Device.held_widths``); accuracy
shown to the reader is the held-out test accuracy, while the search ranked on validation.

One module per part of the page: ``files`` (read a run, write the page), ``run_page`` (one
run's page, section by section) and ``comparison`` (several runs overlaid); the sections come
from ``run_facts``, ``recommendation``, ``figures`` with their ``captions`` (and ``marks``:
each tier's pick from ``picks``, the teacher's line, an axis cut short), ``members``
(the Pareto table, with ``architecture`` drawing each genome), ``search_progress`` and
``prediction``; ``comparability`` says when overlaid runs' accuracies are unlike; ``page``,
``frames``, ``formatting`` and ``colours`` are shared by all of them.
"""

from __future__ import annotations

from search.report.architecture import architecture_strip, parse_genome
from search.report.comparability import comparability_notes
from search.report.comparison import render_comparison
from search.report.files import COMPARE, REPORT, read_run, write_comparison, write_report
from search.report.prediction import prediction_error
from search.report.recommendation import NO_FEASIBLE
from search.report.run_page import (
    FIGURE_3D,
    FIGURE_HV,
    FIGURE_IMPORTANCE,
    FIGURE_PREDICTION,
    render_report,
)

__all__ = [
    "COMPARE",
    "FIGURE_3D",
    "FIGURE_HV",
    "FIGURE_IMPORTANCE",
    "FIGURE_PREDICTION",
    "NO_FEASIBLE",
    "REPORT",
    "architecture_strip",
    "comparability_notes",
    "parse_genome",
    "prediction_error",
    "read_run",
    "render_comparison",
    "render_report",
    "write_comparison",
    "write_report",
]
