"""One page overlaying several runs (two devices, two samplers): each run's front in its own
colour, and each run's recommendation at its own configured budget."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from search.report.colours import BUDGET, RUN_COLOURS
from search.report.comparability import comparability_notes, effort_notes
from search.report.figures import Axis, accuracy_layout, front_line, hover_text
from search.report.formatting import (
    counted,
    esc,
    fixed,
    integer,
    pct,
    pct_interval,
    to_number,
)
from search.report.frames import feasible, normalise, repeats, searched
from search.report.page import embed_figures, html_page
from search.report.prediction import latency_kind
from search.report.recommendation import LOWER_BOUND
from search.report.run_facts import budget_text
from search.summary import (
    accuracy_interval,
    compare_to_teacher,
    latency_is_lower_bound,
    recommend,
    teacher_facts,
)


def render_comparison(
    runs: Sequence[tuple[Path, dict[str, Any], pd.DataFrame, pd.DataFrame]],
) -> str:
    """One page overlaying several runs (say, two devices or two samplers): each run's Pareto
    front in its own colour on the two 2-D figures, and each run's recommendation at its own
    configured budget. Pure: ``runs`` is (folder, run.json, trials, pareto) per run."""
    prepared = []
    labels = run_labels(runs)
    for index, ((_, run, trials, pareto), label) in enumerate(zip(runs, labels, strict=True)):
        colour = RUN_COLOURS[index % len(RUN_COLOURS)]
        prepared.append((label, colour, run, normalise(trials), normalise(pareto)))
    kinds = {latency_kind(run, trials) for _, _, run, trials, _ in prepared}
    how = kinds.pop() if len(kinds) == 1 else "measured or predicted: see each run"
    latency = Axis("latency_ms", "latency", f"Latency (ms, {how})", "ms", None)
    memory = Axis("peak_memory_kb", "peak memory", "Peak memory (KB, computed)", "KB", None)
    plots = embed_figures(
        {
            "figure-1": _overlay_figure(prepared, latency),
            "figure-2": _overlay_figure(prepared, memory),
        }
    )
    names = ", ".join(label for label, *_ in prepared)
    notes = comparison_notes(runs)
    sections = [
        f"<h1>paretonas: {esc(len(prepared))} runs compared</h1>",
        f'<p class="meta">{esc(names)}</p>',
        *(f'<p class="warn">{esc(note)}</p>' for note in notes),
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
    return html_page(f"paretonas: {names}", sections)


def run_labels(runs: Sequence[tuple[Path, dict[str, Any], pd.DataFrame, pd.DataFrame]]) -> list:
    """One label per run, for legends, tables and notes: its name, with its folder added where
    two runs share a name."""
    names = [str(run.get("name") or folder.name) for folder, run, _, _ in runs]
    return [
        f"{name} ({folder})" if names.count(name) > 1 else name
        for name, (folder, *_) in zip(names, runs, strict=True)
    ]


def comparison_notes(
    runs: Sequence[tuple[Path, dict[str, Any], pd.DataFrame, pd.DataFrame]],
) -> list[str]:
    """Everything that makes the overlaid runs unlike, one sentence each: their data and
    recipe (``comparability_notes``), then their effort (``effort_notes``)."""
    labels = run_labels(runs)
    pairs = list(zip(labels, runs, strict=True))
    return comparability_notes([(label, run) for label, (_, run, _, _) in pairs]) + effort_notes(
        [(label, run, _finished(trials)) for label, (_, run, trials, _) in pairs]
    )


def _finished(trials: pd.DataFrame) -> int:
    """Trials that ended (trained, over budget, stopped, failed): the search's effort. The
    hand-designed baselines are no part of it."""
    if "status" not in trials:
        return 0
    ended = trials["status"].isin(("ok", "infeasible", "pruned", "failed"))
    return int((ended & searched(trials)).sum())


def _search_text(run: dict[str, Any], trials: pd.DataFrame) -> str:
    """How a run searched: its sampler, the seed that drew its candidates, its effort; and
    its baselines apart, since they are not trials of the search."""
    seed = run.get("sampler_seed", run.get("seed"))
    ok = trials["status"] == "ok" if "status" in trials else pd.Series(False, index=trials.index)
    trained = int((ok & ~repeats(trials) & searched(trials)).sum())
    text = (
        f"{run.get('sampler') or '?'}, sampler seed {'?' if seed is None else seed}; "
        f"{_finished(trials)} trials, {trained} trained"
    )
    baselines = int((~searched(trials)).sum())
    if baselines:
        text += f"; {counted(baselines, 'hand-designed baseline')} besides"
    return text


def _overlay_figure(prepared: list, x: Axis) -> go.Figure:
    figure = go.Figure()
    budgets: dict[float, list[tuple[str, str]]] = {}
    for label, colour, run, trials, pareto in prepared:
        shown = feasible(trials) & searched(trials) & trials["accuracy"].notna()
        good = trials[shown & trials[x.column].notna()]
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
                    text=[hover_text(row) for _, row in good.iterrows()],
                    hovertemplate=f"<b>{esc(label)}</b><br>%{{text}}<extra></extra>",
                )
            )
        front = pareto[pareto[x.column].notna() & pareto["accuracy"].notna()]
        if not front.empty:
            figure.add_trace(front_line(front, x.column, colour, f"{label}: front", label))
            figure.add_trace(
                go.Scatter(
                    x=front[x.column],
                    y=front["accuracy"],
                    mode="markers",
                    name=f"{label}: Pareto members ({len(front)})",
                    legendgroup=label,
                    marker={"size": 11, "color": colour, "line": {"width": 1, "color": "white"}},
                    text=[hover_text(row) for _, row in front.iterrows()],
                    hovertemplate=f"<b>{esc(label)}</b><br>%{{text}}<extra></extra>",
                )
            )
        bound = to_number((run.get("budget") or {}).get(x.column))
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
    return accuracy_layout(figure, x.title, "no run has a value to plot yet")


def _with_interval(accuracy: Any, run: dict[str, Any]) -> str:
    """A test accuracy with the 95% interval its run's test split allows, where known."""
    images = to_number((run.get("split_sizes") or {}).get("test"))
    return pct_interval(accuracy, accuracy_interval(to_number(accuracy), images))


def _latency(run: dict[str, Any], row: pd.Series, kind: str) -> str:
    """How a pick's latency is known, a roofline's called the lower bound it is."""
    if kind == "predicted" and latency_is_lower_bound(run, row):
        return f"{kind}, {LOWER_BOUND}"
    return kind


def _comparison_table(prepared: list) -> str:
    head = "".join(
        f'<th title="click to sort">{esc(title)}</th>'
        for title in (
            "run",
            "search",
            "device",
            "budget",
            "trial",
            "genome",
            "test acc (95% CI)",
            "teacher test acc",
            "latency ms",
            "peak memory KB",
            "params",
            "\u00d7 fewer parameters than the teacher",
            "Pareto members",
        )
    )
    rows = []
    for label, colour, run, trials, pareto in prepared:
        device = run.get("device") or {}
        kind = latency_kind(run, trials)
        teacher = teacher_facts(run)
        row = recommend(pareto, run.get("budget"))
        start = [
            f'<td class="genome" data-sort="{esc(label)}"><span class="swatch" '
            f'style="background:{colour}"></span>{esc(label)}</td>',
            f'<td class="genome">{esc(_search_text(run, trials))}</td>',
            f'<td class="genome">{esc(device.get("name") or "?")}: '
            f"{esc(device.get('description') or 'not recorded')}</td>",
            f'<td class="genome">{esc(budget_text(run.get("budget") or {}))}</td>',
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
                (row["number"], integer(row["number"])),
                None,
                (row["test_accuracy"], _with_interval(row["test_accuracy"], run)),
                (teacher["test_accuracy"], pct(teacher["test_accuracy"])),
                (row["latency_ms"], f"{fixed(row['latency_ms'], 3)} ({_latency(run, row, kind)})"),
                (row["peak_memory_kb"], fixed(row["peak_memory_kb"], 1)),
                (row["params"], integer(row["params"])),
                (smaller, "\u2014" if smaller is None else f"{smaller:.1f}\u00d7"),
            ]
            rest = []
            for value in values:
                if value is None:
                    rest.append(
                        f'<td class="genome" data-sort="{esc(row["genome"])}">'
                        f"<code>{esc(row['genome'])}</code></td>"
                    )
                    continue
                number = to_number(value[0])
                key = "" if number is None else repr(number)
                rest.append(f'<td data-sort="{key}">{esc(value[1])}</td>')
        members = f'<td data-sort="{len(pareto)}">{len(pareto)}</td>'
        rows.append(f"<tr>{''.join(start + rest)}{members}</tr>")
    return (
        f'<table class="sortable" id="compare-table">\n<thead><tr>{head}</tr></thead>\n'
        "<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>"
    )
