"""A search for a microcontroller (cortex-m7: 320 KB SRAM, 1 MB flash, int8 only) on
Fashion-MNIST, through the CLI, at a tiny fidelity: every Pareto member fits the board by
the schedule-based figures, runs int8, and its latency is labelled as predicted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from evaluators.cost import estimate_cost
from evaluators.data import DatasetError, load_dataset
from spaces.candidate import Candidate

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_mcu_search_fits_the_board(tmp_path):
    try:
        load_dataset("fashion-mnist", seed=0)
    except DatasetError as error:  # CI installs Debian's dataset-fashion-mnist; say what is missing
        pytest.fail(f"Fashion-MNIST is needed for this test: {error}")
    config = yaml.safe_load((ROOT / "configs" / "fashion-mnist-mcu.yaml").read_text())
    config.update(name="mcu", trials=5, results_dir=str(tmp_path))
    config["dataset"]["download"] = False
    config["teacher"].update(widths=[8, 16], blocks=[1, 1], epochs=1)
    config["training"].update(train_subset=1000, epochs=1)
    config["compression"].update(qat_epochs=1, finetune_epochs=1)
    path = tmp_path / "mcu.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [sys.executable, "-m", "search.cli", "search", "--config", str(path), "--no-progress"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    run = tmp_path / "mcu"
    trials = pd.read_csv(run / "trials.csv")
    assert len(trials) == 5
    pareto = pd.read_csv(run / "pareto.csv")
    assert len(pareto) >= 1
    assert (pareto["peak_memory_kb"] <= 320).all() and (pareto["flash_kb"] <= 1024).all()
    assert (pareto["latency_ms"] <= config["budget"]["latency_ms"]).all()
    assert pareto["latency_source"].str.contains("predicted").all()
    assert pareto["int8"].all()
    for _, row in pareto.iterrows():
        candidate = Candidate.from_json((run / row["artifacts"] / "candidate.json").read_text())
        assert {s.weight_bits for s in candidate.policy.stages} == {8}
        cost = estimate_cost(candidate, (1, 28, 28), 10)
        assert cost.peak_memory_kb == pytest.approx(row["peak_memory_kb"])
        assert cost.flash_kb == pytest.approx(row["flash_kb"])
    assert "cortex-m7" in (run / "report.html").read_text()
    # Latency on the board is predicted: a teacher timed on this host would not compare.
    assert "latency_ms" not in json.loads((run / "run.json").read_text())["teacher"]
    summary = json.loads((run / "summary.json").read_text())
    assert all(tier.get("faster_than_teacher") is None for tier in summary["tiers"])
