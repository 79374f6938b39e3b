"""Which Pareto member each budget tier recommends, as the page marks it: the tiers of
``summary.json``, computed once (``search.summary.summarise``) for the file and the whole
page, so the figures, the summary and the file can never name different models."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from search.report.formatting import integer


@dataclass(frozen=True)
class Pick:
    """One recommended member (``label`` indexes the page's Pareto table) and the tiers, in
    the summary's order, that recommend it."""

    label: Any
    number: float
    tiers: tuple[str, ...]

    @property
    def text(self) -> str:
        """What the figure writes beside it: "configured budget: trial 19", or, when one trial
        is the pick of several tiers, one label for all ("configured, looser: trial 19")."""
        names = [tier.split(" (")[0] for tier in self.tiers]  # "looser (bounds x2)" -> "looser"
        if len(names) > 1:
            names = [name.removesuffix(" budget") for name in names]
        return f"{', '.join(names)}: trial {integer(self.number)}"


def budget_picks(tiers: Sequence[dict[str, Any]], pareto: pd.DataFrame) -> list[Pick]:
    """One ``Pick`` per recommended member of ``pareto``, from summary.json's ``tiers`` (their
    ``trial``), in the order its first tier comes; tiers that no member meets mark nothing."""
    names: dict[Any, list[str]] = {}  # insertion order: the summary's order, never hash order
    for tier in tiers:
        label = row_label(pareto, tier.get("trial"))
        if label is not None:
            names.setdefault(label, []).append(str(tier["name"]))
    return [
        Pick(label, float(pareto.loc[label, "number"]), tuple(tier_names))
        for label, tier_names in names.items()
    ]


def row_label(pareto: pd.DataFrame, trial: Any) -> Any:
    """The index label of trial number ``trial`` in ``pareto``; None when it is not there."""
    if trial is None or pareto.empty:
        return None
    matches = pareto.index[pareto["number"] == trial]
    return matches[0] if len(matches) else None
