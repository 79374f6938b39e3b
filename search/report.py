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
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from search.pareto import knee_point, pareto_mask

REPORT = "report.html"

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


@dataclass(frozen=True)
class _Axis:
    """One objective drawn on a figure's x axis, with its budget when one is set."""

    column: str
    noun: str
    title: str
    unit: str
    budget: float | None


def write_report(run_dir: str | Path) -> Path:
    """Render ``run_dir/report.html`` from the run's files and return its path.

    The file is written to a temporary name and moved into place, so a reader (or a browser
    refresh while the search is running) never sees half a report.
    """
    run_dir = Path(run_dir)
    run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    trials = _read_csv(run_dir / "trials.csv")
    pareto = _read_csv(run_dir / "pareto.csv")
    page = render_report(run, trials, pareto)
    target = run_dir / REPORT
    handle, tmp = tempfile.mkstemp(dir=run_dir, prefix=".report.", suffix=".html.tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(page)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def render_report(run: dict[str, Any], trials: pd.DataFrame, pareto: pd.DataFrame) -> str:
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
    figures = [
        _scatter_figure(trials, pareto, latency, colour=memory),
        _scatter_figure(trials, pareto, memory, colour=latency),
    ]
    compared = _compared_latency(trials)
    if not compared.empty:
        figures.append(_prediction_figure(compared))
    plots = [
        figure.to_html(
            full_html=False,
            # plotly.js (~4 MB) goes into the page once; later figures reuse it.
            include_plotlyjs=index == 0,
            div_id=f"figure-{index + 1}",
            default_height="520px",
            config={"displaylogo": False},
        )
        for index, figure in enumerate(figures)
    ]
    name = str(run.get("name") or "unnamed run")
    sections = [
        _header(run, device),
        _recommendation(run, trials, pareto, device, how),
        "<h2>Accuracy against latency</h2>",
        plots[0],
        _caption(trials, latency, colour=memory),
        "<h2>Accuracy against peak memory</h2>",
        plots[1],
        _caption(trials, memory, colour=latency),
        "<h2>Pareto members</h2>",
        _counts(trials),
        _pareto_table(pareto, _highlights(run, pareto), how),
        _reasons(trials),
        "<h2>Predicted against measured latency</h2>",
        *(plots[2:] if len(plots) > 2 else []),
        _prediction_caption(run, trials, compared),
        _footer(run),
    ]
    body = "\n".join(sections)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>paretonas report: {_esc(name)}</title>\n<style>{_CSS}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
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
    trials: pd.DataFrame, pareto: pd.DataFrame, x: _Axis, colour: _Axis
) -> go.Figure:
    """Validation accuracy (what the search ranks on) against one cost, one dot per trial.

    Trials without an accuracy (over budget, so never trained; or failed) still show where
    their cost fell: they are drawn along a strip under the lowest accuracy, so the reader
    sees how much of the space the budget cut away.
    """
    floor = _floor(trials)
    figure = go.Figure()
    for name, mask, style in _groups(trials):
        rows = trials[mask & trials[x.column].notna()]
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
    good = trials[_feasible(trials) & trials[x.column].notna() & trials["accuracy"].notna()]
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
    if x.budget is not None:
        figure.add_vline(
            x=x.budget,
            line_dash="dash",
            line_color=BUDGET,
            annotation_text=f"budget {x.budget:g} {x.unit}",
            annotation_position="top right",
        )
    if not figure.data:
        figure.add_annotation(
            text="no trial has a value to plot yet",
            showarrow=False,
            xref="paper",
            yref="paper",
            x=0.5,
            y=0.5,
        )
    figure.update_layout(
        template="plotly_white",
        xaxis_title=x.title,
        yaxis_title="Accuracy (validation)",
        yaxis_tickformat=".0%",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
        hoverlabel={"align": "left"},
    )
    return figure


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
    if row["reason"]:
        lines.append(f"why: {_esc(row['reason'][:200])}")
    return "<br>".join(lines)


def _caption(trials: pd.DataFrame, x: _Axis, colour: _Axis) -> str:
    parts = [
        f"Each dot is one trial. Coloured dots were trained and are within every budget "
        f"(colour = {colour.noun}); red rings are the Pareto members and the red step is the "
        f"best accuracy reachable at each {x.noun}. Grey marks were over budget, failed or "
        f"stopped early; those without an accuracy (never trained) sit along the bottom."
    ]
    if x.budget is not None:
        parts.append(f"The dashed line is the budget ({x.budget:g} {x.unit}).")
    drawable = _feasible(trials) | np.logical_or.reduce([m for _, m, _ in _groups(trials)])
    missing = int((drawable & trials[x.column].isna()).sum())
    if missing:
        parts.append(f"{missing} trial(s) without a {x.noun} value are not drawn.")
    return f'<p class="caption">{_esc(" ".join(parts))}</p>'


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
    if kind == "measured":
        # The description usually starts with "measured: "; the sentence already says so.
        how = device.removeprefix("measured:").strip()
        latency = (
            f"Latency is measured ({how}) on the file a user would ship (pruned, int8 where "
            "the policy says so)"
        )
    else:
        latency = f"Latency is predicted, not measured ({device})"
    provenance = (
        f"{latency}; peak memory and flash are computed from the model at its "
        "bit-widths; accuracy is that same file run by ONNX Runtime on the held-out test "
        "split; the search ranked candidates on the validation split."
    )
    lines = ["<h2>Recommendation</h2>"]
    teacher = run.get("teacher") or {}
    if not _feasible(trials).any():
        lines.append(f'<p class="warn">{_esc(NO_FEASIBLE)}</p>')
    elif pareto.empty:
        lines.append(
            f'<p class="warn">{int(_feasible(trials).sum())} trial(s) are within budget, but '
            "pareto.csv lists no members yet; rebuild the report once the search has written "
            "it.</p>"
        )
    else:
        picks = _highlights(run, pareto)
        best, knee = picks.get("most accurate"), picks.get("knee point")
        if best is not None:
            row = pareto.loc[best]
            lines.append(
                f"<p><b>Most accurate within budget:</b> {_esc(_describe(row, teacher, kind))}</p>"
            )
        if knee is not None and knee == best:
            lines.append(
                "<p><b>Knee point</b> (the most balanced trade-off between the objectives): "
                "the same model.</p>"
            )
        elif knee is not None:
            lines.append(
                "<p><b>Knee point</b> (the most balanced trade-off between the objectives): "
                f"{_esc(_describe(pareto.loc[knee], teacher, kind))}</p>"
            )
    lines.append(f'<p class="note">{_esc(provenance)}</p>')
    return "\n".join(lines)


def _highlights(run: dict[str, Any], pareto: pd.DataFrame) -> dict[str, int]:
    """Row labels of the recommended Pareto members: "most accurate" (by test accuracy, the
    number the reader cares about) and "knee point" (over the run's own objectives, on
    validation accuracy, the same numbers the front was built from)."""
    picks: dict[str, int] = {}
    if pareto.empty:
        return picks
    accuracy = pareto["test_accuracy"]
    if accuracy.isna().all():
        accuracy = pareto["accuracy"]
    if accuracy.notna().any():
        # idxmax keeps the first of equals; pareto.csv is sorted by latency, so the faster one.
        picks["most accurate"] = int(accuracy.idxmax())
    names, directions = _objectives(run, pareto)
    if names:
        knee = knee_point(pareto[names].to_numpy(dtype=float), directions)
        if knee is not None:
            picks["knee point"] = int(pareto.index[knee])
    return picks


def _objectives(run: dict[str, Any], frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    names, directions = [], []
    for objective in run.get("objectives") or []:
        name, direction = objective.get("name"), objective.get("direction")
        if name in frame and direction in ("maximize", "minimize"):
            names.append(name)
            directions.append(direction)
    return names, directions


def _describe(row: pd.Series, teacher: dict[str, Any], kind: str = "measured") -> str:
    """One sentence on a recommended model, in the teacher's terms."""
    text = f"trial {_int(row['number'])} ({row['genome'] or 'no genome'}) "
    teacher_accuracy = _number(teacher.get("test_accuracy"))
    if math.isnan(row["test_accuracy"]):
        text += f"has no test accuracy yet (validation {_pct(row['accuracy'])})"
    else:
        text += f"reaches {_pct(row['test_accuracy'])} test accuracy"
        if teacher_accuracy is not None:
            gap = 100 * (row["test_accuracy"] - teacher_accuracy)
            side = "below" if gap < 0 else "above"
            text += f" ({abs(gap):.1f} points {side} the teacher, {_pct(teacher_accuracy)})"
    text += f", runs in {_float(row['latency_ms'], 3)} ms ({kind}) and needs "
    text += f"{_float(row['peak_memory_kb'], 1)} KB peak memory (computed)"
    teacher_params = _number(teacher.get("params"))
    if teacher_params and not math.isnan(row["params"]) and row["params"] > 0:
        text += f", with {_int(row['params'])} parameters "
        text += f"({teacher_params / row['params']:.1f}\u00d7 fewer than the teacher)"
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
    ("accuracy", "val acc"),
    ("test_accuracy", "test acc"),
    ("latency_ms", "latency ms (measured)"),
    ("peak_memory_kb", "peak memory KB (computed)"),
    ("flash_kb", "flash KB (computed)"),
    ("params", "params"),
    ("macs", "MACs"),
    ("seconds_total", "seconds"),
)


def _pareto_table(pareto: pd.DataFrame, highlights: dict[str, int], kind: str) -> str:
    if pareto.empty:
        return '<p class="note">No Pareto members yet.</p>'
    titles = dict(_TABLE_COLUMNS, latency_ms=f"latency ms ({kind})")
    labels: dict[int, list[str]] = {}
    for label, index in highlights.items():
        labels.setdefault(index, []).append(label)
    head = "".join(f"<th>{_esc(titles[column])}</th>" for column, _ in _TABLE_COLUMNS)
    rows = []
    for index, row in pareto.iterrows():
        cells = []
        for column, _ in _TABLE_COLUMNS:
            value = row[column]
            if column == "genome":
                tags = "".join(
                    f' <span class="tag">{_esc(tag)}</span>' for tag in labels.get(index, [])
                )
                cells.append(f'<td class="genome"><code>{_esc(value)}</code>{tags}</td>')
                continue
            if column in ("accuracy", "test_accuracy"):
                shown = _pct(value)
            elif column in ("number", "params", "macs"):
                shown = _int(value)
            elif column == "latency_ms":
                shown = _float(value, 3)
            else:
                shown = _float(value, 1)
            cells.append(f"<td>{_esc(shown)}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n"
        + "\n".join(rows)
        + "\n</tbody>\n</table>"
    )


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
"""
