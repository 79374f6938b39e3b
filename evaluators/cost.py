"""The cost of a candidate, computed before any training, in milliseconds.

The module is built on PyTorch's meta device (shapes, no storage) and traced with forward
hooks, so every registered block kind is costed without a cost formula of its own, and the
parameter count is exactly that of the module the trainer builds.

What counts (and why):
- params: every trainable parameter of the module as deployed, i.e. after structured
  pruning (batch norm included). Pruned channel counts follow from the policy alone.
- MACs: convolutions and linear layers; batch norm folds into the convolution at export.
- flash (stored weights): conv/linear weights at their stage's weight bits; one 32-bit bias
  per output channel (batch norm folds into it), as int8 runtimes store int32 biases. With
  unstructured sparsity only non-zeros are stored, plus a 1-bit-per-weight bitmap index.
- peak activation memory: the largest input + output of any kernel that runs on its own
  after export (convolutions, linear, pooling, channel shuffle), at the stage's activation
  bits. Tensors kept alive across a residual connection are not yet counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from spaces.blocks import ChannelShuffle
from spaces.build import build_model, stage_of_parameter
from spaces.candidate import Candidate
from spaces.channels import plan_channels

_KERNEL_MODULES = (
    nn.Conv2d,
    nn.Linear,
    nn.AdaptiveAvgPool2d,
    nn.AvgPool2d,
    nn.MaxPool2d,
    ChannelShuffle,
)


@dataclass(frozen=True)
class Cost:
    params: int
    macs: int
    weight_bytes: float
    peak_activation_bytes: float

    @property
    def flash_kb(self) -> float:
        return self.weight_bytes / 1024

    @property
    def peak_memory_kb(self) -> float:
        return self.peak_activation_bytes / 1024


def estimate_cost(
    candidate: Candidate, input_shape: tuple[int, int, int], num_classes: int, align: int = 4
) -> Cost:
    """Cost of ``candidate`` as deployed (pruned by its policy, channel counts rounded to
    ``align``) for one image of ``input_shape`` (C, H, W)."""
    plan = plan_channels(candidate, align)
    model = build_model(candidate, input_shape[0], num_classes, device="meta", plan=plan).eval()
    return module_cost(model, candidate, input_shape)


def module_cost(model: nn.Module, candidate: Candidate, input_shape: tuple[int, int, int]) -> Cost:
    """Cost of an already-built ``CandidateNet`` (on any device, meta included)."""
    stages = candidate.policy.stages
    num_stages = len(stages)
    macs = 0
    peak_bits = 0

    def on_forward(module: nn.Module, inputs: tuple, output: torch.Tensor, name: str) -> None:
        nonlocal macs, peak_bits
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            macs += output[0].numel() * (module.in_channels // module.groups) * kh * kw
        elif isinstance(module, nn.Linear):
            macs += module.in_features * module.out_features
        bits = stages[stage_of_parameter(name + ".", num_stages)].activation_bits
        live = (inputs[0][0].numel() + output[0].numel()) * bits
        peak_bits = max(peak_bits, live)

    handles = [
        module.register_forward_hook(
            lambda mod, inp, out, name=name: on_forward(mod, inp, out, name)
        )
        for name, module in model.named_modules()
        if isinstance(module, _KERNEL_MODULES)
    ]
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            model(torch.empty(1, *input_shape, device=device))
    finally:
        for handle in handles:
            handle.remove()

    weight_bits = 0.0
    for name, module in model.named_modules():
        if not isinstance(module, nn.Conv2d | nn.Linear):
            continue
        policy = stages[stage_of_parameter(name + ".", num_stages)]
        count = module.weight.numel()
        if policy.sparsity > 0:
            kept = count - round(count * policy.sparsity)  # as torch's l1_unstructured counts
            weight_bits += kept * policy.weight_bits + count  # values + bitmap index
        else:
            weight_bits += count * policy.weight_bits
        weight_bits += module.weight.shape[0] * 32  # bias (folded batch norm)

    params = sum(p.numel() for p in model.parameters())
    return Cost(
        params=params,
        macs=int(macs),
        weight_bytes=weight_bits / 8,
        peak_activation_bytes=peak_bits / 8,
    )
