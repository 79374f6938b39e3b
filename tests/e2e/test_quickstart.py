"""The README's quickstart through the real CLI, as a user runs it: twice, so it resumes."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
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
    assert "6 finished trial(s) of 12" in second.stderr

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
    teacher = json.loads((run / "run.json").read_text())["teacher"]
    assert teacher["latency_ms"] > 0 and teacher["latency_source"].startswith("measured: ")
    summary = json.loads((run / "summary.json").read_text())
    recommended = [tier for tier in summary["tiers"] if tier.get("trial") is not None]
    assert recommended
    for tier in recommended:
        expected = teacher["latency_ms"] / tier["latency_ms"]
        assert tier["faster_than_teacher"] == pytest.approx(expected)
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
    measured = run / "models" / str(best["number"]) / "model.onnx"
    assert (ship / "model.onnx").read_bytes() == measured.read_bytes()
    assert manifest["files"]["model.onnx"] == hashlib.sha256(measured.read_bytes()).hexdigest()
    # The ONNX file alone reproduces the test accuracy; the state dict rebuilds the module.
    dataset = load_dataset("digits", val_fraction=0.15, seed=0)
    onnx_acc = onnx_accuracy(ship / "model.onnx", dataset.test.images, dataset.test.labels)
    assert onnx_acc == pytest.approx(best["test_accuracy"], abs=1e-6)
    model = load_exported(ship)
    assert model(dataset.test.images[:4]).shape == (4, 10)
    missing = subprocess.run(
        [sys.executable, "-m", "search.cli", "export", str(run), "--trial", "999"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
