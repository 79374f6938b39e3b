"""The report is built from a synthetic run folder: the same three files a real run writes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from search.report import NO_FEASIBLE, REPORT, write_report

TEACHER_ACCURACY = 0.9812
HOW = "onnxruntime 1.32.0 CPUExecutionProvider, 1 thread, batch 1, median of 30 runs"
DEVICE = f"measured: {HOW}"
BUDGET_LATENCY = 2.75
PLOTLY_MARKER = "plotly.js v"  # the version comment at the top of the embedded bundle

RUN = {
    "name": "digits-mcu",
    "dataset": "digits",
    "dataset_source": "sklearn.datasets.load_digits",
    "input_shape": [1, 8, 8],
    "num_classes": 10,
    "teacher": {"test_accuracy": TEACHER_ACCURACY, "params": 120000, "source": "trained here"},
    "budget": {"latency_ms": BUDGET_LATENCY, "peak_memory_kb": 64.0, "flash_kb": None},
    "objectives": [
        {"name": "accuracy", "direction": "maximize"},
        {"name": "latency_ms", "direction": "minimize"},
    ],
    "device": {"name": "host", "description": DEVICE},
    "fidelity": {"train_subset": 1000, "epochs": 2},
    "sampler": "tpe",
    "seed": 0,
    "updated": "2025-01-01T00:00:00+00:00",
}


def _trial(number, status, genome, accuracy=math.nan, test=math.nan, latency=math.nan, **extra):
    row = {
        "number": number,
        "state": "FAIL" if status == "failed" else "COMPLETE",
        "status": status,
        "reason": extra.pop("reason", None),
        "genome": genome,
        "feasible": status == "ok",
        "accuracy": accuracy,
        "test_accuracy": test,
        "latency_ms": latency,
        "latency_p90_ms": latency * 1.1,
        "latency_source": "onnxruntime CPU, 30 runs" if status == "ok" else "predicted",
        "peak_memory_kb": extra.pop("memory", math.nan),
        "flash_kb": extra.pop("flash", math.nan),
        "params": extra.pop("params", math.nan),
        "macs": extra.pop("macs", math.nan),
        "train_subset": 1000,
        "epochs": 2,
        "seconds_total": 12.5,
        "seconds_cost": 0.01,
        "seconds_latency": 1.0,
        "seconds_train": 10.0,
        "seconds_eval": 1.5,
    }
    row.update(extra)
    return row


# Front on (val accuracy up, latency down), sorted by latency: 1 fast, 2 the knee, 3 accurate.
PARETO = [
    _trial(1, "ok", "c8,ds1x16k3s2|p0w8a8", 0.80, 0.79, 0.50, memory=10, flash=4, params=900),
    _trial(2, "ok", "c16,mb2x24k3e4s1|p0w8a8", 0.95, 0.94, 1.00, memory=20, flash=9, params=4000),
    _trial(3, "ok", "c32,mb3x48k5e6s1|p0w32a32", 0.97, 0.965, 2.50, memory=60, params=30000),
]
OTHERS = [
    _trial(4, "ok", "c16,ds2x32k3s1|p0w8a8", 0.85, 0.84, 1.50, memory=30, params=5000),
    _trial(5, "infeasible", "c64,mb4x96k5e6s1|p0w32a32", latency=9.0, memory=300, reason="over"),
    _trial(6, "failed", "c8,gc1x16k3g2s1|p0w4a8", reason="RuntimeError: <boom> & more"),
    _trial(7, "pruned", "c8,ds1x8k3s1|p0w8a8", 0.5, latency=0.4, memory=5),
]


def _write_run(run_dir: Path, trials: list[dict], pareto: list[dict], params: bool = True) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run.json").write_text(json.dumps(RUN))
    frame = pd.DataFrame(trials)
    if params and len(frame):
        frame["param_width"] = range(len(frame))
    frame.to_csv(run_dir / "trials.csv", index=False)
    columns = frame.columns if len(frame) else list(_trial(0, "ok", "").keys())
    pd.DataFrame(pareto, columns=columns).to_csv(run_dir / "pareto.csv", index=False)
    return run_dir


@pytest.fixture
def report(tmp_path: Path) -> str:
    run_dir = _write_run(tmp_path / "run", PARETO + OTHERS, PARETO)
    path = write_report(run_dir)
    assert path == run_dir / REPORT and path.exists()
    assert not list(run_dir.glob(".report.*"))  # the temporary file was moved, not left
    return path.read_text(encoding="utf-8")


def test_report_states_provenance_and_teacher(report: str):
    assert "digits-mcu" in report
    assert "sklearn.datasets.load_digits" in report
    assert "98.1% test accuracy with 120,000 parameters" in report
    assert DEVICE in report
    assert f"Latency is measured ({HOW})" in report
    assert "the search ranked candidates on the validation split" in report


def test_report_embeds_plotly_once_and_draws_both_figures(report: str):
    assert report.count(PLOTLY_MARKER) == 1
    assert 'id="figure-1"' in report and 'id="figure-2"' in report
    assert report.count("Plotly.newPlot(") == 2


@pytest.mark.parametrize("genome", [row["genome"] for row in PARETO])
def test_report_lists_every_pareto_genome(report: str, genome: str):
    assert genome in report


def test_report_shows_budget(report: str):
    assert f"latency \u2264 {BUDGET_LATENCY:g} ms" in report
    assert f"budget {BUDGET_LATENCY:g} ms" in report  # the dashed line's label
    assert "flash: no limit" in report


def test_report_recommends_most_accurate_and_knee(report: str):
    # Most accurate by test accuracy is trial 3; the knee over (val acc, latency) is trial 2:
    # scaled over the front trial 1 -> (1, 0), trial 2 -> (0.118, 0.25), trial 3 -> (0, 1).
    best = report.split("Most accurate within budget:</b>")[1].split("</p>")[0]
    knee = report.split("Knee point</b>")[1].split("</p>")[0]
    assert best.strip().startswith("trial 3 ")
    assert "96.5% test accuracy (1.6 points below the teacher, 98.1%)" in best
    assert "2.500 ms (measured)" in best and "60.0 KB peak memory (computed)" in best
    assert "trial 2 " in knee and "94.0% test accuracy" in knee


def test_report_counts_and_escapes(report: str):
    assert "7 trials: 4 ok, 1 infeasible, 1 failed, 1 pruned" in report
    assert "RuntimeError: &lt;boom&gt; &amp; more" in report
    assert "<boom>" not in report


def test_report_with_no_feasible_trial(tmp_path: Path):
    run_dir = _write_run(tmp_path / "run", OTHERS[1:], [], params=False)
    text = write_report(run_dir).read_text(encoding="utf-8")
    assert NO_FEASIBLE in text
    assert text.count(PLOTLY_MARKER) == 1
    assert "No Pareto members yet" in text


def test_report_with_empty_files(tmp_path: Path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({**RUN, "budget": {}, "teacher": {}}))
    (run_dir / "trials.csv").write_text("")
    (run_dir / "pareto.csv").write_text("")
    text = write_report(run_dir).read_text(encoding="utf-8")
    assert NO_FEASIBLE in text
    assert "0 trials" in text
    assert text.count(PLOTLY_MARKER) == 1


def test_report_with_feasible_trials_but_empty_pareto(tmp_path: Path):
    run_dir = _write_run(tmp_path / "run", PARETO + OTHERS, [])
    text = write_report(run_dir).read_text(encoding="utf-8")
    assert "pareto.csv lists no members yet" in text
    assert NO_FEASIBLE not in text


def test_report_overwrites_previous_report(tmp_path: Path):
    run_dir = _write_run(tmp_path / "run", PARETO + OTHERS, PARETO)
    (run_dir / REPORT).write_text("stale")
    assert write_report(run_dir).read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_report_without_predictions_says_how_to_get_them(report: str):
    assert "Predicted against measured latency" in report
    assert "paretonas calibrate --device host" in report
    assert 'id="figure-3"' not in report


def test_report_compares_predicted_and_measured_latency(tmp_path: Path):
    # Predictions 5% high for trials 1-3, 30% low for trial 4: 3 of 4 within +-10%.
    predicted = {1: 0.525, 2: 1.05, 3: 2.625, 4: 1.05}
    trials = [
        {
            **row,
            "predicted_latency_ms": predicted.get(row["number"]),
            "predicted_latency_source": "predicted (kernel model fitted on host)",
        }
        for row in PARETO + OTHERS
    ]
    run_dir = _write_run(tmp_path / "run", trials, PARETO)
    text = write_report(run_dir).read_text(encoding="utf-8")
    assert 'id="figure-3"' in text and text.count("Plotly.newPlot(") == 3
    caption = text.split("Predicted against measured latency")[1]
    assert "4 trial(s) were measured and also predicted" in caption
    assert "Median error 5.0%, 75% within \u00b110%" in caption
    # Order: measured 0.5 < 1.0 < 1.5 < 2.5, predicted 0.525 < 1.05 = 1.05 < 2.625.
    assert "Spearman rank correlation 0.949" in caption
    assert "kernel model fitted on host" in caption


def test_report_of_a_predicted_device_never_says_measured(tmp_path: Path):
    run = {**RUN, "device": {"name": "cortex-m7", "description": "roofline", "latency": "roofline"}}
    trials = [{**row, "latency_source": "predicted (roofline)"} for row in PARETO + OTHERS]
    run_dir = _write_run(tmp_path / "run", trials, PARETO)
    (run_dir / "run.json").write_text(json.dumps(run))
    text = write_report(run_dir).read_text(encoding="utf-8")
    assert "Latency (ms, predicted)" in text
    assert "Latency is predicted, not measured" in text
    assert "ms (measured)" not in text and "latency ms (measured)" not in text
    assert "Latency on cortex-m7 is predicted, not measured" in text
