"""Low-rank factorization: one layer replaced by two thin ones.

A weight matrix W (out x in) of rank up to min(in, out) is approximated by the product of
its truncated SVD, W ~ (U_r sqrt(S_r)) (sqrt(S_r) V_r^T): a layer in -> r followed by a
layer r -> out, r * (in + out) weights instead of in * out. Applied per stage, as the
policy says (``StagePolicy.rank_ratio``, ``factorize_kxk``):

- pointwise (1x1, ungrouped) convolutions and, for the last stage, the classifier: the
  weight as an out x in matrix;
- optionally k x k ungrouped convolutions, as a k x 1 convolution (in -> r) followed by a
  1 x k one (r -> out): W[o, i, y, x] ~ sum_r V[r, i, y] H[o, r, x], the SVD of W arranged
  as an (in * k) x (out * k) matrix (Jaderberg et al. 2014, scheme 2);
- depthwise and group convolutions are left alone: they are thin already.

The rank is ``round(rank_ratio * full rank)`` (at least 1), and a layer is factorized
only where the two thin layers store fewer weights than the layer: at ratio 0.5 a square
1x1 layer would break even, and is kept whole.

The replacement is real: the module holds two layers (``LowRank``), not a product
rebuilt into a full matrix, so the cost model (which builds the deployed module,
``build_deployed``), ONNX export and quantization all see the thin layers. Full-rank SVD
reproduces the layer; the search fine-tunes the factorized network with KD afterwards
(``evaluators.pipeline``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from spaces.build import CandidateNet, build_model, stage_of_parameter
from spaces.candidate import Candidate, StagePolicy
from spaces.channels import ChannelPlan


class LowRank(nn.Sequential):
    """Two thin layers standing for one. A Sequential, so the module names are
    ``<layer>.0`` / ``<layer>.1`` under the replaced layer's name, and every rule that maps
    modules to stages by name (quantization, stored size, ONNX node stages) holds as is."""

    @property
    def rank(self) -> int:
        first = self[0]
        return first.out_channels if isinstance(first, nn.Conv2d) else first.out_features


def factor_rank(rows: int, cols: int, ratio: float, weights: int | None = None) -> int | None:
    """The rank that factorizes a ``rows`` x ``cols`` matrix at ``ratio`` of its full rank,
    or None where the thin pair would store at least as many weights (``weights``: the
    layer's own count, ``rows * cols`` unless its kernel is not 1x1)."""
    rank = max(1, round(ratio * min(rows, cols)))
    return rank if rank * (rows + cols) < (weights or rows * cols) else None


def factorized_rank(module: nn.Module, policy: StagePolicy) -> int | None:
    """The rank ``module`` gets under ``policy``; None: it stays whole."""
    if not policy.factorizes:
        return None
    if isinstance(module, nn.Linear):
        return factor_rank(module.out_features, module.in_features, policy.rank_ratio)
    if not isinstance(module, nn.Conv2d) or module.groups != 1 or module.dilation != (1, 1):
        return None
    kh, kw = module.kernel_size
    if (kh, kw) == (1, 1):
        return factor_rank(module.out_channels, module.in_channels, policy.rank_ratio)
    if not policy.factorize_kxk or module.padding_mode != "zeros":
        return None
    return factor_rank(
        module.in_channels * kh,
        module.out_channels * kw,
        policy.rank_ratio,
        module.weight.numel(),
    )


def factorize_model(model: CandidateNet, candidate: Candidate, *, svd: bool = True) -> CandidateNet:
    """Replace, in place, every layer ``candidate``'s policy factorizes by a ``LowRank``
    pair, and return ``model``.

    ``svd``: initialize the pair from the layer's trained weight by truncated SVD (the
    search's path); False gives the shapes only (the cost model on the meta device, or a
    module about to load a saved state dict).
    """
    if any(isinstance(m, LowRank) for m in model.modules()):
        raise ValueError("model is factorized already")
    stages = candidate.policy.stages
    factorize_modules(
        model, lambda name: stages[stage_of_parameter(name + ".", len(stages))], svd=svd
    )
    return model


def factorize_modules(
    root: nn.Module, policy_of: Callable[[str], StagePolicy], *, svd: bool = True
) -> nn.Module:
    """Replace, in place, each conv / linear layer of ``root`` that the policy of its
    module path (``policy_of``) factorizes by a ``LowRank`` pair; return ``root``."""
    for name, module in list(root.named_modules()):
        if not isinstance(module, nn.Conv2d | nn.Linear):
            continue
        rank = factorized_rank(module, policy_of(name))
        if rank is None:
            continue
        from_weights = svd and not module.weight.is_meta
        if isinstance(module, nn.Linear):
            pair = factorize_linear(module, rank, from_weights)
        elif module.kernel_size == (1, 1):
            pair = factorize_pointwise(module, rank, from_weights)
        else:
            pair = factorize_kxk(module, rank, from_weights)
        parent, _, child = name.rpartition(".")
        setattr(root.get_submodule(parent) if parent else root, child, pair)
    return root


def build_deployed(
    candidate: Candidate,
    in_channels: int,
    num_classes: int,
    *,
    plan: ChannelPlan | None = None,
    device: torch.device | str | None = None,
) -> CandidateNet:
    """The module a candidate deploys as: pruned to ``plan``, factorized by its policy
    (shapes only: weights are random, or load a saved state dict into it)."""
    model = build_model(candidate, in_channels, num_classes, device=device, plan=plan)
    return factorize_model(model, candidate, svd=False)


def factorize_linear(layer: nn.Linear, rank: int, svd: bool = True) -> LowRank:
    first, second = _factors(layer.weight, rank, svd)
    like = {"device": layer.weight.device, "dtype": layer.weight.dtype}
    thin = nn.Linear(layer.in_features, rank, bias=False, **like)
    wide = nn.Linear(rank, layer.out_features, bias=layer.bias is not None, **like)
    return _pair(thin, wide, first, second, layer.bias, svd)


def factorize_pointwise(conv: nn.Conv2d, rank: int, svd: bool = True) -> LowRank:
    """A 1x1 convolution as in -> rank -> out; the stride goes to the first, so the thin
    tensor is the subsampled one."""
    first, second = _factors(conv.weight.flatten(1), rank, svd)
    like = {"device": conv.weight.device, "dtype": conv.weight.dtype}
    thin = nn.Conv2d(conv.in_channels, rank, 1, stride=conv.stride, bias=False, **like)
    wide = nn.Conv2d(rank, conv.out_channels, 1, bias=conv.bias is not None, **like)
    if first is not None:
        first, second = first[..., None, None], second[..., None, None]
    return _pair(thin, wide, first, second, conv.bias, svd)


def factorize_kxk(conv: nn.Conv2d, rank: int, svd: bool = True) -> LowRank:
    """A kh x kw convolution as kh x 1 (in -> rank) then 1 x kw (rank -> out), each taking
    its direction's stride and padding, so the pair computes on the same grid."""
    out_c, in_c, kh, kw = conv.weight.shape
    (sh, sw), (ph, pw) = conv.stride, _padding(conv)
    like = {"device": conv.weight.device, "dtype": conv.weight.dtype}
    vertical = nn.Conv2d(in_c, rank, (kh, 1), stride=(sh, 1), padding=(ph, 0), bias=False, **like)
    horizontal = nn.Conv2d(
        rank, out_c, (1, kw), stride=(1, sw), padding=(0, pw), bias=conv.bias is not None, **like
    )
    first = second = None
    if svd:
        # rows (i, y), columns (o, x): W[o, i, y, x] = M[(i, y), (o, x)]
        matrix = conv.weight.detach().permute(1, 2, 0, 3).reshape(in_c * kh, out_c * kw)
        # matrix.T ~ B @ A: A (rank x in*kh) holds V[r, i, y], B (out*kw x rank) H[o, r, x]
        a, b = _factors(matrix.T, rank, svd)
        assert a is not None and b is not None
        first = a.reshape(rank, in_c, kh, 1)
        second = b.reshape(out_c, kw, rank).permute(0, 2, 1).reshape(out_c, rank, 1, kw)
    return _pair(vertical, horizontal, first, second, conv.bias, svd)


def _factors(
    weight: torch.Tensor, rank: int, svd: bool
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(A, B) with weight (out x in) ~ B @ A: A = sqrt(S_r) V_r^T (rank x in),
    B = U_r sqrt(S_r) (out x rank); float64, since full rank must reproduce the layer."""
    if not svd or weight.is_meta:
        return None, None
    u, s, vh = torch.linalg.svd(weight.detach().double(), full_matrices=False)
    root = s[:rank].sqrt()
    return (root[:, None] * vh[:rank]), (u[:, :rank] * root)


@torch.no_grad()
def _pair(
    first: nn.Module,
    second: nn.Module,
    first_weight: torch.Tensor | None,
    second_weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    svd: bool,
) -> LowRank:
    if svd and first_weight is not None and second_weight is not None:
        first.weight.copy_(first_weight.to(first.weight.dtype))
        second.weight.copy_(second_weight.to(second.weight.dtype))
        if bias is not None:
            second.bias.copy_(bias)
    return LowRank(first, second)


def _padding(conv: nn.Conv2d) -> tuple[int, int]:
    if isinstance(conv.padding, str):
        raise ValueError("string padding is not factorized; use explicit integers")
    return conv.padding  # type: ignore[return-value]


__all__ = [
    "LowRank",
    "build_deployed",
    "factor_rank",
    "factorize_kxk",
    "factorize_linear",
    "factorize_model",
    "factorize_pointwise",
    "factorized_rank",
]
