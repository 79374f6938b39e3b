"""Predicted latency: a kernel-level model calibrated on measurements (nn-Meter style).

Measuring every candidate on the target is exact but needs the target at hand; this module
predicts a network's latency as the sum of its kernels' latencies (``layer_features``),
each from a model fitted on one-kernel probe measurements, corrected by a per-run
overhead, per-family scales and per-kernel terms fitted on whole-model probe measurements
(``Calibration``: what one-kernel probes cannot see, i.e. ORT's per-run cost, layout
changes between kernels, fusions such as the fp32 residual add folded into the conv).

- Host: ``calibrate_host`` generates probes (``evaluators.probes``), times them here with
  ONNX Runtime, fits, and caches ``results/devices/host/predictor/`` (probes.csv,
  measurements.csv, meta.json). The cache holds measurements, not a fitted model: loading
  refits (a few seconds, deterministic), so no pickled estimator is ever loaded.
- Another device: ``write_probe_kit`` writes the probes and a runner that needs only
  onnxruntime and numpy; ``fit_from_measurements`` fits the predictor from what it wrote.
- No measurements at all: ``roofline_latency_ms`` from a device's peak numbers.

Every prediction is a ``LatencyPrediction`` whose ``source`` says which of these made it.

A fitted predictor replaces the roofline for every later search in its results folder,
so ``fit_from_measurements`` refuses what it could not trust: too few layer probes of a
kernel family the device's networks run (``ProbeMeasurements.require_coverage``; a
cached folder fitted on such is refused when loaded too), or a predictor off by more
than ``MAX_HELD_OUT_ERROR`` on probes left out of its fit (``held_out_error``, recorded
in ``meta.json`` and quoted in ``source``).

Kernel model (per family, e.g. ``dwconv/int8``): a non-negative linear law
``a * MACs + b * activation bytes + c * weight bytes + d`` fitted on relative error (a
roofline with a fixed cost, extrapolates sanely), times a gradient-boosted correction of
its log-ratio learned from the shapes (channel alignment to SIMD blocks, kernel size,
resolution: what the law misses). A family without probes falls back to a model fitted
on all families.
"""

from __future__ import annotations

import csv
import itertools
import json
import logging
import math
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from evaluators import timing_lock
from evaluators.layer_features import OPS, LayerFeatures, layer_features
from evaluators.probes import (
    MIN_LAYERS_PER_FAMILY,
    Coverage,
    Probe,
    layer_probes,
    model_probes,
    read_probe_csv,
    write_probe_csv,
    write_probe_kit,
)
from spaces.candidate import Candidate
from spaces.space import SearchSpace

__all__ = [
    "DeviceNumbers",
    "LatencyPrediction",
    "LatencyPredictor",
    "LayerFeatures",
    "calibrate_host",
    "fit_from_measurements",
    "fitted_input_shape",
    "layer_features",
    "load_predictor",
    "predictor_dir",
    "predictor_problem",
    "roofline_latency_ms",
    "write_probe_kit",
]

log = logging.getLogger(__name__)

MIN_KERNEL_MS = 5e-4  # half a microsecond: below the timer's resolution for a probe

# A calibration is refused when its predictor mispredicts the probes it was not fitted on
# by more than this (median of |predicted / measured - 1| over networks; over layer probes
# sum |predicted - measured| / sum measured, see ``held_out_error``). The host's calibrated kernel
# model is off by ~4 % on unseen networks (README, Results): a quarter is far beyond
# measurement noise, and what measurements mislabelled, mixed up or of another kit give.
MAX_HELD_OUT_ERROR = 0.25
HELD_OUT_FOLDS = 5
# Fewer probes than these say little about the error: the check is then skipped.
MIN_HELD_OUT_MODELS = 10
MIN_HELD_OUT_LAYERS = 20


@dataclass(frozen=True)
class LatencyPrediction:
    """A predicted latency and what predicted it (reports show ``source`` next to it)."""

    latency_ms: float
    source: str


# --------------------------------------------------------------------------- roofline


@dataclass(frozen=True)
class DeviceNumbers:
    """Peak figures of a device: MACs per second by weight bit-width, memory bytes per
    second, and a fixed per-inference overhead."""

    macs_per_second: Mapping[int, float]
    bytes_per_second: float
    overhead_ms: float = 0.0


def _number(device: object, name: str) -> Any:
    if isinstance(device, Mapping):
        return device[name]
    return getattr(device, name)


def _macs_rate(rates: Mapping, bits: int) -> float:
    """The rate of the narrowest supported width >= ``bits`` (a 4-bit layer runs at 8 bits
    on a device that has 8 and 32); the widest width when none is that wide."""
    table = {int(k): float(v) for k, v in rates.items()}
    if not table:
        raise ValueError("macs_per_second is empty")
    wider = [b for b in table if b >= bits]
    return table[min(wider)] if wider else table[max(table)]


def roofline_latency_ms(
    features: Sequence[LayerFeatures],
    device: DeviceNumbers | Mapping | object,
    mac_rate: Callable[[int, int], float] | None = None,
) -> LatencyPrediction:
    """Without measurements: sum over kernels of max(compute time, memory time) + overhead.

    ``device`` is a ``DeviceNumbers``, a mapping, or any object with the attributes
    ``macs_per_second`` (bits -> MAC/s), ``bytes_per_second`` and ``overhead_ms`` (a
    device profile). Compute time is MACs at the layer's weight bit-width, or at
    ``mac_rate(weight_bits, activation_bits)`` where given (a device profile's own rule,
    e.g. bit-serial scaling); memory time moves the activations in and out and the
    weights once.
    """
    rates: Mapping = _number(device, "macs_per_second")
    bandwidth = float(_number(device, "bytes_per_second"))
    try:
        overhead = float(_number(device, "overhead_ms"))
    except (KeyError, AttributeError):
        overhead = 0.0
    total = overhead
    for row in features:
        # Data movement only (pool, add, shuffle, (de)quantize) has no MAC rate.
        if not row.macs:
            compute = 0.0
        elif mac_rate is not None:
            compute = row.macs / mac_rate(row.weight_bits, row.activation_bits)
        else:
            compute = row.macs / _macs_rate(rates, row.weight_bits)
        memory = row.bytes / bandwidth
        total += max(compute, memory) * 1000
    return LatencyPrediction(total, "predicted (roofline)")


# --------------------------------------------------------------------------- kernel models


def _alignment(channels: np.ndarray) -> np.ndarray:
    """Largest power of two (up to 64) dividing each channel count: SIMD blocking."""
    out = np.ones_like(channels, dtype=float)
    for power in (2, 4, 8, 16, 32, 64):
        out = np.where(channels % power == 0, power, out)
    return out


def _columns(rows: Sequence[LayerFeatures]) -> dict[str, np.ndarray]:
    def col(name: str) -> np.ndarray:
        return np.array([getattr(r, name) for r in rows], dtype=float)

    return {
        name: col(name) for name in LayerFeatures.__dataclass_fields__ if name not in ("op", "name")
    }


def _linear_design(rows: Sequence[LayerFeatures]) -> np.ndarray:
    c = _columns(rows)
    # MACs in millions and bytes in MB keep the least-squares columns comparable.
    return np.column_stack(
        [
            c["macs"] / 1e6,
            (c["input_bytes"] + c["output_bytes"]) / 1e6,
            c["weight_bytes"] / 1e6,
            np.ones(len(rows)),
        ]
    )


def _shape_design(rows: Sequence[LayerFeatures]) -> np.ndarray:
    c = _columns(rows)
    op_code = np.array([OPS.index(r.op) for r in rows], dtype=float)
    int8 = np.array([r.precision == "int8" for r in rows], dtype=float)
    return np.column_stack(
        [
            np.log2(c["macs"] + 1),
            np.log2(c["input_bytes"] + 1),
            np.log2(c["output_bytes"] + 1),
            np.log2(c["weight_bytes"] + 1),
            c["in_channels"],
            c["out_channels"],
            c["in_channels"] / np.maximum(c["groups"], 1),
            c["kernel"],
            c["stride"],
            c["in_h"] * c["in_w"],
            c["out_h"] * c["out_w"],
            _alignment(c["in_channels"]),
            _alignment(c["out_channels"]),
            op_code,
            int8,
        ]
    )


def _nnls(design: np.ndarray, target: np.ndarray, weights: np.ndarray) -> np.ndarray:
    from scipy.optimize import nnls

    coef, _ = nnls(design * weights[:, None], target * weights)
    return coef


@dataclass
class KernelModel:
    """One family's kernel latency: a non-negative linear law times a learned correction."""

    coef: np.ndarray
    correction: Any = None  # a fitted GradientBoostingRegressor, or None

    @classmethod
    def fit(
        cls, rows: Sequence[LayerFeatures], latency_ms: np.ndarray, seed: int = 0
    ) -> KernelModel:
        from sklearn.ensemble import GradientBoostingRegressor

        y = np.maximum(np.asarray(latency_ms, dtype=float), MIN_KERNEL_MS)
        coef = _nnls(_linear_design(rows), y, 1 / y)
        model = cls(coef)
        if len(rows) >= 20:
            base = model._base(rows)
            correction = GradientBoostingRegressor(
                n_estimators=150,
                max_depth=3,
                learning_rate=0.1,
                subsample=0.8,
                min_samples_leaf=5,
                random_state=seed,
            )
            correction.fit(_shape_design(rows), np.log(y / base))
            model.correction = correction
        return model

    def _base(self, rows: Sequence[LayerFeatures]) -> np.ndarray:
        return np.maximum(_linear_design(rows) @ self.coef, MIN_KERNEL_MS)

    def predict(self, rows: Sequence[LayerFeatures]) -> np.ndarray:
        base = self._base(rows)
        if self.correction is None or not len(rows):
            return base
        return base * np.exp(self.correction.predict(_shape_design(rows)))


# --------------------------------------------------------------------------- the predictor


class CalibrationError(ValueError):
    """Measurements a predictor cannot be fitted on; the message says what to fix."""


def _cell(cells: Sequence[str], column: int) -> str:
    return cells[column].strip() if column < len(cells) else ""


@dataclass(frozen=True)
class ProbeMeasurements:
    """What a predictor is fitted on: per probe, its role, kernel rows and measured latency."""

    empty_ms: float
    layers: tuple[tuple[LayerFeatures, float], ...]  # (kernel, probe ms - empty ms)
    models: tuple[tuple[tuple[LayerFeatures, ...], float, str], ...]  # (kernels, ms, genome)
    unmeasured: int = 0  # probes of the kit without a measurement
    coverage: Coverage | None = None  # which of the kit's layer probes were measured

    @classmethod
    def read(cls, probes_csv: str | Path, measurements_csv: str | Path) -> ProbeMeasurements:
        probes = read_probe_csv(probes_csv)
        # A probe converted for a board's runtime keeps its name but not its extension.
        stems = {Path(name).stem: name for name in probes}
        measured: dict[str, float] = {}
        first_line: dict[str, int] = {}
        # utf-8-sig: a spreadsheet's export starts with a byte-order mark, which would
        # otherwise glue itself to the first column's name.
        with Path(measurements_csv).open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = [c.strip() for c in next(reader, [])]
            # Hand-written files say "Probe" or "probe, median_ms": the same columns.
            index = {c.lower(): i for i, c in reversed(list(enumerate(header)))}
            absent = [c for c in ("probe", "median_ms") if c not in index]
            if absent:
                raise CalibrationError(
                    f"{measurements_csv} has no column {', '.join(absent)} (it has "
                    f"{', '.join(c for c in header if c) or 'none'}); give it the columns "
                    "probe and median_ms, as the kit's run_probes.py writes them"
                )
            for line, cells in enumerate(reader, start=2):
                if not any(c.strip() for c in cells):
                    continue  # a blank line, e.g. at the end of a hand-written file
                name = _cell(cells, index["probe"])
                text = _cell(cells, index["median_ms"])
                name = name if name in probes else stems.get(Path(name).stem, name)
                try:
                    ms = float(text)
                except ValueError:
                    raise CalibrationError(
                        f"{measurements_csv} line {line}: median_ms {text!r} is "
                        "not a number of milliseconds"
                    ) from None
                if not math.isfinite(ms) or ms <= 0:
                    raise CalibrationError(
                        f"{measurements_csv} line {line}: median_ms of {name} is {text}, not "
                        "a time: give the probe's positive median time in milliseconds, or "
                        "leave its row out"
                    )
                if name in first_line:
                    # Keeping either silently would fit on a time nobody chose.
                    raise CalibrationError(
                        f"{measurements_csv} line {line}: probe {name} is listed again (first "
                        f"on line {first_line[name]}); keep one row per probe, the time you "
                        "trust"
                    )
                first_line[name] = line
                measured[name] = ms
        missing = [name for name in probes if name not in measured]
        if len(missing) == len(probes):
            raise CalibrationError(
                f"{measurements_csv} measures none of the probes of {probes_csv}; give the "
                "measurements.csv of this kit's probes (--kit names the kit's folder)"
            )
        empties = [
            measured[n] for n, (role, _, _) in probes.items() if role == "empty" and n in measured
        ]
        empty = min(empties) if empties else 0.0
        layers, models = [], []
        for name, (role, genome, rows) in probes.items():
            if name not in measured:
                continue
            if role == "layer":
                layers.append((rows[0], max(measured[name] - empty, MIN_KERNEL_MS)))
            elif role == "model":
                models.append((tuple(rows), measured[name], genome))
        coverage = Coverage.of(probes, measured)
        return cls(empty, tuple(layers), tuple(models), len(missing), coverage)

    def require_coverage(self, measured: str, then: str) -> None:
        """Refuse measurements that leave a kernel family the device's networks run with
        fewer layer probes than ``MIN_LAYERS_PER_FAMILY``: ``measured`` starts the sentence
        ("m.csv measures"), ``then`` ends it (what to do with the probes timed)."""
        coverage = self.coverage
        short = coverage.short() if coverage is not None else []
        if coverage is None or not short:
            return
        needed = coverage.prefix()
        listed = ", ".join(f"{family} {got} of {need}" for family, got, need in short)
        raise CalibrationError(
            f"{measured} {coverage.measured_layers} of the kit's "
            f"{len(coverage.layers)} layer probes, too few to fit a latency model to trust: "
            f"each kernel family the device's networks run needs "
            f"{MIN_LAYERS_PER_FAMILY} measured layer probes (or all the kit has), and "
            f"{len(short)} of {len(coverage.used)} have fewer ({listed}); time at least the "
            f"kit's first {needed} layer probes ({coverage.layers[0][0]} through "
            f"{coverage.layers[needed - 1][0]}) on the device and {then}"
        )


@dataclass
class Calibration:
    """Whole-model correction of the kernel sums, fitted on the model probes:

    latency = overhead + sum over families f of (scale_f * kernels_f + per_kernel_f * n_f)

    where kernels_f is the predicted time of the network's kernels of family f alone and
    n_f their number. ``per_kernel_f`` is what a kernel of the family costs more (or,
    negative, less) inside a network than alone: an int8 conv probe pays two layout
    Transposes that a chain of int8 convs shares; an fp32 conv probe pays the NCHWc
    reorders. Families that too few model probes contain keep scale 1 and no per-kernel
    term (``min_models``).
    """

    overhead_ms: float
    scales: dict[str, float] = field(default_factory=dict)
    per_kernel_ms: dict[str, float] = field(default_factory=dict)

    def apply(self, sums: Mapping[str, float], counts: Mapping[str, int]) -> float:
        total = self.overhead_ms
        for family, value in sums.items():
            total += self.scales.get(family, 1.0) * value
            total += self.per_kernel_ms.get(family, 0.0) * counts.get(family, 0)
        return max(total, MIN_KERNEL_MS)

    @classmethod
    def fit(
        cls,
        sums: Sequence[Mapping[str, float]],
        counts: Sequence[Mapping[str, int]],
        latency_ms: np.ndarray,
        unit_ms: float,
        *,
        min_models: int = 8,
        ridge: float = 1e-4,
    ) -> Calibration:
        """Least squares on relative error (weights 1 / latency, as the +-10 % criterion
        counts), with the overhead and the scales kept >= 0, so that no kernel can count
        negatively however large, and a light ridge (``ridge``, per model probe) pulling
        the per-kernel terms, in units of ``unit_ms`` (the empty run), towards 0: it
        settles the families that every network has exactly one of (pool, classifier),
        whose terms the overhead could otherwise trade against.
        """
        from scipy.optimize import lsq_linear

        y = np.asarray(latency_ms, dtype=float)
        seen = {f for c in counts for f, n in c.items() if n}
        free = sorted(f for f in seen if sum(1 for c in counts if c.get(f, 0)) >= min_models)
        k = len(free)
        fixed = np.array([sum(v for f, v in s.items() if f not in free) for s in sums])
        design = np.column_stack(
            [
                np.ones(len(y)),
                *[[s.get(f, 0.0) for s in sums] for f in free],
                *[[c.get(f, 0) for c in counts] for f in free],
            ]
        )
        weights = 1 / y
        penalty = np.zeros((k, 1 + 2 * k))
        penalty[:, 1 + k :] = np.eye(k) * math.sqrt(ridge * len(y)) / max(unit_ms, MIN_KERNEL_MS)
        lower = np.concatenate([np.zeros(1 + k), np.full(k, -np.inf)])
        solution = lsq_linear(
            np.vstack([design * weights[:, None], penalty]),
            np.concatenate([(y - fixed) * weights, np.zeros(k)]),
            bounds=(lower, np.full(1 + 2 * k, np.inf)),
        )
        coef = solution.x
        return cls(
            float(coef[0]),
            {f: float(c) for f, c in zip(free, coef[1 : 1 + k], strict=True)},
            {f: float(c) for f, c in zip(free, coef[1 + k :], strict=True)},
        )


class LatencyPredictor:
    """Kernel-level latency predictor for one device, fitted on probe measurements.

    Build it with ``fit_from_measurements``, ``calibrate_host`` or ``load_predictor``;
    ``predict`` / ``predict_candidate`` return a ``LatencyPrediction``.
    """

    def __init__(
        self,
        kernels: dict[str, KernelModel],
        layers: Sequence[tuple[LayerFeatures, float]],
        calibration: Calibration,
        meta: dict,
    ):
        self.kernels = kernels
        self._layers = tuple(layers)
        self._fallback: KernelModel | None = None
        self.calibration = calibration
        self.meta = meta

    @property
    def fallback(self) -> KernelModel:
        """One model over every family, for a family no probe measured (fitted on demand)."""
        if self._fallback is None:
            rows = [r for r, _ in self._layers]
            self._fallback = KernelModel.fit(rows, np.array([ms for _, ms in self._layers]))
        return self._fallback

    # ------------------------------------------------------------------ fitting

    @classmethod
    def fit(
        cls, data: ProbeMeasurements, meta: Mapping | None = None, *, seed: int = 0
    ) -> LatencyPredictor:
        """Fit kernel models on the layer probes, then the calibration on the model probes
        (without model probes: the empty graph's time is the overhead, scales are 1)."""
        if not data.layers:
            raise CalibrationError(
                "no layer probe was measured: nothing to fit kernels on; measure the kit's "
                "layer_*.onnx probes as well"
            )
        by_family: dict[str, list[tuple[LayerFeatures, float]]] = {}
        for row, ms in data.layers:
            by_family.setdefault(row.group, []).append((row, ms))
        kernels = {
            family: KernelModel.fit([r for r, _ in pairs], np.array([m for _, m in pairs]), seed)
            for family, pairs in by_family.items()
        }
        predictor = cls(kernels, data.layers, Calibration(data.empty_ms), dict(meta or {}))
        if data.models:
            predictor.calibration = Calibration.fit(
                predictor._family_sums_of_many([rows for rows, _, _ in data.models]),
                [_counts(rows) for rows, _, _ in data.models],
                np.array([ms for _, ms, _ in data.models]),
                unit_ms=data.empty_ms,
            )
        predictor.meta.update(
            layer_measurements=len(data.layers),
            model_measurements=len(data.models),
            empty_ms=data.empty_ms,
            overhead_ms=predictor.calibration.overhead_ms,
            scales=predictor.calibration.scales,
            per_kernel_ms=predictor.calibration.per_kernel_ms,
        )
        return predictor

    # ------------------------------------------------------------------ predicting

    def kernel_ms(self, rows: Sequence[LayerFeatures]) -> np.ndarray:
        """Each kernel's latency alone (before the whole-model calibration)."""
        out = np.zeros(len(rows))
        by_family: dict[str, list[int]] = {}
        for index, row in enumerate(rows):
            by_family.setdefault(row.group, []).append(index)
        for family, indices in by_family.items():
            model = self.kernels.get(family, self.fallback)
            out[indices] = model.predict([rows[i] for i in indices])
        return out

    def _family_sums_of_many(
        self, networks: Sequence[Sequence[LayerFeatures]]
    ) -> list[dict[str, float]]:
        """``family_sums`` of many networks with one model call per family (fast)."""
        flat = [row for rows in networks for row in rows]
        times = self.kernel_ms(flat)
        out: list[dict[str, float]] = []
        start = 0
        for rows in networks:
            sums: dict[str, float] = {}
            for row, ms in zip(rows, times[start : start + len(rows)], strict=True):
                sums[row.group] = sums.get(row.group, 0.0) + float(ms)
            out.append(sums)
            start += len(rows)
        return out

    def family_sums(self, rows: Sequence[LayerFeatures]) -> dict[str, float]:
        sums: dict[str, float] = {}
        for row, ms in zip(rows, self.kernel_ms(rows), strict=True):
            sums[row.group] = sums.get(row.group, 0.0) + float(ms)
        return sums

    def predict(self, rows: Sequence[LayerFeatures]) -> LatencyPrediction:
        """Latency of the network whose kernels are ``rows`` (at the bits ORT executes)."""
        total = self.calibration.apply(self.family_sums(rows), _counts(rows))
        return LatencyPrediction(total, self.source)

    def predict_candidate(
        self,
        candidate: Candidate,
        input_shape: tuple[int, int, int],
        num_classes: int,
        align: int = 4,
    ) -> LatencyPrediction:
        """Latency of ``candidate`` as deployed (pruned by its policy; int8 where ORT runs
        int8), without building or exporting it."""
        rows = layer_features(candidate, input_shape, num_classes, align=align, runtime_bits=True)
        return self.predict(rows)

    @property
    def source(self) -> str:
        meta = self.meta
        where = f"on {meta.get('device', 'the device')}"
        # Only run_probes.py and the host's calibration time probes in ONNX Runtime and say
        # so; a board timed with its own runtime (TFLite Micro, CMSIS-NN) has no such fields.
        if "onnxruntime" in meta:
            where += f", ORT {meta['onnxruntime']}, {meta.get('threads', '?')} thread(s)"
        held = meta.get("held_out")
        if held:
            where += (
                f"; {held.get('how', 'median')} error {held['error']:.1%} on {held['probes']} "
                f"held-out {held['of']}"
            )
        return (
            f"predicted (kernel model fitted on {meta.get('layer_measurements', 0)} kernel + "
            f"{meta.get('model_measurements', 0)} model measurements {where})"
        )

    def held_out_error(self, data: ProbeMeasurements, seed: int = 0) -> dict | None:
        """How far off this predictor is on probes it was not fitted on, as ``{"error": e,
        "probes": n, "of": "networks" | "kernels", "how": "median" | "time-weighted"}``
        (the median of |predicted / measured - 1| over networks; over kernels the summed
        absolute error over the summed time); None when too few probes were measured.

        With ``MIN_HELD_OUT_MODELS`` model probes, on those: no network is among the layer
        probes the kernels were fitted on, so only the whole-model calibration is refitted,
        ``HELD_OUT_FOLDS``-fold, without the networks it then predicts. Otherwise on the
        layer probes, the kernel models refitted fold by fold.
        """
        folds = HELD_OUT_FOLDS
        if len(data.models) >= MIN_HELD_OUT_MODELS:
            networks = [rows for rows, _, _ in data.models]
            sums = self._family_sums_of_many(networks)
            counts = [_counts(rows) for rows in networks]
            measured = np.array([ms for _, ms, _ in data.models])
            predicted = np.empty(len(measured))
            for fold in range(folds):
                test = np.arange(len(measured)) % folds == fold
                calibration = Calibration.fit(
                    [x for x, t in zip(sums, test, strict=True) if not t],
                    [x for x, t in zip(counts, test, strict=True) if not t],
                    measured[~test],
                    unit_ms=data.empty_ms,
                )
                for index in np.flatnonzero(test):
                    predicted[index] = calibration.apply(sums[index], counts[index])
            what = "networks"
        elif len(data.layers) >= MIN_HELD_OUT_LAYERS:
            measured = np.array([ms for _, ms in data.layers])
            predicted = np.empty(len(measured))
            for fold in range(folds):
                test = np.arange(len(measured)) % folds == fold
                train = [pair for pair, t in zip(data.layers, test, strict=True) if not t]
                refitted = LatencyPredictor.fit(
                    ProbeMeasurements(data.empty_ms, tuple(train), ()), seed=seed
                )
                predicted[test] = refitted.kernel_ms(
                    [data.layers[i][0] for i in np.flatnonzero(test)]
                )
            what = "kernels"
        else:
            return None
        if what == "kernels":
            # Weighted by time: a kernel far shorter than the empty run's time is mostly that
            # run's timing noise, which a median of ratios counted as the predictor's error
            # (5% noise on a 1 ms empty run refused a sound fit).
            error = float(np.abs(predicted - measured).sum() / measured.sum())
            how = "time-weighted"
        else:
            error = float(np.median(np.abs(predicted / measured - 1)))
            how = "median"
        return {"error": error, "probes": len(measured), "of": what, "how": how}

    # ------------------------------------------------------------------ storage

    def save(
        self, directory: str | Path, probes_csv: str | Path, measurements_csv: str | Path
    ) -> Path:
        """Store what it was fitted on (probes.csv, measurements.csv) and meta.json."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for source, name in ((probes_csv, "probes.csv"), (measurements_csv, "measurements.csv")):
            if Path(source).resolve() != (directory / name).resolve():
                shutil.copyfile(source, directory / name)
        meta = {k: v for k, v in self.meta.items()}
        (directory / "meta.json").write_text(json.dumps(meta, indent=2, default=float) + "\n")
        return directory


def _counts(rows: Sequence[LayerFeatures]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.group] = counts.get(row.group, 0) + 1
    return counts


# --------------------------------------------------------------------------- entry points


def predictor_dir(device: str = "host", results: str | Path = "results") -> Path:
    return Path(results) / "devices" / device / "predictor"


def _runtime_meta(threads: int) -> dict:
    import onnxruntime as ort

    return {
        "onnxruntime": ort.__version__,
        "threads": threads,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
    }


# A roofline device's roofline is a lower bound (peak rates, no stalls): real kernels run
# slower, a few times to some tens of times on small probes, where a kernel's fixed cost
# dominates. Measurements faster than half of it were not made on that device (a faster
# machine: this host) or not in milliseconds (seconds, or a tenth); measurements 200 times
# slower are microseconds written as milliseconds. The simulated boards of the tests run at
# about 2-4 times the cortex-m7's roofline.
MIN_ROOFLINE_RATIO = 0.5
MAX_ROOFLINE_RATIO = 200.0
# Model probes (whole networks, what the roofline is meant for) are compared when at least
# this many were measured, else the layer probes' kernel times.
MIN_ROOFLINE_MODELS = 3


def roofline_ratio(data: ProbeMeasurements, device: Any) -> tuple[float, str] | None:
    """Median of measured / roofline time over the measured model probes (or, with fewer
    than ``MIN_ROOFLINE_MODELS``, the layer probes' kernel times), and which; None where
    the device has no roofline numbers or nothing could be compared. ``device`` is a
    device profile (``latency`` numbers and ``mac_rate``)."""
    numbers = getattr(device, "latency", device)
    mac_rate = getattr(device, "mac_rate", None)
    try:
        overhead = float(_number(numbers, "overhead_ms") or 0.0)
    except (KeyError, AttributeError, TypeError):
        overhead = 0.0

    def roofline(rows: Sequence[LayerFeatures]) -> float | None:
        try:
            return roofline_latency_ms(rows, numbers, mac_rate).latency_ms
        except (ValueError, KeyError, AttributeError, TypeError, ZeroDivisionError):
            return None  # a precision the device has no rate for: nothing to compare

    ratios: list[float] = []
    what = "networks"
    if len(data.models) >= MIN_ROOFLINE_MODELS:
        for rows, ms, _ in data.models:
            bound = roofline(rows)
            if bound is not None and bound > 0:
                ratios.append(ms / bound)
    if not ratios:
        what = "kernels"
        for row, ms in data.layers:
            bound = roofline([row])
            if bound is not None and bound - overhead > 0:
                ratios.append(ms / (bound - overhead))
    if not ratios:
        return None
    return float(np.median(ratios)), what


def check_roofline(data: ProbeMeasurements, device: Any, measurements_csv: str | Path) -> None:
    """Refuse times implausible for ``device``'s roofline (see ``MIN_ROOFLINE_RATIO``): the
    held-out check compares the file only with itself, so a whole file in the wrong unit
    or timed on another machine passes it."""
    found = roofline_ratio(data, device)
    if found is None:
        return
    ratio, what = found
    name = getattr(device, "name", "the device")
    fix = (
        f"if the times are right, the public numbers of {name}'s profile are wrong: fix "
        "latency.macs_per_second and bytes_per_second in its YAML, then calibrate again"
    )
    if ratio < MIN_ROOFLINE_RATIO:
        raise CalibrationError(
            f"{measurements_csv} times the probe {what} at a median {ratio:.2g}x the "
            f"roofline of {name}'s public numbers, faster than that lower bound allows, "
            "so they were likely timed on another machine (this host?) rather than on the "
            f"{name} itself, or written in another unit than milliseconds: time the probes "
            f"on the device and give median_ms in milliseconds; {fix}"
        )
    if ratio > MAX_ROOFLINE_RATIO:
        raise CalibrationError(
            f"{measurements_csv} times the probe {what} at a median {ratio:.3g}x the "
            f"roofline of {name}'s public numbers, more than the {MAX_ROOFLINE_RATIO:.0f}x "
            "a device runs slower than its peak, so they are likely in microseconds or "
            f"another unit than milliseconds: give median_ms in milliseconds; {fix}"
        )


def fit_from_measurements(
    probes: str | Path,
    measurements_csv: str | Path,
    *,
    device: str = "device",
    meta: Mapping | None = None,
    save_to: str | Path | None = None,
    roofline: Any = None,
) -> LatencyPredictor:
    """Fit a predictor from a probe kit (folder or its ``probes.csv``) and the
    ``measurements.csv`` its runner wrote on the device (with ``measurements.json``
    beside it, when present: runtime version and threads, recorded in ``meta``);
    ``save_to`` caches it under, e.g., ``predictor_dir(device)``. ``roofline``: the
    profile of a roofline device, whose roofline the times must be plausible for
    (``check_roofline``). The kit's input shape (``kit.json``) is recorded in ``meta``
    (``fitted_input_shape``)."""
    probes_csv = Path(probes)
    if probes_csv.is_dir():
        probes_csv = probes_csv / "probes.csv"
    data = ProbeMeasurements.read(probes_csv, measurements_csv)
    data.require_coverage(
        f"{measurements_csv} measures",
        f"add them to {Path(measurements_csv).name}, then calibrate again",
    )
    if data.unmeasured:
        log.warning(
            "%d probes of %s have no measurement in %s; the predictor is fitted on the "
            "others and extrapolates for kernels like the missing ones",
            data.unmeasured,
            probes_csv,
            measurements_csv,
        )
    side = Path(measurements_csv).with_suffix(".json")  # written by run_probes.py
    measured_with = json.loads(side.read_text()) if side.is_file() else {}
    kit_json = probes_csv.parent / "kit.json"
    kit = _read_json(kit_json) if kit_json.is_file() else {}
    # The input the probes were made at: a search at another input asks about kernel
    # shapes the predictor may never have seen (the search compares, see
    # ``fitted_input_shape``).
    made_at = {k: kit[k] for k in ("input_shape", "num_classes") if k in kit}
    info = {"device": device, **made_at, **measured_with, **dict(meta or {})}
    predictor = LatencyPredictor.fit(data, info)
    held = predictor.held_out_error(data)
    if held is not None:
        predictor.meta["held_out"] = held
        if held["error"] > MAX_HELD_OUT_ERROR:
            more = (
                ""
                if held["of"] == "networks"
                else f", and time the kit's model_*.onnx probes too (at least {MIN_HELD_OUT_MODELS})"
            )
            raise CalibrationError(
                f"a predictor fitted on {measurements_csv} is off by {held['error']:.0%} "
                f"({held['how']}) on the {held['probes']} {held['of']} it was not fitted on, more "
                f"than the {MAX_HELD_OUT_ERROR:.0%} a calibration accepts: check that each "
                "row's median_ms is in milliseconds and belongs to the probe its name says, "
                f"all timed the same way{more}"
            )
    if roofline is not None:
        # After the held-out check: a mixed-up file is that check's to name, while a
        # whole file scaled (a wrong unit, another machine) passes it and is caught here.
        check_roofline(data, roofline, measurements_csv)
    if save_to is not None:
        predictor.save(save_to, probes_csv, measurements_csv)
    return predictor


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


_ANNOUNCED: set[Path] = set()  # cache folders whose use this process has logged
PREDICTOR_FILES = ("meta.json", "probes.csv", "measurements.csv")


def fitted_input_shape(directory: str | Path) -> tuple[int, ...] | None:
    """The input shape (C, H, W) the probes of the predictor cached in ``directory`` were
    made at, from its ``meta.json``; None where it was not recorded (a folder written
    before it was, or by hand)."""
    shape = _read_json(Path(directory) / "meta.json").get("input_shape")
    if not isinstance(shape, list | tuple) or not shape:
        return None
    try:
        return tuple(int(v) for v in shape)
    except (TypeError, ValueError):
        return None


def predictor_problem(directory: str | Path) -> str | None:
    """Why ``load_predictor`` would refuse the predictor cached in ``directory``, in a few
    words ("too few probes", "measurements.csv missing", ...), or None where it loads
    (``paretonas devices`` says so rather than list it as in use)."""
    directory = Path(directory)
    for name in PREDICTOR_FILES:
        if not (directory / name).is_file():
            return f"{name} missing"
    try:
        data = ProbeMeasurements.read(directory / "probes.csv", directory / "measurements.csv")
    except (CalibrationError, OSError, ValueError, KeyError):
        return "measurements this version refuses"
    coverage = data.coverage
    if coverage is not None and coverage.short():
        return "too few probes"
    return None


def load_predictor(directory: str | Path) -> LatencyPredictor:
    """Refit from a cache folder written by ``LatencyPredictor.save`` (no pickles).

    A folder fitted on too few layer probes (written before calibration refused such
    measurements) is refused too, and each folder's use is logged once per process: a
    fitted predictor replaces the device's roofline for every search in its results
    folder, which must never go unsaid."""
    directory = Path(directory)
    missing = [name for name in PREDICTOR_FILES if not (directory / name).is_file()]
    if missing:
        # A folder copied in part, or edited: what it lacks cannot be refitted from.
        raise CalibrationError(
            f"the latency predictor in {directory} has no {' or '.join(missing)}; calibrate "
            f"again, or delete {directory} to do without it (a run begun with it resumes "
            "under neither: give the search a new --name)"
        )
    meta = _read_json(directory / "meta.json")
    try:
        data = ProbeMeasurements.read(directory / "probes.csv", directory / "measurements.csv")
    except CalibrationError as error:
        # A cache written before calibration refused such rows: the cure is a new fit, not
        # an edit of the cached file.
        raise CalibrationError(
            f"the latency predictor in {directory} was fitted on measurements this version "
            f"refuses ({error}); calibrate again, or delete {directory} to do without it (a "
            "run begun with it resumes under neither: give the search a new --name)"
        ) from None
    data.require_coverage(
        f"the latency predictor in {directory} was fitted on",
        f"calibrate again, or delete {directory} to do without it (a run begun with it "
        "resumes under neither: give the search a new --name)",
    )
    keep = {k: v for k, v in meta.items() if k not in ("overhead_ms", "scales", "per_kernel_ms")}
    predictor = LatencyPredictor.fit(data, keep)
    if directory.resolve() not in _ANNOUNCED:
        _ANNOUNCED.add(directory.resolve())
        log.info("latency predictor: %s, from %s", predictor.source, directory)
    return predictor


def calibrate_host(
    out_dir: str | Path | None = None,
    budget_seconds: float = 900,
    *,
    input_shape: tuple[int, int, int] = (1, 28, 28),
    num_classes: int = 10,
    threads: int = 1,
    warmup: int = 10,
    runs: int = 50,
    passes: int = 3,
    seed: int = 0,
    space: SearchSpace | None = None,
    layer_share: float = 0.3,
    max_layer_probes: int = 3000,
    max_model_probes: int = 2000,
    progress: bool = True,
) -> LatencyPredictor:
    """Time probes on this machine within ``budget_seconds``, fit, and cache the result.

    Up to ``layer_share`` of the budget goes to one-kernel probes (at most
    ``max_layer_probes``), the rest, less a few percent for fitting, to whole-model probes.
    Probes come in an order that covers every kernel family and precision mix early
    (``evaluators.probes``) and generation stops when the time left is what the later
    ``passes`` need to re-time what was measured (the fastest pass is kept, see
    ``evaluators.probe_runner``), so the probe count adapts to the machine. ``out_dir``
    defaults to ``results/devices/host/predictor``; the thread count is the one the
    search measures with.
    """
    from evaluators.probe_runner import measure, measure_passes, write_measurements
    from evaluators.progress import progress_bar

    started = time.perf_counter()
    out = Path(out_dir) if out_dir is not None else predictor_dir("host")
    out.mkdir(parents=True, exist_ok=True)
    fit_reserve = min(30.0, 0.05 * budget_seconds)
    layer_deadline = started + layer_share * (budget_seconds - fit_reserve)
    model_deadline = started + budget_seconds - fit_reserve
    layers = layer_probes(max_layer_probes, input_shape, num_classes, seed, space)
    models = itertools.islice(model_probes(input_shape, num_classes, seed, space), max_model_probes)
    stages = (
        (layers, layer_deadline, "kernel"),
        (models, model_deadline, "model"),
    )
    kept: list[Probe] = []
    best: dict[str, tuple[float, float]] = {}
    timing = 0.0  # seconds spent timing (what every later pass costs again)
    with tempfile.TemporaryDirectory(prefix="paretonas-probes-") as tmp:
        for probes, deadline, what in stages:
            # No total: a stage usually ends at its deadline, before its cap of probes.
            bar = progress_bar(desc=f"{what} probes", enabled=progress)
            for probe in probes:
                late = time.perf_counter() + timing * (passes - 1) > deadline
                if late and probe.role != "empty":
                    break
                path = Path(tmp) / probe.name
                probe.build(path)
                begin = time.perf_counter()
                with timing_lock.timing():
                    best[probe.name] = measure(path, threads, warmup, runs)
                timing += time.perf_counter() - begin
                kept.append(probe)
                bar.update()
            bar.close()
            count = sum(p.role == ("layer" if what == "kernel" else "model") for p in kept)
            log.info("%s probes: %d measured, %.0f s", what, count, time.perf_counter() - started)
        if passes > 1:
            bar = progress_bar(
                total=len(kept) * (passes - 1), desc="re-timing", enabled=progress, leave=True
            )
            again = measure_passes(
                [Path(tmp) / p.name for p in kept],
                threads,
                warmup,
                runs,
                passes - 1,
                lambda done, total: bar.update(done - bar.n),
            )
            bar.close()
            for name, (median, p90) in again.items():
                if median < best[name][0]:
                    best[name] = (median, p90)
    probes_csv = write_probe_csv(out / "probes.csv", kept)
    measurements_csv = write_measurements(out / "measurements.csv", best, runs)
    meta = {
        "device": "host",
        "calibrated": datetime.now(UTC).isoformat(timespec="seconds"),
        "input_shape": list(input_shape),
        "num_classes": num_classes,
        "warmup": warmup,
        "runs": runs,
        "passes": passes,
        "seed": seed,
        **_runtime_meta(threads),
    }
    predictor = fit_from_measurements(probes_csv, measurements_csv, device="host", meta=meta)
    predictor.meta["calibration_seconds"] = round(time.perf_counter() - started, 1)
    predictor.save(out, probes_csv, measurements_csv)
    log.info("host predictor calibrated in %.0f s: %s", time.perf_counter() - started, out)
    return predictor
