"""The page of one run (``report.html``) as one HTML string, section by section in the order
the reader meets them; pure (no files), so it renders a run from any source."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from search.report.captions import caption_3d, scatter_caption
from search.report.figures import Axis, figure_3d, scatter_figure
from search.report.formatting import to_number
from search.report.frames import normalise
from search.report.marks import x_limit
from search.report.members import pareto_table, reasons, trial_counts
from search.report.page import embed_figures, html_page
from search.report.picks import budget_picks
from search.report.prediction import (
    compared_latency,
    latency_kind,
    prediction_caption,
    prediction_figure,
)
from search.report.recommendation import highlights, recommendation
from search.report.run_facts import footer, header
from search.report.search_progress import (
    hypervolume_caption,
    hypervolume_figure,
    importance_caption,
    importance_figure,
)
from search.summary import hypervolume_progress, knee, summarise, teacher_facts

FIGURE_3D = "figure-3d"
FIGURE_HV = "figure-hypervolume"
FIGURE_IMPORTANCE = "figure-importance"
FIGURE_PREDICTION = "figure-prediction"


def render_report(
    run: dict[str, Any],
    trials: pd.DataFrame,
    pareto: pd.DataFrame,
    importance: dict[str, dict[str, float]] | None = None,
    tiers: list[dict[str, Any]] | None = None,
) -> str:
    """The whole page as one HTML string (pure: no files read or written). ``tiers`` are
    summary.json's (``summarise(run, pareto)["tiers"]``, computed here when not given)."""
    if tiers is None:
        tiers = summarise(run, pareto)["tiers"]
    trials, pareto = normalise(trials), normalise(pareto)
    budget = run.get("budget") or {}
    device = (run.get("device") or {}).get("description") or "device not recorded"
    how = latency_kind(run, trials)
    latency = Axis(
        "latency_ms", "latency", f"Latency (ms, {how})", "ms", to_number(budget.get("latency_ms"))
    )
    memory = Axis(
        "peak_memory_kb",
        "peak memory",
        "Peak memory (KB, computed)",
        "KB",
        to_number(budget.get("peak_memory_kb")),
    )
    # The 3-D view keeps every trial in view (it is turned and zoomed by hand); the 2-D
    # views stop where a far outlier would squeeze the rest, and their captions say so.
    latency_2d = replace(latency, limit=x_limit(trials, pareto, latency))
    memory_2d = replace(memory, limit=x_limit(trials, pareto, memory))
    knee_label = knee(run, pareto)
    picks = budget_picks(tiers, pareto)
    teacher = teacher_facts(run)["test_accuracy"]
    progress = hypervolume_progress(run, trials)
    compared = compared_latency(trials)
    figures: dict[str, go.Figure] = {
        "figure-1": scatter_figure(trials, pareto, latency_2d, memory, knee_label, picks, teacher),
        "figure-2": scatter_figure(trials, pareto, memory_2d, latency, knee_label, picks, teacher),
        FIGURE_3D: figure_3d(trials, pareto, latency, memory, knee_label, picks),
    }
    if not progress.empty:
        figures[FIGURE_HV] = hypervolume_figure(progress)
    if importance:
        figures[FIGURE_IMPORTANCE] = importance_figure(importance)
    if not compared.empty:
        figures[FIGURE_PREDICTION] = prediction_figure(compared)
    plots = embed_figures(figures)
    name = str(run.get("name") or "unnamed run")
    sections = [
        header(run, device),
        recommendation(run, trials, pareto, tiers, device, how),
        "<h2>Accuracy against latency</h2>",
        plots["figure-1"],
        scatter_caption(trials, latency_2d, memory, run, picks),
        "<h2>Accuracy against peak memory</h2>",
        plots["figure-2"],
        scatter_caption(trials, memory_2d, latency, run, picks),
        "<h2>Accuracy, latency and peak memory together</h2>",
        plots[FIGURE_3D],
        caption_3d(picks),
        "<h2>Pareto members</h2>",
        trial_counts(trials),
        pareto_table(pareto, highlights(picks, knee_label), how),
        reasons(trials),
        "<h2>Search progress</h2>",
        plots.get(FIGURE_HV, ""),
        hypervolume_caption(progress),
        plots.get(FIGURE_IMPORTANCE, ""),
        importance_caption(importance, completed=_completed(trials)),
        "<h2>Predicted against measured latency</h2>",
        plots.get(FIGURE_PREDICTION, ""),
        prediction_caption(run, trials, compared),
        footer(run),
    ]
    return html_page(f"paretonas report: {name}", sections)


def _completed(trials: pd.DataFrame) -> int:
    """The trials Optuna's importance reads: complete, with values (baselines are not)."""
    return int((trials["state"] == "COMPLETE").sum())
