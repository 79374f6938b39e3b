"""A block kind of the user's own, through the CLI: named under ``plugins``, it reaches
the workers `search --workers N` starts; a block that fails every trial, or workers that
cannot start, end the command with a non-zero exit and one line."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

PLUGIN = """
import os

import torch
from torch import nn

from spaces import register_block

if os.environ.get("FAIL_IN_WORKERS") and os.environ.get("PARETONAS_LOCAL_WORKER"):
    raise RuntimeError("this plugin refuses to load in a worker")


@register_block("fused_ee")
class Fused(nn.Module):
    def __init__(self, in_channels, out_channels, stride, stage):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, stage.kernel, stride, stage.kernel // 2)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x):
        # Past the block contract (a batch of 2 in training mode), not past a trial's.
        if os.environ.get("FAIL_IN_TRAINING") and self.training and x.shape[0] > 2:
            raise RuntimeError("fused_ee cannot train")
        return torch.relu(self.bn(self.conv(x)))
"""


def _search(tmp_path: Path, name: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    (tmp_path / "my_blocks.py").write_text(textwrap.dedent(PLUGIN))
    config = {
        "name": name,
        "results_dir": str(tmp_path / "results"),
        "plugins": ["my_blocks"],
        "dataset": {"name": "digits"},
        "teacher": {"widths": [8], "blocks": [1], "epochs": 1},
        "training": {"train_subset": 300, "epochs": 1, "batch_size": 64},
        "space": {"num_stages": [1, 1], "kind": ["fused_ee"], "width": [8, 16],
                  "stem_width": [8], "depth": [1, 1]},
        "compression": {"finetune_epochs": 0, "qat_epochs": 0},
        "device": {"runs": 5, "warmup": 1},
        "budget": {"latency_ms": 50},
    }  # fmt: skip
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run(
        [sys.executable, "-m", "search.cli", "search", "--config", str(path), "--no-progress",
         *args],
        cwd=tmp_path,  # where a user keeps their module
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **env},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip


@pytest.mark.slow
def test_local_workers_build_a_plugins_block_kind(tmp_path):
    run = _search(tmp_path, "plugged", "--trials", "3", "--workers", "2")
    assert run.returncode == 0, run.stderr[-3000:]
    trials = pd.read_csv(tmp_path / "results" / "plugged" / "trials.csv")
    assert (trials["status"] == "ok").sum() == 3, trials[["status", "reason"]]
    assert trials["genome"].str.contains(r",fused_ee1x\d+k\ds\d\|").all()
    assert trials["worker"].nunique() == 2  # both workers trained it


@pytest.mark.slow
def test_workers_that_cannot_start_fail_the_search_in_one_line(tmp_path):
    run = _search(tmp_path, "noplug", "--trials", "3", "--workers", "2", FAIL_IN_WORKERS="1")
    assert run.returncode == 2, run.stderr[-3000:]
    assert "this plugin refuses to load in a worker" in run.stderr
    assert (
        "paretonas: error: 2 of 2 workers (exit code 2, exit code 2) stopped before" in run.stderr
    )
    assert "(0 finished, kept)" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.slow
def test_a_run_whose_every_trial_failed_exits_4_and_says_why(tmp_path):
    run = _search(tmp_path, "allfail", "--trials", "2", FAIL_IN_TRAINING="1")
    assert run.returncode == 4, run.stderr[-3000:]
    assert "every trial failed (2); the first said: " in run.stderr
    assert "fused_ee cannot train" in run.stderr
    # Optuna's traceback would show only our objective re-raising; the trial's own is kept
    # where the log line says, and points into the user's block.
    assert "Traceback" not in run.stderr
    kept = tmp_path / "results" / "allfail" / "checkpoints" / "0" / "traceback.txt"
    assert f"traceback in {kept}" in run.stderr
    assert 'my_blocks.py", line' in kept.read_text()
