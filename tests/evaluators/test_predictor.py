from __future__ import annotations

import ast
import csv
import json
import os
import random
import subprocess
import sys
from dataclasses import replace

import numpy as np
import onnxruntime as ort
import pytest

from evaluators.cost import estimate_cost
from evaluators.layer_features import LayerFeatures, layer_features
from evaluators.predictor import (
    MAX_HELD_OUT_ERROR,
    DeviceNumbers,
    LatencyPredictor,
    ProbeMeasurements,
    fit_from_measurements,
    load_predictor,
    roofline_latency_ms,
    write_probe_kit,
)
from evaluators.probes import _grid_row
from spaces import Candidate, CompressionPolicy, StagePolicy, get_candidate

# A known law per kernel family: ms = a * MMACs + b * MB moved + c.
LAW = {
    "conv/fp32": (0.20, 0.30, 0.004),
    "conv/int8": (0.08, 0.50, 0.006),
    "dwconv/fp32": (0.60, 0.40, 0.003),
    "dwconv/int8": (0.50, 0.70, 0.005),
    "linear/fp32": (0.30, 0.20, 0.001),
    "add/fp32": (0.00, 0.25, 0.002),
}


def _law(row: LayerFeatures) -> float:
    a, b, c = LAW[row.group]
    return a * row.macs / 1e6 + b * (row.input_bytes + row.output_bytes) / 1e6 + c


def _synthetic_rows(count: int, seed: int) -> list[LayerFeatures]:
    rng = random.Random(seed)
    rows = []
    for family in LAW:
        op, precision = family.split("/")
        rows += [_grid_row(op, precision, rng) for _ in range(count)]
    return rows


def test_predictor_recovers_a_known_per_kernel_law():
    noise = np.random.default_rng(0)
    train = _synthetic_rows(120, seed=0)
    layers = tuple((row, _law(row) * (1 + 0.01 * noise.standard_normal())) for row in train)
    predictor = LatencyPredictor.fit(ProbeMeasurements(0.02, layers, ()), {"device": "synthetic"})

    unseen = _synthetic_rows(40, seed=1)
    truth = np.array([_law(row) for row in unseen])
    errors = np.abs(predictor.kernel_ms(unseen) / truth - 1)
    assert np.median(errors) < 0.02 and np.quantile(errors, 0.95) < 0.06
    network = predictor.predict(unseen[::7])
    expected = 0.02 + sum(_law(row) for row in unseen[::7])  # no model probes: empty overhead
    assert network.latency_ms == pytest.approx(expected, rel=0.03)
    assert network.source.startswith("predicted (kernel model fitted on 720 kernel + 0 model")
    assert "ORT" not in network.source  # nothing says ONNX Runtime timed these


def test_whole_model_probes_fit_the_overhead_and_family_scales():
    noise = np.random.default_rng(1)
    train = _synthetic_rows(80, seed=2)
    layers = tuple((row, _law(row)) for row in train)
    rng = random.Random(3)
    models = []
    for index in range(60):
        rows = tuple(rng.sample(train, 6))
        # In a whole network convs run 20 % faster than alone, and a run costs 0.03 ms.
        ms = 0.03 + sum(_law(r) * (0.8 if r.op == "conv" else 1.0) for r in rows)
        models.append((rows, ms * (1 + 0.005 * noise.standard_normal()), f"m{index}"))
    predictor = LatencyPredictor.fit(ProbeMeasurements(0.01, layers, tuple(models)), {})
    assert predictor.calibration.overhead_ms == pytest.approx(0.03, abs=0.004)
    assert predictor.calibration.scales["conv/fp32"] == pytest.approx(0.8, abs=0.05)
    held_out = tuple(rng.sample(train, 6))
    truth = 0.03 + sum(_law(r) * (0.8 if r.op == "conv" else 1.0) for r in held_out)
    assert predictor.predict(held_out).latency_ms == pytest.approx(truth, rel=0.05)
    assert predictor.meta["model_measurements"] == 60
    # Refitted without them, the calibration predicts the networks it did not see as well.
    data = ProbeMeasurements(0.01, layers, tuple(models))
    held = predictor.held_out_error(data)
    assert held["of"] == "networks" and held["probes"] == 60 and held["error"] < 0.02
    times = [ms for _, ms, _ in models][::-1]  # each network given another's time
    wrong = tuple((rows, ms, g) for (rows, _, g), ms in zip(models, times, strict=True))
    assert predictor.held_out_error(replace(data, models=wrong))["error"] > MAX_HELD_OUT_ERROR
    few = predictor.held_out_error(replace(data, models=tuple(models[:5]), layers=layers[:10]))
    assert few is None  # too few probes to tell


_ALLOWED_RUNNER_IMPORTS = {
    "__future__",
    "argparse",
    "csv",
    "hashlib",
    "json",
    "math",
    "os",
    "platform",
    "statistics",
    "sys",
    "time",
    "pathlib",
    "numpy",
    "onnxruntime",
}


def test_probe_kit_runs_with_onnxruntime_alone_and_fits_a_predictor(tmp_path):
    kit = write_probe_kit(tmp_path / "kit", layer_count=8, model_count=1, progress=False)
    needed = json.loads((kit / "kit.json").read_text())["min_layer_probes"]
    assert 0 < needed <= 8 and f"so the first {needed} of probes.csv cover them all" in " ".join(
        (kit / "README.txt").read_text().split()
    )
    runner = kit / "run_probes.py"
    imported = set()
    for node in ast.walk(ast.parse(runner.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported <= _ALLOWED_RUNNER_IMPORTS, imported - _ALLOWED_RUNNER_IMPORTS

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-I", "-X", "importtime", str(runner), "--runs", "3", "--warmup", "1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = {line.split("|")[-1].strip().split(".")[0] for line in done.stderr.splitlines()}
    assert not loaded & {"torch", "spaces", "evaluators", "search", "onnx"}, "runner is standalone"

    with (kit / "measurements.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    probes = {p.name for p in (kit / "probes").glob("*.onnx")}
    assert {r["probe"] for r in rows} == probes and len(rows) == 1 + 8 + 1  # empty, 8, model
    assert all(float(r["median_ms"]) > 0 and r["runs"] == "3" for r in rows)

    predictor = fit_from_measurements(
        kit, kit / "measurements.csv", device="kit-test", save_to=tmp_path / "cache"
    )
    candidate = get_candidate("tiny_mixed")
    predicted = predictor.predict_candidate(candidate, (1, 28, 28), 10)
    assert predicted.latency_ms > 0 and "kit-test" in predicted.source
    assert f"ORT {ort.__version__}" in predicted.source  # from measurements.json
    reloaded = load_predictor(tmp_path / "cache")  # refits from the stored CSVs
    assert reloaded.predict_candidate(candidate, (1, 28, 28), 10) == predicted


def test_layer_features_of_a_known_candidate():
    candidate = get_candidate("tiny_mixed")
    rows = layer_features(candidate, (1, 28, 28), 10)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.op] = counts.get(row.op, 0) + 1
    # stem, stage conv, mbconv expand + project x2, dsconv pointwise | mbconv x2, gconv,
    # dsconv depthwise | gconv's grouped 1x1 x2 | its shuffle | residual adds: mbconv block
    # 2 and the gconv block | global pool | classifier.
    assert counts == {
        "conv": 7,
        "dwconv": 4,
        "gconv": 2,
        "shuffle": 1,
        "add": 2,
        "pool": 1,
        "linear": 1,
    }
    assert sum(r.macs for r in rows) == estimate_cost(candidate, (1, 28, 28), 10).macs
    stem = rows[0]
    assert (stem.op, stem.in_channels, stem.out_channels, stem.kernel) == ("conv", 1, 8, 3)
    assert stem.macs == 28 * 28 * 8 * 9 and stem.input_bytes == 28 * 28 * 4
    assert rows[-1].op == "linear" and rows[-1].macs == 24 * 10

    int8 = Candidate(
        candidate.arch,
        CompressionPolicy(tuple(StagePolicy(weight_bits=4, activation_bits=8) for _ in range(4))),
    )
    executed = layer_features(int8, (1, 28, 28), 10, runtime_bits=True)
    assert executed[0].op == "quantize" and executed[-1].op == "dequantize"
    assert {r.precision for r in executed} == {"int8"}
    assert executed[1].weight_bits == 8  # 4-bit weights run as int8 on ONNX Runtime
    assert layer_features(int8, (1, 28, 28), 10)[1].weight_bits == 4


def test_roofline_is_compute_or_memory_bound_and_says_so():
    device = DeviceNumbers({8: 4e9, 32: 1e9}, bytes_per_second=1e12, overhead_ms=0.0)
    row = _grid_row("conv", "fp32", random.Random(0))
    single = roofline_latency_ms([row], device)
    double = roofline_latency_ms([replace(row, macs=2 * row.macs)], device)
    assert single.source == "predicted (roofline)"
    assert single.latency_ms == pytest.approx(row.macs / 1e9 * 1000)
    assert double.latency_ms == pytest.approx(2 * single.latency_ms)
    as_int8 = replace(row, weight_bits=8, activation_bits=8)
    assert roofline_latency_ms([as_int8], device).latency_ms == pytest.approx(single.latency_ms / 4)
    slow_memory = {"macs_per_second": {32: 1e15}, "bytes_per_second": 1e6, "overhead_ms": 0.5}
    assert roofline_latency_ms([row], slow_memory).latency_ms == pytest.approx(
        0.5 + row.bytes / 1e6 * 1000
    )
