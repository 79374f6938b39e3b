from __future__ import annotations

import pytest
import torch

from spaces import (
    ArchSpec,
    Candidate,
    SearchSpace,
    StageSpec,
    build_model,
    create_model,
    list_models,
    register_block,
    registered_blocks,
)
from spaces.blocks import ChannelShuffle, MBConv


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_every_sampled_candidate_builds_and_runs_forward(sampled_candidates, shape):
    for candidate in sampled_candidates(40, seed=len(shape) + shape[0]):
        model = build_model(candidate, in_channels=shape[0], num_classes=10).eval()
        with torch.no_grad():
            out = model(torch.randn(2, *shape))
        assert out.shape == (2, 10), candidate.genome
        assert torch.isfinite(out).all()


def test_the_largest_candidate_of_the_default_space_runs_on_8x8_and_224x224():
    space = SearchSpace()
    stage = StageSpec("mbconv", space.depth.high, max(space.width.values), 5, expansion=4, stride=2)
    candidate = Candidate(ArchSpec(16, (stage,) * space.num_stages.high))
    model = build_model(candidate, 3, 7).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 8, 8)).shape == (1, 7)
        assert model(torch.randn(1, 3, 224, 224)).shape == (1, 7)


def test_stride_and_residual_follow_the_spec():
    block = MBConv(16, 16, 1, StageSpec("mbconv", 1, 16, expansion=2))
    assert block.residual
    assert not MBConv(16, 24, 1, StageSpec("mbconv", 1, 24, expansion=2)).residual
    model = build_model(Candidate(ArchSpec(8, (StageSpec("dsconv", 1, 16, stride=2),))), 1, 10)
    features = model.stages[0](model.stem(torch.randn(1, 1, 28, 28)))
    assert features.shape == (1, 16, 14, 14)


def test_channel_shuffle_interleaves_groups():
    x = torch.arange(6.0).reshape(1, 6, 1, 1)
    assert ChannelShuffle(2, 6)(x).flatten().tolist() == [0, 3, 1, 4, 2, 5]


def test_registered_models_build():
    assert {"tiny_dsconv", "tiny_mixed"} <= set(list_models())
    for name in list_models():
        assert create_model(name, 1, 10)(torch.randn(1, 1, 16, 16)).shape == (1, 10)


def test_a_user_block_kind_registers_in_one_place():
    @register_block("identity_test")
    class Pointwise(torch.nn.Module):
        def __init__(self, in_channels, out_channels, stride, stage):
            super().__init__()
            self.conv = torch.nn.Conv2d(in_channels, out_channels, 1, stride)

        def forward(self, x):
            return self.conv(x)

    try:
        candidate = Candidate(ArchSpec(8, (StageSpec("identity_test", 1, 12),)))
        assert build_model(candidate, 1, 3)(torch.randn(1, 1, 8, 8)).shape == (1, 3)
    finally:
        from spaces import blocks

        blocks._BLOCKS.pop("identity_test")
    assert "identity_test" not in registered_blocks()
