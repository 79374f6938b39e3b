"""One feature row per kernel a runtime executes, read off a meta-device forward pass.

A latency predictor in the style of nn-Meter sums per-kernel latencies, so it needs the
kernels, not the modules: convolutions (dense, depthwise, grouped), linear layers, pooling,
the channel-shuffle gather, residual adds (written in block ``forward`` as ``x + out``, so
found through the blocks' ``residual`` attribute) and the quantize / dequantize kernels an
int8 runtime runs where activation bit-widths change between stages. Batch norm and
activations are not rows: batch norm folds into the conv at export and runtimes fuse the
activation into the conv before it.

The forward pass runs on the meta device (shapes only) unless a built module is given, so
featurising a candidate costs milliseconds, like ``evaluators.cost``.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch
from torch import nn

from evaluators.factorize import build_deployed
from spaces.blocks import ChannelShuffle
from spaces.build import stage_of_parameter
from spaces.candidate import Candidate, StagePolicy
from spaces.channels import plan_channels

FULL_PRECISION = 32

# Kernel kinds, in the order reports list them.
OPS: tuple[str, ...] = (
    "conv",  # dense convolution (groups 1)
    "dwconv",  # depthwise: groups == in_channels == out_channels
    "gconv",  # grouped, not depthwise
    "linear",
    "pool",
    "shuffle",  # ChannelShuffle: one Gather of channels
    "add",  # residual add
    "quantize",  # activations to fewer bits (float -> int8 at an int8 stage's input)
    "dequantize",  # activations back to more bits
)

_POOLS = (nn.AdaptiveAvgPool2d, nn.AvgPool2d, nn.MaxPool2d, nn.AdaptiveMaxPool2d)
_KERNELS = (nn.Conv2d, nn.Linear, ChannelShuffle, *_POOLS)


@dataclass(frozen=True)
class LayerFeatures:
    """One executed kernel. Bytes are at the row's bit-widths; ``name`` is for reading only.

    For ``add``, ``input_bytes`` counts both operands; for ``linear`` the resolutions are 1.
    ``kernel`` of a global pool is its input height.
    """

    op: str
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    groups: int
    in_h: int
    in_w: int
    out_h: int
    out_w: int
    macs: int
    input_bytes: float
    output_bytes: float
    weight_bytes: float
    weight_bits: int
    activation_bits: int
    name: str = ""

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"unknown op {self.op!r}; known: {', '.join(OPS)}")

    @property
    def precision(self) -> str:
        """``int8`` when an int8 runtime executes the kernel in integers, else ``fp32``.

        Weightless kernels (pool, shuffle, add) go by their activation bits; the
        quantize / dequantize kernels are their own kinds.
        """
        if self.op in ("quantize", "dequantize"):
            return "int8"
        if self.op in ("conv", "dwconv", "gconv", "linear"):
            return "int8" if self.weight_bits <= 8 and self.activation_bits == 8 else "fp32"
        return "int8" if self.activation_bits == 8 else "fp32"

    @property
    def group(self) -> str:
        """The kernel family a predictor fits one model for, e.g. ``dwconv/int8``."""
        return f"{self.op}/{self.precision}"

    @property
    def bytes(self) -> float:
        """All memory traffic of the kernel: activations in and out plus weights."""
        return self.input_bytes + self.output_bytes + self.weight_bytes

    def to_row(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_row(cls, row: dict[str, str]) -> LayerFeatures:
        """From a CSV row (strings) written by ``to_row``; extra columns are ignored."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            text = row.get(f.name) or ""
            if f.type == "str":
                values[f.name] = text or ""
            elif f.type == "int":
                values[f.name] = int(float(text))
            else:
                values[f.name] = float(text)
        return cls(**values)


def runtime_policy(policy: StagePolicy) -> StagePolicy:
    """The bit-widths ONNX Runtime executes a stage at: w8a8 when it runs int8, else fp32.

    Mirrors ``evaluators.quantize.executes_as_int8`` (weights <= 8 bits and 8-bit
    activations run as int8; everything else runs fp32): a 4-bit stage runs at 8 bits.
    """
    if policy.weight_bits <= 8 and policy.activation_bits == 8:
        return replace(policy, weight_bits=8, activation_bits=8)
    return replace(policy, weight_bits=FULL_PRECISION, activation_bits=FULL_PRECISION)


def layer_features(
    model: nn.Module | Candidate,
    input_shape: tuple[int, int, int],
    num_classes: int = 10,
    *,
    candidate: Candidate | None = None,
    align: int = 4,
    runtime_bits: bool = False,
) -> list[LayerFeatures]:
    """The kernels of ``model`` for one image of ``input_shape`` (C, H, W), in execution order.

    ``model`` is a ``Candidate`` (built pruned by its policy, channels rounded to ``align``,
    on the meta device) or an already-built ``CandidateNet`` (whose bit-widths come from
    ``candidate``; fp32 without one). ``runtime_bits`` replaces every stage's bit-widths by
    those ONNX Runtime executes (``runtime_policy``): what an ORT-calibrated predictor needs.
    """
    if isinstance(model, Candidate):
        candidate = model
        plan = plan_channels(candidate, align)
        net = build_deployed(candidate, input_shape[0], num_classes, plan=plan, device="meta")
    else:
        # A copy, so the caller's module keeps its mode and (QAT) observed ranges; fake
        # quantization is stripped: it changes no shape and may not run before calibration.
        from evaluators.quantize import is_qat_model, strip_qat

        net = strip_qat(model) if is_qat_model(model) else copy.deepcopy(model)
    net.eval()
    policies: tuple[StagePolicy, ...] | None = None
    if candidate is not None:
        policies = candidate.policy.stages
        if runtime_bits:
            policies = tuple(runtime_policy(p) for p in policies)

    def bits_of(name: str) -> tuple[int, int]:
        if policies is None:
            return FULL_PRECISION, FULL_PRECISION
        policy = policies[stage_of_parameter(name + ".", len(policies))]
        return policy.weight_bits, policy.activation_bits

    rows: list[LayerFeatures] = []

    def record(module: nn.Module, inputs: tuple, output: torch.Tensor, name: str) -> None:
        row = _row(module, inputs[0], output, name, *bits_of(name))
        if row is not None:
            rows.append(row)

    handles = []
    for name, module in net.named_modules():
        if isinstance(module, _KERNELS) or getattr(module, "residual", False):
            handles.append(
                module.register_forward_hook(
                    lambda mod, inp, out, name=name: record(mod, inp, out, name)
                )
            )
    device = next(net.parameters()).device
    try:
        with torch.no_grad():
            net(torch.empty(1, *input_shape, device=device))
    finally:
        for handle in handles:
            handle.remove()
    return _with_conversions(rows)


def _row(
    module: nn.Module, x: torch.Tensor, y: torch.Tensor, name: str, wbits: int, abits: int
) -> LayerFeatures | None:
    in_c, in_h, in_w = _chw(x)
    out_c, out_h, out_w = _chw(y)
    act = abits / 8
    common: dict[str, Any] = dict(
        in_channels=in_c,
        out_channels=out_c,
        in_h=in_h,
        in_w=in_w,
        out_h=out_h,
        out_w=out_w,
        input_bytes=x[0].numel() * act,
        output_bytes=y[0].numel() * act,
        weight_bits=wbits,
        activation_bits=abits,
        name=name,
    )
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        groups = module.groups
        weights = module.weight.numel()
        if groups == 1:
            op = "conv"
        elif groups == in_c == out_c:
            op = "dwconv"
        else:
            op = "gconv"
        return LayerFeatures(
            op=op,
            kernel=max(kh, kw),  # a factorized k x 1 / 1 x k pair counts as k
            stride=module.stride[0],
            groups=groups,
            macs=y[0].numel() * (in_c // groups) * kh * kw,
            weight_bytes=weights * wbits / 8 + out_c * 4,  # + 32-bit bias (folded BN)
            **common,
        )
    if isinstance(module, nn.Linear):
        return LayerFeatures(
            op="linear",
            kernel=1,
            stride=1,
            groups=1,
            macs=y[0].numel() * module.in_features,  # at every position of leading axes
            weight_bytes=module.weight.numel() * wbits / 8 + module.out_features * 4,
            **common,
        )
    if isinstance(module, _POOLS):
        return LayerFeatures(
            op="pool",
            kernel=max(1, in_h // max(1, out_h)),
            stride=max(1, in_h // max(1, out_h)),
            groups=1,
            macs=0,
            weight_bytes=0.0,
            **common,
        )
    if isinstance(module, ChannelShuffle):
        return LayerFeatures(
            op="shuffle",
            kernel=1,
            stride=1,
            groups=module.groups,
            macs=0,
            weight_bytes=0.0,
            **common,
        )
    if getattr(module, "residual", False):
        common["input_bytes"] = 2 * y[0].numel() * act  # both operands of x + out
        return LayerFeatures(
            op="add", kernel=1, stride=1, groups=1, macs=0, weight_bytes=0.0, **common
        )
    return None


def _chw(t: torch.Tensor) -> tuple[int, int, int]:
    if t.dim() == 4:
        return int(t.shape[1]), int(t.shape[2]), int(t.shape[3])
    return int(t.shape[-1]), 1, 1


def _with_conversions(rows: list[LayerFeatures]) -> list[LayerFeatures]:
    """Insert a quantize / dequantize kernel wherever activation bits change.

    The input image arrives as float and the logits leave as float; in between, a stage at
    other activation bits than its predecessor converts its input tensor first (ORT's
    QuantizeLinear / DequantizeLinear at the border of an int8 region).
    """
    out: list[LayerFeatures] = []
    current = FULL_PRECISION
    for row in rows:
        if row.activation_bits != current:
            out.append(_conversion(row, current, row.activation_bits, before=True))
            current = row.activation_bits
        out.append(row)
    if rows and current != FULL_PRECISION:
        out.append(_conversion(rows[-1], current, FULL_PRECISION, before=False))
    return out


def _conversion(row: LayerFeatures, old: int, new: int, *, before: bool) -> LayerFeatures:
    if before:
        channels, h, w = row.in_channels, row.in_h, row.in_w
        if row.op == "linear":
            h = w = 1
    else:
        channels, h, w = row.out_channels, row.out_h, row.out_w
    count = channels * h * w
    return LayerFeatures(
        op="quantize" if new < old else "dequantize",
        in_channels=channels,
        out_channels=channels,
        kernel=1,
        stride=1,
        groups=1,
        in_h=h,
        in_w=w,
        out_h=h,
        out_w=w,
        macs=0,
        input_bytes=count * old / 8,
        output_bytes=count * new / 8,
        weight_bytes=0.0,
        weight_bits=FULL_PRECISION,
        activation_bits=min(old, new),
        name=f"{row.name} ({'input' if before else 'output'})",
    )
