"""The report is built from a synthetic run folder: the same three files a real run writes."""

from __future__ import annotations

import html
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest

from search.cli import main
from search.report import (
    COMPARE,
    NO_FEASIBLE,
    REPORT,
    architecture_strip,
    comparability_notes,
    parse_genome,
    write_report,
)
from search.results import pareto_frame
from search.summary import (
    IMPORTANCE,
    SUMMARY,
    accuracy_interval,
    hypervolume_progress,
    meets,
    recommend,
    write_importance,
)

ROOT = Path(__file__).resolve().parents[2]
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
    _trial(7, "pruned", "c8,ds1x8k3s1|p0w8a8", 0.5, latency=0.4, memory=5, expected_accuracy=0.62),
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


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> str:
    run_dir = _write_run(tmp_path_factory.mktemp("report") / "run", PARETO + OTHERS, PARETO)
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


def test_report_embeds_plotly_once_and_draws_every_figure(report: str):
    assert report.count(PLOTLY_MARKER) == 1
    for div in ("figure-1", "figure-2", "figure-3d", "figure-hypervolume"):
        assert f'id="{div}"' in report
    # 2-D latency, 2-D memory, 3-D, hypervolume; no importance.json, no predictions.
    assert report.count("Plotly.newPlot(") == 4
    assert '"type":"scatter3d"' in report


@pytest.mark.parametrize("genome", [row["genome"] for row in PARETO])
def test_report_lists_every_pareto_genome(report: str, genome: str):
    assert genome in report


def test_a_stopped_trials_prediction_is_labelled_as_one(report: str):
    assert "expected val acc by the end 62.0% (predicted: the typical rest" in report
    # Only the stopped trial has one (its hover appears in every figure that draws it).
    assert set(re.findall(r"expected val acc by the end ([0-9.]+%)", report)) == {"62.0%"}


def test_the_hover_gives_the_latencys_spread():
    from search.report.figures import hover_text
    from search.report.frames import normalise

    row = normalise(pd.DataFrame([_trial(1, "ok", "c8,a|p", 0.9, 0.9, 2.0)])).iloc[0]
    assert "latency 2.000 ms (onnxruntime CPU, 30 runs), 90th percentile 2.200 ms" in (
        hover_text(row)
    )


def test_report_shows_budget(report: str):
    assert f"latency \u2264 {BUDGET_LATENCY:g} ms" in report
    assert f"budget {BUDGET_LATENCY:g} ms" in report  # the dashed line's label
    assert "flash: no limit" in report


def test_report_summarises_each_tier_and_the_knee(report: str):
    # Tiers derived from the budget (2.75 ms, 64 KB): x0.5 -> trial 2 is the most accurate
    # within 1.375 ms and 32 KB; configured and x2 -> trial 3. The knee over (val acc,
    # latency) is trial 2: scaled over the front trial 1 -> (1, 0), 2 -> (0.118, 0.25), 3 -> (0, 1).
    summary = report.split("<h2>Summary</h2>")[1].split("<h2>")[0]
    tiers = summary.split('<li class="tier">')[1:]
    assert [tier.split("</b>")[0] for tier in tiers] == [
        "<b>Tighter (bounds \u00d70.5)",
        "<b>Configured budget",
        "<b>Looser (bounds \u00d72)",
    ]
    assert "(latency \u2264 1.375 ms, peak memory \u2264 32 KB, flash: no limit)" in tiers[0]
    assert "trial 2 " in tiers[0]
    best = tiers[1].split("</b>")[1]
    assert "trial 3 (c32,mb3x48k5e6s1|p0w32a32)" in best
    assert "96.5% test accuracy (1.6 points below the teacher, 98.1%)" in best
    assert "2.500 ms (measured)" in best and "60.0 KB peak memory (computed)" in best
    assert "4.0\u00d7 fewer parameters than the teacher (30,000 against 120,000)" in best
    # The teacher's latency is not in run.json: no speed-up is made up.
    assert "latency was not measured, so each model is compared with the teacher" in summary
    assert "faster" not in summary
    assert f"Latency was measured on host ({HOW})" in summary
    assert "Only candidates within the configured budget were trained" in summary
    knee = report.split("Knee point</b>")[1].split("</p>")[0]
    assert "trial 2 " in knee and "94.0% test accuracy" in knee


def _glance_rows(page: str) -> list[list[str]]:
    table = page.split('<table class="glance">')[1].split("</table>")[0]
    return [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row) for row in table.split("<tr")[1:]]


def test_the_summary_opens_with_a_table_of_each_budgets_pick(report: str):
    head, *rows = _glance_rows(report)
    assert head[:3] == ["budget", "model to ship", "test accuracy"]
    # The teacher's latency is not in run.json: no speed-up column at all.
    assert not any("faster" in title for title in head)
    assert [row[:2] for row in rows] == [
        ["Tighter (bounds ×0.5)", "trial 2"],
        ["Configured budget", "trial 3"],
        ["Looser (bounds ×2)", "trial 3"],
    ]
    configured = dict(zip(head, rows[1], strict=True))
    assert configured["test accuracy"] == "96.5%"  # no +- without the test split's size
    assert configured["against the teacher"] == "-1.6 points"
    assert configured["times fewer parameters than the teacher"] == "4.0×"
    # Trial 3 uses 2.5 of 2.75 ms (91%) and 60 of 64 KB (94%): memory limits it.
    assert configured["nearest bound: share used"] == "peak memory 94%"
    assert dict(zip(head, rows[0], strict=True))["nearest bound: share used"] == (
        "latency 73%"  # 1.0 of 1.375 ms; memory 20 of 32 KB is 62%
    )
    # The looser tier's pick is the configured one's: said in a few words, not repeated.
    looser = report.split("<b>Looser (bounds ×2)</b>")[1].split("</li>")[0]
    assert "the same model as for Configured budget above: trial 3." in looser
    assert "fp32 and unpruned" not in report  # trials 1 and 2 are int8
    assert "The teacher: 98.1% test accuracy (fp32), 120,000 parameters (trained here)." in report


def test_the_summary_gives_the_test_splits_interval_when_the_run_knows_its_size(tmp_path):
    run_dir = _write_run(tmp_path / "run", PARETO + OTHERS, PARETO)
    run = {**RUN, "split_sizes": {"train": 1200, "validation": 240, "test": 10000}}
    (run_dir / "run.json").write_text(json.dumps(run))
    page = write_report(run_dir).read_text(encoding="utf-8")
    head, *rows = _glance_rows(page)
    assert dict(zip(head, rows[1], strict=True))["test accuracy"] == "96.5% (95% CI 96.1–96.8%)"
    assert "The 95% CI after each test accuracy is the interval (Wilson) that 10,000" in page
    assert "±" not in page.split("<h2>Summary</h2>")[1].split("<h2>")[0]
    configured = json.loads((run_dir / SUMMARY).read_text())["tiers"][1]
    # Wilson's 95% interval, by hand: centre 0.96482, half-width 0.00361.
    interval = configured["test_accuracy_interval"]
    assert interval["lower"] == pytest.approx(0.96122, abs=1e-5)
    assert interval["upper"] == pytest.approx(0.96843, abs=1e-5)
    assert interval["confidence"] == 0.95 and "Wilson" in interval["method"]
    assert "test_accuracy_margin_points" not in configured
    assert configured["test_images"] == 10000
    assert configured["closest_bound"] == {
        "name": "peak_memory_kb",
        "share": pytest.approx(60 / 64),
    }


def test_a_run_without_compression_says_its_models_are_fp32_and_unpruned(tmp_path):
    fp32 = [{**row, "genome": row["genome"].replace("w8a8", "w32a32")} for row in PARETO]
    run_dir = _write_run(tmp_path / "run", fp32, fp32)
    page = write_report(run_dir).read_text(encoding="utf-8")
    assert "fp32 and unpruned: no Pareto member of this run is pruned or quantized" in page
    # A policy the page cannot read (another version's genome): it claims neither.
    odd = [{**row, "genome": row["genome"].replace("|p0w32a32", "|z9")} for row in fp32]
    run_dir = _write_run(tmp_path / "odd", odd, odd)
    page = write_report(run_dir).read_text(encoding="utf-8")
    assert "fp32 and unpruned" not in page and "pruning and quantization applied" not in page
    assert "compressed as its policy says" in page


def test_stages_the_host_runs_in_fp32_are_said_in_the_summary_and_the_table(tmp_path):
    # The default report (no executed column): no "runs as" column, the plain wording.
    plain = write_report(_write_run(tmp_path / "plain", PARETO, PARETO)).read_text("utf-8")
    assert "runs as (per stage)" not in plain and "pruning and quantization applied" in plain
    executed = ["w8a8 int8", "w8a32 executed as fp32", "fp32"]
    rows = [{**row, "executed": how} for row, how in zip(PARETO, executed, strict=True)]
    page = write_report(_write_run(tmp_path / "mixed", rows, rows)).read_text("utf-8")
    assert "runs as (per stage)" in page and '<td data-sort="w8a32 executed as fp32">' in page
    summary = page.split("<h2>Summary</h2>")[1].split("<h2>")[0]
    assert "any other runs in fp32 and is costed so" in summary
    assert "pruning and quantization applied" not in summary


def test_report_marks_the_knee_point_with_a_star(report: str):
    assert report.count('"name":"knee point (trial 2)"') == 3  # both 2-D figures and the 3-D
    assert report.count('"symbol":"star"') == 2


def test_report_says_how_much_faster_when_the_teacher_latency_is_known(tmp_path: Path):
    run_dir = _write_run(tmp_path / "run", PARETO + OTHERS, PARETO)
    how = "measured: onnxruntime, 1 thread(s), batch 1, on its fp32 ONNX export"
    run = {**RUN, "teacher": {**RUN["teacher"], "latency_ms": 10.0, "latency_source": how}}
    (run_dir / "run.json").write_text(json.dumps(run))
    text = write_report(run_dir).read_text(encoding="utf-8")
    assert "and is 4.0\u00d7 faster (2.500 ms against the teacher&#x27;s 10.000 ms)" in text
    assert "latency was not measured" not in text
    assert f"The teacher&#x27;s latency is 10.000 ms ({how})." in text
    assert "it runs in 10.000 ms (measured)" in text
    summary = json.loads((run_dir / SUMMARY).read_text())
    assert summary["tiers"][1]["faster_than_teacher"] == pytest.approx(4.0)
    assert summary["teacher"]["latency_ms"] == 10.0
    assert summary["teacher"]["latency_source"] == how


def test_report_counts_and_escapes(report: str):
    assert (
        "7 trials: 4 ok, 1 over budget (infeasible), 1 failed, 1 stopped early (pruned)" in report
    )
    assert "RuntimeError: &lt;boom&gt; &amp; more" in report
    assert "<boom>" not in report
    assert "4 trained trials are within the configured budget." in report


def test_a_repeated_candidate_is_not_counted_as_another_trained_model():
    from search.report.members import trial_counts

    trials = pd.DataFrame(
        [
            _trial(0, "ok", "c8,a|p", 0.9, 0.9, 1.0),
            _trial(1, "ok", "c8,b|p", 0.8, 0.8, 0.5),
            _trial(2, "ok", "c8,a|p", 0.9, 0.9, 1.0, duplicate_of=0),
        ]
    )
    text = trial_counts(trials)
    assert "3 trials: 3 ok" in text
    assert "2 trained trials are within the configured budget (and 1 repeat of one of them" in text


def test_trials_over_the_same_bounds_are_one_line_with_the_range_they_reached():
    from search.report.frames import normalise
    from search.report.members import reasons

    def over(number, text):
        return _trial(number, "infeasible", "c8,a|p", reason="over budget: " + text)

    trials = normalise(
        pd.DataFrame(
            [
                over(0, "latency_ms 0.5425 > 0.15"),
                over(1, "latency_ms 0.238 > 0.15"),
                over(2, "peak_memory_kb 784 > 200"),
                over(3, "latency_ms 0.3 > 0.15, peak_memory_kb 392 > 200"),
                over(4, "latency_ms 0.31 > 0.15, peak_memory_kb 300 > 200"),
                _trial(5, "failed", "c8,a|p", reason="RuntimeError: out of memory"),
            ]
        )
    )
    items = re.findall(r"<li>(.*?)</li>", reasons(trials))
    assert items == [
        "2 trials infeasible: over budget on latency_ms (&gt; 0.15): latency_ms 0.238 to 0.5425",
        "2 trials infeasible: over budget on latency_ms (&gt; 0.15) and peak_memory_kb (&gt; "
        "200): latency_ms 0.3 to 0.31; peak_memory_kb 300 to 392",
        "1 trial infeasible: over budget: peak_memory_kb 784 &gt; 200",
        "1 trial failed: RuntimeError: out of memory",
    ]


def test_report_with_no_feasible_trial(tmp_path: Path):
    run_dir = _write_run(tmp_path / "run", OTHERS[1:], [], params=False)
    text = write_report(run_dir).read_text(encoding="utf-8")
    assert NO_FEASIBLE in text
    assert text.count(PLOTLY_MARKER) == 1
    assert "No Pareto members yet" in text


def test_report_says_what_no_candidate_met(tmp_path: Path):
    # Every candidate over budget: the summary gives the lowest cost seen against its bound.
    over = [t for t in OTHERS if t["status"] == "infeasible"]
    run_dir = _write_run(tmp_path / "run", over, [], params=False)
    text = write_report(run_dir).read_text(encoding="utf-8")
    assert NO_FEASIBLE in text
    assert f"latency_ms 9 ms (predicted) &gt; {BUDGET_LATENCY:g}" in text  # rejected untrained
    assert "No candidate of 1 met the budget" in text


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
    assert 'id="figure-prediction"' not in report


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
    assert 'id="figure-prediction"' in text and text.count("Plotly.newPlot(") == 5
    caption = text.split("Predicted against measured latency")[1]
    assert "4 trials were measured and also predicted" in caption
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
    assert "<b>Device:</b> cortex-m7: roofline." in text

    # A predicted device's description (run.json) begins with its name: said once.
    described = "cortex-m7 (STM32F746): latency predicted (roofline), not measured"
    run["device"] = {**run["device"], "description": described}
    (run_dir / "run.json").write_text(json.dumps(run))
    text = write_report(run_dir).read_text(encoding="utf-8")
    assert f"<b>Device:</b> {html.escape(described)}." in text
    # The summary says "predicted, not measured" once, with how it was predicted.
    assert "Latency on cortex-m7 is predicted, not measured (roofline)." in text
    assert "not measured (cortex-m7 (STM32F746): latency predicted" not in text


# -- summary.json: one recommendation per budget tier -----------------------------------------

OBJECTIVES_3D = [
    {"name": "accuracy", "direction": "maximize"},
    {"name": "latency_ms", "direction": "minimize"},
    {"name": "peak_memory_kb", "direction": "minimize"},
]


def _random_run(run_dir: Path, seed: int, run: dict) -> Path:
    """A run with many trials on three objectives, its front built the way a run builds it."""
    rng = np.random.default_rng(seed)
    budget = run["budget"]
    rows = []
    for number in range(40):
        status = str(rng.choice(["ok"] * 6 + ["infeasible", "failed"]))
        accuracy = float(rng.uniform(0.5, 0.99))
        latency, memory = float(rng.uniform(0.2, 5.0)), float(rng.uniform(5.0, 120.0))
        within = all(
            budget.get(key) is None or value <= budget[key]
            for key, value in (("latency_ms", latency), ("peak_memory_kb", memory))
        )
        trained = status == "ok"
        genome = (
            f"c{8 * int(rng.integers(1, 5))},mb{int(rng.integers(1, 4))}x24k3e4s1,"
            f"ds1x32k5s2|p0.{int(rng.integers(0, 6))}w8a8,p0w8a8"
        )
        row = _trial(
            number,
            status,
            genome,
            accuracy if trained else math.nan,
            accuracy - float(rng.uniform(0.0, 0.06)) if trained else math.nan,
            latency if status != "failed" else math.nan,
            memory=memory if status != "failed" else math.nan,
            flash=float(rng.uniform(1.0, 50.0)),
            params=float(rng.integers(500, 50000)),
        )
        row["feasible"] = trained and within
        row["duplicate_of"] = None
        rows.append(row)
    trials = pd.DataFrame(rows)
    pareto = pareto_frame(
        trials, [o["name"] for o in OBJECTIVES_3D], [o["direction"] for o in OBJECTIVES_3D]
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run.json").write_text(json.dumps(run))
    trials.to_csv(run_dir / "trials.csv", index=False)
    pareto.to_csv(run_dir / "pareto.csv", index=False)
    return run_dir


def _within(row: pd.Series, budget: dict) -> bool:
    return all(
        bound is None or (not pd.isna(row[key]) and row[key] <= bound)
        for key, bound in budget.items()
    )


RUN_3D = {**RUN, "objectives": OBJECTIVES_3D, "budget": {"latency_ms": 4.0, "peak_memory_kb": 100}}


@pytest.mark.parametrize(
    "run",
    [
        RUN_3D,
        {
            **RUN_3D,
            "tiers": [
                {"name": "watch", "latency_ms": 0.8, "peak_memory_kb": 30},
                {"name": "impossible", "latency_ms": 0.001},
                {"name": "memory only", "peak_memory_kb": 40},
            ],
        },
        {**RUN_3D, "budget": {"latency_ms": None, "peak_memory_kb": None, "flash_kb": None}},
    ],
    ids=["derived tiers", "listed tiers", "no bound"],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_tier_recommends_the_most_accurate_member_within_it(
    tmp_path: Path, run: dict, seed: int
):
    run_dir = _random_run(tmp_path / "run", seed, run)
    text = write_report(run_dir).read_text(encoding="utf-8")
    summary = json.loads((run_dir / SUMMARY).read_text())
    pareto = pd.read_csv(run_dir / "pareto.csv")
    assert len(pareto) >= 2 and summary["pareto_members"] == len(pareto)
    names = [tier["name"] for tier in summary["tiers"]]
    assert "configured budget" in names and len(names) == 3 + ("tiers" in run)
    for tier in summary["tiers"]:
        meeting = pareto[[_within(row, tier["budget"]) for _, row in pareto.iterrows()]]
        name = tier["name"][:1].upper() + tier["name"][1:]
        assert f"<b>{html.escape(name)}</b>" in text  # every tier is stated in words
        if tier["trial"] is None:
            assert meeting.empty
            continue
        chosen = pareto[pareto["number"] == tier["trial"]]
        assert len(chosen) == 1, "the recommendation is a Pareto member"
        row = chosen.iloc[0]
        assert row["status"] == "ok" and bool(row["feasible"])
        assert _within(row, tier["budget"])
        assert row["genome"] == tier["genome"]
        assert tier["test_accuracy"] == pytest.approx(row["test_accuracy"])
        # Chosen on validation accuracy: the test split played no part in the choice.
        assert not (meeting["accuracy"] > row["accuracy"]).any()
    if "tiers" in run:
        impossible = next(t for t in summary["tiers"] if t["name"] == "impossible")
        assert impossible["trial"] is None
        assert (
            "<b>Impossible</b> (latency \u2264 0.001 ms, peak memory: no limit, flash: no " in text
        )
        assert "no Pareto member meets this budget." in text


def test_recommend_ranks_on_validation_accuracy_and_reads_raw_csv_values():
    pareto = pd.DataFrame(
        [
            {"number": 1, "status": "ok", "feasible": "True", "test_accuracy": "0.9",
             "accuracy": 0.99, "latency_ms": 1.0, "peak_memory_kb": 10},
            {"number": 2, "status": "ok", "feasible": True, "test_accuracy": 0.95,
             "accuracy": "0.90", "latency_ms": 2.0, "peak_memory_kb": None},
            {"number": 3, "status": "ok", "feasible": False, "test_accuracy": 0.99,
             "accuracy": 0.99, "latency_ms": 0.1, "peak_memory_kb": 1},
        ]
    )  # fmt: skip
    # Trial 2 has the higher test accuracy, but the choice is made on validation: a pick by
    # test accuracy would report a test figure biased by that very choice.
    assert recommend(pareto, {"latency_ms": 5})["number"] == 1
    assert recommend(pareto, {"latency_ms": 5, "peak_memory_kb": 5}) is None
    # An unknown peak memory does not meet a memory bound; without that bound it does.
    assert recommend(pareto.iloc[1:], {"latency_ms": 5})["number"] == 2
    assert recommend(pareto.iloc[1:], {"latency_ms": 5, "peak_memory_kb": 50}) is None
    assert recommend(pareto, {"latency_ms": 0.5}) is None
    assert recommend(pareto.iloc[0:0], {}) is None
    # Rows without a validation accuracy (a hand-edited table) rank by test accuracy.
    no_validation = pareto.assign(accuracy=None)
    assert recommend(no_validation, {"latency_ms": 5})["number"] == 2
    assert meets({"latency_ms": 1.0}, {"latency_ms": 1.0, "flash_kb": None})


def test_summary_json_is_written_next_to_the_report(tmp_path: Path):
    run_dir = _write_run(tmp_path / "run", PARETO + OTHERS, PARETO)
    write_report(run_dir)
    summary = json.loads((run_dir / SUMMARY).read_text())
    assert not list(run_dir.glob(f".{SUMMARY}*"))
    assert [t["trial"] for t in summary["tiers"]] == [2, 3, 3]
    configured = summary["tiers"][1]
    assert configured["budget"] == {"latency_ms": 2.75, "peak_memory_kb": 64.0, "flash_kb": None}
    assert configured["latency_kind"] == "measured"
    assert configured["smaller_than_teacher"] == pytest.approx(4.0)
    assert "parameter count" in summary["teacher_ratios_note"]
    assert configured["faster_than_teacher"] is None
    assert configured["accuracy_vs_teacher_points"] == pytest.approx(-1.62)
    assert summary["knee"]["trial"] == 2
    # The knee is compared with the teacher as the tiers are (the page says the same).
    tighter = summary["tiers"][0]
    assert tighter["trial"] == 2
    for key in ("smaller_than_teacher", "accuracy_vs_teacher_points"):
        assert summary["knee"][key] == pytest.approx(tighter[key])
    assert summary["teacher"]["test_accuracy"] == TEACHER_ACCURACY
    assert summary["device"]["description"] == DEVICE
    assert summary["hypervolume"] == pytest.approx(0.7956, abs=1e-4)


def test_summary_of_a_run_without_feasible_trials(tmp_path: Path):
    run_dir = _write_run(tmp_path / "run", OTHERS[1:], [], params=False)
    write_report(run_dir)
    summary = json.loads((run_dir / SUMMARY).read_text())
    assert all(tier["trial"] is None for tier in summary["tiers"])
    assert summary["knee"] is None and summary["hypervolume"] is None


# -- hypervolume over trials ----------------------------------------------------------------------


def test_hypervolume_progress_by_hand():
    # Feasible: 1 (0.80, 0.5 ms), 2 (0.95, 1.0), 3 (0.97, 2.5), 4 (0.85, 1.5; dominated by 2).
    # Ideal (0.97, 0.5); reference: accuracy 0.8 x 0.9 = 0.72, latency the budget 2.75 ms.
    # Scaled to [0, 1] losses: 1 -> (0.68, 0), 2 -> (0.08, 2/9), 3 -> (0, 8/9).
    progress = hypervolume_progress(RUN, pd.DataFrame(PARETO + OTHERS))
    assert list(progress["number"]) == [1, 2, 3, 4, 5, 6, 7]
    after_1 = 0.32
    after_2 = 0.92 * (7 / 9) + 0.32 * (2 / 9)
    after_3 = 1 / 9 + 0.92 * (6 / 9) + 0.32 * (2 / 9)
    expected = [after_1, after_2, after_3, after_3, after_3, after_3, after_3]
    assert list(progress["hypervolume"]) == pytest.approx(expected)
    assert progress.attrs["reference"] == pytest.approx({"accuracy": 0.72, "latency_ms": 2.75})


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_hypervolume_never_falls_over_trials(tmp_path: Path, seed: int):
    run_dir = _random_run(tmp_path / "run", seed, RUN_3D)
    progress = hypervolume_progress(RUN_3D, pd.read_csv(run_dir / "trials.csv"))
    values = progress["hypervolume"].to_numpy()
    assert len(values) == 40 and (np.diff(values) >= -1e-12).all()
    assert 0 < values[-1] <= 1


def test_report_draws_search_progress(report: str):
    section = report.split("<h2>Search progress</h2>")[1].split("<h2>")[0]
    assert 'id="figure-hypervolume"' in section
    assert "Reference: accuracy 72.0% (best 97.0%), latency 2.750 ms (best 0.500 ms)" in section
    assert f"once the run has written {IMPORTANCE}" in section


# -- parameter importance -------------------------------------------------------------------------


def _study(trials: int) -> optuna.Study:
    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0)
    )

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        x = trial.suggest_float("x", 0.0, 1.0)
        y = trial.suggest_int("y", 1, 4)
        return x, x * y

    study.optimize(objective, n_trials=trials)
    return study


def test_write_importance_per_objective(tmp_path: Path):
    path = write_importance(_study(8), tmp_path, ["accuracy", "latency_ms"])
    assert path == tmp_path / IMPORTANCE
    importance = json.loads(path.read_text())
    assert set(importance) == {"accuracy", "latency_ms"}
    for values in importance.values():
        assert set(values) == {"x", "y"} and sum(values.values()) == pytest.approx(1.0)
    assert importance["accuracy"]["x"] > importance["accuracy"]["y"]  # accuracy is x alone


def test_write_importance_skips_small_or_broken_studies(tmp_path: Path):
    assert write_importance(_study(4), tmp_path, ["accuracy", "latency_ms"]) is None
    assert write_importance(object(), tmp_path, ["accuracy"]) is None
    assert not (tmp_path / IMPORTANCE).exists()


def test_report_draws_importance_when_the_run_has_it(tmp_path: Path):
    run_dir = _write_run(tmp_path / "run", PARETO + OTHERS, PARETO)
    importance = {"accuracy": {"width": 0.7, "kernel": 0.3}, "latency_ms": {"width": 1.0}}
    (run_dir / IMPORTANCE).write_text(json.dumps(importance))
    text = write_report(run_dir).read_text(encoding="utf-8")
    assert 'id="figure-importance"' in text and text.count("Plotly.newPlot(") == 5
    assert "parameter importance (PED-ANOVA) of each searched parameter" in text
    assert text.count(PLOTLY_MARKER) == 1


def test_the_same_run_renders_the_same_page_in_every_process(tmp_path: Path):
    # Tied importances once came out in set order, which varies with the hash seed per process.
    run_dir = _write_run(tmp_path / "run", PARETO + OTHERS, PARETO)
    tied = {name: 0.0 for name in ("a_kind", "b_width", "c_depth", "d_kernel", "e_groups")}
    (run_dir / IMPORTANCE).write_text(json.dumps({"accuracy": tied, "latency_ms": tied}))
    pages = []
    for seed in ("1", "2", "3"):
        out = tmp_path / f"report-{seed}.html"
        code = (
            f"from search.report import write_report; write_report({str(run_dir)!r}, {str(out)!r})"
        )
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT)
        pages.append(out.read_bytes())
    assert pages[0] == pages[1] == pages[2]


# -- the Pareto table -----------------------------------------------------------------------------


def test_table_is_sortable_and_draws_each_members_architecture(report: str):
    table = report.split('<table class="sortable" id="pareto-table">')[1].split("</table>")[0]
    assert "function paretonasSortTable(" in report
    assert table.count("<tr") == len(PARETO) + 1  # header + one row per member
    # The picks (trial 2: tighter tier and knee; trial 3: configured and looser) are shaded.
    assert table.count('<tr class="pick">') == 2
    assert table.count('<span class="arch">') == len(PARETO)
    for row in PARETO:
        assert architecture_strip(row["genome"]) in table
    assert "<b>mbconv \u00d73</b><br>48 k5 e6<br>p0 w32/a32" in table
    assert '<td data-sort="0.965">96.5%</td>' in table


@pytest.mark.parametrize(
    ("genome", "stem", "stages"),
    [
        (
            "c16,mb2x24k3e4s1,ds1x32k5s2|p0w8a8,p0.5w32a32",
            {"width": 16, "stride": 1},
            [
                {"kind": "mbconv", "depth": 2, "width": 24, "kernel": 3, "expansion": 4,
                 "stride": 1, "prune_ratio": 0.0, "weight_bits": 8, "activation_bits": 8},
                {"kind": "dsconv", "depth": 1, "width": 32, "kernel": 5, "stride": 2,
                 "prune_ratio": 0.5, "weight_bits": 32, "activation_bits": 32},
            ],
        ),
        (
            "c8s2,gc1x16k3e2g4s1,cv2x8k7s1|p0.25w4a8u0.5,p0w16a16",
            {"width": 8, "stride": 2},
            [
                {"kind": "gconv", "groups": 4, "expansion": 2, "sparsity": 0.5,
                 "prune_ratio": 0.25, "weight_bits": 4},
                {"kind": "conv", "depth": 2, "kernel": 7, "weight_bits": 16},
            ],
        ),
        (  # low-rank factorization, with and without the k x k split
            "c8,mb1x16k3e2s1,cv1x8k3s1|p0.5w8a8u0.5r0.25k,p0w32a32r0.5",
            {"width": 8, "stride": 1},
            [
                {"prune_ratio": 0.5, "sparsity": 0.5, "rank_ratio": 0.25, "factorize_kxk": True},
                {"prune_ratio": 0.0, "rank_ratio": 0.5, "factorize_kxk": False},
            ],
        ),
        # No policy (an older run): the stages still parse.
        ("c8,ds1x16k3s2", {"width": 8, "stride": 1}, [{"kind": "dsconv", "width": 16}]),
    ],
)  # fmt: skip
def test_parse_genome(genome: str, stem: dict, stages: list[dict]):
    parsed = parse_genome(genome)
    assert parsed["stem"] == stem and len(parsed["stages"]) == len(stages)
    for got, want in zip(parsed["stages"], stages, strict=True):
        assert {key: got[key] for key in want} == want


@pytest.mark.parametrize("genome", ["", "nonsense", "c8|p0w8a8", None, float("nan")])
def test_parse_genome_tolerates_what_it_cannot_read(genome):
    assert parse_genome(genome) is None
    assert "\u2014" in architecture_strip(genome)


def test_architecture_strip_keeps_an_unknown_stage_as_text():
    strip = architecture_strip("c8,mb1x8k3e2s1,future9|p0w8a8,p0w8a8")
    assert "mbconv \u00d71" in strip and ">future9<" in strip


# -- several runs ---------------------------------------------------------------------------------


def test_report_overlays_several_runs(tmp_path: Path, capsys):
    first = _write_run(tmp_path / "a", PARETO + OTHERS, PARETO)
    second = _random_run(tmp_path / "b", 0, {**RUN_3D, "name": "digits-nsga2"})
    assert main(["report", str(first), str(second)]) == 0
    out = Path(capsys.readouterr().out.strip())
    assert out == first / COMPARE
    text = out.read_text(encoding="utf-8")
    assert "digits-mcu" in text and "digits-nsga2" in text
    assert text.count(PLOTLY_MARKER) == 1 and text.count("Plotly.newPlot(") == 2
    assert '"name":"digits-mcu: Pareto members (3)"' in text
    second_members = len(pd.read_csv(second / "pareto.csv"))
    assert f'"name":"digits-nsga2: Pareto members ({second_members})"' in text
    table = text.split('id="compare-table">')[1].split("</table>")[0]
    assert table.count("<tr>") == 3
    assert "<code>c32,mb3x48k5e6s1|p0w32a32</code>" in table  # run a's configured pick
    # How each run searched, and the test accuracy's interval where the split size is known.
    assert "tpe, sampler seed 0; 7 trials, 4 trained" in table
    assert "test acc (95% CI)" in text
    # --out puts it elsewhere; the runs' own folders get no report-compare.html then.
    target = tmp_path / "out" / "both.html"
    assert main(["report", str(first), str(second), "--out", str(target)]) == 0
    assert target.is_file() and not (second / COMPARE).exists()


SPLITS = {"validation": "v0", "test": "t"}


def test_runs_on_the_same_images_and_recipe_compare_without_a_note():
    runs = [("a", {**RUN, "data_splits": SPLITS}), ("b", {**RUN, "data_splits": SPLITS})]
    assert comparability_notes(runs) == []
    other_device = {**RUN, "data_splits": SPLITS, "device": {"name": "cortex-m7"}}
    assert comparability_notes([runs[0], ("m7", other_device)]) == []


def test_one_device_known_two_ways_is_noted():
    # A roofline and a fitted predictor put the same network at different times.
    roofline = {"name": "cortex-a72", "latency": "roofline", "description": "roofline"}
    fitted = {"name": "cortex-a72", "latency": "predicted", "description": "kernel model"}
    runs = [
        ("roof", {**RUN, "data_splits": SPLITS, "device": roofline}),
        ("fit", {**RUN, "data_splits": SPLITS, "device": fitted}),
    ]
    [note] = comparability_notes(runs)
    assert note.startswith("roof and fit know cortex-a72's latency differently")
    assert "roofline: roofline; against predicted: kernel model" in note
    assert note.endswith("their latency axes are not comparable.")
    # A run.json from before 2026-11-30 names a device given as a file by its path.
    by_path = {**roofline, "name": "boards/cortex-a72.yaml"}
    older = [("roof", {**RUN, "data_splits": SPLITS, "device": by_path}), runs[1]]
    assert len(comparability_notes(older)) == 1


def test_one_device_measured_under_other_conditions_is_noted():
    def host(threads: int, cpu: str = "AMD EPYC") -> dict:
        description = f"measured on this machine ({cpu}, 2 CPUs): onnxruntime, {threads} thread(s)"
        return {"name": "host", "latency": "measured", "description": description}

    def run(label: str, device: dict) -> tuple[str, dict]:
        return (label, {**RUN, "data_splits": SPLITS, "device": device})

    assert comparability_notes([run("a", host(1)), run("b", host(1))]) == []
    [note] = comparability_notes([run("one", host(1)), run("four", host(4))])
    assert note.startswith("one and four measured host's latency under different conditions")
    assert "1 thread(s); against" in note and "4 thread(s)" in note
    assert note.endswith("partly the measurement's.")
    [note] = comparability_notes([run("a", host(1)), run("laptop", host(1, "Intel Core i7"))])
    assert "Intel Core i7" in note


def test_a_note_names_the_splits_the_seed_and_the_recipe_that_differ():
    first = ("a", {**RUN, "data_splits": SPLITS})
    reseeded = ("b", {**RUN, "seed": 1, "data_splits": {"validation": "v1", "test": "t"}})
    [note] = comparability_notes([first, reseeded])
    assert "different validation images" in note and "test" not in note.split("(")[0]
    assert "seed, 0 and 1" in note and "sampler_seed" in note
    both = ("c", {**RUN, "seed": 2, "data_splits": {"validation": "v2", "test": "t2"}})
    assert "validation and test images" in comparability_notes([first, both])[0]
    longer = ("d", {**RUN, "data_splits": SPLITS, "fidelity": {"train_subset": 1000, "epochs": 8}})
    [note] = comparability_notes([first, longer])
    assert "1000 images x 2 epochs against 1000 images x 8 epochs" in note
    other_data = ("e", {**RUN, "dataset": "fashion-mnist"})
    assert "different datasets" in comparability_notes([first, other_data])[0]
    # A run.json from before data_splits: a different seed is the sign it has.
    old = ("f", {k: v for k, v in RUN.items() if k != "data_splits"} | {"seed": 3})
    assert "validation images" in comparability_notes([first, old])[0]


def test_the_overlay_report_and_the_command_warn_when_runs_used_other_images(
    tmp_path: Path, caplog
):
    first = _write_run(tmp_path / "a", PARETO + OTHERS, PARETO)
    second = _random_run(tmp_path / "b", 0, {**RUN_3D, "name": "digits-nsga2", "seed": 1})
    with caplog.at_level("WARNING", logger="search.report"):
        assert main(["report", str(first), str(second)]) == 0
    assert "different validation images" in caplog.text
    page = (first / COMPARE).read_text(encoding="utf-8")
    assert '<p class="warn">digits-mcu and digits-nsga2 measured accuracy' in page


def test_report_command_of_one_run(tmp_path: Path, capsys):
    run_dir = _write_run(tmp_path / "run", PARETO + OTHERS, PARETO)
    assert main(["report", str(run_dir)]) == 0
    assert Path(capsys.readouterr().out.strip()) == run_dir / REPORT
    assert (run_dir / SUMMARY).is_file()
    assert main(["report", str(run_dir), str(tmp_path / "missing")]) == 2


def test_hypervolume_leaves_out_baselines():
    # A hand-designed baseline that would dominate the whole front is not a search trial.
    baseline = _trial(8, "ok", "c8,cv1x8k3s1|p0w32a32", 0.99, 0.99, 0.1, memory=1)
    plain = hypervolume_progress(RUN, pd.DataFrame(PARETO + OTHERS))
    rows = [{**row, "baseline": None} for row in PARETO + OTHERS]
    rows.append({**baseline, "baseline": "mobilenetv2-0.35"})
    with_baseline = hypervolume_progress(RUN, pd.DataFrame(rows))
    assert with_baseline["hypervolume"].iloc[-1] == pytest.approx(plain["hypervolume"].iloc[-1])


def test_baselines_are_drawn_beside_the_front_not_on_it(tmp_path: Path):
    baseline = _trial(9, "ok", "c16,mb1x16k3e1s1|p0w32a32", 0.9, 0.89, 1.2, memory=40)
    baseline["baseline"] = "mobilenetv2_035"
    run_dir = _write_run(tmp_path / "run", [*PARETO, *OTHERS, baseline], PARETO)
    text = write_report(run_dir).read_text(encoding="utf-8")
    assert "hand-designed baselines (1)" in text and "mobilenetv2_035" in text
    assert "within budget (4)" in text  # the 4 searched feasible trials; not the baseline
    # The caption says how the baselines' training compares with the candidates'.
    assert "trained with the run&#x27;s KD recipe for 2 epochs." in text


def _baseline_rows(bits: str, seconds_qat: float | None) -> pd.DataFrame:
    """Two searched candidates (one pruned, both quantized with QAT) and two baselines at
    ``bits``, as the report reads trials.csv."""
    from search.report.frames import normalise

    rows = [
        _trial(1, "ok", "c8,ds1x16k3s1|p0.5w8a8", 0.8, 0.8, 0.5, seconds_finetune=0.2),
        _trial(2, "ok", "c8,ds1x16k3s1|p0w8a8", 0.8, 0.8, 0.5, seconds_finetune=None),
        _trial(3, "ok", f"c16,cv2x32k3s2|p0{bits}", 0.9, 0.9, 1.0, baseline="plain_cnn"),
        _trial(4, "ok", f"c16,mb1x8k3e1s1|p0{bits}", 0.9, 0.9, 1.0, baseline="mobilenetv2_035"),
    ]
    for row in rows:
        quantized = "w8a8" in row["genome"] and not row.get("baseline")
        row["seconds_qat"] = 0.1 if quantized else seconds_qat
        row.setdefault("seconds_finetune", None)
        row.setdefault("baseline", None)
    return normalise(pd.DataFrame(rows))


FIDELITY = {"epochs": 4, "finetune_epochs": 2, "qat_epochs": 1}


def test_the_caption_says_what_int8_baselines_were_and_that_they_had_qat():
    # On an int8-only device the baselines are quantized and go through QAT (trials.csv:
    # w8a8, seconds_qat); the caption reads that from the rows, not from a fixed phrase.
    from search.report.captions import _baseline_training

    text = _baseline_training(_baseline_rows("w8a8", 0.3), FIDELITY)
    assert "baselines (int8 weights and activations, unpruned)" in text
    assert "for 4 epochs, then 1 QAT epoch, as a quantized candidate had" in text
    assert "fp32" not in text and "uncompressed" not in text
    # What the candidates had and the baselines did not: only the fine-tune after pruning.
    assert "a pruned or factorized candidate also had 2 fine-tune epochs" in text
    assert "QAT epoch, which" not in text and "QAT epochs, which" not in text


def test_the_caption_says_fp32_baselines_skip_the_compressed_candidates_fine_tunes():
    from search.report.captions import _baseline_training

    text = _baseline_training(_baseline_rows("w32a32", None), FIDELITY)
    assert "baselines (fp32, unpruned), trained with the run's KD recipe for 4 epochs;" in text
    assert "2 fine-tune epochs after it, which the baselines, unpruned, did not" in text
    assert "1 QAT epoch, which the baselines, in fp32, did not" in text
    # A run whose candidates did no QAT (none quantized): nothing about QAT is claimed.
    plain = _baseline_rows("w32a32", None).assign(seconds_qat=None)
    assert "QAT" not in _baseline_training(plain, FIDELITY)


def test_the_report_is_as_readable_as_the_runs_other_files(tmp_path):
    run_dir = _write_run(tmp_path / "run", PARETO, PARETO)
    path = write_report(run_dir)
    mode = path.stat().st_mode & 0o777
    assert mode == (run_dir / "pareto.csv").stat().st_mode & 0o777, oct(mode)


def test_a_note_says_when_the_runs_searched_with_unequal_effort_or_shared_trials():
    from search.report.comparability import effort_notes

    tpe = {**RUN, "sampler": "tpe", "sampler_seed": 0}
    rand = {**RUN, "sampler": "random", "sampler_seed": 0}
    assert effort_notes([("a", tpe, 6), ("b", {**tpe, "sampler_seed": 1}, 6)]) == []
    [unequal] = effort_notes([("a", tpe, 6), ("c", {**tpe, "sampler_seed": 1}, 4)])
    assert "different numbers of trials (a: 6, c: 4)" in unequal and "--trials" in unequal
    [shared] = effort_notes([("a", tpe, 6), ("b", rand, 6)])
    assert shared.startswith("a and b drew candidates with the same sampler seed (0)")
    assert "first points coincide" in shared
    # A run.json from before sampler_seed: its seed drew the candidates.
    old = {k: v for k, v in rand.items() if k != "sampler_seed"}
    assert len(effort_notes([("a", tpe, 6), ("b", old, 6)])) == 1


def test_the_overlay_table_gives_each_test_accuracy_its_interval_as_bounds():
    from search.report.comparison import _with_interval

    # Wilson, by hand: centre 0.93733, half-width 0.02447; not centred on the accuracy.
    assert _with_interval(0.942, {"split_sizes": {"test": 360}}) == "94.2% (95% CI 91.3–96.2%)"
    assert _with_interval(0.942, {}) == "94.2%"  # a run.json from before split_sizes


def test_an_interval_near_100_percent_is_asymmetric_and_never_passes_100():
    # 97.5% on 80 test images: a symmetric "± 4.0" read as up to 101.5%.
    lower, upper = accuracy_interval(0.975, 80)
    assert (lower, upper) == (pytest.approx(0.9134, abs=1e-4), pytest.approx(0.9931, abs=1e-4))
    assert 0.975 - lower > upper - 0.975
    # At 100% on digits' 360 images: not a zero-width interval, and not past 100%.
    lower, upper = accuracy_interval(1.0, 360)
    assert lower == pytest.approx(0.9894, abs=1e-4) and upper == pytest.approx(1.0)
    assert upper <= 1.0
    from search.report.formatting import pct_interval

    assert pct_interval(0.975, accuracy_interval(0.975, 80)) == "97.5% (95% CI 91.3–99.3%)"


def _baselines() -> list[dict]:
    rows = []
    for number, name in ((8, "plain_cnn"), (9, "mobilenetv2_035")):
        row = _trial(number, "ok", "c16,cv2x32k3s2|p0w8a8", 0.96, 0.95, 1.2, memory=20)
        rows.append({**row, "state": "FAIL", "baseline": name})
    return rows


def test_baselines_are_counted_apart_from_the_searchs_trials(tmp_path: Path):
    run_dir = _write_run(tmp_path / "a", [*PARETO, *OTHERS, *_baselines()], PARETO)
    page = write_report(run_dir).read_text(encoding="utf-8")
    assert (
        "7 trials: 4 ok, 1 over budget (infeasible), 1 failed, 1 stopped early (pruned); "
        "besides them, 2 hand-designed baselines, not counted as trials (2 ok). "
        "4 trained trials are within the configured budget."
    ) in page
    # The overlay: the same 7 searched trials in both runs, so no note of unequal effort.
    other = _write_run(tmp_path / "b", PARETO + OTHERS, PARETO)
    (other / "run.json").write_text(json.dumps({**RUN, "name": "digits-b"}))
    assert main(["report", str(run_dir), str(other), "--out", str(tmp_path / "c.html")]) == 0
    text = (tmp_path / "c.html").read_text(encoding="utf-8")
    assert "tpe, sampler seed 0; 7 trials, 4 trained; 2 hand-designed baselines besides" in text
    assert "different numbers of trials" not in text
    assert '"name":"digits-mcu: within budget (4)"' in text


def test_a_roofline_latency_is_called_a_lower_bound(tmp_path: Path):
    run = {**RUN, "device": {"name": "cortex-m7", "description": "roofline", "latency": "roofline"}}
    roofline = "predicted (roofline of cortex-m7's public numbers)"
    trials = [{**row, "latency_source": roofline} for row in PARETO + OTHERS]
    run_dir = _write_run(tmp_path / "run", trials, trials[: len(PARETO)])
    (run_dir / "run.json").write_text(json.dumps(run))
    page = write_report(run_dir).read_text(encoding="utf-8")
    assert "runs in 2.500 ms (predicted, roofline: a lower bound) and needs" in page
    assert "latency ms (predicted, roofline: a lower bound)" in page
    assert "so the real latency is higher" in page
    assert "peak memory for a perfectly packed arena without the runtime&#x27;s scratch" in page
    summary = json.loads((run_dir / SUMMARY).read_text())
    assert all(tier["latency_is_lower_bound"] for tier in summary["tiers"])
    assert summary["knee"]["latency_is_lower_bound"] is True
    assert "without the runtime's scratch buffers" in summary["peak_memory_note"]
    assert "a lower bound" in summary["peak_memory_note"]

    # The same device with a predictor fitted on its measurements: an estimate, not a bound.
    fitted = "predicted (kernel model fitted on 40 kernel + 8 model measurements on cortex-m7)"
    trials = [{**row, "latency_source": fitted} for row in PARETO + OTHERS]
    run_dir = _write_run(tmp_path / "fitted", trials, trials[: len(PARETO)])
    (run_dir / "run.json").write_text(json.dumps(run))
    page = write_report(run_dir).read_text(encoding="utf-8")
    assert "roofline: a lower bound" not in page and "runs in 2.500 ms (predicted) and" in page
    summary = json.loads((run_dir / SUMMARY).read_text())
    assert not any(tier["latency_is_lower_bound"] for tier in summary["tiers"])


def test_a_measured_latency_is_no_bound(report: str, tmp_path: Path):
    assert "roofline" not in report
    run_dir = _write_run(tmp_path / "run", PARETO + OTHERS, PARETO)
    write_report(run_dir)
    summary = json.loads((run_dir / SUMMARY).read_text())
    assert summary["tiers"][1]["latency_is_lower_bound"] is False


def test_the_footer_says_how_candidates_were_stopped_early():
    from search.report.run_facts import footer

    stopping = {
        "enabled": True,
        "quantile": 1.0,
        "min_gain": 0.02,
        "feedback": "expected",
        "keep_contenders": True,
    }
    said = footer({**RUN, "fidelity": {**RUN["fidelity"], "early_stopping": stopping}})
    assert (
        "could add under 2% to the front&#x27;s hypervolume and could not become the most "
        "accurate model within budget"
    ) in said
    assert "learnt a stopped candidate&#x27;s expected final accuracy" in said
    dominated_only = {**stopping, "min_gain": 0.0, "feedback": "stopped"}
    said = footer({**RUN, "fidelity": {**RUN["fidelity"], "early_stopping": dominated_only}})
    assert "hypervolume" not in said and "stopped candidate&#x27;s measured accuracy" in said
    off = footer({**RUN, "fidelity": {**RUN["fidelity"], "early_stopping": {"enabled": False}}})
    assert "Early stopping: off." in off
    assert "Early stopping" not in footer(RUN)  # a run.json from before it was recorded
