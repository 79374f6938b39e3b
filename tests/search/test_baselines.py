"""Baselines evaluated into a run: digits, a tiny teacher, tiny fidelity, a real SQLite study."""

from __future__ import annotations

import json

import optuna
import pandas as pd
import pytest

from evaluators.devices import get_device
from search import objective as objective_module
from search.baselines import for_device, missing_ops, run_baselines
from search.config import ConfigError, parse_config
from search.results import pareto_frame
from search.runner import run_search
from spaces import BASELINES, get_candidate
from tests.search.test_search import TINY as SEARCH_TINY

# The search tests' tiny run, with a budget every baseline fits.
TINY = {**SEARCH_TINY, "budget": {"latency_ms": 1000}}


def _config(tmp_path, **changes):
    data = json.loads(json.dumps(TINY))
    data["results_dir"] = str(tmp_path)
    data.update(changes)
    return parse_config(data)


def test_baselines_join_the_run_once_beside_the_front(tmp_path, monkeypatch):
    config = _config(tmp_path, name="base")
    result = run_baselines(config)
    trials = pd.read_csv(result.run_dir / "trials.csv")
    assert list(trials["baseline"]) == list(BASELINES)
    assert set(trials["status"]) == {"ok"} and trials["feasible"].all()
    assert trials["accuracy"].notna().all() and (trials["epochs"] == 1).all()
    assert (trials["train_subset"] == 150).all()
    assert trials["constraint_latency_ms"].notna().all()
    assert [g.split("|")[0] for g in trials["genome"]] == [
        get_candidate(name).arch.genome for name in BASELINES
    ]
    for name, folder in zip(trials["baseline"], trials["artifacts"], strict=True):
        assert folder == f"checkpoints/baseline-{name}"
        assert (result.run_dir / folder / "model.onnx").is_file()
    assert pd.read_csv(result.run_dir / "pareto.csv").empty  # beside the front, not on it
    assert not (result.run_dir / "models").exists() or not any(
        (result.run_dir / "models").iterdir()
    )

    # A rerun evaluates nothing again.
    monkeypatch.setattr(
        objective_module,
        "evaluate_candidate",
        lambda *a, **k: pytest.fail("a baseline already in the run was evaluated again"),
    )
    again = run_baselines(config)
    assert len(again.trials) == len(BASELINES)
    monkeypatch.undo()

    # Baselines are not search trials: the search still runs its own 2.
    result = run_search(config, trials=2, progress=False)
    trials = pd.read_csv(result.run_dir / "trials.csv")
    searched = trials[trials["baseline"].isna()]
    assert len(trials) == len(BASELINES) + 2 and len(searched) == 2
    assert list(searched["number"]) == [4, 5]
    assert searched["param_num_stages"].notna().all()
    pareto = pd.read_csv(result.run_dir / "pareto.csv")
    assert len(pareto) >= 1 and set(pareto["number"]) <= set(searched["number"])
    study = optuna.load_study(study_name="base", storage=f"sqlite:///{result.run_dir / 'study.db'}")
    states = {t.user_attrs.get("baseline"): t.state for t in study.trials}
    assert all(states[name] == optuna.trial.TrialState.FAIL for name in BASELINES)


def test_a_baseline_over_budget_is_trained_but_infeasible(tmp_path):
    config = _config(tmp_path, name="tight", budget={"latency_ms": 0.001})
    trials = run_baselines(config, ["plain_cnn"]).trials
    row = trials.iloc[0]
    assert row["baseline"] == "plain_cnn" and row["status"] == "ok"
    assert row["accuracy"] is not None and not row["feasible"]
    assert row["constraint_latency_ms"] > 0

    strict = _config(tmp_path, name="strict", budget={"latency_ms": 0.001})
    row = run_baselines(strict, ["plain_cnn"], train_over_budget=False).trials.iloc[0]
    assert row["status"] == "infeasible" and pd.isna(row["accuracy"])


def test_unknown_baselines_are_refused_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match="no_such_net"):
        run_baselines(_config(tmp_path, name="bad"), ["plain_cnn", "no_such_net"])
    assert not (tmp_path / "bad").exists()


def test_baselines_take_the_bit_widths_their_device_runs():
    mcu = get_device("cortex-m7")
    candidate = for_device(get_candidate("mobilenetv2_035"), mcu)
    assert {(s.weight_bits, s.activation_bits) for s in candidate.policy.stages} == {(8, 8)}
    assert for_device(get_candidate("plain_cnn"), get_device("host")).policy.is_uncompressed
    assert missing_ops(get_candidate("shufflenet_g4"), mcu) == []


def test_pareto_frame_leaves_baselines_out():
    trials = pd.DataFrame(
        {
            "number": [0, 1],
            "status": ["ok", "ok"],
            "feasible": [True, True],
            "duplicate_of": [None, None],
            "baseline": [None, "plain_cnn"],
            "accuracy": [0.5, 0.9],
            "latency_ms": [2.0, 1.0],
        }
    )
    pareto = pareto_frame(trials, ["accuracy", "latency_ms"], ["maximize", "minimize"])
    assert list(pareto["number"]) == [0]
