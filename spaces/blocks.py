"""Block kinds of the architecture space, in a registry a user extends in one file.

A block is built as ``cls(in_channels, out_channels, stride, stage)`` where ``stage`` is the
``StageSpec`` it belongs to. To add a kind::

    from spaces.blocks import register_block

    @register_block("fused")
    class FusedMBConv(nn.Module):
        def __init__(self, in_channels, out_channels, stride, stage): ...

The cost model needs nothing more: it measures the built module on the meta device.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from spaces.candidate import StageSpec

_BLOCKS: dict[str, type[nn.Module]] = {}


def register_block(kind: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    def decorate(cls: type[nn.Module]) -> type[nn.Module]:
        if kind in _BLOCKS and _BLOCKS[kind] is not cls:
            raise ValueError(f"block kind {kind!r} is already registered")
        _BLOCKS[kind] = cls
        return cls

    return decorate


def registered_blocks() -> dict[str, type[nn.Module]]:
    return dict(_BLOCKS)


def create_block(in_channels: int, out_channels: int, stride: int, stage: StageSpec) -> nn.Module:
    try:
        cls = _BLOCKS[stage.kind]
    except KeyError:
        raise ValueError(
            f"unknown block kind {stage.kind!r}; registered: {', '.join(sorted(_BLOCKS))}"
        ) from None
    return cls(in_channels, out_channels, stride, stage)


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

    def __init__(self, in_channels: int, out_channels: int, stride: int, stage: StageSpec):
        super().__init__()
        hidden = in_channels * stage.expansion
        layers: list[nn.Module] = []
        if stage.expansion != 1:
            layers.append(conv_bn(in_channels, hidden, 1, activation=nn.ReLU6))
        layers.append(
            conv_bn(hidden, hidden, stage.kernel, stride, groups=hidden, activation=nn.ReLU6)
        )
        layers.append(conv_bn(hidden, out_channels, 1, activation=None))
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.residual else out


@register_block("dsconv")
class DSConv(nn.Module):
    """MobileNetV1 depthwise-separable convolution: kxk depthwise -> 1x1 pointwise."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, stage: StageSpec):
        super().__init__()
        self.body = nn.Sequential(
            conv_bn(in_channels, in_channels, stage.kernel, stride, groups=in_channels),
            conv_bn(in_channels, out_channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class ChannelShuffle(nn.Module):
    """ShuffleNet's shuffle, so information crosses the groups of consecutive group convs."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        x = x.reshape(batch, self.groups, channels // self.groups, height, width)
        return x.transpose(1, 2).reshape(batch, channels, height, width)


@register_block("gconv")
class GConv(nn.Module):
    """ShuffleNet unit: grouped 1x1 -> shuffle -> kxk depthwise -> grouped 1x1."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, stage: StageSpec):
        super().__init__()
        groups = stage.groups
        hidden = out_channels * stage.expansion
        self.body = nn.Sequential(
            conv_bn(in_channels, hidden, 1, groups=groups),
            ChannelShuffle(groups),
            conv_bn(hidden, hidden, stage.kernel, stride, groups=hidden, activation=None),
            conv_bn(hidden, out_channels, 1, groups=groups, activation=None),
        )
        self.residual = stride == 1 and in_channels == out_channels
        self.activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return self.activation(x + out if self.residual else out)


@register_block("conv")
class PlainConv(nn.Module):
    """A standard kxk convolution: the reference the lightweight kinds are measured against."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, stage: StageSpec):
        super().__init__()
        self.body = conv_bn(in_channels, out_channels, stage.kernel, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
