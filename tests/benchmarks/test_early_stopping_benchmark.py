"""The early-stopping benchmark's analysis: the stopper replayed on recorded curves at a
setting, and the live pairing of a search with its replay without early stopping."""

import argparse

import pandas as pd
import pytest

from benchmarks.early_stopping import (
    arms,
    confirm_markdown,
    goals,
    live_summary,
    paired_means,
    what_if_summary,
    whole_pair,
    whole_table,
)
from benchmarks.search_quality import BUDGET, paired_stopping, stopping_what_if

CURVE = [0.6, 0.7, 0.75, 0.8]  # closes 1/2 of the remaining error from epoch 1


def _metrics(accuracy, latency, memory, curve=CURVE, seconds=4.0):
    """One trained trial's metrics as the study holds them (latency and memory as shares of
    the budget)."""
    return {
        "status": "ok",
        "accuracy": accuracy,
        "latency_ms": latency * BUDGET["latency_ms"],
        "peak_memory_kb": memory * BUDGET["peak_memory_kb"],
        "val_curve": curve,
        "seconds": {"train": seconds},
    }


# Three members trade latency for memory and give three finished curves; the fourth is a
# little faster than the first but learns badly: after epoch 1, 0.3 and at most
# 0.3 + 0.5 x 0.7 + 0.02 = 0.67 by the end, which would add 5.6 % to the front's 0.24.
RUN = [
    _metrics(0.8, 0.5, 0.5),
    _metrics(0.8, 0.25, 0.9),
    _metrics(0.8, 0.9, 0.25),
    _metrics(0.4, 0.45, 0.5, curve=[0.3, 0.35, 0.38, 0.4]),
]


def test_what_if_at_min_gain_stops_a_candidate_the_front_does_not_dominate():
    plain = stopping_what_if(RUN, 1.0, 4)
    assert plain["stopped"] == 0 and plain["hypervolume_kept"] == 1.0
    gained = stopping_what_if(RUN, 1.0, 4, min_gain=0.06)
    assert gained["min_gain"] == 0.06 and gained["stopped"] == 1
    assert gained["epochs_saved"] == pytest.approx(3 / 16)  # after epoch 1 of 4
    assert gained["training_seconds_saved_estimated"] == pytest.approx(3 / 16)
    # Trained, it ends at 0.4: its box 0.4 x 0.55 x 0.5 = 0.11, less the 0.102 of it that the
    # first two members hold, adds 0.008.
    assert gained["hypervolume_kept"] == pytest.approx(0.24 / 0.248)
    # Below 5.6 % it goes on until its bound falls (epoch 2: 0.35 + 0.65 / 3 + 0.02).
    assert stopping_what_if(RUN, 1.0, 4, min_gain=0.05)["epochs_saved"] == pytest.approx(2 / 16)


def test_what_if_summary_means_and_lowest_per_setting():
    rows = [
        {"seed": s, **stopping_what_if(RUN, 1.0, 4, min_gain=g)} for s in (0, 1) for g in (0, 0.06)
    ]
    summary = {r["min_gain"]: r for r in what_if_summary(rows)}
    assert summary[0.06]["searches"] == 2 and summary[0.06]["stopped_mean"] == 1
    assert summary[0.06]["hypervolume_kept_min"] == pytest.approx(0.24 / 0.248)
    assert summary[0]["stopped_mean"] == 0


def _trials(rows):
    return pd.DataFrame(
        {
            "genome": genome,
            "status": status,
            "feasible": True,
            "accuracy": accuracy,
            "latency_ms": 0.5 * BUDGET["latency_ms"],
            "peak_memory_kb": 0.5 * BUDGET["peak_memory_kb"],
            "seconds_train": seconds,
            "seconds_total": seconds + 1,
            "epochs": epochs,
        }
        for genome, accuracy, seconds, epochs, status in rows
    )


def test_a_live_search_against_its_replay_and_their_summary():
    on = _trials([("a", 0.8, 4.0, 4, "ok"), ("b", 0.3, 1.0, 1, "pruned")])
    off = _trials([("a", 0.8, 4.0, 4, "ok"), ("b", 0.4, 4.0, 4, "ok")])
    row = paired_stopping(on, off)
    assert row["same_candidates"] and row["pruned"] == 1 and row["trained"] == 2
    assert row["training_saved"] == pytest.approx(3 / 8)
    assert row["epochs_saved"] == pytest.approx(3 / 8)
    assert row["hypervolume_kept"] == 1.0  # b was dominated by a all along
    other = {**row, "training_seconds_on": 8.0, "training_saved": 0.0, "hypervolume_kept": 0.9}
    # Against whole searches without stopping (other candidates): 10 s and 0.25 each.
    whole = paired_stopping(on, _trials([("c", 0.99, 10.0, 4, "ok")]))
    assert whole["training_saved"] == pytest.approx(0.5) and not whole["same_candidates"]
    assert whole["hypervolume_kept"] == pytest.approx(0.8 / 0.99)
    # Two arms: one like the live search, one that saves nothing and ends level.
    level = {**whole, "training_seconds_on": 10.0, "training_saved": 0.0, "hypervolume_kept": 1}
    row["whole"] = other["whole"] = {"rule": whole, "other rule": level}
    summary = live_summary([row, other])
    assert summary["training_saved_mean"] == pytest.approx(3 / 16)
    assert summary["training_saved_pooled"] == pytest.approx(1 - 13 / 16)
    assert summary["hypervolume_kept_min"] == 0.9 and summary["same_candidates"]
    assert summary["lower_in"] == 1
    rule = summary["whole"]["rule"]
    assert rule["training_saved_pooled"] == pytest.approx(1 - 10 / 20)
    assert rule["hypervolume_off_mean"] == pytest.approx(0.99 * 0.25)
    assert rule["lower_in"] == 2 and rule["stopped_mean"] == 1
    assert summary["whole"]["other rule"]["training_saved_pooled"] == 0.0
    held = goals(summary)
    assert len(held) == 3 and any("at other rule" in name for name in held)
    # 19 % saved on the same candidates; 81 % kept, and nothing saved, on whole searches.
    assert list(held.values()) == [False, False, False]
    row["training_saved"] = other["training_saved"] = 0.4
    assert list(goals(live_summary([row, other])).values()) == [True, False, False]
    table = whole_table([row, other], summary)
    assert "no early stopping" in table and "| other rule |" in table


def test_the_arms_are_the_dominance_only_rule_and_the_live_setting_with_each_feedback():
    args = argparse.Namespace(live_quantile=1.0, live_min_gain=0.01)
    found = [(a["quantile"], a["min_gain"], a["feedback"]) for a in arms(args)]
    assert found == [
        (1.0, 0.0, "stopped"),
        (1.0, 0.0, "expected"),
        (1.0, 0.01, "stopped"),
        (1.0, 0.01, "expected"),
    ]
    # The live setting at the dominance-only rule is one setting, not two.
    assert len(arms(argparse.Namespace(live_quantile=1.0, live_min_gain=0.0))) == 2


def test_the_confirming_seeds_get_a_goal_and_a_table_of_their_own():
    on = _trials([("a", 0.8, 4.0, 4, "ok"), ("b", 0.3, 1.0, 1, "pruned")])
    off = _trials([("c", 0.8, 8.0, 4, "ok"), ("d", 0.4, 4.0, 4, "ok")])
    pair = whole_pair(on, off)
    assert "same_candidates" not in pair  # other candidates: no same-candidate figures
    # The most accurate model within budget, trained to the end: a stopped b is no pick.
    assert (pair["best_accuracy_on"], pair["best_accuracy_off"]) == (0.8, 0.8)
    assert pair["training_saved"] == pytest.approx(1 - 5 / 12) and pair["hypervolume_kept"] == 1
    rows = [{"seed": 12, **pair}, {"seed": 13, **pair, "hypervolume_kept": 0.92}]
    confirmed = paired_means(pd.DataFrame(rows))
    assert confirmed["searches"] == 2 and confirmed["lower_in"] == 1
    live = {**pair, "same_candidates": True}
    summary = live_summary([{**live, "whole": {"rule": pair}}])
    held = goals(summary, "rule, feedback expected", confirmed)
    # 58 % saved, 96 % kept on the confirming seeds: met.
    assert list(held.items())[-1] == (
        "training seconds saved >= 30% with hypervolume kept >= 95%, whole searches at rule, "
        "feedback expected (mean of 2 other seeds)",
        True,
    )
    text = confirm_markdown(rows, confirmed, "rule, feedback expected")
    assert text.startswith("Confirmation on seeds 12 to 13") and "| 13 | 1 | 5 / 12 |" in text
    assert "0.800 / 0.800 |" in text and "0.800 against 0.800 (means), lower in 0 of 2" in text
    assert confirm_markdown([], None, "rule") == ""


def test_confirm_only_measures_the_live_setting_and_the_dominance_only_rule_on_the_seeds(
    tmp_path, monkeypatch
):
    import json

    import benchmarks.early_stopping as bench

    off = _trials([("c", 0.8, 8.0, 4, "ok"), ("d", 0.4, 4.0, 4, "ok")])
    # The dominance-only rule stops nothing; the live setting stops b after one epoch.
    runs = {
        "q1-g0": _trials([("a", 0.8, 8.0, 4, "ok"), ("b", 0.4, 4.0, 4, "ok")]),
        "q1-g0.01-expected": _trials([("a", 0.8, 4.0, 4, "ok"), ("b", 0.3, 1.0, 1, "pruned")]),
    }
    searched = []

    def fake_search(config):
        searched.append(config["name"])
        if config["name"].endswith("-off"):
            (tmp_path / config["name"]).mkdir(exist_ok=True)
            off.to_csv(tmp_path / config["name"] / "trials.csv", index=False)
            (tmp_path / config["name"] / "run.json").write_text(
                json.dumps({"teacher": {"test_accuracy": 0.9}})
            )
            return off, 1.0
        return runs[config["name"].split("-", 2)[2]], 1.0

    monkeypatch.setattr(bench, "search", fake_search)
    args = argparse.Namespace(
        trials=2, subset=100, epochs=4, seeds=6, live_seeds=6, confirm_seeds=2,
        live_quantile=1.0, live_min_gain=0.01, confirm_feedback="expected",
    )  # fmt: skip
    result, markdown = bench.confirm_only(tmp_path, args)
    assert searched == [
        "tpe-12-off", "tpe-12-q1-g0.01-expected", "tpe-12-q1-g0",
        "tpe-13-off", "tpe-13-q1-g0.01-expected", "tpe-13-q1-g0",
    ]  # fmt: skip
    assert result["seeds"] == [12, 13] and result["teacher"]["test_accuracy"] == 0.9
    live = result["settings"]["quantile 1, min_gain 0.01, feedback expected"]
    dominance_only = result["settings"]["quantile 1, min_gain 0, feedback stopped"]
    assert [r["seed"] for r in live["rows"]] == [12, 13]
    assert live["summary"]["training_saved_mean"] == pytest.approx(1 - 5 / 12)
    assert dominance_only["summary"]["training_saved_mean"] == 0.0
    assert list(result["goals"].values()) == [True, False]
    assert markdown.count("Confirmation on seeds 12 to 13") == 2
    assert "min_gain 0, feedback stopped (mean of 2 seeds): NO" in markdown
    # One more setting, its runs read back where kept: only its own searches are new.
    runs["q1-g0.02"] = runs["q1-g0.01-expected"]
    searched.clear()
    args.confirm_also = ["1,0.02,stopped"]
    result, _ = bench.confirm_only(tmp_path, args)
    assert "quantile 1, min_gain 0.02, feedback stopped" in result["settings"]
    assert searched.count("tpe-12-q1-g0.02") == 1 and len(result["settings"]) == 3
    args.with_default = False
    assert len(bench.confirm_only(tmp_path, args)[0]["settings"]) == 2
    # Contenders kept: searches of their own, labelled so (the dominance-only rule has no
    # gain to spare them from).
    runs["q1-g0.01-expected-kept"] = runs["q1-g0.01-expected"]
    searched.clear()
    args.confirm_also, args.with_default, args.keep_contenders = None, True, True
    result, _ = bench.confirm_only(tmp_path, args)
    assert "tpe-12-q1-g0.01-expected-kept" in searched and "tpe-12-q1-g0" in searched
    assert list(result["settings"]) == [
        "quantile 1, min_gain 0.01, feedback expected, contenders kept",
        "quantile 1, min_gain 0, feedback stopped",
    ]
    assert bench.parse_setting("0.75,0.01,expected") == (0.75, 0.01, "expected")
    with pytest.raises(SystemExit, match="give QUANTILE,MIN_GAIN,FEEDBACK"):
        bench.parse_setting("0.75")


def test_what_if_only_judges_the_grid_on_the_searches_without_early_stopping(tmp_path, monkeypatch):
    import json

    import benchmarks.early_stopping as bench

    searched = []

    def fake_search(config):
        searched.append(config["name"])
        assert config["training"]["early_stopping"] is False
        (tmp_path / config["name"]).mkdir()
        (tmp_path / config["name"] / "run.json").write_text(
            json.dumps({"teacher": {"test_accuracy": 0.9}})
        )
        return None, 1.0

    monkeypatch.setattr(bench, "search", fake_search)
    monkeypatch.setattr(bench, "replay_metrics", lambda run_dir, name: RUN)
    args = argparse.Namespace(trials=4, subset=100, epochs=4, seeds=2, live_seeds=6)
    result, markdown = bench.what_if_only(tmp_path, args)
    assert searched == ["tpe-0-off", "tpe-1-off"] and result["seeds"] == [0, 1]
    grid = len(bench.QUANTILES) * len(bench.MIN_GAINS)
    assert len(result["what_if"]) == 2 * grid and len(result["what_if_summary"]) == grid
    assert markdown.startswith("What-if (2 searches without early stopping, seeds 0 to 1")
    assert "| 1 | 0.05 | 2 |" in markdown


def test_the_search_quality_searches_keep_the_rule_their_figures_were_measured_with():
    from pathlib import Path

    from benchmarks.search_quality import DOMINANCE_ONLY, tpe_config

    args = argparse.Namespace(trials=2, subset=100, epochs=4)
    training = tpe_config(Path("runs"), args, 0)["training"]
    assert {k: training[k] for k in DOMINANCE_ONLY} == DOMINANCE_ONLY
    assert DOMINANCE_ONLY["early_stopping_min_gain"] == 0
