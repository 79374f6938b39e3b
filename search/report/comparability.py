"""What makes the accuracies of overlaid runs unlike (other data, other validation or test
images, another training recipe), so the overlay page and the log can say so."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def comparability_notes(runs: Sequence[tuple[str, dict[str, Any]]]) -> list[str]:
    """What makes the accuracies of overlaid runs unlike, one sentence per difference, each
    run against the first: other data, other validation or test images (the split follows
    the run's ``seed``), another training fidelity. Pure: ``runs`` is (label, run.json)."""
    if len(runs) < 2:
        return []
    first_label, first = runs[0]
    notes = []
    for label, run in runs[1:]:
        pair = f"{first_label} and {label}"
        if run.get("dataset") != first.get("dataset"):
            notes.append(
                f"{pair} searched different datasets ({first.get('dataset')} and "
                f"{run.get('dataset')}): their accuracies are not comparable."
            )
            continue
        differ = _differing_splits(first, run)
        if differ:
            seeds = (first.get("seed"), run.get("seed"))
            why = (
                f"the split follows the run's seed, {seeds[0]} and {seeds[1]}"
                if seeds[0] != seeds[1]
                else "other data files or val_fraction"
            )
            notes.append(
                f"{pair} measured accuracy on different {' and '.join(differ)} images "
                f"({why}), so a gap between their accuracies is partly the data's; to "
                "compare two searches on the same images, vary sampler_seed and keep seed."
            )
        fidelities = (_fidelity_text(first), _fidelity_text(run))
        if fidelities[0] != fidelities[1]:
            notes.append(
                f"{pair} trained each candidate differently ({fidelities[0]} against "
                f"{fidelities[1]}): their accuracies are not from the same recipe."
            )
        devices = (first.get("device") or {}, run.get("device") or {})
        same_device = device_name(devices[0]) == device_name(devices[1])
        models = (devices[0].get("latency"), devices[1].get("latency"))
        if (
            same_device
            and models != ("measured", "measured")
            and (devices[0].get("description") != devices[1].get("description"))
        ):
            # Two devices are what an overlay compares; one device known two ways is not:
            # a roofline and a fitted predictor put the same network at different times.
            notes.append(
                f"{pair} know {devices[0].get('name')}'s latency differently "
                f"({devices[0].get('latency')}: {devices[0].get('description')}; against "
                f"{devices[1].get('latency')}: {devices[1].get('description')}): their latency "
                "axes are not comparable."
            )
        elif same_device and devices[0].get("description") != devices[1].get("description"):
            # Both measured, but "host" is whichever machine ran the search, and threads or
            # the runtime change a time as much as an architecture does.
            notes.append(
                f"{pair} measured {devices[0].get('name')}'s latency under different "
                f"conditions ({devices[0].get('description')}; against "
                f"{devices[1].get('description')}): a gap between their latencies is partly "
                "the measurement's."
            )
    return notes


def effort_notes(runs: Sequence[tuple[str, dict[str, Any], int]]) -> list[str]:
    """What makes the overlaid fronts unlike as searches: other numbers of trials (more
    trials, more chances), and samplers that share their first, random, trials. Pure:
    ``runs`` is (label, run.json, trials finished)."""
    if len(runs) < 2:
        return []
    notes = []
    counts = [count for _, _, count in runs]
    if len(set(counts)) > 1:
        listed = ", ".join(f"{label}: {count}" for label, _, count in runs)
        notes.append(
            f"The runs finished different numbers of trials ({listed}): a search with more "
            "trials had more chances to find good models, so a better front is partly more "
            "effort; to compare samplers, give each the same --trials."
        )
    first_label, first, _ = runs[0]
    seed = first.get("sampler_seed", first.get("seed"))
    for label, run, _ in runs[1:]:
        if seed is None or run.get("sampler_seed", run.get("seed")) != seed:
            continue
        if run.get("sampler") != first.get("sampler"):
            notes.append(
                f"{first_label} and {label} drew candidates with the same sampler seed "
                f"({seed}): the model-based samplers start with a few random candidates (TPE "
                "and GP: 5; NSGA-II: its first generation of 10), the same ones a random "
                "search draws first, so their first points coincide."
            )
    return notes


def _differing_splits(first: dict[str, Any], other: dict[str, Any]) -> list[str]:
    """Which of validation and test hold other images in ``other`` than in ``first``; for
    runs that predate run.json's ``data_splits``, a different seed is taken as a sign."""
    mine, theirs = first.get("data_splits"), other.get("data_splits")
    if mine and theirs:
        return [split for split in ("validation", "test") if mine.get(split) != theirs.get(split)]
    return ["validation"] if first.get("seed") != other.get("seed") else []


def _fidelity_text(run: dict[str, Any]) -> str:
    fidelity = run.get("fidelity") or {}
    text = f"{fidelity.get('train_subset', '?')} images x {fidelity.get('epochs', '?')} epochs"
    for key, what in (("finetune_epochs", "fine-tune"), ("qat_epochs", "QAT")):
        if fidelity.get(key):
            text += f" + {fidelity[key]} {what}"
    return text


def device_name(device: dict[str, Any]) -> str | None:
    """A run's device by its own name. A run.json written before 2026-11-30 names a device
    given as a file by that file's path, and a device file is named after its device."""
    name = device.get("name")
    if isinstance(name, str) and name.endswith((".yaml", ".yml")):
        return Path(name).stem
    return name
