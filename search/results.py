"""What a run leaves in results/<run>/, rewritten from the study after every trial.

trials.csv / trials.parquet   one row per trial: genome, parameters, metrics, status, seconds;
                              ``baseline`` names a hand-designed baseline (search.baselines)
pareto.csv                    the Pareto members (ok, within budget, non-dominated, searched)
run.json                      what the report needs besides the tables (teacher, budget, device)
report.html                   the report (search.report)
models/<trial>/               the Pareto members' model.pt, candidate.json, model.onnx

The study storage is the source of truth; every file here is derived from it and written
atomically, so a crash at any point leaves either the old or the new file, never half.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from evaluators.files import write_atomic
from search.pareto import pareto_mask
from search.storage import WORKER

MODELS = "models"
TRIALS_FILE = "trials.csv"  # written after every finished trial

# Trial user attribute (and trials.csv column): the name of a hand-designed baseline
# evaluated into the run (search.baselines); absent on searched trials.
BASELINE = "baseline"
METRIC_COLUMNS = [
    "accuracy",
    "test_accuracy",
    "torch_test_accuracy",
    "latency_ms",
    "latency_p90_ms",
    "latency_source",
    "predicted_latency_ms",
    "predicted_latency_source",
    "peak_memory_kb",
    "peak_memory_at",
    "flash_kb",
    "params",
    "macs",
    "artifact_bytes",
    "executed",
    "int8",
    "channels",
    "train_subset",
    "epochs",
    "expected_accuracy",
]
_PHASES = [
    "cost",
    "latency",
    "train",
    "prune",
    "factorize",
    "finetune",
    "quantize",
    "qat",
    "export",
]
# Trial user attribute: the trial began when the run already had enough (two workers
# checked the count at the same moment); failed before any work, not part of the run.
SURPLUS = "surplus"


def retry_of(trial: optuna.trial.FrozenTrial) -> int | None:
    """The trial this one retries: the one just before it in its chain of retries. Optuna's
    retry callback keeps the first of the chain as ``failed_trial`` and every one since in
    ``retry_history``, whose last is this trial's own predecessor."""
    history = trial.system_attrs.get("retry_history") or []
    return history[-1] if history else trial.system_attrs.get("failed_trial")


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    rows = []
    trials = study.get_trials(deepcopy=False)
    # A trial whose worker died is queued again (search.storage): who retried whom.
    retried_as = {retried: t.number for t in trials if (retried := retry_of(t)) is not None}
    for trial in trials:
        if SURPLUS in trial.user_attrs:  # never evaluated (search.worker)
            continue
        metrics: dict[str, Any] = trial.user_attrs.get("metrics") or {}
        status = metrics.get("status")
        interrupted = status is None or (status != "failed" and BASELINE not in trial.user_attrs)
        if interrupted and trial.state == optuna.trial.TrialState.FAIL:
            # No outcome, or one recorded by a worker that died before telling the study
            # (baselines are kept as FAIL trials on purpose: they must not feed the sampler).
            status = "interrupted"
            retry = retried_as.get(trial.number)
            metrics = {
                "reason": "its worker stopped before the trial finished (crash, kill, Ctrl-C "
                "or lost heartbeat); "
                + (f"retried as trial {retry}" if retry is not None else "not retried")
            }
        elif status is None:
            status = trial.state.name.lower()  # running, waiting
        constraints = trial.constraints
        row: dict[str, Any] = {
            "number": trial.number,
            "state": trial.state.name,
            "status": status,
            "reason": metrics.get("reason"),
            "genome": trial.user_attrs.get("genome"),
            # Within every bound: the same check that made the pipeline call it infeasible.
            "feasible": status == "ok" and all(v <= 0 for v in constraints.values()),
            "duplicate_of": trial.user_attrs.get("duplicate_of"),
            "retry_of": retry_of(trial),
            "worker": trial.system_attrs.get(WORKER),
            "ray_node": trial.user_attrs.get("ray_node"),  # Ray backend: the node that ran it
            "artifacts": trial.user_attrs.get("artifacts"),
            BASELINE: trial.user_attrs.get(BASELINE),
        }
        for column in METRIC_COLUMNS:
            row[column] = metrics.get(column)
        seconds = metrics.get("seconds") or {}
        row["seconds_total"] = float(sum(seconds.values())) if seconds else None
        for phase in _PHASES:
            row[f"seconds_{phase}"] = seconds.get(phase)
        for name, value in constraints.items():
            row[f"constraint_{name}"] = value
        for name, value in trial.params.items():
            row[f"param_{name}"] = value
        row["datetime_start"] = trial.datetime_start.isoformat() if trial.datetime_start else None
        rows.append(row)
    frame = pd.DataFrame(rows)
    for column in (*_TRIAL_NUMBERS, *INTEGER_METRICS):
        if column in frame and _whole(frame[column]):
            # Trial numbers, blank where there is none: 3, not the 3.0 of a float column.
            frame[column] = frame[column].astype("Int64")
    return frame


def _whole(column: pd.Series) -> bool:
    values = pd.to_numeric(column, errors="coerce")
    return bool(values.notna().sum() == column.notna().sum() and (values.dropna() % 1 == 0).all())


_TRIAL_NUMBERS = ("duplicate_of", "retry_of")
# Counts among the metrics: blank for a trial that was not trained, else whole.
INTEGER_METRICS = ("params", "macs", "artifact_bytes", "train_subset", "epochs")


def pareto_frame(
    trials: pd.DataFrame, objectives: list[str], directions: list[str]
) -> pd.DataFrame:
    if trials.empty:
        return trials
    # Duplicate trials share one model: keep the first of each genome on the front.
    candidates = trials[(trials["status"] == "ok") & trials["feasible"].astype(bool)]
    candidates = candidates[candidates["duplicate_of"].isna()]
    if BASELINE in candidates:
        # Baselines are shown beside the front, never on it: it is what the search found.
        candidates = candidates[candidates[BASELINE].isna()]
    if candidates.empty:
        return candidates
    mask = pareto_mask(candidates[objectives].to_numpy(dtype=float), directions)
    return candidates[mask].sort_values("latency_ms").reset_index(drop=True)


def write_tables(run_dir: Path, trials: pd.DataFrame, pareto: pd.DataFrame) -> None:
    write_atomic(run_dir / TRIALS_FILE, lambda tmp: trials.to_csv(tmp, index=False))
    write_atomic(run_dir / "trials.parquet", lambda tmp: _to_parquet(trials, tmp))
    write_atomic(run_dir / "pareto.csv", lambda tmp: pareto.to_csv(tmp, index=False))


def _to_parquet(frame: pd.DataFrame, path: Path) -> None:
    # Parameter columns mix types across trials (absent for some): store mixed ones as text.
    frame = frame.copy()
    for column in frame.columns:
        if frame[column].dtype == object:
            kinds = {type(v) for v in frame[column].dropna()}
            if len(kinds) > 1:
                frame[column] = frame[column].map(lambda v: None if pd.isna(v) else str(v))
    frame.to_parquet(path, index=False)


def export_pareto_models(run_dir: Path, pareto: pd.DataFrame) -> list[Path]:
    """Keep models/ equal to the current front: copy members in, remove former members."""
    models = run_dir / MODELS
    models.mkdir(exist_ok=True)
    wanted = {}
    for _, row in pareto.iterrows():
        if isinstance(row.get("artifacts"), str):
            wanted[str(int(row["number"]))] = run_dir / row["artifacts"]
    for existing in models.iterdir():
        if existing.name not in wanted:
            shutil.rmtree(existing, ignore_errors=True)
    exported = []
    for name, source in wanted.items():
        target = models / name
        if source.is_dir() and not target.exists():
            tmp = models / f".{name}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(source, tmp)
            tmp.rename(target)
        exported.append(target)
    return exported


def _latency_kind(row: pd.Series) -> str | None:
    """Whether a trial's latency was measured or predicted, from its source."""
    source = row.get("latency_source")
    if not isinstance(source, str) or not source:
        return None
    return "predicted" if source.startswith("predicted") else "measured"


def all_failed(trials: pd.DataFrame) -> str | None:
    """What to tell the user when every searched trial failed: how many, and what the
    first one said (the others usually say the same)."""
    if "baseline" in trials:
        trials = trials[trials["baseline"].fillna("").astype(str) == ""]
    if "status" not in trials:
        return None
    outcomes = trials[trials["status"].isin(["ok", "pruned", "infeasible", "failed"])]
    if outcomes.empty or not (outcomes["status"] == "failed").all():
        return None
    reasons = outcomes.get("reason", pd.Series(dtype=object)).dropna().astype(str)
    first = f"; the first said: {reasons.iloc[0]}" if len(reasons) else ""
    return (
        f"every trial failed ({len(outcomes)}){first}; fix that and run under a new --name "
        "(a failed trial counts as finished: the same name would not run it again)"
    )


def budget_unmet(trials: pd.DataFrame, budget: Mapping[str, float | None]) -> str | None:
    """What to tell the user when every candidate costed so far was over the budget: the
    lowest cost seen on each bounded axis, against its bound. ``budget`` maps an axis
    (latency_ms, peak_memory_kb, flash_kb) to its bound or None."""
    if "baseline" in trials:
        # Searched trials only; a table read back for the report has "" where CSV had none.
        trials = trials[trials["baseline"].fillna("").astype(str) == ""]
    if "status" not in trials or trials["status"].isin(["ok", "pruned"]).any():
        return None
    trials = trials[trials["status"] == "infeasible"]
    if trials.empty:
        return None
    seen = []
    for axis, unit in (("latency_ms", "ms"), ("peak_memory_kb", "KB"), ("flash_kb", "KB")):
        bound = budget.get(axis)
        if bound is None or axis not in trials or trials[axis].isna().all():
            continue
        lowest = float(trials[axis].min())
        if lowest > bound:
            # The lowest trial's own source: on the host, one rejected before training
            # has a predicted latency and a trained one a measured latency.
            lowest_row = trials.loc[trials[axis].idxmin()]
            how = "computed" if axis != "latency_ms" else _latency_kind(lowest_row)
            said = f" ({how})" if how else ""
            seen.append(f"{axis} {lowest:.3g} {unit}{said} > {bound:g}")
    detail = f" (lowest seen: {'; '.join(seen)})" if seen else ""
    return (
        f"no candidate of {len(trials)} met the budget{detail}; raise budget.* in the config "
        "and run under a new --name, or widen the space toward smaller models"
    )
