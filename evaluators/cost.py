"""The cost of a candidate, computed before any training, in a fraction of a second.

The module is built on PyTorch's meta device (shapes, no storage) and its graph traced
(``evaluators.memory``), so every registered block kind is costed without a cost formula
of its own, and the parameter count is exactly that of the module the trainer builds.

What counts (and why):
- params: every trainable parameter of the module as deployed, i.e. after structured
  pruning (batch norm included). Pruned channel counts follow from the policy alone.
- MACs: convolutions and linear layers; batch norm folds into the convolution at export.
- flash (stored bytes, ``evaluators.memory.flash_bytes``): conv/linear weights packed at
  their stage's weight bits (with unstructured sparsity only non-zeros, plus a 1-bit-per-
  weight bitmap index); one 32-bit bias per output channel (batch norm folds into it, and
  int8 runtimes store int32 biases); one fp32 scale per output channel of a quantized
  layer; a fixed allowance per layer for its shapes and quantization parameters.
- peak activation memory (``evaluators.memory.activation_schedule``): the largest sum of
  live tensors at any step of the execution schedule, at the producing stage's activation
  bits (given a device, the width its kernels hold them at: ``Device.held_widths``),
  where a tensor lives from its producer to its last consumer, so the input of a
  residual block counts across the block body. Batch norm and activations fold or fuse
  in place; every other kernel, residual adds included, writes a buffer of its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch
from torch import nn

from evaluators.devices import Device
from evaluators.factorize import build_deployed
from evaluators.memory import activation_schedule, candidate_activation_bits, flash_bytes
from spaces.candidate import Candidate, CompressionPolicy
from spaces.channels import plan_channels


@dataclass(frozen=True)
class Cost:
    params: int
    macs: int
    weight_bytes: float
    peak_activation_bytes: float
    # The kernel (module path) during which the live activations peak: where to look when
    # SRAM binds.
    peak_step: str = ""

    @property
    def flash_kb(self) -> float:
        return self.weight_bytes / 1024

    @property
    def peak_memory_kb(self) -> float:
        return self.peak_activation_bytes / 1024


def estimate_cost(
    candidate: Candidate,
    input_shape: tuple[int, int, int],
    num_classes: int,
    align: int = 4,
    device: Device | None = None,
) -> Cost:
    """Cost of ``candidate`` as deployed (pruned by its policy, channel counts rounded to
    ``align``) for one image of ``input_shape`` (C, H, W), on ``device`` (``module_cost``)."""
    plan = plan_channels(candidate, align)
    model = build_deployed(candidate, input_shape[0], num_classes, plan=plan, device="meta").eval()
    return module_cost(model, candidate, input_shape, device)


def held_candidate(candidate: Candidate, device: Device) -> Candidate:
    """``candidate`` with each stage at the widths ``device`` holds it at
    (``Device.held_widths``): what its memory and flash are computed at."""
    stages = tuple(device.held_widths(stage) for stage in candidate.policy.stages)
    return replace(candidate, policy=CompressionPolicy(stages))


@contextlib.contextmanager
def counting_macs(model: nn.Module) -> Iterator[list[int]]:
    """Within the block, ``[macs]`` counts the multiply-accumulates of batch 1 that the
    model's conv and linear modules do (the MACs the cost model knows of), through forward
    hooks."""
    macs = [0]

    def count(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            macs[0] += output[0].numel() * (module.in_channels // module.groups) * kh * kw
        else:  # a linear layer applies to every position of its input's leading axes
            macs[0] += output[0].numel() * module.in_features

    handles = [
        module.register_forward_hook(count)
        for module in model.modules()
        if isinstance(module, nn.Conv2d | nn.Linear)
    ]
    try:
        yield macs
    finally:
        for handle in handles:
            handle.remove()


def module_cost(
    model: nn.Module,
    candidate: Candidate,
    input_shape: tuple[int, int, int],
    device: Device | None = None,
) -> Cost:
    """Cost of an already-built ``CandidateNet`` (on any device, meta included).

    One pass through the traced graph gives both the memory schedule and, through forward
    hooks on the conv / linear modules it calls, the MACs. With ``device``, memory and flash
    are at the widths it holds each stage at (``held_candidate``); without, at the policy's.
    """
    if device is not None:
        candidate = held_candidate(candidate, device)
    with counting_macs(model) as macs:
        schedule = activation_schedule(model, input_shape, candidate_activation_bits(candidate))
    return Cost(
        params=sum(p.numel() for p in model.parameters()),
        macs=int(macs[0]),
        weight_bytes=flash_bytes(model, candidate),
        peak_activation_bytes=schedule.peak_bytes,
        peak_step=schedule.peak_step,
    )
