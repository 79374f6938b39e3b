"""What the accuracy figures draw over the trials to support a decision: each budget tier's
recommended model, labelled in words (a printed page has no hover), the teacher's accuracy
as a reference line, and the x range when one far outlier would squeeze every other trial
into a corner."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd
import plotly.graph_objects as go

from search.report.colours import PICK, TEACHER
from search.report.formatting import esc, pct
from search.report.frames import plotted
from search.report.picks import Pick

if TYPE_CHECKING:  # figures imports this module; the name is only needed for the hints
    from search.report.figures import Axis

PICKS_NAME = "recommended for a budget"
# Past the budget line, a view shows at least twice the budget, and every member of the front
# with some room; what lies further is counted in the caption, not drawn.
BUDGET_REACH, FRONT_REACH = 2.0, 1.15


def add_picks(
    figure: go.Figure,
    picks: Sequence[Pick],
    pareto: pd.DataFrame,
    x: Axis,
    hover: list[str],
    right: float,
) -> None:
    """Each pick as a large open diamond with its label beside it; ``hover`` holds each
    pick's hover text, in the order of ``picks``; ``right`` is the x axis's far end."""
    shown = [
        (pick, text)
        for pick, text in zip(picks, hover, strict=True)
        if _has(pareto, pick, x.column)
    ]
    if not shown:
        return
    rows = [pareto.loc[pick.label] for pick, _ in shown]
    figure.add_trace(
        go.Scatter(
            x=[row[x.column] for row in rows],
            y=[row["accuracy"] for row in rows],
            mode="markers",
            name=PICKS_NAME,
            marker={"size": 28, "symbol": "diamond-open", "color": PICK, "line": {"width": 3}},
            text=[f"<b>recommended: {esc(pick.text)}</b><br>{text}" for pick, text in shown],
            hovertemplate="%{text}<extra></extra>",
        )
    )
    for (pick, _), row, (ax, ay) in zip(shown, rows, _offsets(rows, x, right), strict=True):
        figure.add_annotation(
            x=row[x.column],
            y=row["accuracy"],
            text=esc(pick.text),
            name=PICKS_NAME,
            ax=ax,
            ay=ay,
            # The box grows away from its diamond, never back over it and its neighbours.
            xanchor="left" if ax > 0 else "right",
            yanchor="top",
            showarrow=True,
            arrowcolor=PICK,
            arrowwidth=1.5,
            arrowhead=0,
            standoff=14,  # the arrow stops at the diamond, not inside it
            bgcolor="rgba(255,255,255,0.9)",
            bordercolor=PICK,
            borderpad=3,
            font={"color": PICK, "size": 12},
        )


def _offsets(rows: list[pd.Series], x: Axis, right: float) -> list[tuple[int, int]]:
    """Where each label sits from its diamond (pixels). Below: above the picks run the
    teacher's line and the legend. The most accurate pick's label nearest, each next one
    further down, so picks close together keep their labels apart; to the right, but for picks
    in the figure's last third, whose labels would run off its edge."""
    order = sorted(range(len(rows)), key=lambda i: (-rows[i]["accuracy"], i))
    offsets: list[tuple[int, int]] = [(0, 0)] * len(rows)
    for rank, index in enumerate(order):
        ax = -36 if rows[index][x.column] > 2 / 3 * right else 36
        offsets[index] = (ax, 26 + 28 * rank)
    return offsets


def picks_3d(
    figure: go.Figure,
    picks: Sequence[Pick],
    pareto: pd.DataFrame,
    x: Axis,
    y: Axis,
    hover: list[str],
) -> list[dict]:
    """The picks on the 3-D view: the diamonds as a trace; returns their labels, as scene
    annotations for the caller's layout."""
    shown = [
        (pick, text)
        for pick, text in zip(picks, hover, strict=True)
        if _has(pareto, pick, x.column) and _has(pareto, pick, y.column)
    ]
    if not shown:
        return []
    rows = [pareto.loc[pick.label] for pick, _ in shown]
    figure.add_trace(
        go.Scatter3d(
            x=[row[x.column] for row in rows],
            y=[row[y.column] for row in rows],
            z=[row["accuracy"] for row in rows],
            mode="markers",
            name=PICKS_NAME,
            marker={"size": 14, "symbol": "diamond-open", "color": PICK, "line": {"width": 3}},
            text=[f"<b>recommended: {esc(pick.text)}</b><br>{text}" for pick, text in shown],
            hovertemplate="%{text}<extra></extra>",
        )
    )
    return [
        {
            "x": row[x.column],
            "y": row[y.column],
            "z": row["accuracy"],
            "text": esc(pick.text),
            "name": PICKS_NAME,
            "showarrow": True,
            "arrowcolor": PICK,
            "arrowhead": 0,
            # Alternate sides, so labels of picks close together do not cover each other.
            "ax": 60 if index % 2 == 0 else -60,
            "ay": -40,
            "bgcolor": "rgba(255,255,255,0.9)",
            "bordercolor": PICK,
            "font": {"color": PICK, "size": 12},
        }
        for index, ((pick, _), row) in enumerate(zip(shown, rows, strict=True))
    ]


def _has(pareto: pd.DataFrame, pick: Pick, column: str) -> bool:
    row = pareto.loc[pick.label]
    return pd.notna(row[column]) and pd.notna(row["accuracy"])


def add_teacher_line(figure: go.Figure, accuracy: float) -> None:
    """The teacher's test accuracy as a dashed line across the figure: what the compressed
    models are measured against (the figure's dots are validation accuracy; the label says
    which split the line is on)."""
    figure.add_hline(
        y=accuracy,
        line_dash="dash",
        line_color=TEACHER,
        line_width=1.5,
        annotation_text=f"teacher: {pct(accuracy)} (test accuracy)",
        annotation_position="top left",
        annotation_font_color=TEACHER,
    )


def accuracy_range(trials: pd.DataFrame, column: str, floor: float, teacher: float) -> list[float]:
    """The y range of a figure with the teacher's line: every plotted trial (the untrained at
    ``floor``) and the line, with room above it for its label. Set by hand, because plotly's
    own range would put the line on the very edge, its label over the legend."""
    rows = trials[plotted(trials, column)]
    values = [*rows["accuracy"].dropna(), teacher]
    if rows["accuracy"].isna().any():
        values.append(floor)
    low, high = min(values), max(values)
    span = max(high - low, 0.02)
    return [low - 0.05 * span, high + 0.1 * span]


def x_limit(trials: pd.DataFrame, pareto: pd.DataFrame, x: Axis) -> float | None:
    """The right edge of a figure's x axis when a trial lies beyond what the decision needs
    (twice the budget, or the front's dearest member with 15% room, whichever is further);
    None when everything fits, and plotly's own range is kept."""
    values = trials.loc[plotted(trials, x.column), x.column]
    front = pareto.loc[pareto["accuracy"].notna(), x.column].dropna()
    reach = [BUDGET_REACH * x.budget] if x.budget is not None else []
    if not front.empty:
        reach.append(FRONT_REACH * float(front.max()))
    if values.empty or not reach or float(values.max()) <= max(reach):
        return None
    return max(reach)


def beyond(trials: pd.DataFrame, x: Axis) -> pd.Series:
    """The plotted values past the right edge of ``x`` (none without a limit)."""
    values = trials.loc[plotted(trials, x.column), x.column]
    return values[values > x.limit] if x.limit is not None else values.iloc[:0]
