"""What the reader is told under the accuracy-against-cost figures: how to read them, where the
budget line is, which models are recommended, how the baselines were trained, and what could
not be drawn or lies beyond the figure's edge."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from search.report.figures import Axis
from search.report.formatting import esc, pct
from search.report.frames import faded_groups, feasible
from search.report.marks import beyond
from search.report.picks import Pick
from search.summary import teacher_facts

# Why the figures' numbers are not the summary's: both are true, on different images.
SPLITS = (
    "The figures plot validation accuracy, which the search chose by; the summary quotes test "
    "accuracy, on images held out from that choice, so the two differ slightly."
)


def scatter_caption(
    trials: pd.DataFrame,
    x: Axis,
    colour: Axis,
    run: dict[str, Any] | None = None,
    picks: Sequence[Pick] = (),
) -> str:
    parts = [
        f"Each dot is one trial. Coloured dots were trained and are within every budget "
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
    parts.append(SPLITS)
    past = beyond(trials, x)
    if len(past):
        parts.append(
            f"So that the rest can be read, the {x.noun} axis stops at {x.limit:,.4g} {x.unit}: "
            f"{len(past)} trial(s) lie beyond its right edge, the furthest at "
            f"{past.max():,.4g} {x.unit}."
        )
    if (trials["baseline"] != "").any():
        parts.append(_baseline_training((run or {}).get("fidelity") or {}))
    drawable = feasible(trials) | np.logical_or.reduce([m for _, m, _ in faded_groups(trials)])
    missing = int((drawable & trials[x.column].isna()).sum())
    if missing:
        parts.append(f"{missing} trial(s) without a {x.noun} value are not drawn.")
    return f'<p class="caption">{esc(" ".join(parts))}</p>'


def _baseline_training(fidelity: dict[str, Any]) -> str:
    """How much training the baselines had against the candidates: the same KD recipe and
    epochs, but a compressed candidate also fine-tunes after pruning and under QAT."""
    text = (
        f"Labelled squares are the hand-designed baselines (fp32, uncompressed), trained with "
        f"the run's KD recipe for {fidelity.get('epochs', 'the same')} epochs"
    )
    extra = [
        f"{fidelity[key]} {what}"
        for key, what in (
            ("finetune_epochs", "fine-tune epoch(s) after pruning or factorizing"),
            ("qat_epochs", "QAT epoch(s)"),
        )
        if fidelity.get(key)
    ]
    if extra:
        text += (
            "; a compressed candidate also had " + " and ".join(extra) + ", which a baseline, "
            "with nothing to recover from, did not"
        )
    return text + "."


def caption_3d(picks: Sequence[Pick] = ()) -> str:
    text = (
        "The same trials in three dimensions (drag to turn): red dots are the Pareto members, "
        "the gold diamond the knee point, blue dots the other trials within budget, grey marks "
        "those over budget, failed or stopped early."
    )
    if picks:
        text += " Black open diamonds, labelled, mark the model recommended for each budget."
    return f'<p class="caption">{esc(text)}</p>'
