from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch
from torch import nn

from evaluators.cost import module_cost
from evaluators.distill import kd_loss
from evaluators.prune import (
    CRITERIA,
    apply_sparsity,
    channel_importance,
    prune_model,
    select_channels,
)
from spaces import (
    ArchSpec,
    Candidate,
    ChannelPlan,
    StageSpec,
    build_model,
    get_candidate,
    plan_channels,
)

SHAPES = [(1, 28, 28), (3, 32, 32)]

KINDS = {
    "mbconv_residual": ArchSpec(
        16,
        (
            StageSpec("mbconv", 2, 16, 3, expansion=2),  # residual with the stem
            StageSpec("mbconv", 2, 24, 5, expansion=4, stride=2),
        ),
    ),
    "mbconv_expansion1": ArchSpec(
        16,
        (
            StageSpec("mbconv", 2, 16, 3, expansion=1),
            StageSpec("mbconv", 1, 32, 3, expansion=1, stride=2),
        ),
    ),
    "dsconv": ArchSpec(8, (StageSpec("dsconv", 2, 16, 3, stride=2), StageSpec("dsconv", 1, 24, 5))),
    "gconv_g2_residual": ArchSpec(
        16,
        (
            StageSpec("gconv", 2, 16, 3, expansion=2, groups=2),  # residual with the stem
            StageSpec("gconv", 1, 32, 3, expansion=2, groups=2, stride=2),
        ),
    ),
    "gconv_g4": ArchSpec(
        16,
        (
            StageSpec("gconv", 2, 32, 3, expansion=2, groups=4, stride=2),
            StageSpec("gconv", 1, 32, 5, expansion=4, groups=4),  # residual with stage 0
        ),
    ),
    "conv": ArchSpec(8, (StageSpec("conv", 2, 16, 3), StageSpec("conv", 1, 24, 3, stride=2))),
    "mixed": get_candidate("tiny_mixed").arch,
}


def with_policy(candidate: Candidate | ArchSpec, **policy: float) -> Candidate:
    """``candidate`` with the same ``StagePolicy`` fields set on every stage."""
    if isinstance(candidate, ArchSpec):
        candidate = Candidate(candidate)
    stages = tuple(replace(stage, **policy) for stage in candidate.policy.stages)
    return replace(candidate, policy=replace(candidate.policy, stages=stages))


def candidates_under_test(sampled_candidates) -> list[Candidate]:
    return [Candidate(arch) for arch in KINDS.values()] + sampled_candidates(6, seed=11)


def randomized(candidate: Candidate, in_channels: int, seed: int = 0) -> nn.Module:
    """A network in eval mode whose batch norms are not the identity."""
    torch.manual_seed(seed)
    model = build_model(candidate, in_channels, 10)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.2)
                module.running_mean.normal_(0, 0.2)
                module.running_var.uniform_(0.5, 1.5)
    return model.eval()


def silence_removed(model: nn.Module, candidate: Candidate, keep: dict) -> None:
    """Make every channel that pruning removes output exactly 0: zero its conv rows and the
    batch norm's weight and bias in every conv_bn that writes it (written per block kind here,
    independently of evaluators.prune, with the model's own shuffle moving gconv masks)."""

    def removed(name: str, count: int) -> torch.Tensor:
        mask = torch.ones(count, dtype=torch.bool)
        mask[keep[name]] = False
        return mask

    def silence(conv_bn: nn.Sequential, mask: torch.Tensor) -> None:
        conv_bn[0].weight[mask] = 0
        conv_bn[1].weight[mask] = 0
        conv_bn[1].bias[mask] = 0

    with torch.no_grad():
        source = removed("stem", candidate.arch.stem_width)
        silence(model.stem, source)
        for index, (spec, stage) in enumerate(
            zip(candidate.arch.stages, model.stages, strict=True)
        ):
            out = removed(f"stages.{index}", spec.width)
            for block, module in enumerate(stage):
                body = module.body
                hidden_key = f"stages.{index}.{block}.hidden"
                if spec.kind == "mbconv":
                    if spec.expansion != 1:
                        hidden = removed(hidden_key, body[0][0].out_channels)
                        silence(body[0], hidden)
                    else:
                        hidden = source
                    silence(body[-2], hidden)
                    silence(body[-1], out)
                elif spec.kind == "dsconv":
                    silence(body[0], source)
                    silence(body[1], out)
                elif spec.kind == "gconv":
                    hidden = removed(hidden_key, body[0][0].out_channels)
                    silence(body[0], hidden)
                    moved = body[1](hidden.float().view(1, -1, 1, 1)).flatten().bool()
                    silence(body[2], moved)
                    silence(body[3], out)
                else:
                    silence(body, out)
                source = out


@pytest.mark.parametrize("shape", SHAPES)
def test_pruned_network_is_smaller_runs_and_costs_as_planned(sampled_candidates, shape):
    for candidate in candidates_under_test(sampled_candidates):
        candidate = with_policy(candidate, prune_ratio=0.5)
        plan = plan_channels(candidate)
        model = build_model(candidate, shape[0], 10).eval()
        pruned = prune_model(model, candidate, plan)
        with torch.no_grad():
            assert pruned(torch.randn(2, *shape)).shape == (2, 10)
        full, cost = module_cost(model, candidate, shape), module_cost(pruned, candidate, shape)
        planned = module_cost(
            build_model(candidate, shape[0], 10, device="meta", plan=plan), candidate, shape
        )
        assert (cost.params, cost.macs) == (planned.params, planned.macs), candidate.genome
        assert cost.weight_bytes == planned.weight_bytes
        assert cost.params < 0.75 * full.params, (candidate.genome, plan.notes)
        assert cost.macs < 0.75 * full.macs, (candidate.genome, plan.notes)


@pytest.mark.parametrize("name", [*KINDS, "sampled"])
def test_pruning_removes_only_silent_channels(sampled_candidates, name):
    """The pruned network is a true sub-network: if the removed channels output 0, the
    pruned and the unpruned network compute the same function (gconv's shuffle included)."""
    cases = sampled_candidates(6, seed=12) if name == "sampled" else [Candidate(KINDS[name])]
    for case, candidate in enumerate(cases):
        candidate = with_policy(candidate, prune_ratio=0.5)
        plan = plan_channels(candidate)
        shape = SHAPES[case % 2]
        model = randomized(candidate, shape[0], seed=case)
        keep = select_channels(channel_importance(model, candidate), candidate, plan)
        silence_removed(model, candidate, keep)
        # Silent channels score 0 on every producer, so L1 now removes exactly them.
        after = select_channels(channel_importance(model, candidate), candidate, plan)
        assert all(torch.equal(keep[key], after[key]) for key in keep)
        pruned = prune_model(model, candidate, plan, "l1")
        assert sum(p.numel() for p in pruned.parameters()) < sum(
            p.numel() for p in model.parameters()
        )
        x = torch.randn(4, *shape)
        with torch.no_grad():
            expected, actual = model(x), pruned(x)
        assert expected.abs().max() > 1e-3  # not trivially zero
        torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5, msg=candidate.genome)


def test_a_selection_that_ignores_the_shuffle_is_refused(monkeypatch):
    """Keeping the first half of every group's positions puts all kept channels in one group
    of the second grouped conv after the shuffle: not a sub-network, so the copy refuses."""
    import evaluators.prune as prune

    def naive(scores, count, groups, name):
        per_group = len(scores) // groups
        return torch.cat([torch.arange(count // groups) + g * per_group for g in range(groups)])

    monkeypatch.setattr(prune, "_gconv_hidden", naive)
    arch = ArchSpec(16, (StageSpec("gconv", 1, 16, 3, expansion=2, groups=2, stride=2),))
    candidate = with_policy(arch, prune_ratio=0.5)
    model = build_model(candidate, 1, 10)
    with pytest.raises(ValueError, match="groups"):
        prune_model(model, candidate, plan_channels(candidate))


def test_ratio_zero_keeps_every_weight_and_output(sampled_candidates):
    for candidate in candidates_under_test(sampled_candidates):
        plan = plan_channels(candidate)
        assert plan == ChannelPlan.full(candidate.arch)
        model = randomized(candidate, 3)
        pruned = prune_model(model, candidate, plan).eval()
        original, copied = model.state_dict(), pruned.state_dict()
        assert original.keys() == copied.keys()
        assert all(torch.equal(original[k], copied[k]) for k in original)
        x = torch.randn(2, 3, 16, 16)
        with torch.no_grad():
            assert torch.equal(model(x), pruned(x))


def test_the_input_model_is_not_modified():
    candidate = with_policy(KINDS["mixed"], prune_ratio=0.5)
    model = build_model(candidate, 1, 10).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batch = (torch.randn(8, 1, 12, 12), torch.randint(0, 10, (8,)), torch.randn(8, 10))
    pruned = prune_model(model, candidate, plan_channels(candidate), "taylor", batch)
    assert pruned.training and model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def _conv_candidate() -> Candidate:
    return with_policy(ArchSpec(4, (StageSpec("conv", 1, 8, 3, stride=2),)), prune_ratio=0.5)


def test_l1_keeps_the_largest_norm_channels_and_l2_differs():
    candidate = _conv_candidate()
    model = build_model(candidate, 1, 10)
    conv = model.stages[0][0].body[0]
    scales = torch.tensor([3.0, 7.0, 1.0, 5.0, 0.5, 6.0, 2.0, 4.0])
    with torch.no_grad():
        signs = torch.randn_like(conv.weight).sign()
        conv.weight.copy_(signs * scales[:, None, None, None])
    l1 = channel_importance(model, candidate, "l1")
    torch.testing.assert_close(l1["stages.0"], scales * 36)  # 4 inputs x 3 x 3 weights
    keep = select_channels(l1, candidate, plan_channels(candidate, align=1))
    assert keep["stages.0"].tolist() == [1, 3, 5, 7]
    pruned = prune_model(model, candidate, plan_channels(candidate, align=1), "l1")
    stem = keep["stem"]
    expected = conv.weight[[1, 3, 5, 7]][:, stem]
    assert torch.equal(pruned.stages[0][0].body[0].weight, expected)
    assert torch.equal(pruned.classifier.weight, model.classifier.weight[:, [1, 3, 5, 7]])

    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0] = 1.0  # L1 36, L2 6
        conv.weight[1, 0, 0, 0] = 10.0  # L1 10, L2 10
    l1 = channel_importance(model, candidate, "l1")["stages.0"]
    l2 = channel_importance(model, candidate, "l2")["stages.0"]
    assert l1[0] == 36 and l1[1] == 10
    assert l2[0] == 6 and l2[1] == 10


def test_coupled_tensors_share_one_score():
    candidate = with_policy(KINDS["mbconv_residual"], prune_ratio=0.5)
    model = build_model(candidate, 1, 10)
    scores = channel_importance(model, candidate, "l2")
    assert scores["stem"] is scores["stages.0"]
    stem_l2 = model.stem[0].weight.flatten(1).norm(dim=1)
    projections = sum(block.body[-1][0].weight.flatten(1).norm(dim=1) for block in model.stages[0])
    torch.testing.assert_close(scores["stem"], stem_l2 + projections)
    assert set(scores) >= {"stages.0.0.hidden", "stages.0.1.hidden", "stages.1.0.hidden"}


@pytest.mark.parametrize("teacher", [True, False])
def test_taylor_is_weight_times_gradient_of_the_distillation_loss(teacher):
    candidate = _conv_candidate()
    torch.manual_seed(0)
    model = build_model(candidate, 1, 10)
    images, labels = torch.randn(6, 1, 10, 10), torch.randint(0, 10, (6,))
    logits = torch.randn(6, 10) if teacher else None
    scores = channel_importance(model, candidate, "taylor", (images, labels, logits))

    reference = build_model(candidate, 1, 10)
    reference.load_state_dict(model.state_dict())
    reference.eval()
    kd_loss(reference(images), logits, labels, 4.0, 0.9).backward()
    weight = reference.stem[0].weight
    expected = (weight * weight.grad).flatten(1).sum(1).abs()
    torch.testing.assert_close(scores["stem"], expected)
    assert scores["stem"].sum() > 0


def test_bad_criteria_are_refused():
    candidate = _conv_candidate()
    model = build_model(candidate, 1, 10)
    assert CRITERIA == ("l1", "l2", "taylor")
    with pytest.raises(ValueError, match="needs a batch"):
        channel_importance(model, candidate, "taylor")
    with pytest.raises(ValueError, match="needs a batch"):
        prune_model(model, candidate, plan_channels(candidate), "taylor")
    with pytest.raises(ValueError, match="unknown criterion"):
        channel_importance(model, candidate, "l0")
    other = build_model(get_candidate("tiny_dsconv"), 1, 10)
    with pytest.raises(ValueError, match="not the unpruned network"):
        prune_model(other, candidate, plan_channels(candidate))


def test_apply_sparsity_zeroes_the_smallest_weights_of_each_stage():
    arch = KINDS["mixed"]
    sparsities = (0.5, 0.0, 0.3, 0.9)
    candidate = Candidate(arch)
    policy = replace(
        candidate.policy,
        stages=tuple(
            replace(stage, sparsity=s)
            for stage, s in zip(candidate.policy.stages, sparsities, strict=True)
        ),
    )
    candidate = replace(candidate, policy=policy)
    torch.manual_seed(0)
    model = build_model(candidate, 1, 10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert apply_sparsity(model, candidate) is model
    assert not any("weight_orig" in k or "weight_mask" in k for k in model.state_dict())
    checked = 0
    for name, module in model.named_modules():
        if not isinstance(module, nn.Conv2d | nn.Linear):
            continue
        assert isinstance(module.weight, nn.Parameter) and not module._forward_pre_hooks
        stage = 0 if name.startswith("stem") else len(sparsities) - 1
        if name.startswith("stages."):
            stage = int(name.split(".")[1])
        original = before[name + ".weight"]
        zeros = module.weight == 0
        assert int(zeros.sum()) == round(sparsities[stage] * original.numel()), name
        if zeros.any():
            assert original[zeros].abs().max() <= original[~zeros].abs().min()
            assert torch.equal(module.weight[~zeros], original[~zeros])
        checked += 1
    assert checked == len([m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)])


def test_random_sparsity_zeroes_the_same_counts_as_magnitude_but_other_weights():
    """compression.sparsity_method: random is the control that shows what magnitude buys;
    it zeroes exactly as many weights per layer, so the cost model's stored size holds."""
    arch = KINDS["mixed"]
    candidate = Candidate(arch)
    policy = replace(
        candidate.policy, stages=tuple(replace(s, sparsity=0.5) for s in candidate.policy.stages)
    )
    candidate = replace(candidate, policy=policy)
    torch.manual_seed(0)
    l1 = build_model(candidate, 1, 10)
    random = copy.deepcopy(l1)
    apply_sparsity(l1, candidate, "l1")
    apply_sparsity(random, candidate, "random")
    differ = 0
    for (name, a), (_, b) in zip(l1.named_modules(), random.named_modules(), strict=True):
        if isinstance(a, nn.Conv2d | nn.Linear):
            zeros = round(0.5 * a.weight.numel())
            assert int((a.weight == 0).sum()) == zeros == int((b.weight == 0).sum()), name
            differ += int(((a.weight == 0) != (b.weight == 0)).any())
    assert differ > 0
