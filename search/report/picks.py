"""Which Pareto member each budget tier recommends, as the figures mark it: the very tiers and
picks of ``summary.json`` (``budget_tiers`` and ``recommend``), computed once per page so the
figures, the summary and the file can never name different models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from search.report.formatting import integer
from search.summary import AXES, budget_tiers, recommend


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


def budget_picks(run: dict[str, Any], pareto: pd.DataFrame) -> list[Pick]:
    """One ``Pick`` per recommended member, in the order its first tier comes in the summary;
    tiers that no member meets mark nothing."""
    if pareto is None or pareto.empty:
        return []
    tiers: dict[Any, list[str]] = {}  # insertion order: the summary's order, never hash order
    for tier in budget_tiers(run, pareto):
        row = recommend(pareto, {column: tier[column] for column, _, _ in AXES})
        if row is not None:
            tiers.setdefault(row.name, []).append(str(tier["name"]))
    return [
        Pick(label, float(pareto.loc[label, "number"]), tuple(names))
        for label, names in tiers.items()
    ]
