"""From a candidate to a torch module (timm's builder), and a registry of named candidates.

The module layout is fixed so that later stages (cost, pruning, quantization) can map
parameters to the stage whose policy governs them: ``stem`` belongs to stage 0,
``stages[i]`` to stage i, ``classifier`` to the last stage.

Given a ``ChannelPlan`` (``spaces.channels``) the same layout is built at the plan's channel
counts, with every skip connection decided by the ORIGINAL widths, so a pruned network has
exactly the unpruned topology (pruning may make a block's widths equal by chance; that must
not add a residual the trained network never had).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from spaces.blocks import conv_bn, create_block
from spaces.candidate import BLOCK_KINDS, ArchSpec, Candidate, StageSpec
from spaces.channels import ChannelPlan


class CandidateNet(nn.Module):
    """stem -> stages -> global average pool -> linear. Works for any input size >= 1x1."""

    def __init__(
        self,
        arch: ArchSpec,
        in_channels: int,
        num_classes: int,
        plan: ChannelPlan | None = None,
    ):
        super().__init__()
        if plan is not None:
            plan.check(arch)
        counts = plan or ChannelPlan.full(arch)
        self.stem = conv_bn(in_channels, counts.stem, 3, arch.stem_stride)
        stages = []
        width, full_width = counts.stem, arch.stem_width
        for spec, channels in zip(arch.stages, counts.stages, strict=True):
            blocks = []
            for index in range(spec.depth):
                stride = spec.stride if index == 0 else 1
                kwargs: dict[str, int | bool] = {}
                # Only built-in kinds take these keywords (see spaces.blocks), and only a plan
                # needs them: an unpruned build calls every kind with four arguments.
                if plan is not None and spec.kind in BLOCK_KINDS:
                    kwargs = {
                        "hidden": channels.hidden[index],
                        "residual": stride == 1 and full_width == spec.width,
                    }
                blocks.append(create_block(width, channels.width, stride, spec, **kwargs))
                width, full_width = channels.width, spec.width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.classifier(torch.flatten(self.pool(x), 1))


def stage_of_parameter(name: str, num_stages: int) -> int:
    """Which stage's policy governs a parameter or submodule of a ``CandidateNet``, by name."""
    if name.startswith("stem."):
        return 0
    if name.startswith("stages."):
        return int(name.split(".")[1])
    if name.startswith(("pool.", "classifier.")):
        return num_stages - 1
    raise ValueError(f"parameter {name!r} belongs to no stage")


def build_model(
    candidate: Candidate | ArchSpec,
    in_channels: int,
    num_classes: int,
    device: torch.device | str | None = None,
    plan: ChannelPlan | None = None,
) -> CandidateNet:
    """Build ``candidate``; at ``plan``'s channel counts when given (None: unpruned)."""
    arch = candidate.arch if isinstance(candidate, Candidate) else candidate
    with torch.device(device or "cpu"):
        return CandidateNet(arch, in_channels, num_classes, plan)


_MODELS: dict[str, Callable[[], Candidate]] = {}


def register_model(fn: Callable[[], Candidate]) -> Callable[[], Candidate]:
    """Register a named, fixed candidate (tests, baselines, user favourites) by function name.

    A second function under a taken name is refused, as ``register_block`` refuses a second
    class: replacing silently would let a user's model be reported under a built-in
    baseline's name (``plain_cnn`` is labelled hand-designed). The same function again is
    harmless.
    """
    name = fn.__name__
    existing = _MODELS.get(name)
    if existing is not None and existing is not fn:
        raise ValueError(
            f"model {name!r} is already registered by {getattr(existing, '__module__', '?')}."
            f"{getattr(existing, '__qualname__', name)}; give your function another name"
        )
    _MODELS[name] = fn
    return fn


def list_models() -> list[str]:
    return sorted(_MODELS)


def get_candidate(name: str) -> Candidate:
    try:
        return _MODELS[name]()
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; registered: {', '.join(list_models())}"
        ) from None


def create_model(name: str, in_channels: int, num_classes: int) -> CandidateNet:
    return build_model(get_candidate(name), in_channels, num_classes)


@register_model
def tiny_dsconv() -> Candidate:
    return Candidate(ArchSpec(8, (StageSpec("dsconv", 1, 16, 3, stride=2),)))


@register_model
def tiny_mixed() -> Candidate:
    """One stage of each kind: the smallest network that exercises every block."""
    return Candidate(
        ArchSpec(
            8,
            (
                StageSpec("conv", 1, 8, 3),
                StageSpec("mbconv", 2, 16, 3, expansion=2, stride=2),
                StageSpec("gconv", 1, 16, 5, expansion=2, groups=4),
                StageSpec("dsconv", 1, 24, 3, stride=2),
            ),
        )
    )
