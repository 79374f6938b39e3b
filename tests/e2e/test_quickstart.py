"""The README's quickstart through the real CLI, as a user runs it: twice, so it resumes."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from evaluators.data import load_dataset
from evaluators.quantize import onnx_accuracy
from search.export import load_exported

ROOT = Path(__file__).resolve().parents[2]


def _search(results: Path, trials: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "search.cli",
            "search",
            "--config",
            "configs/quickstart.yaml",
            "--name",
            "r",
            "--trials",
            str(trials),
            "--results",
            str(results),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
    )


@pytest.mark.slow
def test_quickstart_twice_resumes_to_twelve_trials(tmp_path):
    first = _search(tmp_path, 6)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "teacher: ResNet" in first.stderr and "trained here" in first.stderr
    second = _search(tmp_path, 12)  # --trials is the run's total: it goes on to 12
    assert second.returncode == 0, second.stderr[-3000:]
    assert "teacher: cached" in second.stderr, "the second run must reuse the cached teacher"
    assert "6 of 12 trials finished" in second.stderr

    run = tmp_path / "r"
    trials = pd.read_csv(run / "trials.csv")
    assert len(trials) == 12 and list(trials["number"]) == list(range(12))
    assert len(pd.read_parquet(run / "trials.parquet")) == 12
    assert set(trials["status"]) <= {"ok", "infeasible", "failed", "pruned"}
    pruned = trials[trials["status"] == "pruned"]  # stopped early: cannot reach the front
    assert pruned["reason"].str.contains("stopped after epoch").all()
    pareto = pd.read_csv(run / "pareto.csv")
    assert len(pareto) >= 1
    budget = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())["budget"]
    assert (pareto["latency_ms"] <= budget["latency_ms"]).all()
    assert (pareto["peak_memory_kb"] <= budget["peak_memory_kb"]).all()
    report = (run / "report.html").read_text()
    assert "teacher" in report.lower()
    for genome in pareto["genome"]:
        assert genome in report
    for number in pareto["number"]:
        assert (run / "models" / str(number) / "model.onnx").is_file()
    # The teacher is timed on this host like the candidates, so the summary can say how
    # many times faster each recommendation is.
    facts = json.loads((run / "run.json").read_text())
    assert facts["split_sizes"]["test"] == 360  # 20% of digits, for the test accuracy's +-
    teacher = facts["teacher"]
    assert teacher["latency_ms"] > 0 and teacher["latency_source"].startswith("measured: ")
    summary = json.loads((run / "summary.json").read_text())
    recommended = [tier for tier in summary["tiers"] if tier.get("trial") is not None]
    assert recommended
    for tier in recommended:
        expected = teacher["latency_ms"] / tier["latency_ms"]
        assert tier["faster_than_teacher"] == pytest.approx(expected)
        interval = tier["test_accuracy_interval"]  # Wilson, 95 %, on 360 test images
        assert interval["lower"] < tier["test_accuracy"] <= interval["upper"]
        assert interval["upper"] - interval["lower"] < 0.1 and tier["test_images"] == 360
    assert "faster (" in report and "no speed-up is claimed" not in report

    rerender = subprocess.run(
        [sys.executable, "-m", "search.cli", "report", str(run)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert rerender.returncode == 0 and rerender.stdout.strip().endswith("report.html")

    # Ship the most accurate Pareto member: the exported ONNX is the file that was measured.
    best = pareto.sort_values("accuracy").iloc[-1]
    exported = subprocess.run(
        [
            sys.executable,
            "-m",
            "search.cli",
            "export",
            str(run),
            "--trial",
            str(best["number"]),
            "--out",
            str(tmp_path / "ship"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert exported.returncode == 0, exported.stderr[-3000:]
    ship = tmp_path / "ship"
    manifest = json.loads((ship / "manifest.json").read_text())
    assert manifest["trial"] == best["number"] and manifest["genome"] == best["genome"]
    assert manifest["metrics"]["test_accuracy"] == pytest.approx(best["test_accuracy"])
    assert manifest["target"]["device"] == "host" and manifest["target"]["latency"] == "measured"
    # How the int8 layers are stored, read from the file itself.
    stored = manifest["quantization"]
    if best["int8"]:
        assert stored["format"].startswith("ONNX QDQ")
        assert any(p.startswith(("weights: int8", "weights: uint8")) for p in stored["parameters"])
        assert stored["input"]["scale"] > 0
        # Beside it, the all-int8 form for microcontroller runtimes, checked on the test split.
        signed = manifest["signed_int8"]
        assert signed["file"] == "model.s8s8.onnx" and signed["input"]["dtype"] == "int8"
        assert signed["check"]["measured"] and signed["check"]["images"] == 360
        assert len(signed["input_from_pixels"]["multiplier"]) == 1  # digits: one channel
        assert signed["check"]["same_prediction_as_model_onnx"] >= 0.95
        assert (
            manifest["files"]["model.s8s8.onnx"]
            == hashlib.sha256((ship / "model.s8s8.onnx").read_bytes()).hexdigest()
        )
        assert "model.s8s8.onnx: test accuracy" in exported.stderr
    else:
        assert stored["format"].startswith("fp32")
        assert manifest["signed_int8"] is None and not (ship / "model.s8s8.onnx").exists()
    measured = run / "models" / str(best["number"]) / "model.onnx"
    assert (ship / "model.onnx").read_bytes() == measured.read_bytes()
    assert manifest["files"]["model.onnx"] == hashlib.sha256(measured.read_bytes()).hexdigest()
    # The ONNX file alone reproduces the test accuracy; the state dict rebuilds the module.
    dataset = load_dataset("digits", val_fraction=0.15, seed=0)
    onnx_acc = onnx_accuracy(ship / "model.onnx", dataset.test.images, dataset.test.labels)
    assert onnx_acc == pytest.approx(best["test_accuracy"], abs=1e-6)
    model = load_exported(ship)
    assert model(dataset.test.images[:4]).shape == (4, 10)
    # Reference inputs and outputs for checking a port: test images from each class.
    golden = np.load(ship / "golden.npz", allow_pickle=False)
    indices = golden["indices"]
    assert np.array_equal(golden["inputs"], dataset.test.images[indices].numpy())
    assert np.array_equal(golden["labels"], dataset.test.labels[indices].numpy())
    assert ("signed_logits" in golden.files) == bool(best["int8"])
    assert isinstance(manifest["metrics"]["params"], int) and manifest["onnx"]["opsets"]
    # The manifest alone says how to feed it raw images: digits' raw pixels are 0..16.
    pre = manifest["preprocessing"]
    mean = np.asarray(pre["mean"], dtype=np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(pre["std"], dtype=np.float32).reshape(1, -1, 1, 1)
    raw = np.rint((dataset.test.images.numpy() * std + mean) * pre["pixel_scale"])
    assert raw.min() == 0 and raw.max() == 16 and pre["pixel_scale"] == 16
    fed = (raw.astype(np.float32) / np.float32(pre["pixel_scale"]) - mean) / std
    assert manifest["input"]["shape"] == [1, *fed.shape[1:]]
    from_raw = onnx_accuracy(ship / "model.onnx", torch.from_numpy(fed), dataset.test.labels)
    assert from_raw == pytest.approx(manifest["metrics"]["test_accuracy"], abs=1e-6)
    assert manifest["class_names"] == [str(digit) for digit in range(10)]
    assert manifest["chosen"].startswith("named with --trial; on the run's Pareto front")

    # The README's example of running an exported model on a raw image, as printed there.
    readme = (ROOT / "README.md").read_text()
    start = readme.index("# Run an exported model on one raw image")
    snippet = readme[start : readme.index("```", start)]
    snippet = snippet.replace('"results/r/export/7"', repr(str(ship)))
    ran = subprocess.run(
        [sys.executable, "-c", snippet], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert ran.stdout.strip() in manifest["class_names"]
    assert "Removing initializer" not in ran.stderr

    # With no trial named, export ships what summary.json recommends for the budget.
    for tier, name in ((None, "configured budget"), ("looser", "looser")):
        chosen = subprocess.run(
            [sys.executable, "-m", "search.cli", "export", str(run)]
            + (["--tier", tier] if tier else [])
            + ["--out", str(tmp_path / f"ship-{tier}")],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=300,
        )
        assert chosen.returncode == 0, chosen.stderr[-3000:]
        tiers = {t["name"].split(" ")[0]: t for t in summary["tiers"]}
        expected = tiers[name.split(" ")[0]]["trial"]
        shipped = json.loads((tmp_path / f"ship-{tier}" / "manifest.json").read_text())
        assert shipped["trial"] == expected
        assert shipped["chosen"].startswith(f"recommended for the {name}")
    unknown = subprocess.run(
        [sys.executable, "-m", "search.cli", "export", str(run), "--tier", "nosuch"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert (
        unknown.returncode == 2
        and "pass --tier tighter, 'configured budget', looser" in unknown.stderr
    )
    missing = subprocess.run(
        [sys.executable, "-m", "search.cli", "export", str(run), "--trial", "999"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
