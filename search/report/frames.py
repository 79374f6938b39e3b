"""The run's tables (trials, Pareto members) as the report reads them: every column present
with one type, whatever the CSV round trip did, and the trials grouped by how they ended."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from search.report.colours import FADED

NUMERIC_COLUMNS = (
    "number",
    "accuracy",
    "test_accuracy",
    "latency_ms",
    "latency_p90_ms",
    "predicted_latency_ms",
    "peak_memory_kb",
    "flash_kb",
    "params",
    "macs",
    "train_subset",
    "epochs",
    "seconds_total",
    "seconds_cost",
    "seconds_latency",
    "seconds_train",
    "seconds_eval",
)
TEXT_COLUMNS = (
    "baseline",
    "state",
    "status",
    "reason",
    "genome",
    "latency_source",
    "predicted_latency_source",
)


def normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Every column the report reads exists with one type, whatever the CSV round trip did
    (an all-empty column reads back as float NaN, a bool column with gaps as object)."""
    frame = frame.copy()
    for column in NUMERIC_COLUMNS:
        values = frame[column] if column in frame else pd.Series(np.nan, index=frame.index)
        frame[column] = pd.to_numeric(values, errors="coerce").astype(float)
    for column in TEXT_COLUMNS:
        values = frame[column] if column in frame else pd.Series(None, index=frame.index)
        frame[column] = [_text(value) for value in values]
    frame["status"] = [value.lower() for value in frame["status"]]
    values = frame["feasible"] if "feasible" in frame else pd.Series(False, index=frame.index)
    frame["feasible"] = [_truthy(value) for value in values]
    return frame.reset_index(drop=True)


def _text(value: Any) -> str:
    return "" if _missing(value) else str(value).strip()


def _truthy(value: Any) -> bool:
    if _missing(value):
        return False
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


# A ``pruned`` trial was stopped during training (Pareto-aware early stopping); the figures
# say so in words, since "pruned" also names the channel pruning in the same report. The data
# files keep Optuna's word.
STOPPED = "stopped early"


def faded_groups(trials: pd.DataFrame) -> list[tuple[str, pd.Series, dict[str, Any]]]:
    """(legend name, row mask, marker style) of the faded groups, drawn under the feasible."""
    status = trials["status"]
    over_budget = (status == "infeasible") | ((status == "ok") & ~trials["feasible"])
    faded = {"color": FADED, "opacity": 0.55, "size": 8}
    return [
        ("over budget", over_budget, {**faded, "symbol": "x"}),
        ("failed", status == "failed", {**faded, "symbol": "triangle-down"}),
        (STOPPED, status == "pruned", {**faded, "symbol": "diamond-open"}),
    ]


def status_text(status: str) -> str:
    """A trial's status as the figures write it."""
    return STOPPED if status == "pruned" else status


def plotted(trials: pd.DataFrame, column: str) -> pd.Series:
    """The rows an accuracy-against-``column`` figure draws: searched trials that were not
    shipped (over budget, failed, stopped; along the bottom without an accuracy), the
    feasible ones with an accuracy, and the hand-designed baselines with an accuracy."""
    own = searched(trials)
    trained = trials["accuracy"].notna()
    faded = pd.Series(False, index=trials.index)
    for _, mask, _ in faded_groups(trials):
        faded |= mask
    shown = (own & (faded | (feasible(trials) & trained))) | (~own & trained)
    return shown & trials[column].notna()


def repeats(trials: pd.DataFrame) -> pd.Series:
    """The trials of a candidate proposed again: they reuse an earlier trial's model and
    metrics, and trained nothing."""
    if "duplicate_of" not in trials:
        return pd.Series(False, index=trials.index)
    return trials["duplicate_of"].notna()


def searched(trials: pd.DataFrame) -> pd.Series:
    """The search's own trials: not the hand-designed baselines, which never count as trials
    (a table not yet normalised may lack the column or hold NaN in it)."""
    if "baseline" not in trials:
        return pd.Series(True, index=trials.index, dtype=bool)
    own = [_text(value) == "" for value in trials["baseline"]]
    return pd.Series(own, index=trials.index, dtype=bool)


def feasible(trials: pd.DataFrame) -> pd.Series:
    """The trials that could be shipped: trained (``ok``) and within every budget."""
    return (trials["status"] == "ok") & trials["feasible"]
