"""What the reader is told under the accuracy-against-cost figures: how to read them, where the
budget line is, how the baselines were trained, and what could not be drawn."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from search.report.figures import Axis
from search.report.formatting import esc
from search.report.frames import faded_groups, feasible


def scatter_caption(
    trials: pd.DataFrame, x: Axis, colour: Axis, run: dict[str, Any] | None = None
) -> str:
    parts = [
        f"Each dot is one trial. Coloured dots were trained and are within every budget "
        f"(colour = {colour.noun}); red rings are the Pareto members and the red step is the "
        f"best accuracy reachable at each {x.noun}. Grey marks were over budget, failed or "
        f"stopped early; those without an accuracy (never trained) sit along the bottom."
    ]
    if x.budget is not None:
        parts.append(f"The dashed line is the budget ({x.budget:g} {x.unit}).")
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


def caption_3d() -> str:
    text = (
        "The same trials in three dimensions (drag to turn): red dots are the Pareto members, "
        "the gold diamond the knee point, blue dots the other trials within budget, grey marks "
        "those over budget, failed or stopped early."
    )
    return f'<p class="caption">{esc(text)}</p>'
