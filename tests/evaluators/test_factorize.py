"""Low-rank factorization: exact at full rank, really thin at rank r, counted exactly by the
cost model, and exported / quantized / run like any other candidate."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from evaluators.cost import estimate_cost
from evaluators.factorize import (
    LowRank,
    build_deployed,
    factor_rank,
    factorize_kxk,
    factorize_linear,
    factorize_model,
    factorize_pointwise,
    factorized_rank,
)
from evaluators.quantize import calibrate, export_deployable, fold_batchnorm, onnx_logits
from spaces import get_candidate
from spaces.build import build_model, stage_of_parameter
from spaces.candidate import Candidate, CompressionPolicy, StagePolicy
from spaces.channels import plan_channels
from spaces.params import Choice
from spaces.space import SearchSpace

SHAPE = (1, 12, 12)


def _policy(candidate: Candidate, **changes) -> Candidate:
    stages = tuple(replace(s, **changes) for s in candidate.policy.stages)
    return Candidate(candidate.arch, CompressionPolicy(stages))


def _weights(module: nn.Module) -> int:
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.Conv2d | nn.Linear))


def _trained_like(model: nn.Module) -> nn.Module:
    """Random batch-norm statistics, so folding has something to fold."""
    torch.manual_seed(1)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.mark.parametrize("stride", [1, 2])
def test_full_rank_pointwise_reproduces_the_layer(stride):
    torch.manual_seed(0)
    conv = nn.Conv2d(12, 20, 1, stride=stride, bias=True)
    pair = factorize_pointwise(conv, rank=12)
    x = torch.randn(3, 12, 9, 9)
    torch.testing.assert_close(pair(x), conv(x), atol=1e-4, rtol=0)


def test_full_rank_linear_reproduces_the_layer():
    torch.manual_seed(0)
    linear = nn.Linear(24, 10)
    pair = factorize_linear(linear, rank=10)
    x = torch.randn(5, 24)
    torch.testing.assert_close(pair(x), linear(x), atol=1e-4, rtol=0)


@pytest.mark.parametrize(("kernel", "stride"), [(3, 1), (3, 2), (5, 1)])
def test_full_rank_kxk_as_kx1_then_1xk_reproduces_the_layer(kernel, stride):
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 8, kernel, stride=stride, padding=kernel // 2, bias=False)
    pair = factorize_kxk(conv, rank=min(6 * kernel, 8 * kernel))
    assert pair[0].kernel_size == (kernel, 1) and pair[1].kernel_size == (1, kernel)
    x = torch.randn(2, 6, 11, 11)
    torch.testing.assert_close(pair(x), conv(x), atol=1e-4, rtol=0)


def test_truncated_svd_is_the_best_rank_r_approximation():
    """Eckart-Young: the error of the rank-r product is the norm of the dropped singular
    values, which the factorized layer must match."""
    torch.manual_seed(0)
    linear = nn.Linear(16, 16, bias=False)
    pair = factorize_linear(linear, rank=4)
    product = pair[1].weight @ pair[0].weight
    dropped = torch.linalg.svdvals(linear.weight.detach().double())[4:]
    error = torch.linalg.matrix_norm((product - linear.weight).double())
    assert error.item() == pytest.approx(dropped.norm().item(), rel=1e-5)


def test_rank_r_pointwise_layer_holds_exactly_r_times_in_plus_out_weights():
    conv = nn.Conv2d(16, 48, 1, bias=False)
    pair = factorize_pointwise(conv, rank=8)
    assert isinstance(pair, LowRank) and pair.rank == 8
    assert _weights(pair) == 8 * (16 + 48)
    assert [tuple(m.weight.shape) for m in pair] == [(8, 16, 1, 1), (48, 8, 1, 1)]


def test_a_layer_is_factorized_only_where_it_stores_fewer_weights():
    assert factor_rank(32, 32, 0.5) is None  # 16 * 64 == 32 * 32: no saving
    assert factor_rank(32, 32, 0.25) == 8
    assert factor_rank(64, 16, 0.5) == 8  # 8 * 80 < 1024
    policy = StagePolicy(rank_ratio=0.25)
    assert factorized_rank(nn.Conv2d(32, 32, 3, padding=1), policy) is None  # k x k: opt-in
    assert factorized_rank(nn.Conv2d(32, 32, 3, padding=1, groups=32), policy) is None
    assert factorized_rank(nn.Conv2d(32, 32, 3, padding=1), replace(policy, factorize_kxk=True))
    assert factorized_rank(nn.Conv2d(32, 32, 1), StagePolicy()) is None


@pytest.mark.parametrize("kxk", [False, True])
def test_cost_model_counts_the_factorized_layers_exactly(kxk):
    base = get_candidate("tiny_mixed")
    candidate = _policy(base, rank_ratio=0.25, factorize_kxk=kxk)
    plain = build_model(base, 1, 10).eval()
    expected_saving = 0
    stages = candidate.policy.stages
    for name, module in plain.named_modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            stage = stages[stage_of_parameter(name + ".", len(stages))]
            rank = factorized_rank(module, stage)
            if rank is None:
                continue
            if isinstance(module, nn.Linear):
                fin, fout, kh, kw = module.in_features, module.out_features, 1, 1
            else:
                fout, fin, kh, kw = module.weight.shape
            expected_saving += fin * fout * kh * kw - rank * (fin * kh + fout * kw)
    assert expected_saving > 0
    before = estimate_cost(base, SHAPE, 10)
    after = estimate_cost(candidate, SHAPE, 10)
    assert before.params - after.params == expected_saving
    assert after.macs < before.macs and after.weight_bytes < before.weight_bytes

    # The module the search trains and deploys has exactly the cost model's parameters.
    real = factorize_model(_trained_like(build_model(candidate, 1, 10)), candidate)
    assert sum(p.numel() for p in real.parameters()) == after.params
    assert any(isinstance(m, LowRank) for m in real.modules())
    assert candidate.policy.stages[0].genome.endswith("r0.25" + ("k" if kxk else ""))


def test_factorizing_after_pruning_uses_the_pruned_shapes():
    candidate = _policy(get_candidate("tiny_mixed"), prune_ratio=0.5, rank_ratio=0.5)
    plan = plan_channels(candidate, 4)
    deployed = build_deployed(candidate, 1, 10, plan=plan)
    cost = estimate_cost(candidate, SHAPE, 10)
    assert sum(p.numel() for p in deployed.parameters()) == cost.params
    unpruned = estimate_cost(_policy(candidate, prune_ratio=0.0), SHAPE, 10)
    assert cost.params < unpruned.params


def test_batch_norm_folds_into_the_factorized_pair():
    candidate = _policy(get_candidate("tiny_mixed"), rank_ratio=0.25, factorize_kxk=True)
    model = factorize_model(_trained_like(build_model(candidate, 1, 10)), candidate)
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(4, *SHAPE)
    torch.testing.assert_close(folded(x), model(x), atol=1e-4, rtol=1e-4)


def test_a_factorized_model_cannot_be_factorized_twice():
    candidate = _policy(get_candidate("tiny_mixed"), rank_ratio=0.25)
    model = factorize_model(build_model(candidate, 1, 10), candidate)
    with pytest.raises(ValueError, match="factorized already"):
        factorize_model(model, candidate)


@pytest.mark.parametrize("bits", [32, 8])
def test_factorized_candidate_exports_to_onnx_and_runs_in_onnx_runtime(tmp_path, bits):
    candidate = _policy(
        get_candidate("tiny_mixed"),
        rank_ratio=0.25,
        factorize_kxk=True,
        weight_bits=bits,
        activation_bits=bits,
    )
    model = factorize_model(_trained_like(build_model(candidate, 1, 10)), candidate)
    torch.manual_seed(0)
    images = torch.rand(64, *SHAPE)
    if bits == 8:
        calibrate(model, images)
    artifact = export_deployable(model, candidate, SHAPE, tmp_path / "model.onnx", images)
    assert artifact.is_int8 is (bits == 8)
    graph = onnx.load(str(artifact.path)).graph
    kernels = {
        tuple(a.ints) for node in graph.node for a in node.attribute if a.name == "kernel_shape"
    }
    assert {(3, 1), (1, 3)} <= kernels  # the k x 1 / 1 x k pairs are in the file
    if bits == 8:
        assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in graph.node}
    logits = onnx_logits(artifact.path, images)
    reference = model.eval()(images).detach()
    agreement = (logits.argmax(1) == reference.argmax(1)).float().mean().item()
    if bits == 32:
        np.testing.assert_allclose(logits.numpy(), reference.numpy(), atol=1e-3)
    else:
        assert agreement >= 0.8, agreement


def test_the_space_proposes_rank_ratios_per_stage():
    space = replace(
        SearchSpace(), rank_ratio=Choice((1.0, 0.5)), factorize_kxk=Choice((False, True))
    )

    class Fixed:
        def suggest_categorical(self, name, options):
            return options[-1]

        def suggest_int(self, name, low, high, step=1, log=False):
            return low

    candidate = space.suggest(Fixed())
    assert all(s.rank_ratio == 0.5 and s.factorize_kxk for s in candidate.policy.stages)
    assert Candidate.from_json(candidate.to_json()) == candidate
