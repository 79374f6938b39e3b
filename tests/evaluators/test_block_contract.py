"""The block contract (``evaluators.block_contract``): every registered kind meets it, and
each way a user's block can break what the cost and memory models rely on is refused
with one sentence naming the kind."""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from evaluators.block_contract import BlockContractError, check_block
from search.config import ConfigError, parse_config
from spaces import blocks
from spaces.blocks import register_block, registered_blocks


@contextlib.contextmanager
def registered(kind: str, cls: type[nn.Module]):
    register_block(kind)(cls)
    try:
        yield
    finally:
        blocks._BLOCKS.pop(kind)


@pytest.mark.parametrize("kind", sorted(registered_blocks()))
def test_every_registered_kind_meets_the_contract(kind):
    check_block(kind)


class _Good(nn.Module):
    def __init__(self, in_channels, out_channels, stride, stage):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, stage.kernel, stride, stage.kernel // 2)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


class _FunctionalWeight(nn.Module):
    def __init__(self, in_channels, out_channels, stride, stage):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.stride = stride

    def forward(self, x):
        return F.conv2d(x, self.weight, stride=self.stride, padding=1)


class _IgnoresStride(_Good):
    def __init__(self, in_channels, out_channels, stride, stage):
        super().__init__(in_channels, out_channels, 1, stage)


class _WrongWidth(_Good):
    def __init__(self, in_channels, out_channels, stride, stage):
        super().__init__(in_channels, out_channels + 1, stride, stage)


class _ShapeBranch(_Good):
    def forward(self, x):
        return self.conv(x) if x.shape[1] < 10_000 else x


class _Attention(_Good):
    def forward(self, x):
        y = self.conv(x)
        flat = y.flatten(2)
        return (flat @ flat.transpose(1, 2) @ flat).reshape(y.shape)


class _Fourier(_Good):
    # Trains in torch; the ONNX exporter has no FFT, and every trial's file comes from it.
    def forward(self, x):
        return torch.fft.ifft2(torch.fft.fft2(self.conv(x))).real


class _ReadsItsLayers(_Good):
    # Factorization replaces self.conv by a LowRank pair, which has no out_channels.
    def forward(self, x):
        return self.bn(self.conv(x))[:, : self.conv.out_channels]


class _TrainsOnlyAlone(_Good):
    def forward(self, x):
        return self.bn(self.conv(x)).view(1, -1, *x.shape[2:])[:, :, :: self.conv.stride[0]]


class _Raises(_Good):
    def forward(self, x):
        if self.training:
            raise RuntimeError("no training here")
        return self.conv(x)


class _PadsForThree(_Good):
    def __init__(self, in_channels, out_channels, stride, stage):
        super().__init__(in_channels, out_channels, stride, stage)
        self.conv = nn.Conv2d(in_channels, out_channels, stage.kernel, stride, 1)


class _BatchStatistics(_Good):
    # A batch norm without running statistics is left unfolded, not an error.
    def __init__(self, in_channels, out_channels, stride, stage):
        super().__init__(in_channels, out_channels, stride, stage)
        self.bn = nn.BatchNorm2d(out_channels, track_running_stats=False)


class _PerPixelLinear(nn.Module):
    # nn.Linear over the channels of every pixel: costed at every pixel.
    def __init__(self, in_channels, out_channels, stride, stage):
        super().__init__()
        self.pool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.mix = nn.Linear(in_channels, out_channels)

    def forward(self, x):
        return self.mix(self.pool(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class _GroupNormed(_Good):
    def __init__(self, in_channels, out_channels, stride, stage):
        super().__init__(in_channels, out_channels, stride, stage)
        self.bn = nn.GroupNorm(4, out_channels)


class _ThreeArguments(_Good):
    def __init__(self, in_channels, out_channels, stride):
        super().__init__(in_channels, out_channels, stride, None)


@pytest.mark.parametrize("cls", [_Good, _BatchStatistics, _PerPixelLinear])
def test_a_block_that_keeps_the_promises_passes(cls):
    with registered("good_test", cls):
        check_block("good_test")


def test_checking_a_block_leaves_the_global_random_numbers_alone():
    # It runs while a config is read: a seeded run must draw what it drew before.
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    with registered("good_test", _Good):
        check_block("good_test")
    assert torch.equal(torch.rand(3), expected)


def test_a_block_is_checked_at_the_kernels_the_space_draws():
    with registered("three_test", _PadsForThree):
        check_block("three_test", kernels=[3], strides=[1, 2])
        with pytest.raises(BlockContractError, match="kernel 5, stride 1: returned"):
            check_block("three_test", kernels=[3, 5], strides=[1, 2])


@pytest.mark.parametrize(
    ("cls", "said"),
    [
        (_FunctionalWeight, "weight 'weight' is held by a _FunctionalWeight.*would cost nothing"),
        (_IgnoresStride, r"kernel 3, stride 2: returned \(2, 24, 16, 16\).*not \(2, 24, 8, 8\)"),
        (_WrongWidth, r"returned \(2, 17, 16, 16\).*not \(2, 16, 16, 16\)"),
        (_ShapeBranch, "does not trace with torch.fx"),
        (_Attention, "multiply-accumulates per image, of which the cost model sees"),
        (_ThreeArguments, "building it failed: TypeError"),
        (_ReadsItsLayers, "with its layers factorized .*AttributeError"),
        (_GroupNormed, "held by a GroupNorm.*use nn.BatchNorm2d, which folds into its conv"),
        (_TrainsOnlyAlone, r"returned \(1, 32, 16, 16\) for a \(2, 8, 16, 16\) input"),
        (_Raises, "in training mode .* failed: RuntimeError: no training here"),
        (_Fourier, "exporting it to ONNX and running it in ONNX Runtime failed .*fft"),
    ],
)
def test_a_broken_block_is_refused_in_one_sentence_naming_it(cls, said):
    with registered("broken_test", cls), pytest.raises(BlockContractError, match=said) as refused:
        check_block("broken_test")
    message = str(refused.value)
    assert message.startswith("block kind 'broken_test' built for ")
    assert "\n" not in message


def test_a_config_drawing_a_broken_kind_is_refused_before_anything_runs():
    with (
        registered("broken_test", _FunctionalWeight),
        pytest.raises(ConfigError, match=r"space: block kind .broken_test. built for"),
    ):
        parse_config({"dataset": {"name": "digits"}, "space": {"kind": ["broken_test"]}})
    with registered("good_test", _Good):
        config = parse_config({"dataset": {"name": "digits"}, "space": {"kind": ["good_test"]}})
    assert config.space.kind == ["good_test"]


@pytest.mark.parametrize("name", ["ghost2", "fused-mb", "Fused", "a|b", "mb", "cv", ""])
def test_a_kind_name_the_genome_cannot_carry_is_refused(name):
    with pytest.raises(ValueError, match="block kind name"):
        register_block(name)


def test_only_module_classes_register():
    with pytest.raises(TypeError, match=r"nn\.Module subclass"):
        register_block("factory_test")(lambda i, o, s, stage: _Good(i, o, s, stage))
    assert "factory_test" not in registered_blocks()
