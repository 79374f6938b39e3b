from __future__ import annotations

import optuna
import pytest

from spaces import Choice, Int, SearchSpace


def test_suggest_samples_only_declared_values(sampled_candidates):
    space = SearchSpace()
    for candidate in sampled_candidates(60):
        assert space.num_stages.low <= len(candidate.arch.stages) <= space.num_stages.high
        assert candidate.arch.stem_width in space.stem_width.values
        for stage in candidate.arch.stages:
            assert stage.kind in space.kind.values
            assert stage.width in space.width.values
            assert stage.kernel in space.kernel.values
            assert stage.stride in space.stride.values


def test_same_seed_gives_the_same_candidates(sampled_candidates):
    assert sampled_candidates(10, seed=3) == sampled_candidates(10, seed=3)
    assert sampled_candidates(10, seed=3) != sampled_candidates(10, seed=4)


def test_conditional_parameters_are_asked_only_when_used():
    space = SearchSpace(num_stages=Int(1, 1), kind=Choice(("dsconv",)))
    trial = optuna.create_study().ask()
    candidate = space.suggest(trial)
    assert candidate.arch.stages[0].kind == "dsconv"
    assert not any(name.endswith(("_expansion", "_groups", "_kind")) for name in trial.params)


def test_widths_that_do_not_split_into_groups_are_refused():
    with pytest.raises(ValueError, match="divisible"):
        SearchSpace(width=Choice((18, 24)), groups=Choice((4,)))


def test_unknown_bit_widths_are_refused():
    with pytest.raises(ValueError, match="weight bits"):
        SearchSpace(weight_bits=Choice((3,)))


def test_aligned_rounds_widths_up_in_order_without_repeats():
    space = SearchSpace(
        kind=Choice(("mbconv", "conv")), stem_width=Choice((6, 8)), width=Choice((30, 6, 18, 32))
    )
    aligned = space.aligned(4)
    assert aligned.stem_width.values == (8,)
    assert aligned.width.values == (32, 8, 20)
    assert aligned.kind == space.kind and aligned.depth == space.depth
    assert space.aligned(1) is space
    with pytest.raises(ValueError, match="must be >= 1"):
        space.aligned(0)
