"""Block kinds of the architecture space, in a registry a user extends in one file.

A block is built as ``cls(in_channels, out_channels, stride, stage)`` where ``stage`` is the
``StageSpec`` it belongs to. To add a kind::

    from spaces.blocks import register_block

    @register_block("fused")
    class FusedMBConv(nn.Module):
        def __init__(self, in_channels, out_channels, stride, stage): ...

A kind's name is lowercase letters and underscores (it is written into genome strings,
whose digits are depths and widths). What the rest of the system needs of a block, and
``evaluators.block_contract.check_block`` checks before a run draws it: it returns
``out_channels`` channels at the input's size divided by ``stride``; its weights live in
``nn.Conv2d`` / ``nn.Linear`` / batch-norm modules (the cost model counts MACs and weight
bytes from those modules, so a weight used through ``F.conv2d`` would cost nothing); and
it traces with ``torch.fx`` (the memory model schedules its tensors). A user kind gets
``stage.kernel`` and ``stride``; ``expansion`` and ``groups`` are the built-in kinds' own
(1 for a user kind), and its channels are not pruned (``spaces.channels``), so the space
draws no prune ratio for its stages. A module that registers kinds is named in a run's
config under ``plugins``, so that every process of the run imports it.

Pruned builds. The built-in kinds also take ``hidden`` (their inner width) and ``residual``
(whether to add the skip connection) keywords, so that a channel-pruned block keeps the
topology of the unpruned one even when its pruned widths say otherwise; None computes both
from the shapes, as an unpruned build does. The builder passes these keywords only to the
built-in kinds, and only when it builds from a ``ChannelPlan``: a user kind keeps the
four-argument signature above, and ``spaces.channels`` never prunes its input or output.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from spaces.candidate import StageSpec

_BLOCKS: dict[str, type[nn.Module]] = {}

_KIND_NAME = re.compile(r"[a-z][a-z_]*")
# The genome's codes of the built-in kinds, and its stem ("c16"): a kind named so would be
# read back as one of them.
_RESERVED_NAMES = {"mb", "ds", "gc", "cv", "c"}


def register_block(kind: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    if not isinstance(kind, str) or not _KIND_NAME.fullmatch(kind):
        raise ValueError(
            f"block kind name {kind!r}: use lowercase letters and underscores only (genome "
            "strings read its digits as depth and width), e.g. 'fused_mbconv'"
        )
    if kind in _RESERVED_NAMES:
        raise ValueError(
            f"block kind name {kind!r} is the genome code of a built-in kind; choose another"
        )

    def decorate(cls: type[nn.Module]) -> type[nn.Module]:
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise TypeError(
                f"block kind {kind!r}: register an nn.Module subclass taking (in_channels, "
                f"out_channels, stride, stage), not {cls!r}"
            )
        if kind in _BLOCKS and _BLOCKS[kind] is not cls:
            raise ValueError(f"block kind {kind!r} is already registered")
        _BLOCKS[kind] = cls
        return cls

    return decorate


def registered_blocks() -> dict[str, type[nn.Module]]:
    return dict(_BLOCKS)


def create_block(
    in_channels: int, out_channels: int, stride: int, stage: StageSpec, **channel_kwargs: Any
) -> nn.Module:
    """Build one block; ``channel_kwargs`` (``hidden``, ``residual``) go to built-in kinds."""
    try:
        cls = _BLOCKS[stage.kind]
    except KeyError:
        from spaces.candidate import unknown_kind

        raise ValueError(unknown_kind(stage.kind)) from None
    return cls(in_channels, out_channels, stride, stage, **channel_kwargs)


def conv_bn(
    in_channels: int,
    out_channels: int,
    kernel: int = 1,
    stride: int = 1,
    groups: int = 1,
    activation: type[nn.Module] | None = nn.ReLU,
) -> nn.Sequential:
    """Conv (no bias: batch norm follows) + BN + optional activation."""
    layers: list[nn.Module] = [
        nn.Conv2d(
            in_channels,
            out_channels,
            kernel,
            stride=stride,
            padding=kernel // 2,
            groups=groups,
            bias=False,
        ),
        nn.BatchNorm2d(out_channels),
    ]
    if activation is not None:
        layers.append(activation())
    return nn.Sequential(*layers)


@register_block("mbconv")
class MBConv(nn.Module):
    """MobileNetV2 inverted residual: 1x1 expand -> kxk depthwise -> 1x1 linear projection."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        stage: StageSpec,
        hidden: int | None = None,
        residual: bool | None = None,
    ):
        super().__init__()
        if hidden is None:
            hidden = in_channels * stage.expansion
        elif stage.expansion == 1 and hidden != in_channels:
            # Without an expand conv the depthwise conv runs on the input itself.
            raise ValueError(f"mbconv expansion 1: hidden {hidden} != input {in_channels}")
        layers: list[nn.Module] = []
        if stage.expansion != 1:
            layers.append(conv_bn(in_channels, hidden, 1, activation=nn.ReLU6))
        layers.append(
            conv_bn(hidden, hidden, stage.kernel, stride, groups=hidden, activation=nn.ReLU6)
        )
        layers.append(conv_bn(hidden, out_channels, 1, activation=None))
        self.body = nn.Sequential(*layers)
        self.residual = _residual(residual, in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.residual else out


@register_block("dsconv")
class DSConv(nn.Module):
    """MobileNetV1 depthwise-separable convolution: kxk depthwise -> 1x1 pointwise.

    No hidden tensor of its own (the depthwise conv runs at the input width) and no skip
    connection: ``hidden`` and ``residual`` are accepted for a uniform signature and ignored.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        stage: StageSpec,
        hidden: int | None = None,
        residual: bool | None = None,
    ):
        super().__init__()
        self.body = nn.Sequential(
            conv_bn(in_channels, in_channels, stage.kernel, stride, groups=in_channels),
            conv_bn(in_channels, out_channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def shuffle_order(channels: int, groups: int) -> torch.Tensor:
    """``order[q]``: the input channel that ShuffleNet's shuffle puts at position q."""
    if channels % groups:
        raise ValueError(f"{channels} channels do not split into {groups} groups")
    return torch.arange(channels).reshape(groups, channels // groups).t().reshape(-1)


class ChannelShuffle(nn.Module):
    """ShuffleNet's shuffle, so information crosses the groups of consecutive group convs.

    Written as a gather of channels in a fixed order rather than reshape-transpose-reshape:
    it exports to one ONNX Gather with a constant index, which ONNX Runtime ran 10-35 %
    faster on this host (fp32 and int8) than the 5-D transpose, and needs no shape ops.
    """

    def __init__(self, groups: int, channels: int):
        super().__init__()
        self.groups = groups
        # Not persistent: it follows from the shape, so checkpoints stay plain weights.
        self.register_buffer("order", shuffle_order(channels, groups), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.index_select(1, self.order)


@register_block("gconv")
class GConv(nn.Module):
    """ShuffleNet unit: grouped 1x1 -> shuffle -> kxk depthwise -> grouped 1x1."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        stage: StageSpec,
        hidden: int | None = None,
        residual: bool | None = None,
    ):
        super().__init__()
        groups = stage.groups
        if hidden is None:
            hidden = out_channels * stage.expansion
        self.body = nn.Sequential(
            conv_bn(in_channels, hidden, 1, groups=groups),
            ChannelShuffle(groups, hidden),
            conv_bn(hidden, hidden, stage.kernel, stride, groups=hidden, activation=None),
            conv_bn(hidden, out_channels, 1, groups=groups, activation=None),
        )
        self.residual = _residual(residual, in_channels, out_channels, stride)
        self.activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return self.activation(x + out if self.residual else out)


@register_block("conv")
class PlainConv(nn.Module):
    """A standard kxk convolution: the reference the lightweight kinds are measured against.

    ``hidden`` and ``residual`` are accepted for a uniform signature and ignored.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        stage: StageSpec,
        hidden: int | None = None,
        residual: bool | None = None,
    ):
        super().__init__()
        self.body = conv_bn(in_channels, out_channels, stage.kernel, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _residual(residual: bool | None, in_channels: int, out_channels: int, stride: int) -> bool:
    if residual is None:
        return stride == 1 and in_channels == out_channels
    if residual and (stride != 1 or in_channels != out_channels):
        raise ValueError(
            f"a residual needs stride 1 and equal widths, got stride {stride}, "
            f"{in_channels} -> {out_channels} channels"
        )
    return residual
