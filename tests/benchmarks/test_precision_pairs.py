"""The precision-pairs benchmark's analysis: what share of the trained stages ran int8 or
mixed 8 and 32 bits, and how the two ways of drawing compare per seed."""

import pandas as pd
import pytest

from benchmarks.precision_pairs import config, stage_shares, summarise


def test_stage_shares_count_the_trained_trials_stages():
    trials = pd.DataFrame(
        [
            {"status": "ok", "genome": "c8,ds1x16k3s2,ds1x24k3s2|p0w8a8,p0w8a32",
             "executed": "w8a8 int8, w8a32 executed as fp32"},
            {"status": "ok", "genome": "c8,ds1x16k3s2|p0.25w32a8",
             "executed": "w32a8 executed as fp32"},
            # Over budget: never trained, so not counted.
            {"status": "infeasible", "genome": "c8,ds1x16k3s2|p0w8a8", "executed": None},
        ]
    )  # fmt: skip
    shares = stage_shares(trials)
    assert shares["stages"] == 3
    assert shares["int8_share"] == pytest.approx(1 / 3)
    assert shares["mixed_share"] == pytest.approx(2 / 3)


def test_the_summary_pairs_the_two_ways_by_seed():
    rows = [
        {"way": way, "seed": seed, "hypervolume": hv, "training_seconds": 10.0,
         "int8_share": 0.5, "mixed_share": 0.0}
        for way, seed, hv in [("apart", 0, 0.5), ("together", 0, 0.6),
                              ("apart", 1, 0.7), ("together", 1, 0.6)]
    ]  # fmt: skip
    summary = summarise(rows)
    assert summary["together_over_apart"] == pytest.approx(1.2 / 1.2)
    assert summary["seeds_together_higher"] == 1 and summary["seeds"] == 2


def test_the_two_ways_differ_only_in_how_the_widths_are_drawn(tmp_path):
    from argparse import Namespace

    from search.config import parse_config

    args = Namespace(trials=4, subset=100, epochs=1)
    apart = parse_config(config(tmp_path, args, "apart", 0)).space
    together = parse_config(config(tmp_path, args, "together", 0)).space
    assert (apart.weight_bits, apart.activation_bits) == ([8, 32], [8, 32])
    assert together.precisions == ["w8a8", "w32a32"]
    assert apart.prune_ratio == together.prune_ratio == [0.0, 0.25, 0.5]
