"""What the reader is told under the accuracy-against-cost figures: how to read them, where the
budget line is, which models are recommended, how the baselines were trained, and what could
not be drawn or lies beyond the figure's edge."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from search.report.architecture import parse_genome
from search.report.figures import Axis
from search.report.formatting import counted, esc, pct, to_number
from search.report.frames import faded_groups, feasible, searched
from search.report.marks import beyond
from search.report.picks import Pick
from search.summary import teacher_facts

# Why the figures' numbers are not the summary's: both are true, on different images.
SPLITS = (
    "The figures plot validation accuracy, which the search chose by; the summary quotes test "
    "accuracy, on images held out from that choice"
)


def splits_note(run: dict[str, Any] | None) -> str:
    """Which accuracy the figures plot, and how far the validation split's size lets two
    candidates' validation accuracies be told apart."""
    images = to_number(((run or {}).get("split_sizes") or {}).get("validation"))
    if not images:
        return f"{SPLITS}, so the two differ by chance."
    return (
        f"{SPLITS}. With {int(images):,} validation images, one image is "
        f"{100 / images:.2g} points of validation accuracy: the two accuracies differ by "
        "chance, and members a few images apart are not told apart by it."
    )


def scatter_caption(
    trials: pd.DataFrame,
    x: Axis,
    colour: Axis,
    run: dict[str, Any] | None = None,
    picks: Sequence[Pick] = (),
) -> str:
    parts = [
        f"Each dot is one trial. Coloured dots were trained and are within the configured budget "
        f"(colour = {colour.noun}); red rings are the Pareto members and the red step is the "
        f"best accuracy reachable at each {x.noun}. Grey marks were over budget, failed or "
        f"stopped early; those without an accuracy (never trained) sit along the bottom."
    ]
    if picks:
        parts.append(
            "Black diamonds, labelled, mark the model the summary recommends for each budget."
        )
    if x.budget is not None:
        parts.append(f"The dashed line is the budget ({x.budget:g} {x.unit}).")
    teacher = teacher_facts(run or {})["test_accuracy"]
    if teacher is not None:
        parts.append(f"The green dashed line is the teacher's test accuracy ({pct(teacher)}).")
    parts.append(splits_note(run))
    past = beyond(trials, x)
    if len(past):
        parts.append(
            f"So that the rest can be read, the {x.noun} axis stops at {x.limit:,.4g} {x.unit}: "
            f"{counted(len(past), 'trial', verb=('lies', 'lie'))} beyond its right edge, the "
            "furthest at "
            f"{past.max():,.4g} {x.unit}."
        )
    if (trials["baseline"] != "").any():
        parts.append(_baseline_training(trials, (run or {}).get("fidelity") or {}))
    drawable = feasible(trials) | np.logical_or.reduce([m for _, m, _ in faded_groups(trials)])
    missing = int((drawable & trials[x.column].isna()).sum())
    if missing:
        parts.append(f"Not drawn: {counted(missing, 'trial')} without a {x.noun} value.")
    return f'<p class="caption">{esc(" ".join(parts))}</p>'


def _baseline_training(trials: pd.DataFrame, fidelity: dict[str, Any]) -> str:
    """What the baselines were and how much training they had against the candidates, read
    from the run's rows: their bit-widths (fp32 where the device runs it, int8 on an
    int8-only MCU), and which of the fine-tune after pruning and the QAT epochs they and the
    candidates went through (trials.csv's seconds per phase)."""
    own = searched(trials)
    baselines = trials[~own]
    trained = baselines[baselines["status"] == "ok"]
    policies = _policies(trained if len(trained) else baselines)
    quantized = any(w < 32 or a < 32 for w, a, _ in policies)
    compressed = any(c for _, _, c in policies)
    text = "Labelled squares are the hand-designed baselines"
    if policies:
        precisions = " and ".join(dict.fromkeys(_precision(w, a) for w, a, _ in policies))
        text += f" ({precisions}, {'compressed' if compressed else 'unpruned'})"
    text += f", trained with the run's KD recipe for {fidelity.get('epochs', 'the same')} epochs"
    # Which extra phases the baselines went through; a table written before trials.csv
    # kept seconds per phase leaves it to their genomes and the config.
    had = {"finetune": _had(trained, "finetune"), "qat": _had(trained, "qat")}
    if had["finetune"] is None:
        had["finetune"] = compressed
    if had["qat"] is None:
        had["qat"] = quantized and bool(fidelity.get("qat_epochs"))
    if quantized and had["qat"]:
        text += f", then {_epochs(fidelity, 'qat_epochs', 'QAT')}, as a quantized "
        text += "candidate had"
    elif quantized:
        text += ", then quantized after training (no QAT epoch)"
    if _had_or_configured(trials[own], "finetune", fidelity) and not had["finetune"]:
        text += (
            "; a pruned or factorized candidate also had "
            f"{_epochs(fidelity, 'finetune_epochs', 'fine-tune')} after it, which the baselines"
            + ("" if compressed else ", unpruned,")
            + " did not"
        )
    if _had_or_configured(trials[own], "qat", fidelity) and not had["qat"]:
        text += (
            f"; a quantized candidate also had {_epochs(fidelity, 'qat_epochs', 'QAT')}, "
            "which the baselines" + ("" if quantized else ", in fp32,") + " did not"
        )
    return text + "."


def _policies(rows: pd.DataFrame) -> list[tuple[int, int, bool]]:
    """(weight bits, activation bits, compressed) of every stage of ``rows``' genomes that
    can be read: what the baselines were, as their own genomes say."""
    found = []
    for genome in rows["genome"]:
        for stage in (parse_genome(genome) or {}).get("stages", []):
            if "weight_bits" in stage:
                compressed = (
                    stage["prune_ratio"] > 0 or stage["sparsity"] > 0 or stage["rank_ratio"] < 1
                )
                found.append((stage["weight_bits"], stage["activation_bits"], compressed))
    return found


def _precision(weight_bits: int, activation_bits: int) -> str:
    if weight_bits == activation_bits == 32:
        return "fp32"
    if weight_bits == activation_bits == 8:
        return "int8 weights and activations"
    return f"w{weight_bits}a{activation_bits}"


def _had(rows: pd.DataFrame, phase: str) -> bool | None:
    """Whether any of ``rows`` spent time in ``phase`` (trials.csv's seconds_<phase>); None
    when the table has no such column (written before it recorded phases)."""
    column = f"seconds_{phase}"
    if column not in rows:
        return None
    return bool((pd.to_numeric(rows[column], errors="coerce").fillna(0) > 0).any())


def _had_or_configured(rows: pd.DataFrame, phase: str, fidelity: dict[str, Any]) -> bool:
    """Whether ``rows`` went through ``phase``; the config's epochs for it where the table
    does not say."""
    had = _had(rows, phase)
    return bool(fidelity.get(f"{phase}_epochs")) if had is None else had


def _epochs(fidelity: dict[str, Any], key: str, kind: str) -> str:
    """ "2 QAT epochs", "1 QAT epoch"; "the configured QAT epochs" when the run did not say."""
    if not fidelity.get(key):
        return f"the configured {kind} epochs"
    return counted(int(fidelity[key]), f"{kind} epoch")


def caption_3d(picks: Sequence[Pick] = ()) -> str:
    text = (
        "The same trials in three dimensions (drag to turn): red dots are the Pareto members, "
        "the gold diamond the knee point, blue dots the other trials within budget, grey marks "
        "those over budget, failed or stopped early."
    )
    if picks:
        text += " Black open diamonds, labelled, mark the model recommended for each budget."
    return f'<p class="caption">{esc(text)}</p>'
