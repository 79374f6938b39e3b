"""A real search, in process: digits, a tiny teacher, tiny fidelity, a real SQLite study."""

from __future__ import annotations

import json

import optuna
import pandas as pd
import pytest

from evaluators import pipeline
from search.config import ConfigError, parse_config
from search.runner import run_search

TINY = {
    "seed": 0,
    "dataset": {"name": "digits"},
    "teacher": {"widths": [8], "blocks": [1], "epochs": 1},
    "training": {"train_subset": 150, "epochs": 1, "batch_size": 64},
    "space": {"num_stages": [1, 2], "width": [8, 16], "stem_width": [8], "depth": [1, 1]},
    "device": {"runs": 5, "warmup": 1},
}


def _config(tmp_path, **changes):
    data = json.loads(json.dumps(TINY))
    data["results_dir"] = str(tmp_path)
    for key, value in changes.items():
        data[key] = value
    return parse_config(data)


def config_dir(config):
    return tmp_results(config) / config.name


def tmp_results(config):
    from pathlib import Path

    return Path(config.results_dir)


def test_an_impossible_latency_budget_trains_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(
        pipeline, "train", lambda *a, **k: pytest.fail("over budget: must not train")
    )
    config = _config(tmp_path, name="tight", budget={"latency_ms": 0.001})
    result = run_search(config, trials=4, progress=False)
    trials = pd.read_csv(result.run_dir / "trials.csv")
    assert len(trials) == 4
    assert set(trials["status"]) == {"infeasible"}
    assert trials["accuracy"].isna().all()
    assert (trials["latency_ms"] > 0.001).all()
    assert (trials["constraint_latency_ms"] > 0).all()
    assert pd.read_csv(result.run_dir / "pareto.csv").empty
    assert not (result.run_dir / "checkpoints").exists()
    assert "no feasible model" in (result.run_dir / "report.html").read_text().lower()


def test_a_run_resumes_its_study_and_keeps_every_trial(tmp_path):
    config = _config(tmp_path, name="again", budget={"latency_ms": 50})
    run_search(config, trials=2, progress=False)
    assert len(pd.read_csv(config_dir(config) / "trials.csv")) == 2
    run_search(config, trials=2, progress=False)  # the run already holds 2: nothing to do
    assert len(pd.read_csv(config_dir(config) / "trials.csv")) == 2
    result = run_search(config, trials=4, progress=False)  # goes on to 4 in all
    trials = pd.read_csv(result.run_dir / "trials.csv")
    assert list(trials["number"]) == [0, 1, 2, 3]
    study = optuna.load_study(
        study_name="again", storage=f"sqlite:///{result.run_dir / 'study.db'}"
    )
    assert len(study.trials) == 4
    pareto = pd.read_csv(result.run_dir / "pareto.csv")
    assert len(pareto) >= 1
    assert (pareto["status"] == "ok").all() and (pareto["latency_ms"] <= 50).all()
    for number in pareto["number"]:
        folder = result.run_dir / "models" / str(number)
        assert {p.name for p in folder.iterdir()} == {
            "model.pt",
            "candidate.json",
            "model.onnx",
            "channels.json",
        }
    saved = (result.run_dir / "config.yaml").read_text()
    assert "latency_ms: 50" in saved
    splits = json.loads((result.run_dir / "run.json").read_text())["data_splits"]
    assert set(splits) == {"validation", "test"} and all(len(v) == 16 for v in splits.values())


def test_a_device_named_by_its_file_is_recorded_by_its_own_name(tmp_path, monkeypatch):
    import yaml

    from evaluators.devices import PROFILE_DIR

    board = yaml.safe_load((PROFILE_DIR / "cortex-m7.yaml").read_text())
    board["name"] = "my-board"
    (tmp_path / "boards").mkdir()
    (tmp_path / "boards" / "my-board.yaml").write_text(yaml.safe_dump(board))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(pipeline, "train", lambda *a, **k: pytest.fail("over budget: no training"))
    config = _config(
        tmp_path,
        name="board",
        device={"name": "boards/my-board.yaml"},
        budget={"latency_ms": 1e-6},
        space={**TINY.get("space", {}), "weight_bits": [8], "activation_bits": [8]},
    )
    result = run_search(config, trials=1, progress=False)
    device = json.loads((result.run_dir / "run.json").read_text())["device"]
    assert device["name"] == "my-board" and device["file"] == "boards/my-board.yaml"


def test_a_run_drawing_pairs_the_device_runs_alike_is_told_what_to_draw(
    tmp_path, monkeypatch, caplog
):
    monkeypatch.setattr(pipeline, "train", lambda *a, **k: pytest.fail("over budget: no training"))
    apart = {**TINY["space"], "weight_bits": [8, 32], "activation_bits": [8, 32]}
    config = _config(tmp_path, name="apart", budget={"latency_ms": 1e-6}, space=apart)
    run_search(config, trials=1, progress=False)
    said = [r.getMessage() for r in caplog.records if "at the same cost" in r.getMessage()]
    assert len(said) == 1 and said[0].endswith("draw space.precisions: [w8a8, w32a32] instead")
    caplog.clear()
    run_search(config, trials=2, progress=False)  # resumed: the advice is for the next run
    assert "[w8a8, w32a32] instead (in a new run, --name)" in caplog.text


def test_a_changed_config_is_not_mixed_into_an_existing_run(tmp_path):
    run_search(
        _config(tmp_path, name="fixed", budget={"latency_ms": 0.001}), trials=1, progress=False
    )
    with pytest.raises(ConfigError) as refused:
        run_search(
            _config(tmp_path, name="fixed", budget={"latency_ms": 0.002}), trials=1, progress=False
        )
    said = str(refused.value)
    assert "different config (changed: budget.latency_ms (run: 0.001, this config: 0.002))" in said
    assert "not in your config" not in said  # written by the user: no default changed


def test_a_refusal_shows_no_storage_password_an_older_run_saved():
    from search.runner import _said_changes

    said = _said_changes(
        {"storage": ("postgresql://bob:hunter2@db/nas", "postgresql://bob:***@db2/nas")}
    )
    assert "hunter2" not in said and "db/nas" in said and "db2/nas" in said


def test_the_command_line_keeps_which_settings_the_file_left_to_their_defaults(tmp_path):
    # What the refusal of a resumed run says to write rests on it.
    import argparse

    import yaml

    from search.cli import _with_execution
    from search.config import load_config

    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(TINY))
    options = ("backend", "workers", "address", "concurrent", "cpus_per_trial", "gpus_per_trial")
    args = argparse.Namespace(**{**dict.fromkeys(options), "workers": 2})
    config = _with_execution(load_config(path), args)
    assert config.execution.workers == 2
    assert "epochs" in config.training.model_fields_set
    assert "early_stopping_min_gain" not in config.training.model_fields_set


def test_a_run_started_under_older_defaults_says_which_and_resumes_with_them(tmp_path):
    # A run saved before early stopping's defaults changed (2026-11-30): its config.yaml
    # holds the old values, which the user never wrote; the refusal names them with both
    # values, and writing the run's values resumes it.
    import yaml

    from search.runner import CONFIG
    from search.storage import default_storage

    pinned_keys = ("early_stopping_min_gain", "early_stopping_feedback")
    run_search(_config(tmp_path, name="older"), trials=1, progress=False)
    saved = tmp_path / "older" / "config.yaml"
    old = yaml.safe_load(saved.read_text())
    old["training"].update(early_stopping_min_gain=0.0, early_stopping_feedback="stopped")
    saved.write_text(yaml.safe_dump(old))
    study = optuna.load_study(study_name="older", storage=default_storage(tmp_path / "older"))
    study.set_user_attr(CONFIG, {**study.user_attrs[CONFIG], "training": old["training"]})
    with pytest.raises(ConfigError) as refused:
        run_search(_config(tmp_path, name="older"), trials=2, progress=False)
    said = str(refused.value)
    assert "training.early_stopping_feedback (run: 'stopped', this config: 'expected')" in said
    assert "training.early_stopping_min_gain (run: 0.0, this config: 0.02)" in said
    assert (
        "not in your config, so at today's default: write training.early_stopping_feedback: "
        '"stopped", training.early_stopping_min_gain: 0.0 in it to resume'
    ) in said
    # Saved before the settings existed (min_gain and feedback came on 2026-11-28): the run
    # stopped only dominated candidates, so it is refused alike, not resumed under the new
    # defaults unannounced.
    for key in pinned_keys:
        del old["training"][key]
    saved.write_text(yaml.safe_dump(old))
    study.set_user_attr(CONFIG, {**study.user_attrs[CONFIG], "training": old["training"]})
    with pytest.raises(
        ConfigError, match=r"early_stopping_min_gain \(run: 0\.0, this config: 0\.02\)"
    ):
        run_search(_config(tmp_path, name="older"), trials=2, progress=False)
    pinned = {"early_stopping_min_gain": 0.0, "early_stopping_feedback": "stopped"}
    training = {**TINY["training"], **pinned}
    result = run_search(
        _config(tmp_path, name="older", training=training), trials=2, progress=False
    )
    assert len(result.trials) == 2


def test_a_changed_config_from_another_results_folder_is_refused_by_the_study(tmp_path):
    # A teammate's search on the shared study: their own results folder, the same storage.
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    first = _config(tmp_path / "mine", name="team", storage=storage, budget={"latency_ms": 0.001})
    run_search(first, trials=1, progress=False)
    changed = _config(
        tmp_path / "theirs", name="team", storage=storage, budget={"latency_ms": 0.002}
    )
    with pytest.raises(ConfigError, match=r"study team .* different config \(changed: budget"):
        run_search(changed, trials=2, progress=False)
    study = optuna.load_study(study_name="team", storage=storage)
    assert study.user_attrs["config"]["budget"]["latency_ms"] == 0.001  # not overwritten
    assert len(study.trials) == 1
    # The same config from their folder joins (results_dir may differ between machines).
    same = _config(tmp_path / "theirs", name="team", storage=storage, budget={"latency_ms": 0.001})
    run_search(same, trials=2, progress=False)
    assert len(optuna.load_study(study_name="team", storage=storage).trials) == 2


def test_a_candidate_that_raises_is_failed_and_the_search_goes_on(tmp_path, monkeypatch):
    real = pipeline.evaluate_candidate
    calls = {"n": 0}

    def flaky(candidate, context, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("shape mismatch in stage 1")
        return real(candidate, context, *args, **kwargs)

    monkeypatch.setattr("search.objective.evaluate_candidate", flaky)
    result = run_search(
        _config(tmp_path, name="flaky", budget={"latency_ms": 0.001}), trials=3, progress=False
    )
    trials = pd.read_csv(result.run_dir / "trials.csv")
    assert len(trials) == 3
    failed = trials[trials["status"] == "failed"]
    assert len(failed) == 1 and "shape mismatch" in failed["reason"].iloc[0]
    assert failed["state"].iloc[0] == "FAIL"


def test_each_trial_sees_the_finished_trials_curves_for_early_stopping(tmp_path, monkeypatch):
    real = pipeline.evaluate_candidate
    seen = []

    def spy(candidate, context, *args, **kwargs):
        seen.append([list(c) for c in kwargs["curves"]])
        return real(candidate, context, *args, **kwargs)

    monkeypatch.setattr("search.objective.evaluate_candidate", spy)
    training = {**TINY["training"], "epochs": 2}
    config = _config(tmp_path, name="curves", budget={"latency_ms": 50}, training=training)
    result = run_search(config, trials=4, progress=False)
    study = optuna.load_study(
        study_name="curves", storage=f"sqlite:///{result.run_dir / 'study.db'}"
    )
    recorded = [
        t.user_attrs["metrics"]["val_curve"]
        for t in study.trials
        if t.user_attrs["metrics"]["status"] == "ok" and "duplicate_of" not in t.user_attrs
    ]
    assert recorded and all(len(c) == 2 and all(0 <= a <= 1 for a in c) for c in recorded)
    assert seen[0] == []  # the first trial has no one to learn from
    # The last evaluated trial was handed the curves of every trial trained before it.
    assert all(c in recorded for c in seen[-1])
    assert len(seen[-1]) >= len(recorded) - 1


def test_a_duplicate_trials_curve_is_counted_once():
    from search.objective import finished_curves

    study = optuna.create_study(directions=["maximize"])
    trained = {"status": "ok", "val_curve": [0.3, 0.6, 0.8]}
    stopped = {"status": "pruned", "val_curve": [0.2]}
    study.add_trial(optuna.trial.create_trial(value=0.8, user_attrs={"metrics": trained}))
    study.add_trial(
        optuna.trial.create_trial(value=0.8, user_attrs={"metrics": trained, "duplicate_of": 0})
    )
    study.add_trial(optuna.trial.create_trial(value=0.2, user_attrs={"metrics": stopped}))
    assert finished_curves(study) == [[0.3, 0.6, 0.8]]


def test_trial_number_columns_are_written_as_whole_numbers(tmp_path):
    from search.results import trials_frame, write_tables

    study = optuna.create_study(directions=["maximize"])
    trained = {"status": "ok", "val_curve": [0.8], "params": 506, "artifact_bytes": 9000}
    study.add_trial(optuna.trial.create_trial(value=0.8, user_attrs={"metrics": trained}))
    study.add_trial(
        optuna.trial.create_trial(value=0.8, user_attrs={"metrics": trained, "duplicate_of": 0})
    )
    infeasible = {"status": "infeasible", "params": 90000}  # never exported: no file size
    study.add_trial(optuna.trial.create_trial(value=0.0, user_attrs={"metrics": infeasible}))
    trials = trials_frame(study)
    write_tables(tmp_path, trials, trials.iloc[:0])
    lines = (tmp_path / "trials.csv").read_text().splitlines()

    def column(name):
        index = lines[0].split(",").index(name)
        return [line.split(",")[index] for line in lines[1:]]

    assert column("duplicate_of") == ["", "0", ""]  # not 0.0
    assert column("artifact_bytes") == ["9000", "9000", ""]  # counts too, blank or whole


@pytest.mark.parametrize(
    ("source", "tag"),
    [
        ("measured: onnxruntime 1.22, 1 thread(s), batch 1", "(measured)"),
        ("predicted (roofline of cortex-m7's public numbers)", "(predicted)"),
    ],
)
def test_a_trials_log_line_says_whether_its_latency_was_measured(source, tag):
    from evaluators.metrics import Metrics
    from search.objective import describe
    from spaces import ArchSpec, Candidate, StageSpec

    candidate = Candidate(ArchSpec(8, (StageSpec("dsconv", 1, 16, 3),)))
    line = describe(Metrics(status="ok", latency_ms=0.5, latency_source=source), candidate)
    assert f"latency 0.500 ms {tag}" in line
    stopped = describe(Metrics(status="pruned", reason="stopped after epoch 1 of 4"), candidate)
    assert stopped.startswith("stopped early") and "pruned" not in stopped
    assert "expected" not in stopped  # before three curves finished: nothing predicted
    predicted = describe(
        Metrics(status="pruned", accuracy=0.32, expected_accuracy=0.861, reason="stopped"),
        candidate,
    )
    assert "val acc 0.3200  (expected 0.8610 by the end, predicted)" in predicted


@pytest.mark.parametrize(
    ("curve", "deployed", "noted"),
    [([0.5, 0.66], 0.10, True), ([0.5, 0.66], 0.60, False), ([0.9, 0.8], 0.75, False)],
)
def test_a_trials_log_line_says_when_compression_broke_a_trained_model(curve, deployed, noted):
    from evaluators.metrics import Metrics
    from search.objective import describe
    from spaces import ArchSpec, Candidate, CompressionPolicy, StagePolicy, StageSpec

    arch = ArchSpec(8, (StageSpec("dsconv", 1, 16, 3),))
    pruned = Candidate(arch, CompressionPolicy((StagePolicy(prune_ratio=0.5),)))
    metrics = Metrics(status="ok", accuracy=deployed, val_curve=curve)
    line = describe(metrics, pruned)
    assert ("compression cost" in line) is noted
    if noted:
        assert "compression cost 56 points: 0.6600 after training, 0.1000 deployed" in line
    # Nothing was compressed: whatever the gap, it is not compression's.
    assert "compression cost" not in describe(metrics, Candidate(arch))


def test_a_run_names_a_host_predictor_calibrated_at_another_thread_count():
    from types import SimpleNamespace

    from search.runner import predictor_mismatch

    def oracle(threads, measures=True):
        predictor = SimpleNamespace(meta={"threads": threads}) if threads else None
        return SimpleNamespace(predictor=predictor, measures=measures)

    assert "calibrated with 1 thread(s)" in predictor_mismatch(oracle(1), 4)
    assert "--threads 4" in predictor_mismatch(oracle(1), 4)
    assert predictor_mismatch(oracle(4), 4) is None
    assert predictor_mismatch(oracle(None), 4) is None  # no predictor: nothing to compare
    assert predictor_mismatch(oracle(1, measures=False), 4) is None  # a predicted device


def test_a_budget_no_candidate_meets_is_said_in_one_line(tmp_path, caplog):
    config = _config(tmp_path, name="tiny", budget={"latency_ms": 0.000001})
    with caplog.at_level("WARNING", logger="paretonas"):
        result = run_search(config, trials=2, progress=False)
    assert result.pareto.empty and (result.trials["status"] == "infeasible").all()
    lowest = result.trials["latency_ms"].min()
    said = [r.getMessage() for r in caplog.records if "met the budget" in r.getMessage()]
    assert len(said) == 1 and f"latency_ms {lowest:.3g} ms (measured) > 1e-06" in said[0]
    assert "no candidate of 2" in said[0] and "raise budget" in said[0]


def test_the_cli_exits_3_when_nothing_met_the_budget_and_0_once_something_does(tmp_path):
    import yaml

    from search.cli import NOTHING_FITS, main

    data = {**json.loads(json.dumps(TINY)), "results_dir": str(tmp_path)}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**data, "name": "none", "budget": {"latency_ms": 1e-6}}))
    assert main(["search", "--config", str(path), "--trials", "1", "--no-progress"]) == NOTHING_FITS
    assert (tmp_path / "none" / "trials.csv").is_file()  # the run is kept all the same
    path.write_text(yaml.safe_dump({**data, "name": "some", "budget": {"latency_ms": 50}}))
    assert main(["search", "--config", str(path), "--trials", "1", "--no-progress"]) == 0


def test_budget_unmet_says_nothing_once_a_candidate_fits():
    from search.results import budget_unmet

    budget = {"latency_ms": 1.0, "peak_memory_kb": None}
    trials = pd.DataFrame(
        {"status": ["infeasible", "ok"], "latency_ms": [5.0, 0.5], "baseline": [None, None]}
    )
    assert budget_unmet(trials, budget) is None
    # A baseline that fits is not a searched candidate that fits.
    trials["baseline"] = [None, "plain_cnn"]
    assert "latency_ms 5 ms > 1" in budget_unmet(trials, budget)
    trials["latency_source"] = ["predicted (roofline)", None]
    assert "latency_ms 5 ms (predicted) > 1" in budget_unmet(trials, budget)
    # Each figure says how it was known, from the trial it comes from.
    mixed = pd.DataFrame(
        {
            "status": ["infeasible", "infeasible"],
            "latency_ms": [2.0, 9.0],
            "latency_source": ["predicted (kernel model)", "measured: host"],
        }
    )
    assert "latency_ms 2 ms (predicted) > 1" in budget_unmet(mixed, budget)
    mixed["latency_ms"] = [9.0, 2.0]
    assert "latency_ms 2 ms (measured) > 1" in budget_unmet(mixed, budget)


def test_the_teacher_is_timed_once_per_run_and_every_rewrite_quotes_it(tmp_path, monkeypatch):
    from search import runner

    measured = runner.with_measured_latency
    calls = []

    def counting(*args, **kwargs):
        calls.append(1)
        return measured(*args, **kwargs)

    monkeypatch.setattr(runner, "with_measured_latency", counting)
    config = _config(tmp_path, name="timed", budget={"latency_ms": 50})
    run_search(config, trials=1, progress=False)
    first = json.loads((config_dir(config) / "run.json").read_text())["teacher"]
    run_search(config, trials=2, progress=False)  # a resume prepares the run again
    second = json.loads((config_dir(config) / "run.json").read_text())["teacher"]
    assert len(calls) == 1
    assert first["latency_ms"] > 0 and "median of 5 runs after 1 warm-up" in first["latency_source"]
    assert (second["latency_ms"], second["latency_source"]) == (
        first["latency_ms"],
        first["latency_source"],
    )


def _mcu_config(tmp_path):
    """A run config for the cortex-m7, whose latency is predicted."""
    from search.config import parse_config

    return parse_config(
        {
            "name": "mcu",
            "results_dir": str(tmp_path),
            "device": {"name": "cortex-m7"},
            "space": {"weight_bits": [8], "activation_bits": [8]},
        }
    )


def test_a_run_refuses_a_latency_predictor_fitted_after_its_first_trials(tmp_path):
    # A device whose latency is predicted: trials costed by the roofline, then a predictor
    # calibrated, then the run resumed: its front would rank two models' figures together.
    import csv

    from evaluators.predictor import fit_from_measurements, predictor_dir
    from evaluators.probes import write_probe_kit
    from search.config import ConfigError
    from search.runner import LATENCY_MODEL, _open
    from search.storage import default_storage

    config = _mcu_config(tmp_path)
    url = default_storage(tmp_path / "mcu")
    (tmp_path / "mcu").mkdir()
    study = _open(config, url)
    assert study.user_attrs[LATENCY_MODEL].startswith("the roofline of cortex-m7's public numbers")
    study.enqueue_trial({})  # the run has a trial now
    assert _open(config, url).user_attrs[LATENCY_MODEL] == study.user_attrs[LATENCY_MODEL]

    kit = write_probe_kit(tmp_path / "kit", layer_count=4, model_count=0, progress=False)
    names = [row["probe"] for row in csv.DictReader((kit / "probes.csv").open())]
    measured = "probe,median_ms\n" + "".join(f"{n},{0.1 + i / 100}\n" for i, n in enumerate(names))
    (kit / "measurements.csv").write_text(measured)
    fit_from_measurements(
        kit,
        kit / "measurements.csv",
        device="cortex-m7",
        save_to=predictor_dir("cortex-m7", tmp_path),
    )
    with pytest.raises(
        ConfigError,
        match=r"run mcu costed its trials with the roofline .* now "
        r"has cortex-m7's fitted predictor [0-9a-f]{16}; continue with the new model under a "
        r"new --name .* or move .*predictor aside while this run finishes",
    ):
        _open(config, url)
    # A worker whose results folder holds another model than the run's is refused too.
    with pytest.raises(ConfigError, match=r"but this worker has cortex-m7's fitted predictor"):
        _open(config, url, worker=True)


def test_a_run_without_trials_records_its_latency_model_again_but_a_worker_never_does(tmp_path):
    from search.config import ConfigError
    from search.runner import LATENCY_MODEL, _open
    from search.storage import default_storage

    config = _mcu_config(tmp_path)
    (tmp_path / "mcu").mkdir()
    url = default_storage(tmp_path / "mcu")
    study = _open(config, url)
    study.set_user_attr(LATENCY_MODEL, "a model of an earlier start")
    # No trial yet: the run's own start records what it has now.
    assert _open(config, url).user_attrs[LATENCY_MODEL].startswith("the roofline")
    study.set_user_attr(LATENCY_MODEL, "the head's fitted predictor")
    with pytest.raises(ConfigError, match="this worker has the roofline"):
        _open(config, url, worker=True)
    assert study.user_attrs[LATENCY_MODEL] == "the head's fitted predictor"


def test_a_run_costed_before_held_widths_is_warned_of_once(tmp_path, caplog):
    import optuna

    from search.config import parse_config
    from search.runner import COST_MODEL, HELD_WIDTHS, _open
    from search.storage import default_storage
    from spaces import ArchSpec, Candidate, CompressionPolicy, StagePolicy, StageSpec

    config = parse_config({"name": "host", "results_dir": str(tmp_path)})
    (tmp_path / "host").mkdir()
    url = default_storage(tmp_path / "host")
    study = _open(config, url)
    assert study.user_attrs[COST_MODEL] == HELD_WIDTHS and "began before" not in caplog.text
    # A run of an earlier version: no record of the cost model, and a trial with 8-bit
    # activations beside fp32 weights, which the host runs as fp32.
    study.set_user_attr(COST_MODEL, None)

    def recorded(weights: int, activations: int) -> optuna.trial.FrozenTrial:
        policy = StagePolicy(weight_bits=weights, activation_bits=activations)
        candidate = Candidate(
            ArchSpec(8, (StageSpec("conv", 1, 8, 3),)), CompressionPolicy((policy,))
        )
        return optuna.trial.create_trial(
            state=optuna.trial.TrialState.FAIL, user_attrs={"candidate": candidate.to_dict()}
        )

    study.add_trial(recorded(8, 8))
    _open(config, url)  # w8a8 is held as it is: nothing to say
    assert "began before" not in caplog.text
    study.set_user_attr(COST_MODEL, None)
    study.add_trial(recorded(32, 8))
    _open(config, url)
    assert caplog.text.count("began before memory and flash were computed") == 1
    _open(config, url)  # recorded now: said once
    assert caplog.text.count("began before memory and flash were computed") == 1


def test_a_run_refuses_to_resume_on_data_of_another_shape_or_classes(tmp_path):
    import optuna

    from evaluators.data import load_dataset
    from search.config import ConfigError, parse_config
    from search.runner import DATA_SHAPE, _check_data

    config = parse_config({"name": "r", "results_dir": str(tmp_path)})
    study = optuna.create_study()
    digits = load_dataset("digits", val_fraction=0.15, seed=0)
    _check_data(study, digits, config)
    assert study.user_attrs[DATA_SHAPE]["input_shape"] == [1, 8, 8]
    study.enqueue_trial({})  # the run has a trial now
    _check_data(study, digits, config)  # the same data: fine
    bigger = load_dataset("digits", val_fraction=0.15, seed=0, image_size=16)
    with pytest.raises(
        ConfigError, match=r"trained on inputs \[1, 8, 8\].*now loads as \[1, 16, 16\]"
    ):
        _check_data(study, bigger, config)


def test_a_devices_roofline_numbers_are_part_of_its_latency_model():
    from evaluators.devices import get_device
    from evaluators.latency import LatencyOracle

    device = get_device("cortex-m7")
    faster = device.model_copy(
        update={"latency": device.latency.model_copy(update={"overhead_ms": 0.5})}
    )
    assert LatencyOracle(device).model != LatencyOracle(faster).model
    assert LatencyOracle(device).model == LatencyOracle(get_device("cortex-m7")).model


def test_a_run_resumes_when_its_saved_config_predates_a_check_or_a_url_rendering(tmp_path):
    import yaml

    from search.runner import _changed_keys

    config = _config(
        tmp_path,
        name="old",
        storage="postgresql://bob:pw@db/nas?sslmode=require&connect_timeout=10",
    )
    saved = json.loads(json.dumps(config.model_dump(mode="json")))
    # Saved by an older paretonas: execution settings it accepted and this one refuses,
    # and the masked URL as SQLAlchemy rendered it (query sorted).
    saved["execution"] = {"backend": "ray", "workers": 2}
    saved["storage"] = "postgresql://bob:***@db/nas?connect_timeout=10&sslmode=require"
    assert _changed_keys(yaml.safe_load(yaml.safe_dump(saved)), config, "old") == []
    # A setting that is no longer valid at all is compared as written, not as everything.
    saved["space"]["weight_bits"] = [3]  # no longer a bit-width: no valid config
    with pytest.raises(ConfigError):
        parse_config(saved)
    saved["budget"]["latency_ms"] = 99.0
    changed = _changed_keys(saved, config, "old")
    assert "budget.latency_ms" in changed and "compression.align" not in changed


def test_a_study_drawn_from_other_width_options_is_refused_in_one_line():
    # An older version searched cortex-m7's widths as written; this one rounds them up to
    # the device's channel alignment, and Optuna would fail every trial on the clash.
    from optuna.distributions import CategoricalDistribution

    from search.runner import check_study_space

    config = parse_config(
        {
            "name": "aligned",
            "device": {"name": "cortex-m7"},
            "space": {"width": [6, 18], "stem_width": [8, 16], "groups": [2], "weight_bits": [8],
                      "activation_bits": [8]},
        }
    )  # fmt: skip
    study = optuna.create_study()
    study.add_trial(
        optuna.trial.create_trial(
            params={"s0_width": 6, "stem_width": 8},
            distributions={
                "s0_width": CategoricalDistribution([6, 18]),
                "stem_width": CategoricalDistribution([8, 16]),
            },
            value=0.5,
        )
    )
    with pytest.raises(ConfigError) as error:
        check_study_space(study, config)
    assert "s0_width [6, 18] now [8, 20]" in str(error.value)
    assert "stem_width" not in str(error.value)  # its options are unchanged
    host = parse_config(
        {"name": "aligned", "space": {"width": [6, 18], "stem_width": [8, 16], "groups": [2]}}
    )
    check_study_space(study, host)  # the host aligns to 1: the same options, no complaint


def test_run_json_names_the_latency_model_the_run_used():
    # A fitted predictor replaces the device's roofline: run.json (and from it summary.json
    # and the export's manifest) must say predicted, not the profile's roofline.
    from dataclasses import replace

    from evaluators.devices import get_device
    from evaluators.latency import LatencyOracle
    from search.runner import _latency_model

    assert _latency_model(LatencyOracle(get_device("host"))) == "measured"
    roofline = LatencyOracle(get_device("cortex-m7"))
    assert _latency_model(roofline) == "roofline"
    assert _latency_model(replace(roofline, predictor=object())) == "predicted"


def test_a_predictor_fitted_at_another_input_size_is_warned_about(tmp_path):
    from dataclasses import replace

    from evaluators.devices import get_device
    from evaluators.latency import LatencyOracle
    from evaluators.predictor import predictor_dir
    from search.runner import predictor_input_mismatch

    folder = predictor_dir("cortex-a72", tmp_path)
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text(json.dumps({"input_shape": [1, 28, 28]}))
    fitted = replace(LatencyOracle(get_device("cortex-a72")), predictor=object())
    said = predictor_input_mismatch(fitted, tmp_path, (1, 8, 8))
    assert said is not None and "probes of 1x28x28 inputs and this run's are 1x8x8" in said
    assert predictor_input_mismatch(fitted, tmp_path, (1, 28, 28)) is None
    roofline = LatencyOracle(get_device("cortex-a72"))
    assert predictor_input_mismatch(roofline, tmp_path, (1, 8, 8)) is None


def test_a_roofline_changed_under_a_run_points_at_the_device_file():
    from evaluators.devices import get_device
    from evaluators.latency import LatencyOracle
    from search.runner import LATENCY_MODEL, _check_latency_model

    config = parse_config(
        {"name": "m7", "device": "cortex-m7", "space": {"weight_bits": [8], "activation_bits": [8]}}
    )
    study = optuna.create_study()
    study.add_trial(optuna.trial.create_trial(value=0.5))
    study.set_user_attr(LATENCY_MODEL, "the roofline of cortex-m7's public numbers deadbeef")
    with pytest.raises(ConfigError) as error:
        _check_latency_model(study, LatencyOracle(get_device("cortex-m7")), config)
    assert str(error.value).endswith(
        "put cortex-m7's device file (its public numbers) back as it was"
    )


def test_a_run_pruned_at_another_channel_multiple_is_refused():
    from search.runner import PRUNE_ALIGN, check_study_space

    bits = {"weight_bits": [8], "activation_bits": [8], "width": [16, 32], "stem_width": [16]}
    config = parse_config({"name": "b", "device": "bitserial", "space": bits})
    fresh = optuna.create_study()
    check_study_space(fresh, config)
    assert fresh.user_attrs[PRUNE_ALIGN] == 16  # recorded by the run's first start
    begun = optuna.create_study()  # a run begun before pruning followed the device: 4
    begun.add_trial(optuna.trial.create_trial(value=0.5))
    with pytest.raises(ConfigError, match="pruned channel counts in multiples of 4 now 16"):
        check_study_space(begun, config)


def test_a_setting_a_saved_run_predates_is_read_at_the_value_it_then_had():
    from search.runner import _with_settings_it_predates

    before = {"name": "old", "training": {"epochs": 2}}
    filled = _with_settings_it_predates(before)
    assert filled["training"] == {
        "epochs": 2,
        "early_stopping_min_gain": 0.0,
        "early_stopping_feedback": "stopped",
        "early_stopping_keep_contenders": False,
    }
    assert before == {"name": "old", "training": {"epochs": 2}}  # the saved dict is kept
    gain = {"training": {"early_stopping_min_gain": 0.02, "early_stopping_feedback": "expected"}}
    written = {"training": {**gain["training"], "early_stopping_keep_contenders": True}}
    assert _with_settings_it_predates(written) == written
