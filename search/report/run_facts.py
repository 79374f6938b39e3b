"""The lines at the head and foot of a run's page: what was searched, on which device, under
which budget, against which teacher, and with which search settings."""

from __future__ import annotations

from typing import Any

from search.report.formatting import counted, esc, fixed, integer, pct, to_number


def header(run: dict[str, Any], device: str) -> str:
    """The page's title and the run's facts: dataset, device, budget and teacher."""
    teacher = run.get("teacher") or {}
    shape = run.get("input_shape") or []
    shape_text = "\u00d7".join(str(v) for v in shape) if shape else "?"
    dataset = str(run.get("dataset") or "?")
    source = run.get("dataset_source")
    dataset_text = f"{dataset} ({source})" if source else dataset
    teacher_text = (
        f"The teacher model reaches {pct(teacher.get('test_accuracy'))} test accuracy "
        f"with {integer(teacher.get('params'))} parameters"
    )
    if teacher.get("source"):
        teacher_text += f" ({teacher['source']})"
    if teacher.get("latency_ms") is not None:
        teacher_text += f"; it runs in {fixed(teacher['latency_ms'], 3)} ms (measured)"
    device_name = (run.get("device") or {}).get("name") or "device"
    # A predicted device's description begins with its name already.
    device_shown = device if device.startswith(device_name) else f"{device_name}: {device}"
    return "\n".join(
        [
            f"<h1>paretonas report: {esc(run.get('name') or 'unnamed run')}</h1>",
            '<p class="meta">',
            f"<b>Dataset:</b> {esc(dataset_text)}; input {esc(shape_text)}, "
            f"{esc(integer(run.get('num_classes')))} classes.<br>",
            f"<b>Device:</b> {esc(device_shown)}.<br>",
            f"<b>Budget:</b> {esc(budget_text(run.get('budget') or {}))}.<br>",
            f"<b>Teacher:</b> {esc(teacher_text)}.",
            "</p>",
        ]
    )


def budget_text(budget: dict[str, Any]) -> str:
    """The budget in words, one clause per bound, saying so where a bound is not set."""
    parts = []
    for key, label, unit in (
        ("latency_ms", "latency", "ms"),
        ("peak_memory_kb", "peak memory", "KB"),
        ("flash_kb", "flash", "KB"),
    ):
        value = to_number(budget.get(key))
        parts.append(
            f"{label} \u2264 {value:g} {unit}" if value is not None else f"{label}: no limit"
        )
    return ", ".join(parts)


def footer(run: dict[str, Any]) -> str:
    """How the search was run (sampler, seed, training fidelity, objectives) and when the
    run's files were last updated."""
    fidelity = run.get("fidelity") or {}
    objectives = ", ".join(
        f"{o.get('name')} ({o.get('direction')})" for o in run.get("objectives") or []
    )
    text = (
        f"Search: sampler {run.get('sampler', '?')}, seed {run.get('seed', '?')}; each "
        f"candidate trained on {integer(fidelity.get('train_subset'))} images for "
        f"{_count(fidelity.get('epochs'), 'epoch')}; objectives: {objectives or '?'}. "
        f"{_stopping_text(fidelity.get('early_stopping'))}"
        f"Updated {run.get('updated', '?')}."
    )
    return f'<p class="footer">{esc(text)}</p>'


def _stopping_text(stopping: Any) -> str:
    """Early stopping as the run had it, in a sentence; nothing for a run.json without it."""
    if not isinstance(stopping, dict):
        return ""
    if not stopping.get("enabled", True):
        return "Early stopping: off. "
    text = "Early stopping: a candidate was stopped once the front dominated it even at its "
    text += "optimistic final accuracy"
    min_gain = to_number(stopping.get("min_gain"))
    if min_gain:
        text += f", or once it could add under {min_gain * 100:g}% to the front's hypervolume"
        if stopping.get("keep_contenders", False):
            text += " and could not become the most accurate model within budget"
    told = "expected final" if stopping.get("feedback") == "expected" else "measured"
    return text + f"; the sampler learnt a stopped candidate's {told} accuracy. "


def _count(value: Any, noun: str) -> str:
    """A count from run.json with its noun; a dash and the plural where it is missing."""
    number = to_number(value)
    return f"{integer(value)} {noun}s" if number is None else counted(round(number), noun)
