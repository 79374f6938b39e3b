from __future__ import annotations

import pytest

from spaces import ArchSpec, Candidate, CompressionPolicy, StagePolicy, StageSpec, get_candidate


def test_json_round_trip_is_exact_for_sampled_candidates(sampled_candidates):
    for candidate in sampled_candidates(50):
        again = Candidate.from_json(candidate.to_json())
        assert again == candidate
        assert again.genome == candidate.genome
        assert hash(again) == hash(candidate)


def test_json_round_trip_keeps_a_compression_policy():
    candidate = Candidate(
        ArchSpec(16, (StageSpec("mbconv", 2, 24, 5, expansion=4, stride=2),)),
        CompressionPolicy(
            (StagePolicy(prune_ratio=0.25, weight_bits=4, activation_bits=8, sparsity=0.5),)
        ),
    )
    assert Candidate.from_json(candidate.to_json()) == candidate


def test_genome_is_short_and_readable():
    candidate = Candidate(
        ArchSpec(
            16,
            (
                StageSpec("mbconv", 2, 24, 3, expansion=4),
                StageSpec("gconv", 1, 32, 5, expansion=2, groups=4, stride=2),
                StageSpec("dsconv", 1, 48, 7, stride=2),
            ),
        )
    )
    assert (
        candidate.genome == "c16,mb2x24k3e4s1,gc1x32k5e2g4s2,ds1x48k7s2|p0w32a32,p0w32a32,p0w32a32"
    )


def test_fields_a_kind_does_not_use_are_normalised():
    # Equal networks must have equal specs (and genomes), or duplicates go undetected.
    assert StageSpec("dsconv", 1, 16, expansion=6, groups=4) == StageSpec("dsconv", 1, 16)


@pytest.mark.parametrize(
    "make",
    [
        lambda: StageSpec("transformer", 1, 16),
        lambda: StageSpec("conv", 0, 16),
        lambda: StageSpec("conv", 1, 16, kernel=4),
        lambda: StageSpec("conv", 1, 16, stride=3),
        lambda: StageSpec("gconv", 1, 18, groups=4),
        lambda: ArchSpec(16, ()),
        lambda: ArchSpec(6, (StageSpec("gconv", 1, 16, groups=4),)),
        lambda: StagePolicy(weight_bits=3),
        lambda: StagePolicy(activation_bits=4),
        lambda: StagePolicy(prune_ratio=1.0),
        lambda: Candidate(get_candidate("tiny_dsconv").arch, CompressionPolicy.uncompressed(2)),
    ],
)
def test_invalid_specs_are_refused(make):
    with pytest.raises(ValueError):
        make()
