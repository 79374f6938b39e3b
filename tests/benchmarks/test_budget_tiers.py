"""The budget-tiers benchmark's analysis: what a search spent its candidates on, its
hypervolume against its own tier's reference point, the ratio to random search."""

import pandas as pd
import pytest

from benchmarks.budget_tiers import (
    equal_wall_markdown,
    goals,
    per_seed_table,
    search_row,
    summary,
    tier_table,
    tiers,
)
from benchmarks.search_quality import BUDGET


def _trials(rows):
    return pd.DataFrame(
        [
            {
                "status": status,
                "feasible": status == "ok",
                "accuracy": accuracy,
                "latency_ms": latency,
                "peak_memory_kb": memory,
                "seconds_train": train,
                # Each candidate's own phases: its training plus a costing of 0.05 s.
                "seconds_total": train + 0.05,
            }
            for status, accuracy, latency, memory, train in rows
        ]
    )


TIGHT = tiers(4.0)["tight"]


def test_tight_tier_divides_every_bound_of_the_budget():
    assert {name: value / 4 for name, value in BUDGET.items()} == TIGHT
    assert tiers(4.0)["loose"] == BUDGET


def test_search_row_counts_candidates_by_outcome_and_scales_by_its_tier():
    half = {"latency_ms": TIGHT["latency_ms"] / 2, "peak_memory_kb": TIGHT["peak_memory_kb"] / 2}
    trials = _trials(
        [
            ("ok", 0.8, half["latency_ms"], half["peak_memory_kb"], 3.0),
            ("pruned", 0.5, half["latency_ms"], half["peak_memory_kb"], 1.0),
            ("infeasible", None, 1.0, 500.0, 0.0),
            ("failed", None, None, None, 0.0),
        ]
    )
    row = search_row("tight", TIGHT, "tpe", 0, trials, seconds=10.0)
    assert (row["trials"], row["over_budget"], row["trained"]) == (4, 1, 2)
    assert (row["stopped_early"], row["failed"], row["feasible_trained"]) == (1, 1, 1)
    assert row["training_seconds"] == pytest.approx(4.0)
    assert row["seconds_per_rejected_median"] == pytest.approx(0.05)
    assert row["seconds_per_trained_median"] == pytest.approx((3.05 + 1.05) / 2)
    # One member at half the tight budget on both costs, accuracy 0.8: 0.8 x 0.5 x 0.5.
    assert row["hypervolume"] == pytest.approx(0.2)
    # Against the loose budget the same member holds a larger share of the box.
    loose = search_row("loose", BUDGET, "tpe", 0, trials, seconds=10.0)
    assert loose["hypervolume"] == pytest.approx(0.8 * (1 - 1 / 8) ** 2)


def test_a_member_over_the_tight_budget_adds_nothing_there():
    trials = _trials([("ok", 0.9, TIGHT["latency_ms"] * 2, TIGHT["peak_memory_kb"] / 2, 1.0)])
    assert search_row("tight", TIGHT, "random", 0, trials, 1.0)["hypervolume"] == 0.0


def _row(tier, sampler, seed, hypervolume, over_budget=0):
    return {
        "tier": tier,
        "sampler": sampler,
        "seed": seed,
        "hypervolume": hypervolume,
        "over_budget": over_budget,
        "trained": 32 - over_budget,
        "feasible_trained": 32 - over_budget,
        "seconds": 100.0,
        "training_seconds": 50.0,
        "seconds_per_rejected_median": 0.05 + seed / 100,
        "seconds_per_trained_median": 2.0,
    }


ROWS = [
    _row("tight", "tpe", 0, 0.5, 10),
    _row("tight", "tpe", 1, 0.7, 8),
    _row("tight", "random", 0, 0.4, 20),
    _row("tight", "random", 1, 0.6, 22),
    _row("loose", "tpe", 0, 0.62),
    _row("loose", "random", 0, 0.6),
]


def test_summary_divides_each_tier_by_its_own_random_mean():
    table = {(r["tier"], r["sampler"]): r for r in summary(ROWS)}
    assert table["tight", "tpe"]["over_random"] == pytest.approx(0.6 / 0.5)
    assert table["loose", "tpe"]["over_random"] == pytest.approx(0.62 / 0.6)
    assert table["tight", "random"]["over_budget_mean"] == 21
    assert table["tight", "tpe"]["searches"] == 2
    assert table["tight", "tpe"]["seconds_per_rejected_median"] == pytest.approx(0.055)


def test_goals_hold_per_tier_on_tpe_or_nsga2_only():
    held = goals(summary(ROWS))
    assert [v for k, v in held.items() if "tight" in k] == [True]  # 1.2x exactly
    assert [v for k, v in held.items() if "loose" in k] == [False]
    # GP beating random does not count toward the goal.
    gp = [_row("loose", "gp", 0, 0.9), _row("loose", "random", 0, 0.6)]
    assert list(goals(summary(gp)).values()) == [False]


def test_tables_show_every_sampler_and_tier():
    table = tier_table(summary(ROWS), {"tight": 0.8, "loose": 0.7}, tiers(4.0), 32)
    assert "tight (0.15 ms, 64 KB)" in table and "| 1.200 |" in table
    assert "all searches' candidates together |  | 0.8000 |  | 1.600" in table
    assert "0.500 0.700" in per_seed_table(ROWS)


def test_equal_wall_says_when_random_ran_out_of_candidates():
    rows = [
        {
            "seed": 0,
            "candidates_given": 64,
            "tpe_seconds": 40.0,
            "tpe_hypervolume": 0.3,
            "candidates_at_equal_wall": 50,
            "hypervolume_at_equal_wall": 0.2,
            "reached_equal_wall": True,
            "hypervolume_all": 0.25,
            "seconds_all": 52.0,
        },
        {
            "seed": 1,
            "candidates_given": 64,
            "tpe_seconds": 40.0,
            "tpe_hypervolume": 0.3,
            "candidates_at_equal_wall": 64,
            "hypervolume_at_equal_wall": 0.2,
            "reached_equal_wall": False,
            "hypervolume_all": 0.2,
            "seconds_all": 31.0,
        },
    ]
    text = equal_wall_markdown(rows)
    assert "TPE / random 1.500" in text
    assert "| 50 / 0.2000 |" in text and "| 64 (all; ran out) / 0.2000 |" in text
    assert equal_wall_markdown([]) == ""
