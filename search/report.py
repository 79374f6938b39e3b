"""The run's one-page report: ``report.html``, readable by a decision maker, offline.

It is rebuilt from the run's files alone (``run.json``, ``trials.csv``, ``pareto.csv``), so a
report can be regenerated for a run that is still going, or for an old run, without Optuna.
The page embeds plotly.js once (first figure) and nothing else from outside, so it can be
mailed or archived as a single file.

Every number says where it came from: latency is measured on the device named in
``run.json``; peak memory and flash are computed from the model at its bit-widths; accuracy
shown to the reader is the held-out test accuracy, while the search ranked on validation.
"""

from __future__ import annotations

import html
import json
import logging
import math
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from search.pareto import pareto_mask
from search.results import budget_unmet
from search.summary import (
    AXES,
    IMPORTANCE,
    MIN_TRIALS_FOR_IMPORTANCE,
    budget_tiers,
    compare_to_teacher,
    hypervolume_progress,
    knee,
    read_importance,
    recommend,
    summarise,
    teacher_facts,
    write_summary,
)

log = logging.getLogger(__name__)

REPORT = "report.html"
COMPARE = "report-compare.html"
FIGURE_3D = "figure-3d"
FIGURE_HV = "figure-hypervolume"
FIGURE_IMPORTANCE = "figure-importance"
FIGURE_PREDICTION = "figure-prediction"

NUMERIC_COLUMNS = (
    "number",
    "accuracy",
    "test_accuracy",
    "latency_ms",
    "latency_p90_ms",
    "predicted_latency_ms",
    "peak_memory_kb",
    "flash_kb",
    "params",
    "macs",
    "train_subset",
    "epochs",
    "seconds_total",
    "seconds_cost",
    "seconds_latency",
    "seconds_train",
    "seconds_eval",
)
TEXT_COLUMNS = (
    "baseline",
    "state",
    "status",
    "reason",
    "genome",
    "latency_source",
    "predicted_latency_source",
)

NO_FEASIBLE = "No feasible model found yet; loosen the budget or run more trials."

# Trials that are not ``ok`` are drawn faded, so the eye goes to what can be deployed.
FADED = "#9e9e9e"
FRONT = "#c62828"
BUDGET = "#37474f"
KNEE = "#ffb300"
BASELINE_COLOUR = "#1565c0"
# One colour per run in an overlay report (plotly's default qualitative palette).
RUN_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b")


@dataclass(frozen=True)
class _Axis:
    """One objective drawn on a figure's x axis, with its budget when one is set."""

    column: str
    noun: str
    title: str
    unit: str
    budget: float | None


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Render ``run_dir/report.html`` (or ``out``) and ``run_dir/summary.json`` from the run's
    files, and return the report's path.

    Both are written to a temporary name and moved into place, so a reader (or a browser
    refresh while the search is running) never sees half a report.
    """
    run_dir = Path(run_dir)
    run, trials, pareto = read_run(run_dir)
    page = render_report(run, trials, pareto, importance=read_importance(run_dir))
    target = Path(out) if out is not None else run_dir / REPORT
    _write_html(target, page)
    write_summary(run_dir, summarise(run, pareto, trials))
    return target


def write_comparison(run_dirs: Sequence[str | Path], out: str | Path | None = None) -> Path:
    """Render one overlay report of several runs (each front in its own colour) to ``out``,
    by default ``report-compare.html`` in the first run's folder; return its path."""
    runs = []
    for run_dir in run_dirs:
        run, trials, pareto = read_run(Path(run_dir))
        runs.append((Path(run_dir), run, trials, pareto))
    target = Path(out) if out is not None else Path(run_dirs[0]) / COMPARE
    for note in comparability_notes(
        [(label, run) for label, (_, run, _, _) in zip(_run_labels(runs), runs, strict=True)]
    ):
        log.warning("%s", note)
    _write_html(target, render_comparison(runs))
    return target


def read_run(run_dir: Path) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """(run.json, trials.csv, pareto.csv) of a run folder; missing tables read as empty."""
    run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    return run, _read_csv(run_dir / "trials.csv"), _read_csv(run_dir / "pareto.csv")


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


def render_report(
    run: dict[str, Any],
    trials: pd.DataFrame,
    pareto: pd.DataFrame,
    importance: dict[str, dict[str, float]] | None = None,
) -> str:
    """The whole page as one HTML string (pure: no files read or written)."""
    trials, pareto = _normalise(trials), _normalise(pareto)
    budget = run.get("budget") or {}
    device = (run.get("device") or {}).get("description") or "device not recorded"
    how = _latency_kind(run, trials)
    latency = _Axis(
        "latency_ms", "latency", f"Latency (ms, {how})", "ms", _number(budget.get("latency_ms"))
    )
    memory = _Axis(
        "peak_memory_kb",
        "peak memory",
        "Peak memory (KB, computed)",
        "KB",
        _number(budget.get("peak_memory_kb")),
    )
    knee_label = knee(run, pareto)
    progress = hypervolume_progress(run, trials)
    compared = _compared_latency(trials)
    figures: dict[str, go.Figure] = {
        "figure-1": _scatter_figure(trials, pareto, latency, colour=memory, knee=knee_label),
        "figure-2": _scatter_figure(trials, pareto, memory, colour=latency, knee=knee_label),
        FIGURE_3D: _figure_3d(trials, pareto, latency, memory, knee_label),
    }
    if not progress.empty:
        figures[FIGURE_HV] = _hypervolume_figure(progress)
    if importance:
        figures[FIGURE_IMPORTANCE] = _importance_figure(importance)
    if not compared.empty:
        figures[FIGURE_PREDICTION] = _prediction_figure(compared)
    plots = _plots(figures)
    name = str(run.get("name") or "unnamed run")
    sections = [
        _header(run, device),
        _recommendation(run, trials, pareto, device, how),
        "<h2>Accuracy against latency</h2>",
        plots["figure-1"],
        _caption(trials, latency, colour=memory, run=run),
        "<h2>Accuracy against peak memory</h2>",
        plots["figure-2"],
        _caption(trials, memory, colour=latency, run=run),
        "<h2>Accuracy, latency and peak memory together</h2>",
        plots[FIGURE_3D],
        _caption_3d(),
        "<h2>Pareto members</h2>",
        _counts(trials),
        _pareto_table(pareto, _highlights(run, pareto), how),
        _reasons(trials),
        "<h2>Search progress</h2>",
        plots.get(FIGURE_HV, ""),
        _hypervolume_caption(progress),
        plots.get(FIGURE_IMPORTANCE, ""),
        _importance_caption(importance),
        "<h2>Predicted against measured latency</h2>",
        plots.get(FIGURE_PREDICTION, ""),
        _prediction_caption(run, trials, compared),
        _footer(run),
    ]
    return _page(f"paretonas report: {name}", sections)


def _plots(figures: dict[str, go.Figure]) -> dict[str, str]:
    """Each figure as an HTML fragment; plotly.js (~4 MB) goes into the page once, with the
    first figure (the dict's order is the page's order), and later figures reuse it."""
    return {
        div_id: figure.to_html(
            full_html=False,
            include_plotlyjs=index == 0,
            div_id=div_id,
            default_height="520px",
            config={"displaylogo": False},
        )
        for index, (div_id, figure) in enumerate(figures.items())
    }


def _page(title: str, sections: Sequence[str]) -> str:
    body = "\n".join(section for section in sections if section)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
        f"<body>\n{body}\n<script>{_SORT_JS}</script>\n</body>\n</html>\n"
    )


# -- reading ---------------------------------------------------------------------------------


def _read_csv(path: Path) -> pd.DataFrame:
    """A missing or empty file is an empty table: a run that just started has no trials yet."""
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame()
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Every column the report reads exists with one type, whatever the CSV round trip did
    (an all-empty column reads back as float NaN, a bool column with gaps as object)."""
    frame = frame.copy()
    for column in NUMERIC_COLUMNS:
        values = frame[column] if column in frame else pd.Series(np.nan, index=frame.index)
        frame[column] = pd.to_numeric(values, errors="coerce").astype(float)
    for column in TEXT_COLUMNS:
        values = frame[column] if column in frame else pd.Series(None, index=frame.index)
        frame[column] = [_text(value) for value in values]
    frame["status"] = [value.lower() for value in frame["status"]]
    values = frame["feasible"] if "feasible" in frame else pd.Series(False, index=frame.index)
    frame["feasible"] = [_truthy(value) for value in values]
    return frame.reset_index(drop=True)


def _text(value: Any) -> str:
    return "" if _missing(value) else str(value).strip()


def _truthy(value: Any) -> bool:
    if _missing(value):
        return False
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


# -- groups of trials ------------------------------------------------------------------------


def _groups(trials: pd.DataFrame) -> list[tuple[str, pd.Series, dict[str, Any]]]:
    """(legend name, row mask, marker style) of the faded groups, drawn under the feasible."""
    status = trials["status"]
    over_budget = (status == "infeasible") | ((status == "ok") & ~trials["feasible"])
    faded = {"color": FADED, "opacity": 0.55, "size": 8}
    return [
        ("over budget", over_budget, {**faded, "symbol": "x"}),
        ("failed", status == "failed", {**faded, "symbol": "triangle-down"}),
        ("pruned (stopped early)", status == "pruned", {**faded, "symbol": "diamond-open"}),
    ]


def _feasible(trials: pd.DataFrame) -> pd.Series:
    return (trials["status"] == "ok") & trials["feasible"]


# -- figures ---------------------------------------------------------------------------------


def _scatter_figure(
    trials: pd.DataFrame, pareto: pd.DataFrame, x: _Axis, colour: _Axis, knee: Any = None
) -> go.Figure:
    """Validation accuracy (what the search ranks on) against one cost, one dot per trial.

    Trials without an accuracy (over budget, so never trained; or failed) still show where
    their cost fell: they are drawn along a strip under the lowest accuracy, so the reader
    sees how much of the space the budget cut away.
    """
    floor = _floor(trials)
    figure = go.Figure()
    searched = trials["baseline"] == ""
    for name, mask, style in _groups(trials):
        rows = trials[mask & searched & trials[x.column].notna()]
        if rows.empty:
            continue
        figure.add_trace(
            go.Scatter(
                x=rows[x.column],
                y=rows["accuracy"].fillna(floor),
                mode="markers",
                name=f"{name} ({len(rows)})",
                marker={k: v for k, v in style.items() if k != "opacity"},
                opacity=style["opacity"],
                text=[_hover(row) for _, row in rows.iterrows()],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    good = trials[
        _feasible(trials) & searched & trials[x.column].notna() & trials["accuracy"].notna()
    ]
    if not good.empty:
        figure.add_trace(
            go.Scatter(
                x=good[x.column],
                y=good["accuracy"],
                mode="markers",
                name=f"within budget ({len(good)})",
                marker={
                    "size": 9,
                    "color": good[colour.column],
                    "colorscale": "Viridis",
                    "showscale": True,
                    "colorbar": {"title": {"text": colour.title}},
                },
                text=[_hover(row) for _, row in good.iterrows()],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    front = pareto[pareto[x.column].notna() & pareto["accuracy"].notna()]
    if not front.empty:
        # The members of the full front that are also best in this 2-D view form the step:
        # "the best accuracy you can have at this cost".
        on_step = pareto_mask(front[["accuracy", x.column]].to_numpy(), ["maximize", "minimize"])
        step = front[on_step].sort_values([x.column, "accuracy"])
        figure.add_trace(
            go.Scatter(
                x=step[x.column],
                y=step["accuracy"],
                mode="lines",
                line={"color": FRONT, "width": 2, "shape": "hv"},
                name="Pareto front (best accuracy at each cost)",
                hoverinfo="skip",
            )
        )
        figure.add_trace(
            go.Scatter(
                x=front[x.column],
                y=front["accuracy"],
                mode="markers",
                name=f"Pareto members ({len(front)})",
                marker={
                    "size": 16,
                    "symbol": "circle-open",
                    "color": FRONT,
                    "line": {"width": 2.5, "color": FRONT},
                },
                text=[_hover(row) for _, row in front.iterrows()],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    # Hand-designed networks, trained and measured the same way (paretonas baselines).
    hand = trials[~searched & trials[x.column].notna() & trials["accuracy"].notna()]
    if not hand.empty:
        figure.add_trace(
            go.Scatter(
                x=hand[x.column],
                y=hand["accuracy"],
                mode="markers+text",
                name=f"hand-designed baselines ({len(hand)})",
                marker={"size": 11, "symbol": "square", "color": BASELINE_COLOUR},
                text=list(hand["baseline"]),
                textposition="top center",
                hovertext=[_hover(row) for _, row in hand.iterrows()],
                hovertemplate="%{hovertext}<extra></extra>",
            )
        )
    if knee is not None and knee in front.index:
        row = front.loc[knee]
        figure.add_trace(
            go.Scatter(
                x=[row[x.column]],
                y=[row["accuracy"]],
                mode="markers",
                name=f"knee point (trial {_int(row['number'])})",
                marker={
                    "size": 22,
                    "symbol": "star",
                    "color": KNEE,
                    "line": {"width": 1.5, "color": "#5d4037"},
                },
                text=[_hover(row)],
                hovertemplate="<b>knee point</b><br>%{text}<extra></extra>",
            )
        )
    if x.budget is not None:
        figure.add_vline(
            x=x.budget,
            line_dash="dash",
            line_color=BUDGET,
            annotation_text=f"budget {x.budget:g} {x.unit}",
            annotation_position="top right",
        )
    return _accuracy_layout(figure, x.title, "no trial has a value to plot yet")


def _accuracy_layout(figure: go.Figure, x_title: str, empty: str) -> go.Figure:
    """The common look of the accuracy-against-cost figures; ``empty`` when nothing is drawn."""
    if not figure.data:
        figure.add_annotation(text=empty, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    figure.update_layout(
        template="plotly_white",
        xaxis_title=x_title,
        yaxis_title="Accuracy (validation)",
        yaxis_tickformat=".0%",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
        hoverlabel={"align": "left"},
    )
    return figure


def _figure_3d(
    trials: pd.DataFrame, pareto: pd.DataFrame, latency: _Axis, memory: _Axis, knee: Any
) -> go.Figure:
    """Accuracy, latency and peak memory at once: the front is a surface in this space, and
    a member that looks dominated in one 2-D view is explained by the third axis."""
    floor = _floor(trials)
    figure = go.Figure()
    has = [latency.column, memory.column]
    for name, mask, style in _groups(trials):
        rows = trials[mask & trials[has].notna().all(axis=1)]
        if rows.empty:
            continue
        symbol = "x" if style["symbol"] == "x" else "diamond-open"
        figure.add_trace(
            go.Scatter3d(
                x=rows[latency.column],
                y=rows[memory.column],
                z=rows["accuracy"].fillna(floor),
                mode="markers",
                name=f"{name} ({len(rows)})",
                marker={"size": 3, "color": FADED, "symbol": symbol},
                opacity=style["opacity"],
                text=[_hover(row) for _, row in rows.iterrows()],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    good = trials[
        _feasible(trials)
        & (trials["baseline"] == "")
        & trials[[*has, "accuracy"]].notna().all(axis=1)
    ]
    if not good.empty:
        figure.add_trace(
            go.Scatter3d(
                x=good[latency.column],
                y=good[memory.column],
                z=good["accuracy"],
                mode="markers",
                name=f"within budget ({len(good)})",
                marker={"size": 4, "color": "#5c6bc0", "opacity": 0.6},
                text=[_hover(row) for _, row in good.iterrows()],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    front = pareto[pareto[[*has, "accuracy"]].notna().all(axis=1)]
    if not front.empty:
        figure.add_trace(
            go.Scatter3d(
                x=front[latency.column],
                y=front[memory.column],
                z=front["accuracy"],
                mode="markers",
                name=f"Pareto members ({len(front)})",
                marker={"size": 7, "color": FRONT, "line": {"width": 1, "color": "white"}},
                text=[_hover(row) for _, row in front.iterrows()],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    if knee is not None and knee in front.index:
        row = front.loc[knee]
        figure.add_trace(
            go.Scatter3d(
                x=[row[latency.column]],
                y=[row[memory.column]],
                z=[row["accuracy"]],
                mode="markers",
                name=f"knee point (trial {_int(row['number'])})",
                marker={"size": 10, "symbol": "diamond", "color": KNEE},
                text=[_hover(row)],
                hovertemplate="<b>knee point</b><br>%{text}<extra></extra>",
            )
        )
    figure.update_layout(
        template="plotly_white",
        scene={
            "xaxis_title": latency.title,
            "yaxis_title": memory.title,
            "zaxis_title": "Accuracy (validation)",
            "zaxis_tickformat": ".0%",
        },
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        margin={"l": 0, "r": 0, "t": 60, "b": 0},
        hoverlabel={"align": "left"},
    )
    return figure


def _caption_3d() -> str:
    text = (
        "The same trials in three dimensions (drag to turn): red dots are the Pareto members, "
        "the gold diamond the knee point, blue dots the other trials within budget, grey marks "
        "those over budget, failed or stopped early."
    )
    return f'<p class="caption">{_esc(text)}</p>'


def _hypervolume_figure(progress: pd.DataFrame) -> go.Figure:
    steps = progress[progress["hypervolume"].diff().fillna(progress["hypervolume"]) > 0]
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(
            x=progress["number"],
            y=progress["hypervolume"],
            mode="lines",
            line={"color": FRONT, "width": 2, "shape": "hv"},
            name="hypervolume of the feasible trials so far",
            hovertemplate="after trial %{x}: %{y:.3f}<extra></extra>",
        )
    )
    figure.add_trace(
        go.Scatter(
            x=steps["number"],
            y=steps["hypervolume"],
            mode="markers",
            marker={"size": 8, "color": FRONT},
            name=f"trials that improved the front ({len(steps)})",
            hovertemplate="trial %{x} raised it to %{y:.3f}<extra></extra>",
        )
    )
    figure.update_layout(
        template="plotly_white",
        xaxis_title="Trial number",
        yaxis_title="Hypervolume (share of the box)",
        yaxis_rangemode="tozero",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
    )
    return figure


def _hypervolume_caption(progress: pd.DataFrame) -> str:
    if progress.empty:
        text = "Hypervolume appears once a trained trial is within every budget."
        return f'<p class="note">{_esc(text)}</p>'
    reference = progress.attrs.get("reference") or {}
    ideal = progress.attrs.get("ideal") or {}
    nouns = {column: noun for column, noun, _ in AXES}
    parts = ", ".join(
        f"{nouns.get(name, name)} {_objective_value(name, reference[name])}"
        + (f" (best {_objective_value(name, ideal[name])})" if name in ideal else "")
        for name in reference
    )
    text = (
        "How much of the objective space the feasible trials found so far dominate, after "
        "each trial (0 to 1; it never falls). Each objective is scaled so that the best value "
        "of the run is 0 and the reference point is 1; the reference is the budget where the "
        "objective has one, else the worst feasible value made 10% worse. Reference: "
        f"{parts or '?'}. A curve that has flattened says more trials are unlikely to pay."
    )
    return f'<p class="caption">{_esc(text)}</p>'


def _objective_value(name: str, value: float) -> str:
    if "accuracy" in name:
        return _pct(value)
    unit = next((unit for column, _, unit in AXES if column == name), "")
    return f"{_float(value, 3)} {unit}".strip()


def _importance_figure(importance: dict[str, dict[str, float]]) -> go.Figure:
    """One group of bars per searched parameter, one bar per objective."""
    params = sorted(
        {param for values in importance.values() for param in values},
        # Name breaks ties, so the same run renders the same page (set order varies per process).
        key=lambda param: (max(values.get(param, 0.0) for values in importance.values()), param),
    )
    figure = go.Figure()
    for index, (objective, values) in enumerate(importance.items()):
        figure.add_trace(
            go.Bar(
                x=[values.get(param, 0.0) for param in params],
                y=params,
                orientation="h",
                name=objective,
                marker_color=RUN_COLOURS[index % len(RUN_COLOURS)],
                hovertemplate=f"{_esc(objective)}: %{{y}} %{{x:.3f}}<extra></extra>",
            )
        )
    figure.update_layout(
        template="plotly_white",
        barmode="group",
        xaxis_title="Importance (PED-ANOVA; sums to 1 per objective)",
        height=max(320, 60 + 28 * len(params) * max(1, len(importance))),
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        margin={"l": 160, "r": 20, "t": 60, "b": 50},
    )
    return figure


def _importance_caption(importance: dict[str, dict[str, float]] | None) -> str:
    if not importance:
        text = (
            "Which decisions matter (parameter importance per objective) appears here once the "
            f"run has written {IMPORTANCE} (after at least {MIN_TRIALS_FOR_IMPORTANCE} "
            "completed trials)."
        )
        return f'<p class="note">{_esc(text)}</p>'
    text = (
        "Which decisions matter: Optuna's parameter importance (PED-ANOVA) of each searched "
        "parameter for each objective, over the study's completed trials: how much the "
        "parameter's values differ between the best trials and the rest. A candidate over "
        "budget was never trained and counts with accuracy 0, so a parameter that decides "
        "feasibility also scores for accuracy."
    )
    return f'<p class="caption">{_esc(text)}</p>'


def _latency_kind(run: dict[str, Any], trials: pd.DataFrame) -> str:
    """ "measured" or "predicted": how the run's latency axis is known. Runs written before
    run.json said so are judged by their trials' latency sources."""
    kind = (run.get("device") or {}).get("latency")
    if kind is not None:
        return "measured" if kind == "measured" else "predicted"
    sources = [source for source in trials["latency_source"] if source]
    if sources and all(source.startswith("predicted") for source in sources):
        return "predicted"
    return "measured"


def _compared_latency(trials: pd.DataFrame) -> pd.DataFrame:
    """Trials whose latency was measured and also predicted (host with a calibrated
    predictor): the only rows where a prediction can be checked."""
    measured = pd.Series(
        [not source.startswith("predicted") for source in trials["latency_source"]],
        index=trials.index,
        dtype=bool,
    )
    rows = trials[
        measured
        & trials["latency_ms"].notna()
        & trials["predicted_latency_ms"].notna()
        & (trials["predicted_latency_ms"] > 0)
    ]
    return rows.reset_index(drop=True)


def prediction_error(compared: pd.DataFrame) -> dict[str, float]:
    """How good the predictions were: median absolute relative error, share within +-10%,
    and Spearman's rank correlation (what a search needs: the right order)."""
    measured = compared["latency_ms"].to_numpy(dtype=float)
    predicted = compared["predicted_latency_ms"].to_numpy(dtype=float)
    relative = np.abs(predicted - measured) / measured
    spearman = (
        float(compared["latency_ms"].corr(compared["predicted_latency_ms"], method="spearman"))
        if len(compared) > 2
        else float("nan")
    )
    return {
        "count": float(len(compared)),
        "median_error": float(np.median(relative)),
        "within_10pct": float(np.mean(relative <= 0.10)),
        "spearman": spearman,
    }


def _prediction_figure(compared: pd.DataFrame) -> go.Figure:
    low = float(min(compared["latency_ms"].min(), compared["predicted_latency_ms"].min()))
    high = float(max(compared["latency_ms"].max(), compared["predicted_latency_ms"].max()))
    line = np.array([low * 0.9, high * 1.1])
    figure = go.Figure()
    for factor, name, dash in (
        (1.0, "prediction = measurement", "solid"),
        (1.1, "\u00b110%", "dot"),
        (0.9, None, "dot"),
    ):
        figure.add_trace(
            go.Scatter(
                x=line,
                y=line * factor,
                mode="lines",
                line={"color": BUDGET, "dash": dash, "width": 1},
                name=name or "",
                showlegend=name is not None,
                hoverinfo="skip",
            )
        )
    figure.add_trace(
        go.Scatter(
            x=compared["latency_ms"],
            y=compared["predicted_latency_ms"],
            mode="markers",
            name=f"trials ({len(compared)})",
            marker={"size": 8, "color": FRONT, "opacity": 0.7},
            text=[_hover(row) for _, row in compared.iterrows()],
            hovertemplate="%{text}<extra></extra>",
        )
    )
    figure.update_layout(
        template="plotly_white",
        xaxis_title="Latency (ms, measured)",
        yaxis_title="Latency (ms, predicted)",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
        hoverlabel={"align": "left"},
    )
    return figure


def _prediction_caption(run: dict[str, Any], trials: pd.DataFrame, compared: pd.DataFrame) -> str:
    device = (run.get("device") or {}).get("name") or "the device"
    if compared.empty:
        if _latency_kind(run, trials) == "predicted":
            text = (
                f"Latency on {device} is predicted, not measured (it cannot run here), so no "
                "prediction could be checked in this run; the source of each figure is in the "
                "hover text and in trials.csv (latency_source)."
            )
        else:
            text = (
                "No trial has both a measured and a predicted latency. Calibrate a predictor "
                f"(`paretonas calibrate --device {device}`) and the next trials record both."
            )
        return f'<p class="note">{_esc(text)}</p>'
    error = prediction_error(compared)
    sources = sorted({s for s in compared["predicted_latency_source"] if s})
    text = (
        f"{int(error['count'])} trial(s) were measured and also predicted. Median error "
        f"{100 * error['median_error']:.1f}%, {100 * error['within_10pct']:.0f}% within "
        f"\u00b110%, Spearman rank correlation {_float(error['spearman'], 3)} (how well the "
        "predictor orders candidates, which is what the search relies on off-host). "
        f"Predictor: {'; '.join(sources) or 'not recorded'}."
    )
    return f'<p class="caption">{_esc(text)}</p>'


def _floor(trials: pd.DataFrame) -> float:
    """Where untrained trials are drawn: just under the lowest accuracy on the page."""
    accuracy = trials["accuracy"].dropna()
    if accuracy.empty:
        return 0.0
    low, high = float(accuracy.min()), float(accuracy.max())
    return max(0.0, low - 0.08 * max(high - low, 0.05))


def _hover(row: pd.Series) -> str:
    """Hover text; plotly renders a subset of HTML there, so free text is escaped."""
    source = f" ({_esc(row['latency_source'])})" if row["latency_source"] else ""
    lines = [
        f"<b>trial {_int(row['number'])}</b>: {_esc(row['status'] or row['state'] or '?')}",
        f"genome: {_esc(row['genome'])}",
        f"val acc {_pct(row['accuracy'])}, test acc {_pct(row['test_accuracy'])}",
        f"latency {_float(row['latency_ms'], 3)} ms{source}",
        f"peak memory {_float(row['peak_memory_kb'], 1)} KB, flash {_float(row['flash_kb'], 1)} KB",
        f"params {_int(row['params'])}, MACs {_int(row['macs'])}",
    ]
    if _number(row.get("expected_accuracy")) is not None:  # a stopped trial's prediction
        lines.append(f"expected val acc by the end {_pct(row['expected_accuracy'])} (predicted)")
    if row["reason"]:
        lines.append(f"why: {_esc(row['reason'][:200])}")
    return "<br>".join(lines)


def _caption(
    trials: pd.DataFrame, x: _Axis, colour: _Axis, run: dict[str, Any] | None = None
) -> str:
    parts = [
        f"Each dot is one trial. Coloured dots were trained and are within every budget "
        f"(colour = {colour.noun}); red rings are the Pareto members and the red step is the "
        f"best accuracy reachable at each {x.noun}. Grey marks were over budget, failed or "
        f"stopped early; those without an accuracy (never trained) sit along the bottom."
    ]
    if x.budget is not None:
        parts.append(f"The dashed line is the budget ({x.budget:g} {x.unit}).")
    if (trials["baseline"] != "").any():
        parts.append(_baseline_training((run or {}).get("fidelity") or {}))
    drawable = _feasible(trials) | np.logical_or.reduce([m for _, m, _ in _groups(trials)])
    missing = int((drawable & trials[x.column].isna()).sum())
    if missing:
        parts.append(f"{missing} trial(s) without a {x.noun} value are not drawn.")
    return f'<p class="caption">{_esc(" ".join(parts))}</p>'


def _baseline_training(fidelity: dict[str, Any]) -> str:
    """How much training the baselines had against the candidates: the same KD recipe and
    epochs, but a compressed candidate also fine-tunes after pruning and under QAT."""
    text = (
        f"Labelled squares are the hand-designed baselines (fp32, uncompressed), trained with "
        f"the run's KD recipe for {fidelity.get('epochs', 'the same')} epochs"
    )
    extra = [
        f"{fidelity[key]} {what}"
        for key, what in (
            ("finetune_epochs", "fine-tune epoch(s) after pruning or factorizing"),
            ("qat_epochs", "QAT epoch(s)"),
        )
        if fidelity.get(key)
    ]
    if extra:
        text += (
            "; a compressed candidate also had " + " and ".join(extra) + ", which a baseline, "
            "with nothing to recover from, did not"
        )
    return text + "."


# -- text sections ---------------------------------------------------------------------------


def _header(run: dict[str, Any], device: str) -> str:
    teacher = run.get("teacher") or {}
    shape = run.get("input_shape") or []
    shape_text = "\u00d7".join(str(v) for v in shape) if shape else "?"
    dataset = str(run.get("dataset") or "?")
    source = run.get("dataset_source")
    dataset_text = f"{dataset} ({source})" if source else dataset
    teacher_text = (
        f"The teacher model reaches {_pct(teacher.get('test_accuracy'))} test accuracy "
        f"with {_int(teacher.get('params'))} parameters"
    )
    if teacher.get("source"):
        teacher_text += f" ({teacher['source']})"
    if teacher.get("latency_ms") is not None:
        teacher_text += f"; it runs in {_float(teacher['latency_ms'], 3)} ms (measured)"
    device_name = (run.get("device") or {}).get("name") or "device"
    return "\n".join(
        [
            f"<h1>paretonas report: {_esc(run.get('name') or 'unnamed run')}</h1>",
            '<p class="meta">',
            f"<b>Dataset:</b> {_esc(dataset_text)}; input {_esc(shape_text)}, "
            f"{_esc(_int(run.get('num_classes')))} classes.<br>",
            f"<b>Device:</b> {_esc(device_name)}: {_esc(device)}.<br>",
            f"<b>Budget:</b> {_esc(_budget_text(run.get('budget') or {}))}.<br>",
            f"<b>Teacher:</b> {_esc(teacher_text)}.",
            "</p>",
        ]
    )


def _budget_text(budget: dict[str, Any]) -> str:
    parts = []
    for key, label, unit in (
        ("latency_ms", "latency", "ms"),
        ("peak_memory_kb", "peak memory", "KB"),
        ("flash_kb", "flash", "KB"),
    ):
        value = _number(budget.get(key))
        parts.append(
            f"{label} \u2264 {value:g} {unit}" if value is not None else f"{label}: no limit"
        )
    return ", ".join(parts)


def _recommendation(
    run: dict[str, Any], trials: pd.DataFrame, pareto: pd.DataFrame, device: str, kind: str
) -> str:
    """The summary in words: per budget tier, the model to ship and how it compares."""
    device_name = (run.get("device") or {}).get("name") or "the device"
    if kind == "measured":
        # The description usually starts with "measured: "; the sentence already says so.
        how = device.removeprefix("measured:").strip()
        latency = (
            f"Latency is measured ({how}) on the file a user would ship (pruned, int8 where "
            "the policy says so)"
        )
        measured = f"Latency was measured on {device_name} ({how})."
    else:
        latency = f"Latency is predicted, not measured ({device})"
        measured = f"Latency on {device_name} is predicted, not measured ({device})."
    provenance = (
        f"{latency}; peak memory and flash are computed from the model at its "
        "bit-widths; accuracy is that same file run by ONNX Runtime on the held-out test "
        "split; the search ranked candidates on the validation split."
    )
    lines = ["<h2>Summary</h2>"]
    teacher = teacher_facts(run)
    if not _feasible(trials).any():
        lines.append(f'<p class="warn">{_esc(NO_FEASIBLE)}</p>')
        unmet = budget_unmet(trials, run.get("budget") or {})
        if unmet:
            lines.append(f'<p class="warn">{_esc(unmet[0].upper() + unmet[1:])}.</p>')
    elif pareto.empty:
        lines.append(
            f'<p class="warn">{int(_feasible(trials).sum())} trial(s) are within budget, but '
            "pareto.csv lists no members yet; rebuild the report once the search has written "
            "it.</p>"
        )
    else:
        intro = (
            "For each budget, the model to ship is the Pareto member with the highest "
            "validation accuracy among those within every bound of that budget; its accuracy "
            "below is on the held-out test split, which played no part in choosing it. "
            f"{measured}"
        )
        if teacher.get("latency_ms") is None:
            intro += (
                " The teacher's latency was not measured, so each model is compared with the "
                "teacher on accuracy and size only; no speed-up is claimed."
            )
        else:
            intro += (
                f" The teacher's latency is {_float(teacher['latency_ms'], 3)} ms "
                f"({teacher.get('latency_source') or 'measured'})."
            )
        lines.append(f'<p class="summary">{_esc(intro)}</p>')
        tiers = budget_tiers(run, pareto)
        items = []
        for tier in tiers:
            budget = {column: tier[column] for column, _, _ in AXES}
            row = recommend(pareto, budget)
            name = tier["name"][:1].upper() + tier["name"][1:]
            what = (
                "no Pareto member meets this budget."
                if row is None
                else _describe(row, teacher, kind)
            )
            items.append(
                f'<li class="tier"><b>{_esc(name)}</b> ({_esc(_budget_text(budget))}): '
                f"{_esc(what)}</li>"
            )
        lines.append('<ul class="tiers">\n' + "\n".join(items) + "\n</ul>")
        if any(_looser(tier, _configured(tiers)) for tier in tiers):
            lines.append(
                '<p class="note">Only candidates within the configured budget were trained, '
                "so a looser tier can offer no more than the configured one here; a run with "
                "the looser budget may find more accurate models.</p>"
            )
        knee_label = knee(run, pareto)
        if knee_label is not None:
            lines.append(
                "<p><b>Knee point</b> (the most balanced trade-off between the objectives, "
                "marked with a star on the figures): "
                f"{_esc(_describe(pareto.loc[knee_label], teacher, kind))}</p>"
            )
    lines.append(f'<p class="note">{_esc(provenance)}</p>')
    return "\n".join(lines)


def _configured(tiers: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return next((t for t in tiers if t["name"] == "configured budget"), tiers[0])


def _looser(tier: dict[str, Any], configured: dict[str, Any]) -> bool:
    """Whether ``tier`` allows more than the configured budget on some axis."""
    for column, _, _ in AXES:
        bound, limit = tier[column], configured[column]
        if limit is not None and (bound is None or bound > limit):
            return True
    return False


def _highlights(run: dict[str, Any], pareto: pd.DataFrame) -> list[tuple[str, Any]]:
    """(tag, row label) of the recommended Pareto members: each tier's pick and the knee
    point, both on validation accuracy (the numbers the front was built from; the test
    split only reports)."""
    picks: list[tuple[str, Any]] = []
    if pareto.empty:
        return picks
    for tier in budget_tiers(run, pareto):
        row = recommend(pareto, {column: tier[column] for column, _, _ in AXES})
        if row is not None:
            picks.append((f"best: {tier['name'].split(' (')[0]}", row.name))
    knee_label = knee(run, pareto)
    if knee_label is not None:
        picks.append(("knee point", knee_label))
    return picks


def _describe(row: pd.Series, teacher: dict[str, Any], kind: str = "measured") -> str:
    """One sentence on a recommended model, in the teacher's terms; a ratio is given only
    where both sides were measured or counted (never an invented teacher latency)."""
    text = f"trial {_int(row['number'])} ({row['genome'] or 'no genome'}) "
    teacher_accuracy = teacher.get("test_accuracy")
    compared = compare_to_teacher(row, teacher)
    if math.isnan(row["test_accuracy"]):
        text += f"has no test accuracy yet (validation {_pct(row['accuracy'])})"
    else:
        text += f"reaches {_pct(row['test_accuracy'])} test accuracy"
        gap = compared["accuracy_vs_teacher_points"]
        if gap is not None:
            side = "below" if gap < 0 else "above"
            text += f" ({abs(gap):.1f} points {side} the teacher, {_pct(teacher_accuracy)})"
    text += f", runs in {_float(row['latency_ms'], 3)} ms ({kind}) and needs "
    text += f"{_float(row['peak_memory_kb'], 1)} KB peak memory (computed)"
    if not math.isnan(row["flash_kb"]):
        text += f" and {_float(row['flash_kb'], 1)} KB flash"
    smaller, faster = compared["smaller_than_teacher"], compared["faster_than_teacher"]
    if smaller is not None:
        text += (
            f"; it is {smaller:.1f}\u00d7 smaller than the teacher ({_int(row['params'])} "
            f"parameters against {_int(teacher.get('params'))})"
        )
    else:
        text += "; its size against the teacher is unknown (parameters not recorded)"
    if faster is not None:
        text += (
            f" and {faster:.1f}\u00d7 faster ({_float(row['latency_ms'], 3)} ms against the "
            f"teacher's {_float(teacher.get('latency_ms'), 3)} ms)"
        )
    return text + "."


def _counts(trials: pd.DataFrame) -> str:
    status = trials["status"]
    known = ("ok", "infeasible", "failed", "pruned")
    text = f"{len(trials)} trials: " + ", ".join(f"{int((status == s).sum())} {s}" for s in known)
    interrupted = int((status == "interrupted").sum())
    if interrupted:
        text += f", {interrupted} interrupted (their worker died; retried)"
        known = (*known, "interrupted")
    unfinished = int((~status.isin(known)).sum())
    if unfinished:
        text += f", {unfinished} still running or without a status"
    text += f". {int(_feasible(trials).sum())} trained trial(s) are within every budget."
    return f'<p class="counts">{_esc(text)}</p>'


_TABLE_COLUMNS: Sequence[tuple[str, str]] = (
    ("number", "trial"),
    ("genome", "genome"),
    ("architecture", "architecture (per stage)"),
    ("accuracy", "val acc"),
    ("test_accuracy", "test acc"),
    ("latency_ms", "latency ms (measured)"),
    ("peak_memory_kb", "peak memory KB (computed)"),
    ("flash_kb", "flash KB (computed)"),
    ("params", "params"),
    ("macs", "MACs"),
    ("seconds_total", "seconds"),
)


def _pareto_table(pareto: pd.DataFrame, highlights: list[tuple[str, Any]], kind: str) -> str:
    """The members, sortable by clicking a column header (the inline script at the end of
    the page), each with a per-stage picture of its architecture."""
    if pareto.empty:
        return '<p class="note">No Pareto members yet.</p>'
    titles = dict(_TABLE_COLUMNS, latency_ms=f"latency ms ({kind})")
    labels: dict[Any, list[str]] = {}
    for label, index in highlights:
        labels.setdefault(index, []).append(label)
    head = "".join(
        f'<th title="click to sort">{_esc(titles[column])}</th>' for column, _ in _TABLE_COLUMNS
    )
    rows = []
    for index, row in pareto.iterrows():
        cells = []
        for column, _ in _TABLE_COLUMNS:
            if column == "genome":
                tags = "".join(
                    f' <span class="tag">{_esc(tag)}</span>' for tag in labels.get(index, [])
                )
                cells.append(
                    f'<td class="genome" data-sort="{_esc(row["genome"])}">'
                    f"<code>{_esc(row['genome'])}</code>{tags}</td>"
                )
                continue
            if column == "architecture":
                cells.append(
                    f'<td class="arch-cell" data-sort="{_esc(row["genome"])}">'
                    f"{architecture_strip(row['genome'])}</td>"
                )
                continue
            value = row[column]
            if column in ("accuracy", "test_accuracy"):
                shown = _pct(value)
            elif column in ("number", "params", "macs"):
                shown = _int(value)
            elif column == "latency_ms":
                shown = _float(value, 3)
            else:
                shown = _float(value, 1)
            number = _number(value)
            key = "" if number is None else repr(number)
            cells.append(f'<td data-sort="{key}">{_esc(shown)}</td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (
        '<p class="note">Click a column header to sort; click again to reverse.</p>\n'
        f'<table class="sortable" id="pareto-table">\n<thead><tr>{head}</tr></thead>\n'
        "<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>"
    )


# -- the architecture, per stage, from the genome string -------------------------------------

_KINDS = {"mb": "mbconv", "ds": "dsconv", "gc": "gconv", "cv": "conv"}
_STAGE = re.compile(
    r"^(?P<kind>[A-Za-z_]+?)(?P<depth>\d+)x(?P<width>\d+)k(?P<kernel>\d+)"
    r"(?:e(?P<expansion>\d+))?(?:g(?P<groups>\d+))?(?:s(?P<stride>\d+))?$"
)
_POLICY = re.compile(
    r"^p(?P<prune>[0-9.eE+-]+?)w(?P<weight>\d+)a(?P<activation>\d+)"
    r"(?:u(?P<sparsity>[0-9.eE+-]+?))?(?:r(?P<rank>[0-9.eE+-]+?)(?P<kxk>k)?)?$"
)
_STEM = re.compile(r"^c(?P<width>\d+)(?:s(?P<stride>\d+))?$")


def parse_genome(genome: str) -> dict[str, Any] | None:
    """The genome string (``c16,mb2x24k3e4s1|p0w8a8``, as ``spaces.Candidate.genome`` writes
    it) as plain data: ``{"stem": {...} or None, "stages": [{kind, depth, width, kernel,
    expansion, groups, stride, prune_ratio, weight_bits, activation_bits, sparsity,
    rank_ratio, factorize_kxk}]}``.

    Tolerant: trials.csv carries only the string, possibly from an older version of the
    space, so an unknown token keeps its text (``raw``) instead of failing; None when nothing
    in the string looks like a stage.
    """
    if not isinstance(genome, str) or not genome.strip():
        return None
    arch_text, _, policy_text = genome.strip().partition("|")
    tokens = [t.strip() for t in arch_text.split(",") if t.strip()]
    stem = None
    if tokens and (match := _STEM.match(tokens[0])):
        stem = {"width": int(match["width"]), "stride": int(match["stride"] or 1)}
        tokens = tokens[1:]
    policies = [t.strip() for t in policy_text.split(",") if t.strip()]
    stages = []
    for index, token in enumerate(tokens):
        match = _STAGE.match(token)
        stage: dict[str, Any] = {"raw": token}
        if match:
            stage.update(
                kind=_KINDS.get(match["kind"], match["kind"]),
                depth=int(match["depth"]),
                width=int(match["width"]),
                kernel=int(match["kernel"]),
                expansion=int(match["expansion"] or 1),
                groups=int(match["groups"] or 1),
                stride=int(match["stride"] or 1),
            )
        policy = _POLICY.match(policies[index]) if index < len(policies) else None
        if policy:
            stage.update(
                prune_ratio=float(policy["prune"]),
                weight_bits=int(policy["weight"]),
                activation_bits=int(policy["activation"]),
                sparsity=float(policy["sparsity"] or 0.0),
                rank_ratio=float(policy["rank"] or 1.0),
                factorize_kxk=bool(policy["kxk"]),
            )
        stages.append(stage)
    if not any("kind" in stage for stage in stages):
        return None
    return {"stem": stem, "stages": stages}


def architecture_strip(genome: str) -> str:
    """An inline strip of boxes, one per stage (after the stem): block kind and depth, width,
    kernel (expansion, groups, stride 2 where they apply), then the stage's prune ratio and
    weight/activation bit-widths; the bar under each box is the share of channels kept."""
    parsed = parse_genome(genome)
    if parsed is None:
        return '<span class="note">\u2014</span>'
    boxes = []
    stem = parsed["stem"]
    if stem is not None:
        down = " \u2193" if stem["stride"] == 2 else ""
        boxes.append(
            f'<span class="blk stem" title="stem convolution, {stem["width"]} channels'
            f'{", stride 2" if down else ""}">stem<br>{stem["width"]}{down}</span>'
        )
    for index, stage in enumerate(parsed["stages"]):
        if "kind" not in stage:
            boxes.append(f'<span class="blk other">{_esc(stage["raw"])}</span>')
            continue
        kind = stage["kind"]
        shape = f"{stage['width']} k{stage['kernel']}"
        details = [f"{stage['width']} channels", f"kernel {stage['kernel']}"]
        if kind in ("mbconv", "gconv"):
            shape += f" e{stage['expansion']}"
            details.append(f"expansion {stage['expansion']}")
        if kind == "gconv":
            shape += f" g{stage['groups']}"
            details.append(f"groups {stage['groups']}")
        if stage["stride"] == 2:
            shape += " \u2193"
            details.append("stride 2")
        lines = [f"<b>{_esc(kind)} \u00d7{stage['depth']}</b>", _esc(shape)]
        keep = 1.0
        if "prune_ratio" in stage:
            keep = 1.0 - stage["prune_ratio"]
            policy = (
                f"p{stage['prune_ratio']:g} w{stage['weight_bits']}/a{stage['activation_bits']}"
            )
            if stage["sparsity"]:
                policy += f" u{stage['sparsity']:g}"
            rank = stage["rank_ratio"]
            if rank < 1.0:
                policy += f" r{rank:g}" + ("k" if stage["factorize_kxk"] else "")
            lines.append(_esc(policy))
            details.append(
                f"prune {100 * stage['prune_ratio']:.0f}% of channels, weights "
                f"{stage['weight_bits']}-bit, activations {stage['activation_bits']}-bit"
                + (f", sparsity {100 * stage['sparsity']:.0f}%" if stage["sparsity"] else "")
                + (
                    f", 1x1 layers at rank {rank:g} of full"
                    + (" and k x k as k x 1 + 1 x k" if stage["factorize_kxk"] else "")
                    if rank < 1.0
                    else ""
                )
            )
        title = f"stage {index + 1}: {kind} \u00d7{stage['depth']}, " + ", ".join(details)
        css = f"k-{kind}" if kind in _KINDS.values() else "other"
        boxes.append(
            f'<span class="blk {css}" title="{_esc(title)}">{"<br>".join(lines)}'
            f'<i class="keep" style="width:{100 * keep:.0f}%"></i></span>'
        )
    return f'<span class="arch">{"".join(boxes)}</span>'


def _reasons(trials: pd.DataFrame) -> str:
    """Why trials were turned down, grouped: the first place to look when few are feasible."""
    rejected = trials[
        trials["status"].isin(("infeasible", "failed", "interrupted")) & (trials["reason"] != "")
    ]
    if rejected.empty:
        return ""
    counts = rejected.groupby(["status", "reason"]).size().sort_values(ascending=False)
    items = [
        f"<li>{count} {_esc(status)}: {_esc(reason[:300])}</li>"
        for (status, reason), count in counts.head(10).items()
    ]
    return (
        "<details><summary>Why trials were over budget or failed</summary>\n<ul>\n"
        + "\n".join(items)
        + "\n</ul>\n</details>"
    )


def _footer(run: dict[str, Any]) -> str:
    fidelity = run.get("fidelity") or {}
    objectives = ", ".join(
        f"{o.get('name')} ({o.get('direction')})" for o in run.get("objectives") or []
    )
    text = (
        f"Search: sampler {run.get('sampler', '?')}, seed {run.get('seed', '?')}; each "
        f"candidate trained on {_int(fidelity.get('train_subset'))} images for "
        f"{_int(fidelity.get('epochs'))} epoch(s); objectives: {objectives or '?'}. "
        f"Updated {run.get('updated', '?')}."
    )
    return f'<p class="footer">{_esc(text)}</p>'


# -- several runs in one report ----------------------------------------------------------------


def render_comparison(
    runs: Sequence[tuple[Path, dict[str, Any], pd.DataFrame, pd.DataFrame]],
) -> str:
    """One page overlaying several runs (say, two devices or two samplers): each run's Pareto
    front in its own colour on the two 2-D figures, and each run's recommendation at its own
    configured budget. Pure: ``runs`` is (folder, run.json, trials, pareto) per run."""
    prepared = []
    labels = _run_labels(runs)
    for index, ((_, run, trials, pareto), label) in enumerate(zip(runs, labels, strict=True)):
        colour = RUN_COLOURS[index % len(RUN_COLOURS)]
        prepared.append((label, colour, run, _normalise(trials), _normalise(pareto)))
    kinds = {_latency_kind(run, trials) for _, _, run, trials, _ in prepared}
    how = kinds.pop() if len(kinds) == 1 else "measured or predicted: see each run"
    latency = _Axis("latency_ms", "latency", f"Latency (ms, {how})", "ms", None)
    memory = _Axis("peak_memory_kb", "peak memory", "Peak memory (KB, computed)", "KB", None)
    plots = _plots(
        {
            "figure-1": _overlay_figure(prepared, latency),
            "figure-2": _overlay_figure(prepared, memory),
        }
    )
    names = ", ".join(label for label, *_ in prepared)
    notes = comparability_notes([(label, run) for label, _, run, _, _ in prepared])
    sections = [
        f"<h1>paretonas: {_esc(len(prepared))} runs compared</h1>",
        f'<p class="meta">{_esc(names)}</p>',
        *(f'<p class="warn">{_esc(note)}</p>' for note in notes),
        "<h2>Recommendation of each run at its configured budget</h2>",
        _comparison_table(prepared),
        "<h2>Accuracy against latency</h2>",
        plots["figure-1"],
        "<h2>Accuracy against peak memory</h2>",
        plots["figure-2"],
        '<p class="caption">Each colour is one run: its Pareto members as dots joined by its '
        "step (the best accuracy it reached at each cost), its other trials within budget as "
        "faint dots, and its budget as a dashed line in the same colour. Accuracy is the "
        "validation accuracy each search ranked on.</p>",
    ]
    return _page(f"paretonas: {names}", sections)


def comparability_notes(runs: Sequence[tuple[str, dict[str, Any]]]) -> list[str]:
    """What makes the accuracies of overlaid runs unlike, one sentence per difference, each
    run against the first: other data, other validation or test images (the split follows
    the run's ``seed``), another training fidelity. Pure: ``runs`` is (label, run.json)."""
    if len(runs) < 2:
        return []
    first_label, first = runs[0]
    notes = []
    for label, run in runs[1:]:
        pair = f"{first_label} and {label}"
        if run.get("dataset") != first.get("dataset"):
            notes.append(
                f"{pair} searched different datasets ({first.get('dataset')} and "
                f"{run.get('dataset')}): their accuracies are not comparable."
            )
            continue
        differ = _differing_splits(first, run)
        if differ:
            seeds = (first.get("seed"), run.get("seed"))
            why = (
                f"the split follows the run's seed, {seeds[0]} and {seeds[1]}"
                if seeds[0] != seeds[1]
                else "other data files or val_fraction"
            )
            notes.append(
                f"{pair} measured accuracy on different {' and '.join(differ)} images "
                f"({why}), so a gap between their accuracies is partly the data's; to "
                "compare two searches on the same images, vary sampler_seed and keep seed."
            )
        fidelities = (_fidelity_text(first), _fidelity_text(run))
        if fidelities[0] != fidelities[1]:
            notes.append(
                f"{pair} trained each candidate differently ({fidelities[0]} against "
                f"{fidelities[1]}): their accuracies are not from the same recipe."
            )
    return notes


def _differing_splits(first: dict[str, Any], other: dict[str, Any]) -> list[str]:
    """Which of validation and test hold other images in ``other`` than in ``first``; for
    runs that predate run.json's ``data_splits``, a different seed is taken as a sign."""
    mine, theirs = first.get("data_splits"), other.get("data_splits")
    if mine and theirs:
        return [split for split in ("validation", "test") if mine.get(split) != theirs.get(split)]
    return ["validation"] if first.get("seed") != other.get("seed") else []


def _fidelity_text(run: dict[str, Any]) -> str:
    fidelity = run.get("fidelity") or {}
    text = f"{fidelity.get('train_subset', '?')} images x {fidelity.get('epochs', '?')} epochs"
    for key, what in (("finetune_epochs", "fine-tune"), ("qat_epochs", "QAT")):
        if fidelity.get(key):
            text += f" + {fidelity[key]} {what}"
    return text


def _run_labels(runs: Sequence[tuple[Path, dict[str, Any], pd.DataFrame, pd.DataFrame]]) -> list:
    names = [str(run.get("name") or folder.name) for folder, run, _, _ in runs]
    return [
        f"{name} ({folder})" if names.count(name) > 1 else name
        for name, (folder, *_) in zip(names, runs, strict=True)
    ]


def _overlay_figure(prepared: list, x: _Axis) -> go.Figure:
    figure = go.Figure()
    budgets: dict[float, list[tuple[str, str]]] = {}
    for label, colour, run, trials, pareto in prepared:
        good = trials[_feasible(trials) & trials[x.column].notna() & trials["accuracy"].notna()]
        if not good.empty:
            figure.add_trace(
                go.Scatter(
                    x=good[x.column],
                    y=good["accuracy"],
                    mode="markers",
                    name=f"{label}: within budget ({len(good)})",
                    legendgroup=label,
                    marker={"size": 6, "color": colour},
                    opacity=0.3,
                    text=[_hover(row) for _, row in good.iterrows()],
                    hovertemplate=f"<b>{_esc(label)}</b><br>%{{text}}<extra></extra>",
                )
            )
        front = pareto[pareto[x.column].notna() & pareto["accuracy"].notna()]
        if not front.empty:
            on_step = pareto_mask(
                front[["accuracy", x.column]].to_numpy(), ["maximize", "minimize"]
            )
            step = front[on_step].sort_values([x.column, "accuracy"])
            figure.add_trace(
                go.Scatter(
                    x=step[x.column],
                    y=step["accuracy"],
                    mode="lines",
                    line={"color": colour, "width": 2, "shape": "hv"},
                    name=f"{label}: front",
                    legendgroup=label,
                    hoverinfo="skip",
                )
            )
            figure.add_trace(
                go.Scatter(
                    x=front[x.column],
                    y=front["accuracy"],
                    mode="markers",
                    name=f"{label}: Pareto members ({len(front)})",
                    legendgroup=label,
                    marker={"size": 11, "color": colour, "line": {"width": 1, "color": "white"}},
                    text=[_hover(row) for _, row in front.iterrows()],
                    hovertemplate=f"<b>{_esc(label)}</b><br>%{{text}}<extra></extra>",
                )
            )
        bound = _number((run.get("budget") or {}).get(x.column))
        if bound is not None:
            budgets.setdefault(bound, []).append((label, colour))
    for bound, owners in budgets.items():
        colour = owners[0][1] if len(owners) == 1 else BUDGET
        who = owners[0][0] if len(owners) == 1 else "shared"
        figure.add_vline(
            x=bound,
            line_dash="dash",
            line_color=colour,
            annotation_text=f"budget {bound:g} {x.unit} ({who})",
            annotation_position="top right",
        )
    return _accuracy_layout(figure, x.title, "no run has a value to plot yet")


def _comparison_table(prepared: list) -> str:
    head = "".join(
        f'<th title="click to sort">{_esc(title)}</th>'
        for title in (
            "run",
            "device",
            "budget",
            "trial",
            "genome",
            "test acc",
            "teacher test acc",
            "latency ms",
            "peak memory KB",
            "params",
            "\u00d7 smaller than teacher",
            "Pareto members",
        )
    )
    rows = []
    for label, colour, run, trials, pareto in prepared:
        device = run.get("device") or {}
        kind = _latency_kind(run, trials)
        teacher = teacher_facts(run)
        row = recommend(pareto, run.get("budget"))
        start = [
            f'<td class="genome" data-sort="{_esc(label)}"><span class="swatch" '
            f'style="background:{colour}"></span>{_esc(label)}</td>',
            f'<td class="genome">{_esc(device.get("name") or "?")}: '
            f"{_esc(device.get('description') or 'not recorded')}</td>",
            f'<td class="genome">{_esc(_budget_text(run.get("budget") or {}))}</td>',
        ]
        if row is None:
            rest = [
                '<td data-sort="">\u2014</td>',
                '<td class="genome" data-sort="">no Pareto member meets its budget</td>',
                *['<td data-sort="">\u2014</td>'] * 6,
            ]
        else:
            smaller = compare_to_teacher(row, teacher)["smaller_than_teacher"]
            values = [
                (row["number"], _int(row["number"])),
                None,
                (row["test_accuracy"], _pct(row["test_accuracy"])),
                (teacher["test_accuracy"], _pct(teacher["test_accuracy"])),
                (row["latency_ms"], f"{_float(row['latency_ms'], 3)} ({kind})"),
                (row["peak_memory_kb"], _float(row["peak_memory_kb"], 1)),
                (row["params"], _int(row["params"])),
                (smaller, "\u2014" if smaller is None else f"{smaller:.1f}\u00d7"),
            ]
            rest = []
            for value in values:
                if value is None:
                    rest.append(
                        f'<td class="genome" data-sort="{_esc(row["genome"])}">'
                        f"<code>{_esc(row['genome'])}</code></td>"
                    )
                    continue
                number = _number(value[0])
                key = "" if number is None else repr(number)
                rest.append(f'<td data-sort="{key}">{_esc(value[1])}</td>')
        members = f'<td data-sort="{len(pareto)}">{len(pareto)}</td>'
        rows.append(f"<tr>{''.join(start + rest)}{members}</tr>")
    return (
        f'<table class="sortable" id="compare-table">\n<thead><tr>{head}</tr></thead>\n'
        "<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>"
    )


# -- formatting ------------------------------------------------------------------------------


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _pct(value: Any) -> str:
    number = _number(value)
    return "\u2014" if number is None else f"{100 * number:.1f}%"


def _float(value: Any, digits: int) -> str:
    number = _number(value)
    return "\u2014" if number is None else f"{number:,.{digits}f}"


def _int(value: Any) -> str:
    number = _number(value)
    return "\u2014" if number is None else f"{round(number):,}"


_CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; color: #212121; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.3em; }
h2 { font-size: 1.25em; margin-top: 1.6em; border-bottom: 1px solid #e0e0e0; }
.meta, .note, .caption, .footer, .counts { color: #424242; }
.caption, .footer { font-size: 0.9em; }
.warn { background: #fff3e0; border-left: 4px solid #ef6c00; padding: 0.6em 0.9em; }
table { border-collapse: collapse; width: 100%; font-size: 0.9em; }
th, td { border-bottom: 1px solid #e0e0e0; padding: 0.35em 0.5em; text-align: right; }
th { background: #fafafa; }
td.genome, th:nth-child(2) { text-align: left; }
code { font-size: 0.95em; word-break: break-all; }
.tag { background: #c62828; color: white; border-radius: 3px; padding: 0 0.35em;
       font-size: 0.8em; white-space: nowrap; }
ul.tiers li { margin-bottom: 0.45em; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[aria-sort="ascending"]::after { content: " \\25B2"; }
table.sortable th[aria-sort="descending"]::after { content: " \\25BC"; }
td.arch-cell, th:nth-child(3) { text-align: left; }
.arch { display: inline-flex; gap: 2px; align-items: stretch; }
.blk { position: relative; display: inline-block; border: 1px solid #90a4ae; border-radius: 3px;
       padding: 0.15em 0.3em 0.35em; font-size: 0.72em; line-height: 1.25; text-align: center;
       white-space: nowrap; background: #eceff1; }
.blk .keep { position: absolute; left: 0; bottom: 0; height: 3px; background: #37474f; }
.blk.stem { background: #fafafa; color: #616161; }
.blk.k-mbconv { background: #e3f2fd; border-color: #64b5f6; }
.blk.k-dsconv { background: #e8f5e9; border-color: #81c784; }
.blk.k-gconv { background: #fff3e0; border-color: #ffb74d; }
.blk.k-conv { background: #f3e5f5; border-color: #ba68c8; }
.swatch { display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.4em;
          border-radius: 2px; vertical-align: middle; }
"""

# Sort a table by the clicked column (numbers by value, text by collation, empty cells last);
# a second click reverses. Cells carry their raw value in data-sort.
_SORT_JS = """
(function () {
  function key(row, col) {
    var cell = row.cells[col];
    var raw = cell.getAttribute("data-sort");
    if (raw === null) { raw = cell.textContent; }
    raw = raw.trim();
    if (raw === "") { return null; }
    var number = Number(raw);
    return isNaN(number) ? raw.toLowerCase() : number;
  }
  function paretonasSortTable(table, col, th) {
    var body = table.tBodies[0];
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (other) {
      other.removeAttribute("aria-sort");
    });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a, col), y = key(b, col);
      if (x === null || y === null) { return x === y ? 0 : (x === null ? 1 : -1); }
      var order = (typeof x === "number" && typeof y === "number")
        ? x - y : String(x).localeCompare(String(y));
      return ascending ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.addEventListener("click", function () { paretonasSortTable(table, col, th); });
    });
  });
})();
"""
