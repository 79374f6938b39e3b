"""The "Pareto members" section: how the trials ended, the sortable table of the members
(each with a picture of its architecture), and why the other trials were turned down."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pandas as pd

from search.report.architecture import architecture_strip
from search.report.formatting import counted, esc, fixed, integer, pct, to_number
from search.report.frames import feasible, repeats, searched


def trial_counts(trials: pd.DataFrame) -> str:
    """How the trials ended, by status, and how many trained ones are within every budget;
    the hand-designed baselines apart, since they are not trials of the search."""
    baselines = trials[~searched(trials)]
    trials = trials[searched(trials)]
    status = trials["status"]
    known = ("ok", "infeasible", "failed", "pruned")
    # "pruned" is also what compression does to channels: the counts say what happened in
    # words, with the status trials.csv gives it.
    shown = {"infeasible": "over budget", "pruned": "stopped early"}
    text = f"{counted(len(trials), 'trial')}: " + ", ".join(
        f"{int((status == s).sum())} {shown.get(s, s)}" + (f" ({s})" if s in shown else "")
        for s in known
    )
    interrupted = int((status == "interrupted").sum())
    if interrupted:
        text += f", {interrupted} interrupted (their worker died; retried)"
        known = (*known, "interrupted")
    unfinished = int((~status.isin(known)).sum())
    if unfinished:
        text += f", {unfinished} still running or without a status"
    if len(baselines):
        ended = baselines["status"].value_counts()
        text += (
            f"; besides them, {counted(len(baselines), 'hand-designed baseline')}, not counted as "
            "trials (" + ", ".join(f"{count} {name}" for name, count in ended.items()) + ")"
        )
    within = feasible(trials)
    repeated = int((within & repeats(trials)).sum())
    trained = int(within.sum()) - repeated
    text += f". {counted(trained, 'trained trial', verb=('is', 'are'))} within the "
    text += "configured budget"
    if repeated:
        text += (
            f" (and {counted(repeated, 'repeat')} of one of them, proposed again and not retrained)"
        )
    text += "."
    return f'<p class="counts">{esc(text)}</p>'


_TABLE_COLUMNS: Sequence[tuple[str, str]] = (
    ("number", "trial"),
    ("genome", "genome"),
    ("architecture", "architecture (per stage)"),
    ("accuracy", "val acc"),
    ("test_accuracy", "test acc"),
    ("latency_ms", "latency ms (measured)"),
    ("peak_memory_kb", "peak memory KB (computed)"),
    ("flash_kb", "flash KB (computed)"),
    # What the measured file runs per stage (empty where latency is predicted).
    ("executed", "runs as (per stage)"),
    ("params", "params"),
    ("macs", "multiply-adds"),
    ("seconds_total", "search seconds (train + measure)"),
)


def pareto_table(pareto: pd.DataFrame, highlights: list[tuple[str, Any]], kind: str) -> str:
    """The members, sortable by clicking a column header (the inline script at the end of
    the page), each with a per-stage picture of its architecture."""
    if pareto.empty:
        return '<p class="note">No Pareto members yet.</p>'
    titles = dict(_TABLE_COLUMNS, latency_ms=f"latency ms ({kind})")
    columns = [
        column
        for column, _ in _TABLE_COLUMNS
        if column != "executed" or pareto.get("executed", pd.Series(dtype=object)).notna().any()
    ]
    labels: dict[Any, list[str]] = {}
    for label, index in highlights:
        labels.setdefault(index, []).append(label)
    head = "".join(f'<th title="click to sort">{esc(titles[column])}</th>' for column in columns)
    rows = []
    for index, row in pareto.iterrows():
        cells = []
        for column in columns:
            if column == "genome":
                tags = "".join(
                    f' <span class="tag">{esc(tag)}</span>' for tag in labels.get(index, [])
                )
                cells.append(
                    f'<td class="genome" data-sort="{esc(row["genome"])}">'
                    f"<code>{esc(row['genome'])}</code>{tags}</td>"
                )
                continue
            if column == "architecture":
                cells.append(
                    f'<td class="arch-cell" data-sort="{esc(row["genome"])}">'
                    f"{architecture_strip(row['genome'])}</td>"
                )
                continue
            value = row[column]
            if column == "executed":
                shown = "" if pd.isna(value) else str(value)
                cells.append(f'<td data-sort="{esc(shown)}">{esc(shown)}</td>')
                continue
            if column in ("accuracy", "test_accuracy"):
                shown = pct(value)
            elif column in ("number", "params", "macs"):
                shown = integer(value)
            elif column == "latency_ms":
                shown = fixed(value, 3)
            else:
                shown = fixed(value, 1)
            number = to_number(value)
            key = "" if number is None else repr(number)
            cells.append(f'<td data-sort="{key}">{esc(shown)}</td>')
        pick = ' class="pick"' if index in labels else ""
        rows.append(f"<tr{pick}>{''.join(cells)}</tr>")
    return (
        '<p class="note">Click a column header to sort; click again to reverse.</p>\n'
        f'<table class="sortable" id="pareto-table">\n<thead><tr>{head}</tr></thead>\n'
        "<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>"
    )


_OVER_PREFIX = "over budget: "  # evaluators.pipeline's reason for an infeasible candidate
_OVER_BUDGET = re.compile(r"(\w+) ([-+.\deE]+) > ([-+.\deE]+)")


def _seen(key: str, reasons: list[str]) -> str:
    """A group's line: the reason itself, or for trials over the same bounds, the range of
    the figures they reached on each."""
    if not key.startswith("over budget on ") or len(reasons) == 1:
        return reasons[0]
    figures: dict[str, list[float]] = {}
    for reason in reasons:
        for axis, value, _ in _OVER_BUDGET.findall(reason):
            figures.setdefault(axis, []).append(float(value))
    seen = "; ".join(
        f"{axis} {min(v):.4g}" + (f" to {max(v):.4g}" if max(v) > min(v) else "")
        for axis, v in figures.items()
    )
    return f"{key}: {seen}"


def reasons(trials: pd.DataFrame) -> str:
    """Why trials were turned down, grouped: the first place to look when few are feasible."""
    rejected = trials[
        trials["status"].isin(("infeasible", "failed", "interrupted")) & (trials["reason"] != "")
    ]
    if rejected.empty:
        return ""
    groups: dict[tuple[str, str], list[str]] = {}
    for status, reason in zip(rejected["status"], rejected["reason"], strict=True):
        over = _OVER_BUDGET.findall(reason) if reason.startswith(_OVER_PREFIX) else []
        # Over-budget trials differ in their figures only: one line per set of bounds broken.
        key = (
            "over budget on " + " and ".join(f"{a} (> {b})" for a, _, b in over) if over else reason
        )
        groups.setdefault((status, key), []).append(reason)
    ordered = sorted(groups.items(), key=lambda item: -len(item[1]))
    items = [
        f"<li>{counted(len(found), 'trial')} {esc(status)}: {esc(_seen(key, found)[:300])}</li>"
        for (status, key), found in ordered[:10]
    ]
    return (
        "<details><summary>Why trials were over budget or failed</summary>\n<ul>\n"
        + "\n".join(items)
        + "\n</ul>\n</details>"
    )
