"""The scaling benchmark's shared work and its pairing of runs by repeat."""

import pytest

from benchmarks.scaling import fixed_candidates, summarise, with_speedups


def test_every_configuration_is_given_the_same_distinct_candidates():
    first = fixed_candidates(6)
    assert first == fixed_candidates(6)  # the same list for every configuration
    assert len({tuple(sorted(params.items())) for params in first}) == 6
    assert fixed_candidates(6, seed=1) != first


def _run(backend, workers, repeat, per_hour, steady):
    return {
        "backend": backend,
        "workers": workers,
        "repeat": repeat,
        "trials": 12,
        "seconds": 3600 * 12 / per_hour,
        "trials_per_hour": per_hour,
        "median_trial_seconds": 3.0,
        "trial_seconds_total": 36.0,
        "busy_fraction": 0.9,
        "steady_trials_per_hour": steady,
    }


def test_speed_ups_pair_each_repeat_with_its_own_one_worker_run():
    # Listed out of order on purpose: repeat 1's two workers against repeat 1's one.
    rows = with_speedups(
        [
            _run("optuna", 2, 1, 300, 400),
            _run("optuna", 1, 0, 100, 100),
            _run("optuna", 2, 0, 150, 180),
            _run("optuna", 1, 1, 200, 200),
            _run("ray", 1, 0, 100, 100),
            _run("ray", 2, 0, 120, 150),
        ]
    )
    by_key = {(r["backend"], r["workers"], r["repeat"]): r for r in rows}
    assert by_key[("optuna", 2, 1)]["steady_speedup"] == pytest.approx(2.0)
    assert by_key[("optuna", 2, 0)]["steady_speedup"] == pytest.approx(1.8)
    assert by_key[("optuna", 2, 0)]["speedup"] == pytest.approx(1.5)
    summary = {(r["backend"], r["workers"]): r for r in summarise(rows)}
    two = summary[("optuna", 2)]
    assert two["repeats"] == 2
    assert two["steady_speedup"] == pytest.approx(1.9)  # median of 1.8 and 2.0
    assert two["steady_speedup_range"] == pytest.approx([1.8, 2.0])
    assert summary[("optuna", 1)]["steady_speedup"] == 1.0
    assert summary[("ray", 2)]["steady_speedup_range"] == pytest.approx([1.5, 1.5])


def test_queued_parameters_stand_for_distinct_candidates():
    from benchmarks.scaling import genome_of

    genomes = [genome_of(params) for params in fixed_candidates(4)]
    assert len(set(genomes)) == 4 and all("|" in genome for genome in genomes)
