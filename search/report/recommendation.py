"""The summary in words: for each budget tier the model to ship and the knee point, each
compared with the teacher; and the Pareto members that the table tags as these picks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from search.report.formatting import esc, fixed, integer, pct
from search.report.frames import feasible
from search.report.run_facts import budget_text
from search.results import budget_unmet
from search.summary import (
    AXES,
    budget_tiers,
    compare_to_teacher,
    knee,
    recommend,
    teacher_facts,
)

NO_FEASIBLE = "No feasible model found yet; loosen the budget or run more trials."


def recommendation(
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
    if not feasible(trials).any():
        lines.append(f'<p class="warn">{esc(NO_FEASIBLE)}</p>')
        unmet = budget_unmet(trials, run.get("budget") or {})
        if unmet:
            lines.append(f'<p class="warn">{esc(unmet[0].upper() + unmet[1:])}.</p>')
    elif pareto.empty:
        lines.append(
            f'<p class="warn">{int(feasible(trials).sum())} trial(s) are within budget, but '
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
                f" The teacher's latency is {fixed(teacher['latency_ms'], 3)} ms "
                f"({teacher.get('latency_source') or 'measured'})."
            )
        lines.append(f'<p class="summary">{esc(intro)}</p>')
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
                f'<li class="tier"><b>{esc(name)}</b> ({esc(budget_text(budget))}): '
                f"{esc(what)}</li>"
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
                f"{esc(_describe(pareto.loc[knee_label], teacher, kind))}</p>"
            )
    lines.append(f'<p class="note">{esc(provenance)}</p>')
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


def highlights(run: dict[str, Any], pareto: pd.DataFrame) -> list[tuple[str, Any]]:
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
    text = f"trial {integer(row['number'])} ({row['genome'] or 'no genome'}) "
    teacher_accuracy = teacher.get("test_accuracy")
    compared = compare_to_teacher(row, teacher)
    if math.isnan(row["test_accuracy"]):
        text += f"has no test accuracy yet (validation {pct(row['accuracy'])})"
    else:
        text += f"reaches {pct(row['test_accuracy'])} test accuracy"
        gap = compared["accuracy_vs_teacher_points"]
        if gap is not None:
            side = "below" if gap < 0 else "above"
            text += f" ({abs(gap):.1f} points {side} the teacher, {pct(teacher_accuracy)})"
    text += f", runs in {fixed(row['latency_ms'], 3)} ms ({kind}) and needs "
    text += f"{fixed(row['peak_memory_kb'], 1)} KB peak memory (computed)"
    if not math.isnan(row["flash_kb"]):
        text += f" and {fixed(row['flash_kb'], 1)} KB flash"
    smaller, faster = compared["smaller_than_teacher"], compared["faster_than_teacher"]
    if smaller is not None:
        text += (
            f"; it is {smaller:.1f}\u00d7 smaller than the teacher ({integer(row['params'])} "
            f"parameters against {integer(teacher.get('params'))})"
        )
    else:
        text += "; its size against the teacher is unknown (parameters not recorded)"
    if faster is not None:
        text += (
            f" and {faster:.1f}\u00d7 faster ({fixed(row['latency_ms'], 3)} ms against the "
            f"teacher's {fixed(teacher.get('latency_ms'), 3)} ms)"
        )
    return text + "."
