"""Structured pruning for real: a physically smaller network, not a mask; and weight sparsity.

``spaces.channels.plan_channels`` fixes HOW MANY channels each tensor keeps (from the
candidate alone, so the cost model knows the pruned cost before training); this module
decides WHICH, from the trained weights, and copies them into a network built at the plan's
counts. Written by hand rather than with Torch-Pruning: our gconv blocks shuffle channels
between two grouped convs, and only a selection that respects the groups (see
``spaces.channels``) keeps the pruned network an exact sub-network of the trained one.

Importance of a channel is summed over every conv that PRODUCES it (for a coupled group:
every block of every stage in the group, and the stem; for a hidden tensor: the expand or
first grouped conv and the depthwise conv):

- ``l1`` / ``l2``: the L1 / L2 norm of the channel's output weights (Li et al., 2017). Raw
  weights, not scaled by batch norm's gamma: the criterion then reads only what a conv
  learnt, and a layer's scale does not make one block of a group outvote the others.
- ``taylor``: |sum over the channel's weights of w * dL/dw| from one batch (first-order
  Taylor, Molchanov et al., 2017/2019), L being the distillation loss the candidate trains
  with. Computed on a copy in eval mode, so the given model (its batch-norm statistics and
  gradients included) is left untouched and the score does not depend on batch size.

Selection keeps the top-scored channels within each block that a group constraint defines
(equal counts per contiguous block for tensors that grouped convs read or write; for gconv
hidden tensors the same positions in every group, spread over g position blocks).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from evaluators.distill import kd_loss
from evaluators.recipes import unstructured_prune
from spaces.blocks import DSConv, GConv, MBConv, PlainConv, shuffle_order
from spaces.build import CandidateNet, build_model, stage_of_parameter
from spaces.candidate import Candidate
from spaces.channels import (
    STEM,
    ChannelPlan,
    is_opaque,
    output_groups,
    tensor_groups,
)

CRITERIA: tuple[str, ...] = ("l1", "l2", "taylor")

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]

# The distillation recipe the candidates are trained with (evaluators.distill.TrainConfig).
_TEMPERATURE = 4.0
_ALPHA = 0.9


def output_name(tensor: int) -> str:
    """Key of an output tensor: ``stem`` or ``stages.<s>`` (the module that writes it)."""
    return "stem" if tensor == STEM else f"stages.{tensor}"


def hidden_name(stage: int, block: int) -> str:
    """Key of a block's hidden tensor: ``stages.<s>.<b>.hidden``."""
    return f"stages.{stage}.{block}.hidden"


def channel_importance(
    model: CandidateNet,
    candidate: Candidate,
    criterion: str = "l1",
    batch: Batch | None = None,
) -> dict[str, torch.Tensor]:
    """Per-channel scores (higher = keep), on the CPU, keyed by ``output_name`` / ``hidden_name``.

    Output tensors that share channels (``spaces.channels.output_groups``) map to one and the
    same score vector: the group's sum. Hidden tensors exist for mbconv with expansion > 1
    and for gconv; a gconv hidden score is indexed in the first grouped conv's output order
    (before the shuffle). ``batch`` is ``(images, labels, teacher_logits or None)``.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; known: {', '.join(CRITERIA)}")
    arch = candidate.arch
    _check_model(model, candidate)
    gradients: dict[str, torch.Tensor] = {}
    if criterion == "taylor":
        if batch is None:
            raise ValueError("the taylor criterion needs a batch (images, labels, teacher_logits)")
        gradients = _weight_gradients(model, batch)

    scores: dict[str, torch.Tensor] = {}
    for layer in _layers(model, candidate):
        conv = model.get_submodule(layer.path)[0]
        weight = conv.weight.detach()
        if criterion == "l1":
            score = weight.abs().flatten(1).sum(1)
        elif criterion == "l2":
            score = weight.flatten(1).norm(dim=1)
        else:
            grad = gradients[layer.path + ".0.weight"]
            score = (weight * grad).flatten(1).sum(1).abs()
        score = score.float().cpu()
        into = torch.zeros_like(score)
        into[layer.out_order] = score  # conv channel k is tensor channel out_order[k]
        scores[layer.out] = scores.get(layer.out, torch.zeros_like(into)) + into

    for group in output_groups(arch):
        names = [output_name(t) for t in group]
        width = arch.stem_width if group[0] == STEM else arch.stages[group[0]].width
        total = torch.zeros(width)
        for name in names:
            total = total + scores.get(name, torch.zeros(width))
        for name in names:
            scores[name] = total
    return scores


def select_channels(
    importance: dict[str, torch.Tensor], candidate: Candidate, plan: ChannelPlan
) -> dict[str, torch.Tensor]:
    """Sorted kept indices per tensor (keys as ``channel_importance``), at ``plan``'s counts."""
    arch = candidate.arch
    plan.check(arch)
    keep: dict[str, torch.Tensor] = {}
    for group in output_groups(arch):
        names = [output_name(t) for t in group]
        counts = {plan.stem if t == STEM else plan.stages[t].width for t in group}
        if len(counts) != 1:
            raise ValueError(f"{', '.join(names)} share channels but the plan gives {counts}")
        count = counts.pop()
        width = arch.stem_width if group[0] == STEM else arch.stages[group[0]].width
        if count > width:
            raise ValueError(f"{names[0]}: plan keeps {count} of {width} channels")
        if count < width and any(is_opaque(arch, t) for t in group):
            raise ValueError(f"{names[0]}: a user block kind reads or writes it: not prunable")
        blocks = math.lcm(1, *(g for t in group for g in tensor_groups(arch, t)))
        if count < width and count % blocks:
            raise ValueError(
                f"{names[0]}: {count} channels do not split equally into {blocks} groups"
            )
        kept = _top_per_block(importance[names[0]], count, blocks if count < width else 1)
        for name in names:
            keep[name] = kept

    width = arch.stem_width
    for index, spec in enumerate(arch.stages):
        for block in range(spec.depth):
            name = hidden_name(index, block)
            count = plan.stages[index].hidden[block]
            if spec.kind == "mbconv" and spec.expansion != 1:
                full = width * spec.expansion
                _check_count(name, count, full)
                keep[name] = _top_per_block(importance[name], count, 1)
            elif spec.kind == "gconv":
                _check_count(name, count, spec.width * spec.expansion)
                keep[name] = _gconv_hidden(importance[name], count, spec.groups, name)
            width = spec.width
    return keep


def prune_model(
    model: CandidateNet,
    candidate: Candidate,
    plan: ChannelPlan,
    criterion: str = "l1",
    batch: Batch | None = None,
) -> CandidateNet:
    """A NEW network built at ``plan``'s counts holding ``model``'s kept weights.

    Conv weights are sliced on both dimensions, batch norm's affine parameters and running
    statistics on the kept channels, the classifier on its input columns. ``model`` is not
    modified; the result is on its device and dtype, in its train/eval mode.
    """
    importance = channel_importance(model, candidate, criterion, batch)
    keep = select_channels(importance, candidate, plan)
    parameter = next(model.parameters())
    pruned = build_model(
        candidate,
        model.stem[0].in_channels,
        model.classifier.out_features,
        device=parameter.device,
        plan=plan,
    ).to(parameter.dtype)
    with torch.no_grad():
        for layer in _layers(model, candidate):
            source, target = model.get_submodule(layer.path), pruned.get_submodule(layer.path)
            out_idx = _conv_indices(keep, layer.out, layer.out_order, source[0].out_channels)
            in_idx = _conv_indices(keep, layer.inp, layer.in_order, source[0].in_channels)
            _copy_conv(source[0], target[0], out_idx, in_idx)
            _copy_batch_norm(source[1], target[1], out_idx)
        for index, stage in enumerate(model.stages):
            for block, module in enumerate(stage):
                if not isinstance(module, _KNOWN_BLOCKS):
                    # Opaque user kinds keep their widths (plan_channels), so a copy fits.
                    pruned.stages[index][block].load_state_dict(module.state_dict())
        last = keep[output_name(len(candidate.arch.stages) - 1)].to(parameter.device)
        pruned.classifier.weight.copy_(model.classifier.weight[:, last])
        pruned.classifier.bias.copy_(model.classifier.bias)
    return pruned.train(model.training)


def apply_sparsity(model: CandidateNet, candidate: Candidate, method: str = "l1") -> CandidateNet:
    """Zero, in place, the fraction ``StagePolicy.sparsity`` of every conv and linear
    weight of each stage, and return ``model``: ``l1`` the smallest |w|, ``random`` a
    random choice (``evaluators.recipes.unstructured_prune``, per layer).

    Each layer loses ``round(sparsity * numel)`` weights, as the cost model counts, and
    holds plain zeros afterwards (no masks). It shrinks stored size only (the cost model
    counts non-zeros plus a bitmap), never latency.
    """
    stages = candidate.policy.stages
    for name, module in list(model.named_modules()):
        if not isinstance(module, nn.Conv2d | nn.Linear):
            continue
        sparsity = stages[stage_of_parameter(name + ".", len(stages))].sparsity
        if sparsity > 0:
            unstructured_prune(module, sparsity, method, "layer", seed=0)  # type: ignore[arg-type]
    return model


_KNOWN_BLOCKS = (MBConv, DSConv, GConv, PlainConv)


@dataclass(frozen=True)
class _Layer:
    """A conv_bn Sequential at ``path``: which tensors its conv writes and reads.

    ``out_order[k]`` is the tensor channel that conv output channel k carries (likewise
    ``in_order``): the identity but around gconv's shuffle. ``inp`` None is the image.
    """

    path: str
    out: str
    inp: str | None
    out_order: torch.Tensor
    in_order: torch.Tensor


def _layers(model: CandidateNet, candidate: Candidate) -> Iterator[_Layer]:
    def ident(count: int) -> torch.Tensor:
        return torch.arange(count)

    stem = model.stem[0]
    yield _Layer("stem", "stem", None, ident(stem.out_channels), ident(stem.in_channels))
    source = "stem"
    for index, (spec, stage) in enumerate(zip(candidate.arch.stages, model.stages, strict=True)):
        output = output_name(index)
        for block, module in enumerate(stage):
            prefix = f"stages.{index}.{block}.body"
            hidden = hidden_name(index, block)
            if isinstance(module, MBConv):
                if len(module.body) == 3:
                    width = module.body[0][0].out_channels
                    yield _Layer(f"{prefix}.0", hidden, source, ident(width), _in(module, 0))
                    depthwise, project = 1, 2
                else:
                    hidden, depthwise, project = source, 0, 1
                width = module.body[depthwise][0].out_channels
                yield _Layer(f"{prefix}.{depthwise}", hidden, hidden, ident(width), ident(width))
                out = module.body[project][0].out_channels
                yield _Layer(f"{prefix}.{project}", output, hidden, ident(out), ident(width))
            elif isinstance(module, DSConv):
                width, out = module.body[0][0].out_channels, module.body[1][0].out_channels
                yield _Layer(f"{prefix}.0", source, source, ident(width), ident(width))
                yield _Layer(f"{prefix}.1", output, source, ident(out), ident(width))
            elif isinstance(module, GConv):
                width, out = module.body[0][0].out_channels, module.body[3][0].out_channels
                shuffled = shuffle_order(width, spec.groups)
                yield _Layer(f"{prefix}.0", hidden, source, ident(width), _in(module, 0))
                yield _Layer(f"{prefix}.2", hidden, hidden, shuffled, shuffled)
                yield _Layer(f"{prefix}.3", output, hidden, ident(out), shuffled)
            elif isinstance(module, PlainConv):
                conv = module.body[0]
                yield _Layer(
                    f"stages.{index}.{block}.body",
                    output,
                    source,
                    ident(conv.out_channels),
                    ident(conv.in_channels),
                )
            source = output


def _in(module: nn.Module, layer: int) -> torch.Tensor:
    return torch.arange(module.body[layer][0].in_channels)


def _conv_indices(
    keep: dict[str, torch.Tensor], tensor: str | None, order: torch.Tensor, count: int
) -> torch.Tensor:
    """Sorted conv channels that carry kept tensor channels."""
    if tensor is None:
        return torch.arange(count)
    mask = torch.zeros(count, dtype=torch.bool)
    mask[keep[tensor]] = True
    return torch.nonzero(mask[order]).flatten()


def _copy_conv(
    source: nn.Conv2d, target: nn.Conv2d, out_idx: torch.Tensor, in_idx: torch.Tensor
) -> None:
    device = source.weight.device
    weight = source.weight[out_idx.to(device)]
    depthwise = source.groups == source.in_channels == source.out_channels and source.groups > 1
    if not depthwise:
        # A grouped conv's weight holds, per output channel, only its group's inputs: take
        # the kept inputs of that group, at their position inside the group.
        groups = source.groups
        in_per_group = source.in_channels // groups
        local = in_idx.view(groups, -1) - (torch.arange(groups) * in_per_group)[:, None]
        if (local < 0).any() or (local >= in_per_group).any():
            raise ValueError("kept input channels are not split equally over the conv's groups")
        columns = local[out_idx // (source.out_channels // groups)].to(device)
        index = columns[:, :, None, None].expand(-1, -1, *weight.shape[2:])
        weight = torch.gather(weight, 1, index)
    if weight.shape != target.weight.shape:
        raise ValueError(f"pruned weight {tuple(weight.shape)} != {tuple(target.weight.shape)}")
    target.weight.copy_(weight)
    if source.bias is not None:
        target.bias.copy_(source.bias[out_idx.to(device)])


def _copy_batch_norm(source: nn.BatchNorm2d, target: nn.BatchNorm2d, idx: torch.Tensor) -> None:
    idx = idx.to(source.weight.device)
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(target, name).copy_(getattr(source, name)[idx])
    target.num_batches_tracked.copy_(source.num_batches_tracked)


def _top_per_block(scores: torch.Tensor, count: int, blocks: int) -> torch.Tensor:
    """Sorted indices of the ``count / blocks`` best scores of each contiguous block."""
    if count == len(scores):
        return torch.arange(count)
    rows = scores.view(blocks, -1)
    best = torch.topk(rows, count // blocks, dim=1).indices
    best = best + torch.arange(blocks)[:, None] * rows.shape[1]
    return torch.sort(best.flatten()).values


def _gconv_hidden(scores: torch.Tensor, count: int, groups: int, name: str) -> torch.Tensor:
    """Same positions in every group of the first grouped conv, spread equally over
    ``groups`` position blocks, so each lands in its original group after the shuffle."""
    full = len(scores)
    if count == full:
        return torch.arange(full)
    per_group, kept_per_group = full // groups, count // groups
    if count % groups or per_group % groups or kept_per_group % groups:
        raise ValueError(
            f"{name}: keeping {count} of {full} channels cannot follow the shuffle of "
            f"{groups} groups (needs a multiple of {groups * groups} and {per_group} "
            f"channels per group divisible by {groups})"
        )
    positions = _top_per_block(scores.view(groups, per_group).sum(0), kept_per_group, groups)
    offsets = torch.arange(groups)[:, None] * per_group
    return (offsets + positions[None, :]).flatten()


def _check_count(name: str, count: int, full: int) -> None:
    if not 1 <= count <= full:
        raise ValueError(f"{name}: plan keeps {count} of {full} channels")


def _check_model(model: CandidateNet, candidate: Candidate) -> None:
    """The model must be the unpruned build of ``candidate``: compare every tensor shape."""
    expected = build_model(
        candidate, model.stem[0].in_channels, model.classifier.out_features, device="meta"
    ).state_dict()
    actual = model.state_dict()
    if expected.keys() != actual.keys() or any(
        expected[k].shape != actual[k].shape for k in expected
    ):
        raise ValueError(f"model is not the unpruned network of {candidate.genome}")


def _weight_gradients(model: CandidateNet, batch: Batch) -> dict[str, torch.Tensor]:
    """dL/dw of every parameter for one batch, computed on an eval-mode copy of ``model``."""
    images, labels, teacher = batch
    work = copy.deepcopy(model).eval()
    device = next(work.parameters()).device
    for parameter in work.parameters():
        parameter.requires_grad_(True)
        parameter.grad = None
    with torch.enable_grad():
        logits = work(images.to(device))
        teacher = teacher.to(device) if teacher is not None else None
        loss = kd_loss(logits, teacher, labels.to(device), _TEMPERATURE, _ALPHA)
        loss.backward()
    return {name: parameter.grad.detach() for name, parameter in work.named_parameters()}
