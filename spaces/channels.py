"""The channel counts of a network as deployed, after structured (whole-channel) pruning.

``plan_channels`` depends only on the candidate and ``align``, never on weights, so the cost
model can build a pruned candidate on the meta device and cost it exactly before training;
``evaluators.prune`` later decides WHICH channels to keep, at these counts.

Tensors. Every block of a stage writes the stage's output (later blocks read it too), so a
stage has one output tensor; the stem has one. Inside a block, mbconv's expanded tensor and
gconv's bottleneck are "hidden" tensors. Rules:

- Kept count: ``max(multiple, round_to_multiple(count * (1 - ratio), multiple))``, never
  more than ``count``; ``multiple`` is ``align`` or the group multiple below. Ratio 0 keeps
  everything (exactly ``ChannelPlan.full``): rounding never prunes what was not asked for.
- Coupling: tensors joined by a residual add must keep the same channel indices. Later
  blocks of a stage read what they write, so a stage's output is one index set for all its
  blocks. If the first block of stage s has a residual (mbconv / gconv with stride 1 and
  input width == stage width in the ORIGINAL arch), stage s's output is coupled to its input
  (stage s-1's output, or the stem). A coupled group is pruned at the SMALLEST ratio of the
  stages it spans (conservative: no stage loses more than it asked for); the stem's own
  ratio is stage 0's.
- Grouped 1x1 convs: a tensor that a gconv stage with g groups reads or writes keeps an
  equal number of channels in each of its g contiguous blocks, so the pruned grouped conv is
  a sub-network of the original; its kept count is a multiple of lcm(every such g, align).
- gconv hidden (grouped 1x1 -> shuffle -> depthwise -> grouped 1x1): with n = hidden / g
  channels per group of the first conv, the SAME positions are kept in each group and they
  are spread equally over g contiguous position blocks of n / g. Position b of any group
  lands, after the shuffle, in group b // (n / g) of the second conv, so this keeps every
  kept channel in its original group there too. The kept count is then a multiple of
  lcm(g * g, align). When n % g != 0 the hidden tensor is not pruned (a note says so).
- mbconv hidden (expand output = depthwise = projection input): pruned per block at the
  stage's ratio, from its unpruned count (input width x expansion). With expansion 1 there is no expand conv: the hidden tensor IS the block
  input, pruned with it.
- dsconv: the depthwise conv runs at the block's input width (pruned with the input's
  group); the pointwise conv writes the stage output. conv: writes the stage output.
- Block kinds registered by users are opaque: their input and output are not pruned.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

from spaces.candidate import BLOCK_KINDS, ArchSpec, Candidate

STEM = -1  # tensor id of the stem's output; stage s's output is tensor s


@dataclass(frozen=True)
class StageChannels:
    """``width``: output channels of every block of the stage. ``hidden``: per block, the
    hidden channels (mbconv expanded width, gconv bottleneck); for dsconv, conv and user
    kinds the block's input width (unused by the builder)."""

    width: int
    hidden: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(self.hidden))
        if self.width < 1 or any(h < 1 for h in self.hidden):
            raise ValueError(f"channel counts must be >= 1, got {self}")


@dataclass(frozen=True)
class ChannelPlan:
    """Channel counts of the stem and of every stage, and why some were left alone.

    Notes are commentary, not counts: they take no part in equality, so a plan that prunes
    nothing equals ``ChannelPlan.full`` whatever it explains.
    """

    stem: int
    stages: tuple[StageChannels, ...]
    notes: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))
        object.__setattr__(self, "notes", tuple(self.notes))
        if self.stem < 1:
            raise ValueError(f"stem channels must be >= 1, got {self.stem}")

    @classmethod
    def full(cls, arch: ArchSpec) -> ChannelPlan:
        """The unpruned counts."""
        stages = []
        width = arch.stem_width
        for spec in arch.stages:
            hidden = []
            for _ in range(spec.depth):
                hidden.append(_full_hidden(spec.kind, width, spec.width, spec.expansion))
                width = spec.width
            stages.append(StageChannels(spec.width, tuple(hidden)))
        return cls(arch.stem_width, tuple(stages))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> ChannelPlan:
        data = json.loads(text)
        return cls(
            data["stem"],
            tuple(StageChannels(s["width"], tuple(s["hidden"])) for s in data["stages"]),
            tuple(data.get("notes", ())),
        )

    def check(self, arch: ArchSpec) -> None:
        """Raise ``ValueError`` unless this plan has the shape of ``arch``."""
        if len(self.stages) != len(arch.stages):
            raise ValueError(
                f"plan has {len(self.stages)} stages but the architecture has {len(arch.stages)}"
            )
        for index, (channels, spec) in enumerate(zip(self.stages, arch.stages, strict=True)):
            if len(channels.hidden) != spec.depth:
                raise ValueError(
                    f"stage {index}: plan has {len(channels.hidden)} hidden counts for "
                    f"{spec.depth} blocks"
                )


def output_groups(arch: ArchSpec) -> tuple[tuple[int, ...], ...]:
    """Output tensors that must keep one index set: ``STEM`` (-1) is the stem's, s stage s's.

    Groups are runs of consecutive tensors, in order; a tensor alone is a group of one.
    """
    groups: list[list[int]] = [[STEM]]
    for index in range(len(arch.stages)):
        if first_block_residual(arch, index):
            groups[-1].append(index)
        else:
            groups.append([index])
    return tuple(tuple(group) for group in groups)


def first_block_residual(arch: ArchSpec, stage: int) -> bool:
    """Whether the first block of ``stage`` adds its input to its output (original widths)."""
    spec = arch.stages[stage]
    in_width = arch.stem_width if stage == 0 else arch.stages[stage - 1].width
    return spec.kind in _RESIDUAL_KINDS and spec.stride == 1 and in_width == spec.width


def tensor_groups(arch: ArchSpec, tensor: int) -> tuple[int, ...]:
    """Group counts of the grouped convs that read or write output tensor ``tensor``."""
    stages = arch.stages
    counts = []
    if tensor >= 0 and stages[tensor].kind == "gconv":
        counts.append(stages[tensor].groups)  # writes it (and later blocks read it)
    if tensor + 1 < len(stages) and stages[tensor + 1].kind == "gconv":
        counts.append(stages[tensor + 1].groups)  # its first block reads it
    return tuple(counts)


def is_opaque(arch: ArchSpec, tensor: int) -> bool:
    """Whether a user block kind (whose weights we cannot slice) reads or writes ``tensor``."""
    stages = arch.stages
    writer = tensor >= 0 and stages[tensor].kind not in BLOCK_KINDS
    reader = tensor + 1 < len(stages) and stages[tensor + 1].kind not in BLOCK_KINDS
    return writer or reader


def kept_count(count: int, ratio: float, multiple: int) -> int:
    """How many of ``count`` channels survive pruning ``ratio`` of them, at a ``multiple``."""
    if ratio == 0:
        return count
    target = count * (1 - ratio)
    rounded = math.floor(target / multiple + 0.5) * multiple
    return min(count, max(multiple, rounded))


def plan_channels(candidate: Candidate, align: int = 4) -> ChannelPlan:
    """The channel counts after pruning ``candidate`` by its policy (see the module rules)."""
    if align < 1:
        raise ValueError(f"align must be >= 1, got {align}")
    arch, policy = candidate.arch, candidate.policy
    notes: list[str] = []
    width = {STEM: arch.stem_width, **{i: s.width for i, s in enumerate(arch.stages)}}
    kept: dict[int, int] = {}

    def ratio_of(tensor: int) -> float:
        return policy.stages[max(tensor, 0)].prune_ratio

    for group in output_groups(arch):
        ratios = [ratio_of(t) for t in group]
        ratio = min(ratios)
        name = _group_name(group)
        if len(set(ratios)) > 1:
            notes.append(
                f"{name} share channels through residual adds: pruned at their smallest "
                f"ratio {ratio:g}"
            )
        count = width[group[0]]
        if ratio > 0 and any(is_opaque(arch, t) for t in group):
            notes.append(f"{name} not pruned: a user block kind reads or writes it")
            ratio = 0.0
        group_counts = [g for t in group for g in tensor_groups(arch, t)]
        multiple = math.lcm(align, *group_counts)
        keep = kept_count(count, ratio, multiple)
        if ratio > 0 and keep == count:
            notes.append(
                f"{name} not pruned: {count} channels at ratio {ratio:g} round back to "
                f"{count} at a multiple of {multiple}"
            )
        for tensor in group:
            kept[tensor] = keep

    stages = []
    for index, spec in enumerate(arch.stages):
        ratio = policy.stages[index].prune_ratio
        hidden = []
        for block in range(spec.depth):
            source = index - 1 if block == 0 else index
            full_in = width[source]
            full_hidden = _full_hidden(spec.kind, full_in, spec.width, spec.expansion)
            where = f"stage {index} block {block}"
            if spec.kind == "mbconv" and spec.expansion != 1:
                hidden.append(kept_count(full_hidden, ratio, align))
            elif spec.kind == "gconv":
                hidden.append(_gconv_hidden(full_hidden, spec.groups, ratio, align, where, notes))
            else:
                hidden.append(kept[source])
        stages.append(StageChannels(kept[index], tuple(hidden)))
    return ChannelPlan(kept[STEM], tuple(stages), tuple(notes))


_RESIDUAL_KINDS = ("mbconv", "gconv")


def _full_hidden(kind: str, in_width: int, out_width: int, expansion: int) -> int:
    if kind == "mbconv":
        return in_width * expansion
    if kind == "gconv":
        return out_width * expansion
    return in_width


def _gconv_hidden(
    count: int, groups: int, ratio: float, align: int, where: str, notes: list[str]
) -> int:
    per_group = count // groups
    if ratio > 0 and per_group % groups != 0:
        notes.append(
            f"{where} gconv hidden not pruned: {per_group} channels per group are not "
            f"divisible by {groups} groups"
        )
        return count
    return kept_count(count, ratio, math.lcm(groups * groups, align))


def _group_name(group: tuple[int, ...]) -> str:
    names = ["stem" if t == STEM else f"stage {t}" for t in group]
    return names[0] + " output" if len(names) == 1 else " and ".join(names) + " outputs"
