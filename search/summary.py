"""What a run recommends, per budget tier, as data: ``summary.json`` and the report's summary.

Pure functions over the run's own tables (``pareto.csv``, ``trials.csv``) and ``run.json``, so
the report and the machine-readable summary can never disagree: both call ``recommend``.

A *tier* is a budget with a name: the configured budget, plus the tiers ``run.json`` lists
under ``tiers`` (each like the budget, with a ``name``), or, when it lists none, a tighter
(bounds x0.5) and a looser (bounds x2) one. The recommended model of a tier is the feasible
Pareto member with the highest validation accuracy among those within that tier's every
bound; its test accuracy is reported, never used to choose (a pick by test accuracy would
report a number biased upward by the choice).

``write_importance`` is the one function here that needs Optuna: it is called by the runner
with the study, and leaves ``importance.json`` for the report (which reads files only).
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evaluators.files import write_text_atomic
from search.pareto import hypervolume, knee_point, pareto_mask

log = logging.getLogger("paretonas")

SUMMARY = "summary.json"
IMPORTANCE = "importance.json"
MIN_TRIALS_FOR_IMPORTANCE = 5

# The budget's bounded axes: (column = budget key, noun, unit).
AXES: tuple[tuple[str, str, str], ...] = (
    ("latency_ms", "latency", "ms"),
    ("peak_memory_kb", "peak memory", "KB"),
    ("flash_kb", "flash", "KB"),
)
TIGHTER, LOOSER = 0.5, 2.0
CONFIGURED = "configured budget"  # the tier of the run's own budget

_NUMBERS = (
    "number",
    "accuracy",
    "test_accuracy",
    "latency_ms",
    "predicted_latency_ms",
    "peak_memory_kb",
    "flash_kb",
    "params",
    "macs",
)


# -- tiers and recommendations ---------------------------------------------------------------


def bounds(budget: dict[str, Any] | None) -> dict[str, float | None]:
    """The budget's bound on each axis (None: no limit), whatever else the dict holds."""
    budget = budget or {}
    return {column: _number(budget.get(column)) for column, _, _ in AXES}


def meets(row: pd.Series | dict[str, Any], budget: dict[str, Any] | None) -> bool:
    """Whether a model is within every bound of ``budget``; an unknown value on a bounded
    axis does not meet it (a missing number is not evidence of fitting)."""
    for column, bound in bounds(budget).items():
        if bound is None:
            continue
        value = _number(row.get(column))
        if value is None or value > bound:
            return False
    return True


def recommend(pareto: pd.DataFrame, budget: dict[str, Any] | None) -> pd.Series | None:
    """The feasible Pareto member with the highest validation accuracy among those within
    every bound of ``budget``; None when no member meets it.

    Validation accuracy is what the search ranked on and what made the front; the test split
    stays held out, so the test accuracy reported for the pick is an unbiased estimate (a
    front member with no validation accuracy, from a hand-edited table, ranks by test
    accuracy). Equal accuracy goes to the lower latency, then the earlier row. The returned
    row keeps its index label in ``pareto``.
    """
    if pareto is None or pareto.empty:
        return None
    frame = _numeric(pareto)
    usable = pd.Series(True, index=frame.index)
    if "status" in frame:
        usable &= frame["status"].astype(str).str.strip().str.lower().isin(("ok", "nan", ""))
    if "feasible" in frame:
        usable &= _flags([_truthy(value) for value in frame["feasible"]], frame.index)
    usable &= _flags([meets(row, budget) for _, row in frame.iterrows()], frame.index)
    candidates = frame[usable]
    score = candidates["accuracy"].fillna(candidates["test_accuracy"])
    candidates = candidates.assign(_score=score)[score.notna()]
    if candidates.empty:
        return None
    ranked = candidates.sort_values(
        ["_score", "latency_ms"], ascending=[False, True], na_position="last", kind="stable"
    )
    return pareto.loc[ranked.index[0]]


def budget_tiers(run: dict[str, Any], pareto: pd.DataFrame | None = None) -> list[dict[str, Any]]:
    """The tiers a summary answers, in order: each a dict with ``name`` and the budget's keys.

    The configured budget always comes (first, unless a listed tier is tighter); then
    ``run["tiers"]`` when given, else a tighter (x0.5) and a looser (x2) copy of the configured
    bounds. A run with no bound at all gets tiers at the 25th and 50th percentile of its
    front's latency instead, so the summary still says what a faster model costs.
    """
    configured = {"name": CONFIGURED, **bounds(run.get("budget"))}
    listed = [tier for tier in run.get("tiers") or [] if isinstance(tier, dict)]
    limits = (run.get("device") or {}).get("memory_limits")
    if listed:
        named = [
            {"name": str(tier.get("name") or f"tier {index + 1}"), **bounds(tier)}
            for index, tier in enumerate(listed)
        ]
        return [configured, *(_within(tier, limits) for tier in named)]
    if any(value is not None for key, value in configured.items() if key != "name"):
        return [
            _scaled(configured, TIGHTER, "tighter (bounds \u00d70.5)"),
            configured,
            _within(_scaled(configured, LOOSER, "looser (bounds \u00d72)"), limits),
        ]
    latency = _numeric(pareto)["latency_ms"].dropna() if pareto is not None else pd.Series()
    tiers = []
    if not latency.empty:
        for percent in (25, 50):
            bound = float(np.percentile(latency.to_numpy(dtype=float), percent))
            tiers.append(
                {
                    "name": f"fast ({percent}th percentile of front latency)",
                    **bounds({"latency_ms": bound}),
                }
            )
    return [*tiers, configured]


def _within(tier: dict[str, Any], limits: dict[str, Any] | None) -> dict[str, Any]:
    """``tier`` with its memory bounds cut to the device's SRAM and flash (``limits``, as
    run.json records them): a model that needs more than the device has fits no budget.
    The name stays (``export --tier`` finds a tier by it); the bounds say the rest."""
    capped = dict(tier)
    for column, limit in bounds(limits).items():
        if limit is not None and (capped[column] is None or capped[column] > limit):
            capped[column] = limit
    return capped


def _scaled(tier: dict[str, Any], factor: float, name: str) -> dict[str, Any]:
    return {
        "name": name,
        **{
            column: (None if tier[column] is None else tier[column] * factor)
            for column, _, _ in AXES
        },
    }


def latency_kind(run: dict[str, Any], row: pd.Series | dict[str, Any] | None = None) -> str:
    """ "measured" or "predicted": the row's own latency source when it has one, else the
    run's device (``run.json`` device.latency: measured | predicted | roofline)."""
    source = _text(row.get("latency_source")) if row is not None else ""
    if source:
        return "predicted" if source.lower().startswith("predicted") else "measured"
    kind = (run.get("device") or {}).get("latency")
    if kind is None or kind == "measured":
        return "measured"
    return "predicted"


def teacher_facts(run: dict[str, Any]) -> dict[str, Any]:
    """The teacher as the summary compares against it; latency only when run.json has one."""
    teacher = run.get("teacher") or {}
    return {
        "test_accuracy": _number(teacher.get("test_accuracy")),
        "params": _number(teacher.get("params")),
        "latency_ms": _number(teacher.get("latency_ms")),
        "latency_source": teacher.get("latency_source"),
        "source": teacher.get("source"),
    }


def compare_to_teacher(row: pd.Series | dict[str, Any], teacher: dict[str, Any]) -> dict[str, Any]:
    """Accuracy gap (points), and how many times smaller (parameters) and faster (latency)
    than the teacher: None where either side of a ratio is unknown, never a guess."""
    test = _number(row.get("test_accuracy"))
    gap = (
        None
        if test is None or teacher.get("test_accuracy") is None
        else round(100 * (test - teacher["test_accuracy"]), 4)
    )
    return {
        "accuracy_vs_teacher_points": gap,
        "smaller_than_teacher": _ratio(teacher.get("params"), _number(row.get("params"))),
        "faster_than_teacher": _ratio(teacher.get("latency_ms"), _number(row.get("latency_ms"))),
    }


def knee(run: dict[str, Any], pareto: pd.DataFrame) -> Any:
    """Index label (into ``pareto``) of the knee point over the run's own objectives (the
    same numbers the front was built from), or None."""
    if pareto is None or pareto.empty:
        return None
    frame = _numeric(pareto)
    names, directions = objectives(run, frame)
    if not names:
        return None
    index = knee_point(frame[names].to_numpy(dtype=float), directions)
    return None if index is None else frame.index[index]


def objectives(run: dict[str, Any], frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The run's objective columns present in ``frame``, with their directions."""
    names, directions = [], []
    for objective in run.get("objectives") or []:
        name, direction = objective.get("name"), objective.get("direction")
        if name in frame and direction in ("maximize", "minimize"):
            names.append(name)
            directions.append(direction)
    return names, directions


def summarise(
    run: dict[str, Any], pareto: pd.DataFrame, trials: pd.DataFrame | None = None
) -> dict[str, Any]:
    """The content of ``summary.json``: one recommendation per tier, the teacher, the device,
    the knee point and (with ``trials``) the final hypervolume. Plain JSON values only."""
    teacher = teacher_facts(run)
    tiers = []
    for tier in budget_tiers(run, pareto):
        budget = {column: tier[column] for column, _, _ in AXES}
        row = recommend(pareto, budget)
        entry: dict[str, Any] = {"name": tier["name"], "budget": budget}
        if row is None:
            entry.update({"trial": None, "note": "no Pareto member meets this budget"})
        else:
            entry.update(_model(run, row))
            entry.update(compare_to_teacher(row, teacher))
            entry["closest_bound"] = closest_bound(row, budget)
        tiers.append(entry)
    knee_label = knee(run, pareto)
    result: dict[str, Any] = {
        "run": run.get("name"),
        "tiers": tiers,
        "knee": None
        if knee_label is None
        else {
            **_model(run, pareto.loc[knee_label]),
            **compare_to_teacher(pareto.loc[knee_label], teacher),
        },
        "teacher": teacher,
        "device": dict(run.get("device") or {}),
        "objectives": list(run.get("objectives") or []),
        "pareto_members": 0 if pareto is None else len(pareto),
        "peak_memory_note": PEAK_MEMORY_NOTE,
        "teacher_ratios_note": TEACHER_RATIOS_NOTE,
        "updated": run.get("updated"),
    }
    if trials is not None:
        progress = hypervolume_progress(run, trials)
        result["hypervolume"] = (
            None if progress.empty else _plain(float(progress["hypervolume"].iloc[-1]))
        )
        result["hypervolume_scale"] = (
            "computed: of the feasible trials, each objective scaled between this run's best "
            "value and its reference (the budget on a bounded cost, else the worst feasible "
            "value made 10% worse); comparable across this run's trials, not between runs"
        )
    return _plain(result)


def closest_bound(row: pd.Series | dict[str, Any], budget: dict[str, Any]) -> dict | None:
    """The bound of ``budget`` the model comes closest to: ``{"name", "share"}`` (its cost
    over the bound), None without a bound; what limits a model in that budget."""
    shares = []
    for column, _, _ in AXES:
        value, limit = _number(row.get(column)), _number(budget.get(column))
        if value is not None and limit:
            shares.append((value / limit, column))
    if not shares:
        return None
    share, column = max(shares)
    return {"name": column, "share": share}


def accuracy_interval(accuracy: float | None, images: float | None) -> tuple[float, float] | None:
    """(lower, upper), as fractions, of the 95% Wilson score interval of an accuracy measured
    on ``images`` images: how far the test split alone lets the figure move. Wilson's, not
    the normal approximation, which says +-0 at 100% on a small split. It is asymmetric
    (centred nearer 50% than the accuracy, never past 0 or 1), so it is given as its bounds,
    never as a +- margin. Differences between trainings of one model are not in it."""
    if accuracy is None or not images:
        return None
    z2 = _Z95**2
    centre = (accuracy + z2 / (2 * images)) / (1 + z2 / images)
    spread = math.sqrt(accuracy * (1 - accuracy) / images + z2 / (4 * images**2))
    half = _Z95 * spread / (1 + z2 / images)
    return max(0.0, centre - half), min(1.0, centre + half)


_Z95 = 1.959964  # the two-sided 95% quantile of the standard normal


def latency_is_lower_bound(
    run: dict[str, Any], row: pd.Series | dict[str, Any] | None = None
) -> bool:
    """Whether a latency is a roofline prediction (peak MAC rate and bandwidth, no stalls),
    which the real latency can only exceed: the row's own source when it has one (a roofline
    device with a fitted predictor predicts otherwise), else the run's device."""
    source = _text(row.get("latency_source")) if row is not None else ""
    if source:
        return "roofline" in source.lower()
    return (run.get("device") or {}).get("latency") == "roofline"


# What a peak memory figure leaves out, for summary.json's readers (the export's manifest
# says the same beside its own figure).
PEAK_MEMORY_NOTE = (
    "computed: the peak of live activations in a perfectly packed arena, without the "
    "runtime's scratch buffers (im2col), its own overhead or stack: a lower bound"
)


# What the ratios to the teacher compare: "smaller" is parameters, not stored bytes (the
# teacher has no flash figure).
TEACHER_RATIOS_NOTE = (
    "smaller_than_teacher: the teacher's parameter count over the model's (not bytes); "
    "faster_than_teacher: the teacher's latency over the model's, each as run.json's "
    "device knows it; accuracy_vs_teacher_points: test accuracy, model minus teacher"
)


def _model(run: dict[str, Any], row: pd.Series) -> dict[str, Any]:
    number = _number(row.get("number"))
    test_accuracy = _number(row.get("test_accuracy"))
    test_images = _number((run.get("split_sizes") or {}).get("test"))
    return {
        "trial": None if number is None else int(number),
        "genome": _text(row.get("genome")) or None,
        "accuracy": _number(row.get("accuracy")),
        "test_accuracy": test_accuracy,
        "test_accuracy_interval": _interval(test_accuracy, test_images),
        "test_images": None if test_images is None else int(test_images),
        "latency_ms": _number(row.get("latency_ms")),
        "latency_kind": latency_kind(run, row),
        "latency_source": _text(row.get("latency_source")) or None,
        "latency_is_lower_bound": latency_is_lower_bound(run, row),
        "peak_memory_kb": _number(row.get("peak_memory_kb")),
        "flash_kb": _number(row.get("flash_kb")),
        "params": _number(row.get("params")),
        "macs": _number(row.get("macs")),
    }


def _interval(accuracy: float | None, images: float | None) -> dict[str, Any] | None:
    found = accuracy_interval(accuracy, images)
    if found is None:
        return None
    return {
        "lower": found[0],
        "upper": found[1],
        "confidence": 0.95,
        "method": "Wilson score interval over the test images",
    }


def write_summary(run_dir: str | Path, summary: dict[str, Any]) -> Path:
    """Write ``summary.json`` atomically (a reader never sees half a file)."""
    return write_text_atomic(
        Path(run_dir) / SUMMARY, json.dumps(_plain(summary), indent=2, allow_nan=False)
    )


# -- search progress ---------------------------------------------------------------------------


def hypervolume_reference(
    run: dict[str, Any], feasible: pd.DataFrame, names: Sequence[str], directions: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """(ideal, reference) per objective, in the objectives' own units.

    The reference is the budget where the objective is a bounded axis, else the worst
    feasible value made 10% worse (x1.1 for a cost; x0.9 for accuracy, which is maximised);
    the ideal is the best feasible value. Both are fixed over the whole run, so the
    hypervolume after trial n never falls as trials are added.
    """
    limits = bounds(run.get("budget"))
    ideal, reference = [], []
    for name, direction in zip(names, directions, strict=True):
        values = feasible[name].to_numpy(dtype=float)
        if direction == "maximize":
            best, worst = float(values.max()), float(values.min())
            ref = worst - 0.1 * abs(worst) if worst else -0.1
        else:
            best, worst = float(values.min()), float(values.max())
            limit = limits.get(name)
            ref = limit if limit is not None else (worst * 1.1 if worst else 0.1)
        ideal.append(best)
        reference.append(ref)
    return np.array(ideal), np.array(reference)


def hypervolume_progress(run: dict[str, Any], trials: pd.DataFrame) -> pd.DataFrame:
    """Hypervolume of the feasible trials up to each trial number: columns ``number`` and
    ``hypervolume`` (0 to 1: the share of the box between the best values seen in the run and
    the reference point that the front so far dominates; objectives scaled so that ideal = 0
    and reference = 1). Non-decreasing by construction; empty without a feasible trial."""
    if trials is None or trials.empty:
        return pd.DataFrame(columns=["number", "hypervolume"])
    frame = _numeric(trials)
    names, directions = objectives(run, frame)
    frame = frame[frame["number"].notna()].sort_values("number", kind="stable")
    status = frame.get("status", pd.Series("ok", index=frame.index))
    feasible_mask = (status.astype(str).str.strip().str.lower() == "ok") & _flags(
        [_truthy(v) for v in frame.get("feasible", pd.Series(True, index=frame.index))],
        frame.index,
    )
    if "baseline" in frame:  # hand-designed baselines are not search trials
        feasible_mask &= frame["baseline"].map(_text).eq("")
    if names:
        feasible_mask &= frame[names].notna().all(axis=1)
    feasible = frame[feasible_mask]
    if not names or feasible.empty:
        return pd.DataFrame(columns=["number", "hypervolume"])
    ideal, reference = hypervolume_reference(run, feasible, names, directions)
    sign = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    low, high = ideal * sign, reference * sign
    span = np.where(high > low, high - low, 1.0)
    unit = ["minimize"] * len(names)
    front = np.zeros((0, len(names)))
    volume = 0.0
    rows = []
    for label, row in frame.iterrows():
        if feasible_mask.loc[label]:
            point = (row[names].to_numpy(dtype=float) * sign - low) / span
            candidate = np.vstack([front, point])
            keep = pareto_mask(candidate, unit)
            if keep[-1]:  # a new non-dominated point: the volume can only grow
                front = candidate[keep]
                volume = hypervolume(front, unit, [1.0] * len(names))
        rows.append({"number": int(row["number"]), "hypervolume": volume})
    result = pd.DataFrame(rows, columns=["number", "hypervolume"])
    result.attrs["ideal"] = {n: float(v) for n, v in zip(names, ideal, strict=True)}
    result.attrs["reference"] = {n: float(v) for n, v in zip(names, reference, strict=True)}
    return result


# -- parameter importance ----------------------------------------------------------------------


def write_importance(study: Any, run_dir: str | Path, objectives: Sequence[str]) -> Path | None:
    """Write ``importance.json`` ({objective: {param: importance}}) for the report.

    Optuna's default evaluator, PED-ANOVA, over the study's COMPLETE trials with values, one
    target per objective (negated where the objective is maximised: PED-ANOVA rates what
    leads to *low* target values). It is deterministic, copes with the conditional (per-stage)
    parameters of our space, and takes ~0.1 s where fANOVA takes seconds, so it can run with
    every report. Returns None and writes nothing with fewer than
    ``MIN_TRIALS_FOR_IMPORTANCE`` such trials; never raises: importance is a reading aid and
    must not break a run.
    """
    try:
        import optuna

        complete = [
            t
            for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            if t.values is not None and len(t.values) == len(objectives)
        ]
        if len(complete) < MIN_TRIALS_FOR_IMPORTANCE:
            return None
        result: dict[str, dict[str, float]] = {}
        for index, name in enumerate(objectives):
            sign = -1.0 if study.directions[index] == optuna.study.StudyDirection.MAXIMIZE else 1.0
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "computes importances for low target values"
                importances = optuna.importance.get_param_importances(
                    study,
                    evaluator=optuna.importance.PedAnovaImportanceEvaluator(),
                    target=lambda t, i=index, s=sign: s * t.values[i],
                )
            result[str(name)] = {str(k): float(v) for k, v in importances.items()}
        return write_text_atomic(
            Path(run_dir) / IMPORTANCE, json.dumps(_plain(result), indent=2, allow_nan=False)
        )
    except Exception as error:  # a reading aid never stops a search
        log.warning("parameter importance not written: %s", error)
        return None


def read_importance(run_dir: str | Path) -> dict[str, dict[str, float]] | None:
    """``importance.json`` if present and well-formed, else None."""
    path = Path(run_dir) / IMPORTANCE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    result = {}
    for name, values in data.items():
        if isinstance(values, dict):
            numbers = {str(k): _number(v) for k, v in values.items()}
            result[str(name)] = {k: v for k, v in numbers.items() if v is not None}
    return result or None


# -- small helpers -----------------------------------------------------------------------------


def _numeric(frame: pd.DataFrame | None) -> pd.DataFrame:
    """A copy with the numeric columns present as floats (missing ones as NaN)."""
    frame = pd.DataFrame() if frame is None else frame.copy()
    for column in _NUMBERS:
        values = frame[column] if column in frame else pd.Series(np.nan, index=frame.index)
        frame[column] = pd.to_numeric(values, errors="coerce").astype(float)
    return frame


def _flags(values: list[bool], index: pd.Index) -> pd.Series:
    return pd.Series(values, index=index, dtype=bool)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0 or numerator <= 0:
        return None
    return numerator / denominator


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) or math.isinf(number) else number


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    return str(value).strip()


def _truthy(value: Any) -> bool:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return False
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _plain(value: Any) -> Any:
    """JSON-safe: NaN/inf become null, numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value
