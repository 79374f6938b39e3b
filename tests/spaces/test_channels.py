from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from spaces import (
    ArchSpec,
    Candidate,
    ChannelPlan,
    CompressionPolicy,
    StageChannels,
    StagePolicy,
    StageSpec,
    build_model,
    plan_channels,
    register_block,
)
from spaces.channels import kept_count, output_groups


def with_ratios(arch: ArchSpec, *ratios: float) -> Candidate:
    """``arch`` with one prune ratio per stage (the last one repeated)."""
    ratios = ratios + (ratios[-1],) * (len(arch.stages) - len(ratios))
    return Candidate(arch, CompressionPolicy(tuple(StagePolicy(prune_ratio=r) for r in ratios)))


def test_kept_count_rounds_to_the_multiple_and_never_to_zero():
    assert kept_count(16, 0.5, 4) == 8
    assert kept_count(24, 0.3, 4) == 16  # 16.8 -> 16
    assert kept_count(48, 0.5, 16) == 32  # 24 -> 1.5 multiples, rounded half up
    assert kept_count(16, 0.95, 4) == 4  # at least one multiple
    assert kept_count(2, 0.5, 4) == 2  # never more than there is
    assert kept_count(9, 0.0, 4) == 9  # ratio 0 never rounds
    assert kept_count(9, 0.1, 1) == 8


def test_ratio_zero_is_exactly_the_full_plan(sampled_candidates):
    for candidate in sampled_candidates(20, seed=3):
        assert candidate.policy.is_uncompressed
        plan = plan_channels(candidate)
        assert plan == ChannelPlan.full(candidate.arch)
        assert plan.notes == ()


def test_full_plan_builds_the_same_network(sampled_candidates):
    for candidate in sampled_candidates(6, seed=4):
        torch.manual_seed(0)
        default = build_model(candidate, 3, 10).eval()
        torch.manual_seed(0)
        planned = build_model(candidate, 3, 10, plan=ChannelPlan.full(candidate.arch)).eval()
        x = torch.randn(2, 3, 16, 16)
        with torch.no_grad():
            assert torch.equal(default(x), planned(x)), candidate.genome


def test_full_counts_of_every_kind():
    arch = ArchSpec(
        8,
        (
            StageSpec("mbconv", 2, 16, expansion=4, stride=2),
            StageSpec("gconv", 1, 16, expansion=2, groups=4),
            StageSpec("dsconv", 1, 24),
            StageSpec("mbconv", 1, 24, expansion=1),
            StageSpec("conv", 1, 32),
        ),
    )
    plan = ChannelPlan.full(arch)
    assert plan.stem == 8
    assert plan.stages == (
        StageChannels(16, (32, 64)),  # mbconv: input * expansion
        StageChannels(16, (32,)),  # gconv: output * expansion
        StageChannels(24, (16,)),  # dsconv: its input
        StageChannels(24, (24,)),  # mbconv expansion 1: its input
        StageChannels(32, (24,)),
    )


@pytest.mark.parametrize("align", [1, 4, 8])
@pytest.mark.parametrize("ratio", [0.3, 0.5, 0.7])
def test_counts_respect_align_and_group_multiples(sampled_candidates, align, ratio):
    for candidate in sampled_candidates(12, seed=5):
        arch = candidate.arch
        candidate = with_ratios(arch, ratio)
        plan = plan_channels(candidate, align=align)
        full = ChannelPlan.full(arch)
        widths = [plan.stem, *(s.width for s in plan.stages)]
        full_widths = [full.stem, *(s.width for s in full.stages)]
        for tensor, (kept, count) in enumerate(zip(widths, full_widths, strict=True), -1):
            assert 1 <= kept <= count
            groups = [
                s.groups
                for i, s in enumerate(arch.stages)
                if s.kind == "gconv" and tensor in (i, i - 1)
            ]
            multiple = math.lcm(align, *groups)
            assert kept == count or kept % multiple == 0, (arch.genome, tensor, kept)
        for index, spec in enumerate(arch.stages):
            for block, hidden in enumerate(plan.stages[index].hidden):
                assert 1 <= hidden <= full.stages[index].hidden[block]
                if spec.kind == "gconv" and hidden < full.stages[index].hidden[block]:
                    assert hidden % math.lcm(spec.groups**2, align) == 0
                elif spec.kind == "mbconv" and spec.expansion != 1:
                    assert hidden % align == 0 or hidden == full.stages[index].hidden[block]


def test_pruning_halves_every_tensor_of_a_free_network():
    arch = ArchSpec(
        16,
        (
            StageSpec("dsconv", 1, 32, stride=2),
            StageSpec("mbconv", 1, 48, expansion=2, stride=2),
            StageSpec("gconv", 1, 32, expansion=2, groups=2, stride=2),
        ),
    )
    plan = plan_channels(with_ratios(arch, 0.5))
    assert plan.stem == 8
    assert plan.stages == (
        StageChannels(16, (8,)),
        StageChannels(24, (32,)),  # hidden 32 * 2 = 64 -> 32
        StageChannels(16, (32,)),  # hidden 64, n = 32 per group, multiple of lcm(4, 4)
    )
    assert plan.notes == ()


def test_residual_stages_share_channels_at_the_smallest_ratio():
    arch = ArchSpec(
        16,
        (
            StageSpec("mbconv", 2, 16, expansion=2),  # residual with the stem
            StageSpec("gconv", 1, 16, expansion=2, groups=2),  # residual with stage 0
            StageSpec("mbconv", 1, 24, expansion=2, stride=2),  # no residual: a new group
        ),
    )
    assert output_groups(arch) == ((-1, 0, 1), (2,))
    plan = plan_channels(with_ratios(arch, 0.5, 0.25, 0.5))
    assert plan.stem == plan.stages[0].width == plan.stages[1].width == 12
    assert plan.stages[2].width == 12
    assert plan.stages[0].hidden == (16, 16)  # mbconv hidden: 32 each, at its own ratio 0.5
    assert any("smallest ratio 0.25" in note for note in plan.notes), plan.notes


def test_a_pruned_network_keeps_the_original_residuals():
    # 16 -> 24 has no residual; pruning to 8 -> 8 must not add one.
    arch = ArchSpec(
        8,
        (StageSpec("conv", 1, 16), StageSpec("mbconv", 2, 24, expansion=2)),
    )
    candidate = with_ratios(arch, 0.5, 2 / 3)
    plan = plan_channels(candidate)
    assert plan.stages[0].width == plan.stages[1].width == 8
    model = build_model(candidate, 1, 10, plan=plan)
    assert not model.stages[1][0].residual
    assert model.stages[1][1].residual
    assert model(torch.randn(1, 1, 8, 8)).shape == (1, 10)


def test_gconv_hidden_is_not_pruned_when_the_shuffle_forbids_it():
    # hidden 24 in 4 groups: 6 channels per group do not split over 4 shuffle groups.
    arch = ArchSpec(16, (StageSpec("gconv", 1, 24, expansion=1, groups=4, stride=2),))
    plan = plan_channels(with_ratios(arch, 0.5))
    assert plan.stages[0].hidden == (24,)
    assert plan.stages[0].width == 12
    assert any(
        "stage 0 block 0 gconv hidden not pruned" in note and "6 channels per group" in note
        for note in plan.notes
    ), plan.notes
    assert build_model(arch, 1, 3, plan=plan)(torch.randn(1, 1, 8, 8)).shape == (1, 3)


def test_a_tensor_too_small_to_prune_says_so():
    arch = ArchSpec(4, (StageSpec("conv", 1, 16, stride=2),))
    plan = plan_channels(with_ratios(arch, 0.25))
    assert plan.stem == 4
    assert plan.stages[0].width == 12
    assert any("stem output not pruned" in note for note in plan.notes), plan.notes


def test_user_block_kinds_are_left_unpruned_and_build_with_four_arguments():
    @register_block("pointwise_test")
    class Pointwise(torch.nn.Module):
        def __init__(self, in_channels, out_channels, stride, stage):
            super().__init__()
            self.conv = torch.nn.Conv2d(in_channels, out_channels, 1, stride)

        def forward(self, x):
            return self.conv(x)

    try:
        arch = ArchSpec(
            8,
            (
                StageSpec("conv", 1, 16),
                StageSpec("pointwise_test", 1, 16),
                StageSpec("conv", 1, 32),
            ),
        )
        plan = plan_channels(with_ratios(arch, 0.5))
        assert plan.stem == 4  # nothing user-made touches the stem
        assert plan.stages[0].width == 16 and plan.stages[1].width == 16
        assert plan.stages[2].width == 16
        assert sum("user block kind" in note for note in plan.notes) == 2
        assert build_model(arch, 1, 3, plan=plan)(torch.randn(1, 1, 8, 8)).shape == (1, 3)
    finally:
        from spaces import blocks

        blocks._BLOCKS.pop("pointwise_test")


def test_a_plan_of_another_shape_is_refused():
    arch = ArchSpec(8, (StageSpec("conv", 2, 16),))
    with pytest.raises(ValueError, match="2 blocks"):
        build_model(arch, 1, 3, plan=ChannelPlan(8, (StageChannels(16, (8,)),)))
    with pytest.raises(ValueError, match="stages"):
        build_model(arch, 1, 3, plan=ChannelPlan(8, ()))
    with pytest.raises(ValueError, match="align"):
        plan_channels(Candidate(arch), align=0)


def test_plan_depends_on_the_candidate_only():
    arch = ArchSpec(16, (StageSpec("mbconv", 2, 32, expansion=4, stride=2),))
    candidate = with_ratios(arch, 0.5)
    assert plan_channels(candidate) == plan_channels(replace(candidate))
    # A meta-device build costs nothing and has the plan's widths.
    model = build_model(candidate, 3, 10, device="meta", plan=plan_channels(candidate))
    assert model.stem[0].out_channels == 8
    assert model.stages[0][0].body[0][0].out_channels == 32  # hidden 64 -> 32
    assert model.classifier.in_features == 16


def test_notes_do_not_make_an_unpruned_plan_differ_from_the_full_one():
    arch = ArchSpec(4, (StageSpec("conv", 1, 4),))
    plan = plan_channels(with_ratios(arch, 0.25))
    assert plan.notes  # both tensors round back to 4
    assert plan == ChannelPlan.full(arch)
