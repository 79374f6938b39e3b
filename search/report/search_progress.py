"""The "Search progress" section: the hypervolume after each trial (has the search stopped
paying?) and the parameter importances (which decisions mattered)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from search.report.colours import FRONT, RUN_COLOURS
from search.report.formatting import counted, esc, fixed, pct
from search.summary import AXES, IMPORTANCE, MIN_TRIALS_FOR_IMPORTANCE


def hypervolume_figure(progress: pd.DataFrame) -> go.Figure:
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


def hypervolume_caption(progress: pd.DataFrame) -> str:
    if progress.empty:
        text = "Hypervolume appears once a trained trial is within the configured budget."
        return f'<p class="note">{esc(text)}</p>'
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
    return f'<p class="caption">{esc(text)}</p>'


def _objective_value(name: str, value: float) -> str:
    if "accuracy" in name:
        return pct(value)
    unit = next((unit for column, _, unit in AXES if column == name), "")
    # Milliseconds to the microsecond, kilobytes to a tenth, as everywhere on the page.
    return f"{fixed(value, 3 if unit == 'ms' else 1)} {unit}".strip()


def importance_figure(importance: dict[str, dict[str, float]]) -> go.Figure:
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
                hovertemplate=f"{esc(objective)}: %{{y}} %{{x:.3f}}<extra></extra>",
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


def importance_caption(
    importance: dict[str, dict[str, float]] | None, completed: int | None = None
) -> str:
    if not importance:
        text = (
            "Which decisions matter (parameter importance per objective) appears here once the "
            f"run has written {IMPORTANCE} (after at least {MIN_TRIALS_FOR_IMPORTANCE} "
            "completed trials)."
        )
        return f'<p class="note">{esc(text)}</p>'
    text = (
        "Which decisions matter: Optuna's parameter importance (PED-ANOVA) of each searched "
        "parameter for each objective, over the study's completed trials: how much the "
        "parameter's values differ between the best trials and the rest. A candidate over "
        "budget was never trained and counts with accuracy 0, so a parameter that decides "
        "feasibility also scores for accuracy."
    )
    parameters = max(len(values) for values in importance.values())
    if completed is not None:
        text += (
            f" It rests on {counted(completed, 'completed trial')} for "
            f"{counted(parameters, 'parameter')}: with few trials per parameter it ranks "
            "chance as readily as effect, so read it as a hint until the run has many more "
            "trials than parameters."
        )
    return f'<p class="caption">{esc(text)}</p>'
