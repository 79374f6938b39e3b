"""The accuracy-against-cost figures of one run: a 2-D view per cost (latency, peak memory) and
a 3-D view of both, with the Pareto front, the knee point, each budget tier's pick, the budgets,
the teacher's accuracy, the hand-designed baselines and the trials that missed the budget."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from search.pareto import pareto_mask
from search.report.colours import BASELINE_COLOUR, BUDGET, FADED, FRONT, KNEE
from search.report.formatting import esc, fixed, integer, pct, to_number
from search.report.frames import faded_groups, feasible, plotted, status_text
from search.report.marks import accuracy_range, add_picks, add_teacher_line, picks_3d
from search.report.picks import Pick


@dataclass(frozen=True)
class Axis:
    """One objective drawn on a figure's x axis, with its budget when one is set and the
    axis's right edge when an outlier would squeeze the rest (``marks.x_limit``)."""

    column: str
    noun: str
    title: str
    unit: str
    budget: float | None
    limit: float | None = None


def scatter_figure(
    trials: pd.DataFrame,
    pareto: pd.DataFrame,
    x: Axis,
    colour: Axis,
    knee: Any = None,
    picks: Sequence[Pick] = (),
    teacher: float | None = None,
) -> go.Figure:
    """Validation accuracy (what the search ranks on) against one cost, one dot per trial.

    Trials without an accuracy (over budget, so never trained; or failed) still show where
    their cost fell: they are drawn along a strip under the lowest accuracy, so the reader
    sees how much of the space the budget cut away. ``picks`` are the summary's recommended
    models, ``teacher`` the teacher's test accuracy, drawn as a line.
    """
    floor = _floor(trials)
    figure = go.Figure()
    searched = trials["baseline"] == ""
    for name, mask, style in faded_groups(trials):
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
                text=[hover_text(row) for _, row in rows.iterrows()],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    good = trials[
        feasible(trials) & searched & trials[x.column].notna() & trials["accuracy"].notna()
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
                text=[hover_text(row) for _, row in good.iterrows()],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    front = pareto[pareto[x.column].notna() & pareto["accuracy"].notna()]
    if not front.empty:
        # The members of the full front that are also best in this 2-D view form the step:
        # "the best accuracy you can have at this cost".
        figure.add_trace(
            front_line(front, x.column, FRONT, "Pareto front (best accuracy at each cost)")
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
                text=[hover_text(row) for _, row in front.iterrows()],
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
                hovertext=[hover_text(row) for _, row in hand.iterrows()],
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
                name=f"knee point (trial {integer(row['number'])})",
                marker={
                    "size": 22,
                    "symbol": "star",
                    "color": KNEE,
                    "line": {"width": 1.5, "color": "#5d4037"},
                },
                text=[hover_text(row)],
                hovertemplate="<b>knee point</b><br>%{text}<extra></extra>",
            )
        )
    hover = [hover_text(pareto.loc[pick.label]) for pick in picks]
    drawn = trials.loc[plotted(trials, x.column), x.column]
    right = x.limit or max([*drawn, x.budget or 0.0, 0.0])
    add_picks(figure, picks, pareto, x, hover, right)
    if x.budget is not None:
        figure.add_vline(
            x=x.budget,
            line_dash="dash",
            line_color=BUDGET,
            annotation_text=f"budget {x.budget:g} {x.unit}",
            annotation_position="top right",
        )
    figure = accuracy_layout(figure, x.title, "no trial has a value to plot yet")
    if teacher is not None:
        add_teacher_line(figure, teacher)
        figure.update_yaxes(range=accuracy_range(trials, x.column, floor, teacher))
    if x.limit is not None:
        # Costs are never negative: the view starts at zero, with room for a marker there.
        figure.update_xaxes(range=[-0.03 * x.limit, x.limit])
    return figure


def accuracy_layout(figure: go.Figure, x_title: str, empty: str) -> go.Figure:
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


def figure_3d(
    trials: pd.DataFrame,
    pareto: pd.DataFrame,
    latency: Axis,
    memory: Axis,
    knee: Any,
    picks: Sequence[Pick] = (),
) -> go.Figure:
    """Accuracy, latency and peak memory at once: the front is a surface in this space, and
    a member that looks dominated in one 2-D view is explained by the third axis."""
    floor = _floor(trials)
    figure = go.Figure()
    has = [latency.column, memory.column]
    for name, mask, style in faded_groups(trials):
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
                text=[hover_text(row) for _, row in rows.iterrows()],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    good = trials[
        feasible(trials)
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
                text=[hover_text(row) for _, row in good.iterrows()],
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
                text=[hover_text(row) for _, row in front.iterrows()],
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
                name=f"knee point (trial {integer(row['number'])})",
                marker={"size": 10, "symbol": "diamond", "color": KNEE},
                text=[hover_text(row)],
                hovertemplate="<b>knee point</b><br>%{text}<extra></extra>",
            )
        )
    hover = [hover_text(pareto.loc[pick.label]) for pick in picks]
    labels = picks_3d(figure, picks, pareto, latency, memory, hover)
    figure.update_layout(
        template="plotly_white",
        scene={
            "xaxis_title": latency.title,
            "yaxis_title": memory.title,
            "zaxis_title": "Accuracy (validation)",
            "zaxis_tickformat": ".0%",
            "annotations": labels,
        },
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        margin={"l": 0, "r": 0, "t": 60, "b": 0},
        hoverlabel={"align": "left"},
    )
    return figure


def _floor(trials: pd.DataFrame) -> float:
    """Where untrained trials are drawn: just under the lowest accuracy on the page."""
    accuracy = trials["accuracy"].dropna()
    if accuracy.empty:
        return 0.0
    low, high = float(accuracy.min()), float(accuracy.max())
    return max(0.0, low - 0.08 * max(high - low, 0.05))


def front_line(
    front: pd.DataFrame, column: str, colour: str, name: str, group: str | None = None
) -> go.Scatter:
    """The 2-D front of accuracy against ``column`` as a staircase: the best accuracy
    reachable at each cost, through the members not dominated on these two axes."""
    on_step = pareto_mask(front[["accuracy", column]].to_numpy(), ["maximize", "minimize"])
    step = front[on_step].sort_values([column, "accuracy"])
    return go.Scatter(
        x=step[column],
        y=step["accuracy"],
        mode="lines",
        line={"color": colour, "width": 2, "shape": "hv"},
        name=name,
        legendgroup=group,
        hoverinfo="skip",
    )


def hover_text(row: pd.Series) -> str:
    """Hover text; plotly renders a subset of HTML there, so free text is escaped."""
    source = f" ({esc(row['latency_source'])})" if row["latency_source"] else ""
    lines = [
        f"<b>trial {integer(row['number'])}</b>: "
        f"{esc(status_text(row['status']) or row['state'] or '?')}",
        f"genome: {esc(row['genome'])}",
        f"val acc {pct(row['accuracy'])}, test acc {pct(row['test_accuracy'])}",
        f"latency {fixed(row['latency_ms'], 3)} ms{source}"
        # The median hides how much runs vary; the 90th percentile shows it.
        + (
            f", 90th percentile {fixed(row['latency_p90_ms'], 3)} ms"
            if to_number(row.get("latency_p90_ms")) is not None
            else ""
        ),
        f"peak memory {fixed(row['peak_memory_kb'], 1)} KB, flash {fixed(row['flash_kb'], 1)} KB",
        f"params {integer(row['params'])}, MACs {integer(row['macs'])}",
    ]
    if to_number(row.get("expected_accuracy")) is not None:  # a stopped trial's prediction
        # The typical rest of its curve, not the optimistic bound it was stopped on.
        lines.append(
            f"expected val acc by the end {pct(row['expected_accuracy'])} (predicted: the "
            "typical rest of the run's finished curves; 'at best' below is the optimistic "
            "bound it was stopped on)"
        )
    if row["reason"]:
        lines.append(f"why: {esc(row['reason'][:200])}")
    return "<br>".join(lines)
