"""The summary in words: for each budget tier the model to ship and the knee point, each
compared with the teacher; and the Pareto members that the table tags as these picks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from search.report.architecture import parse_genome
from search.report.formatting import counted, esc, fixed, integer, pct, pct_interval
from search.report.frames import feasible, searched
from search.report.picks import Pick, row_label
from search.report.run_facts import budget_text
from search.results import budget_unmet
from search.summary import (
    AXES,
    CONFIGURED,
    compare_to_teacher,
    knee,
    latency_is_lower_bound,
    teacher_facts,
)

NO_FEASIBLE = "No feasible model found yet; loosen the budget or run more trials."
# Said after a roofline-predicted latency: the device can only be slower than its roofline.
LOWER_BOUND = "roofline: a lower bound"


def recommendation(
    run: dict[str, Any],
    trials: pd.DataFrame,
    pareto: pd.DataFrame,
    tiers: Sequence[dict[str, Any]],
    device: str,
    kind: str,
) -> str:
    """The summary, as a table and in words: per budget tier (summary.json's ``tiers``), the
    model to ship and how it compares."""
    device_name = (run.get("device") or {}).get("name") or "the device"
    if kind == "measured":
        # The description usually starts with "measured: "; the sentence already says so.
        how = device.removeprefix("measured:").strip()
        shipped = {
            True: "with its pruning and quantization applied",
            False: "fp32 and unpruned: no Pareto member of this run is pruned or quantized",
            None: "compressed as its policy says",
        }[_compressed(pareto)]
        if (
            pareto.get("executed", pd.Series(dtype=object))
            .astype(str)
            .str.contains("executed as fp32")
            .any()
        ):
            shipped = (
                "with its compression applied, its quantization where ONNX Runtime runs it: "
                "a stage runs int8 only with weights of 8 bits or fewer and 8-bit "
                "activations, any other runs in fp32 and is costed so, as the table's 'runs "
                "as' column says"
            )
        latency = f"Latency is measured ({how}) on the file a user would ship ({shipped})"
        measured = f"Latency was measured on {device_name} ({how})."
    else:
        # run.json's description reads "NAME (what): latency predicted (how), not measured":
        # only the how, in parentheses, once.
        how = device.split(": latency predicted", 1)[-1].removesuffix(", not measured").strip()
        how = how.removeprefix("(").removesuffix(")") or device
        latency = f"Latency is predicted, not measured ({how})"
        measured = f"Latency on {device_name} is predicted, not measured ({how})."
    if any(tier.get("latency_is_lower_bound") for tier in tiers):
        latency += (
            "; a roofline assumes the device's peak compute and bandwidth without stalls, so "
            "the real latency is higher"
        )
    provenance = (
        f"{latency}; peak memory and flash are computed from the model at the "
        "bit-widths the device runs each stage at (peak memory for a perfectly packed arena without the runtime's scratch "
        "buffers: a lower bound); accuracy is that same file run by ONNX Runtime on the "
        "held-out test split; the search ranked candidates on the validation split."
    )
    lines = ["<h2>Summary</h2>"]
    teacher = teacher_facts(run)
    # Baselines are drawn beside the front, never on it: they are no search result.
    within = feasible(trials) & searched(trials)
    if not within.any():
        lines.append(f'<p class="warn">{esc(NO_FEASIBLE)}</p>')
        unmet = budget_unmet(trials, run.get("budget") or {})
        if unmet:
            lines.append(f'<p class="warn">{esc(unmet[0].upper() + unmet[1:])}.</p>')
    elif pareto.empty:
        lines.append(
            f'<p class="warn">{counted(int(within.sum()), "trial", verb=("is", "are"))} '
            "within budget, but "
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
        lines.append(glance_table(tiers, teacher, kind))
        items = []
        described: dict[Any, str] = {}  # row label -> the first tier it was described under
        for tier in tiers:
            budget = tier["budget"]
            label = row_label(pareto, tier.get("trial"))
            row = None if label is None else pareto.loc[label]
            name = tier["name"][:1].upper() + tier["name"][1:]
            if row is None:
                what = "no Pareto member meets this budget."
            elif row.name in described:
                what = (
                    f"the same model as for {described[row.name]} above: trial {row['number']:g}."
                )
            else:
                what = _describe(row, teacher, kind, run)
                described[row.name] = name
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
                "<p><b>Knee point</b> (the member nearest the ideal point, each objective "
                "scaled over the front's range: a geometric balance that knows nothing of the "
                "accuracy an application needs, so judge it by its numbers; "
                "marked with a star on the two-dimensional figures and a gold diamond in the "
                "three-dimensional one): "
                f"{esc(_describe(pareto.loc[knee_label], teacher, kind, run))}</p>"
            )
    lines.append(f'<p class="note">{esc(provenance)}</p>')
    return "\n".join(lines)


_BOUND_NAMES = {column: label for column, label, _ in AXES}


def glance_table(tiers: Sequence[dict[str, Any]], teacher: dict[str, Any], kind: str) -> str:
    """The summary at a glance: one row per budget tier (summary.json's ``tiers``), the
    model to ship and what it costs against the teacher and the budget. No speed-up column
    when the teacher's latency is not known."""
    picked = [tier for tier in tiers if tier.get("trial") is not None]
    if any(tier.get("latency_is_lower_bound") for tier in picked):
        kind += f", {LOWER_BOUND}"
    columns: list[tuple[str, Any]] = [
        ("model to ship", lambda t: f"trial {t['trial']}"),
        ("test accuracy", _accuracy_with_interval),
        ("against the teacher", lambda t: _signed(t.get("accuracy_vs_teacher_points"))),
        (f"latency ms ({kind})", lambda t: fixed(t.get("latency_ms"), 3)),
        ("peak memory KB (computed)", lambda t: fixed(t.get("peak_memory_kb"), 1)),
        ("flash KB (computed)", lambda t: fixed(t.get("flash_kb"), 1)),
        ("times fewer parameters than the teacher", lambda t: _times(t, "smaller_than_teacher")),
    ]
    if any(tier.get("faster_than_teacher") is not None for tier in picked):
        columns.append(
            ("times faster than the teacher", lambda t: _times(t, "faster_than_teacher"))
        )
    columns.append(("nearest bound: share used", _closest))
    head = "<th>budget</th>" + "".join(f"<th>{esc(title)}</th>" for title, _ in columns)
    rows = []
    for tier in tiers:
        name = f'<td class="tier-name">{esc(tier["name"][:1].upper() + tier["name"][1:])}</td>'
        if tier.get("trial") is None:
            rows.append(f'<tr>{name}<td colspan="{len(columns)}">no model meets it</td></tr>')
        else:
            cells = "".join(f"<td>{esc(cell(tier))}</td>" for _, cell in columns)
            rows.append(f"<tr>{name}{cells}</tr>")
    note = (
        f"The teacher: {pct(teacher.get('test_accuracy'))} test accuracy (fp32), "
        f"{integer(teacher.get('params'))} parameters"
    )
    if teacher.get("latency_ms") is not None:
        note += f", {fixed(teacher['latency_ms'], 3)} ms"
    if teacher.get("source"):
        # How long the teacher was trained says how strong a reference it is.
        note += f" ({teacher['source']})"
    note += "."
    images = next((t["test_images"] for t in picked if t.get("test_images")), None)
    if images:
        note += (
            f" The 95% CI after each test accuracy is the interval (Wilson) that "
            f"{integer(images)} test images allow; each model was trained once, so "
            "differences between trainings are not in it."
        )
    return (
        f'<table class="glance">\n<thead><tr>{head}</tr></thead>\n<tbody>\n'
        + "\n".join(rows)
        + f'\n</tbody>\n</table>\n<p class="note">{esc(note)}</p>'
    )


def _accuracy_with_interval(tier: dict[str, Any]) -> str:
    interval = tier.get("test_accuracy_interval") or {}
    lower, upper = interval.get("lower"), interval.get("upper")
    bounds = None if lower is None or upper is None else (lower, upper)
    return pct_interval(tier.get("test_accuracy"), bounds)


def _signed(points: float | None) -> str:
    return "unknown" if points is None else f"{points:+.1f} points"


def _times(tier: dict[str, Any], key: str) -> str:
    value = tier.get(key)
    return "unknown" if value is None else f"{value:.1f}\u00d7"


def _closest(tier: dict[str, Any]) -> str:
    closest = tier.get("closest_bound")
    if closest is None:
        return "no bound"
    return f"{_BOUND_NAMES[closest['name']]} {100 * closest['share']:.0f}%"


def _compressed(pareto: pd.DataFrame) -> bool | None:
    """Whether any Pareto member is pruned, quantized, sparse or factorized, as its genome's
    policy says; None when a policy cannot be read (the page then claims neither)."""
    for genome in pareto.get("genome", []):
        parsed = parse_genome(genome)
        if parsed is None or any("prune_ratio" not in stage for stage in parsed["stages"]):
            return None
        for stage in parsed["stages"]:
            if (
                stage["prune_ratio"] > 0
                or stage["weight_bits"] < 32
                or stage["activation_bits"] < 32
                or stage["sparsity"] > 0
                or stage["rank_ratio"] < 1
            ):
                return True
    return False


def _configured(tiers: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return next((t for t in tiers if t["name"] == CONFIGURED), tiers[0])


def _looser(tier: dict[str, Any], configured: dict[str, Any]) -> bool:
    """Whether ``tier`` allows more than the configured budget on some axis."""
    for column, _, _ in AXES:
        bound, limit = tier["budget"].get(column), configured["budget"].get(column)
        if limit is not None and (bound is None or bound > limit):
            return True
    return False


def highlights(picks: Sequence[Pick], knee_label: Any) -> list[tuple[str, Any]]:
    """(tag, row label) of the recommended Pareto members: each tier's pick (``picks``, as
    the figures mark them) and the knee point, both on validation accuracy (the numbers
    the front was built from; the test split only reports)."""
    tags = [(f"best: {tier.split(' (')[0]}", pick.label) for pick in picks for tier in pick.tiers]
    if knee_label is not None:
        tags.append(("knee point", knee_label))
    return tags


def _describe(
    row: pd.Series, teacher: dict[str, Any], kind: str = "measured", run: dict | None = None
) -> str:
    """One sentence on a recommended model, in the teacher's terms; a ratio is given only
    where both sides were measured or counted (never an invented teacher latency), and a
    roofline latency is called the lower bound it is."""
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
    if kind == "predicted" and latency_is_lower_bound(run or {}, row):
        kind += f", {LOWER_BOUND}"
    text += f", runs in {fixed(row['latency_ms'], 3)} ms ({kind}) and needs "
    text += f"{fixed(row['peak_memory_kb'], 1)} KB peak memory (computed)"
    if not math.isnan(row["flash_kb"]):
        text += f" and {fixed(row['flash_kb'], 1)} KB flash"
    smaller, faster = compared["smaller_than_teacher"], compared["faster_than_teacher"]
    if smaller is not None:
        text += (
            f"; it has {smaller:.1f}\u00d7 fewer parameters than the teacher "
            f"({integer(row['params'])} against {integer(teacher.get('params'))})"
        )
    else:
        text += "; its size against the teacher is unknown (parameters not recorded)"
    if faster is not None:
        text += (
            f" and is {faster:.1f}\u00d7 faster ({fixed(row['latency_ms'], 3)} ms against the "
            f"teacher's {fixed(teacher.get('latency_ms'), 3)} ms)"
        )
    return text + "."
