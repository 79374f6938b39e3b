"""Predicted against measured latency: how a run's latency is known and, where a trial has
both, how well the predictor did (what a search off the host relies on)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from search.report.colours import BUDGET, FRONT
from search.report.figures import hover_text
from search.report.formatting import counted, esc, fixed


def latency_kind(run: dict[str, Any], trials: pd.DataFrame) -> str:
    """ "measured" or "predicted": how the run's latency axis is known. Runs written before
    run.json said so are judged by their trials' latency sources."""
    kind = (run.get("device") or {}).get("latency")
    if kind is not None:
        return "measured" if kind == "measured" else "predicted"
    sources = [source for source in trials["latency_source"] if source]
    if sources and all(source.startswith("predicted") for source in sources):
        return "predicted"
    return "measured"


def compared_latency(trials: pd.DataFrame) -> pd.DataFrame:
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


def prediction_figure(compared: pd.DataFrame) -> go.Figure:
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
            text=[hover_text(row) for _, row in compared.iterrows()],
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


def prediction_caption(run: dict[str, Any], trials: pd.DataFrame, compared: pd.DataFrame) -> str:
    device = (run.get("device") or {}).get("name") or "the device"
    calibrate_name = (run.get("device") or {}).get("file") or device  # a device file's path
    if compared.empty:
        if latency_kind(run, trials) == "predicted":
            text = (
                f"Latency on {device} is predicted, not measured (it cannot run here), so no "
                "prediction could be checked in this run; the source of each figure is in the "
                "hover text and in trials.csv (latency_source)."
            )
        else:
            text = (
                "No trial has both a measured and a predicted latency. Calibrate a predictor "
                f"(`paretonas calibrate --device {calibrate_name}`) and the next trials record "
                "both."
            )
        return f'<p class="note">{esc(text)}</p>'
    error = prediction_error(compared)
    sources = sorted({s for s in compared["predicted_latency_source"] if s})
    text = (
        f"{counted(int(error['count']), 'trial', verb=('was', 'were'))} measured and also "
        "predicted. Median error "
        f"{100 * error['median_error']:.1f}%, {100 * error['within_10pct']:.0f}% within "
        f"\u00b110%, Spearman rank correlation {fixed(error['spearman'], 3)} (how well the "
        "predictor orders candidates, which is what the search relies on off-host). "
        f"Predictor: {'; '.join(sources) or 'not recorded'}."
    )
    return f'<p class="caption">{esc(text)}</p>'
