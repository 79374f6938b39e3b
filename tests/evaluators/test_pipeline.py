from __future__ import annotations

import pytest
import torch

from evaluators import pipeline
from evaluators.budget import Budget
from evaluators.data import load_dataset
from evaluators.distill import TrainConfig
from evaluators.hardware import Host
from evaluators.pipeline import EvaluationContext, evaluate_candidate
from spaces import get_candidate


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def _context(digits, budget, subset=200):
    # Random "teacher" logits: these tests check the pipeline's flow, not accuracy.
    logits = torch.randn(len(digits.train), 10)
    return EvaluationContext.create(
        digits,
        logits,
        budget,
        Host(runs=5, warmup=1),
        TrainConfig(epochs=1, batch_size=64),
        subset,
        progress=False,
    )


def test_a_candidate_over_budget_is_never_trained(digits, monkeypatch):
    monkeypatch.setattr(
        pipeline, "train", lambda *a, **k: pytest.fail("over budget: must not train")
    )
    metrics = evaluate_candidate(
        get_candidate("tiny_mixed"), _context(digits, Budget(latency_ms=0.001))
    )
    assert metrics.status == "infeasible"
    assert "latency_ms" in metrics.reason
    assert metrics.latency_ms > 0.001 and metrics.accuracy is None
    assert "train" not in metrics.seconds


def test_memory_budget_is_checked_from_the_computed_cost(digits, monkeypatch):
    monkeypatch.setattr(pipeline, "train", lambda *a, **k: pytest.fail("must not train"))
    metrics = evaluate_candidate(
        get_candidate("tiny_mixed"), _context(digits, Budget(peak_memory_kb=0.5))
    )
    assert metrics.status == "infeasible" and "peak_memory_kb" in metrics.reason
    assert metrics.peak_memory_kb > 0.5
    # Where it peaks, as the schedule of the deployed module says: what to shrink.
    from evaluators.cost import estimate_cost

    cost = estimate_cost(get_candidate("tiny_mixed"), digits.input_shape, digits.num_classes)
    assert metrics.peak_memory_at == cost.peak_step and cost.peak_step.startswith(
        ("stem", "stages", "input")
    )


def test_memory_and_flash_are_of_the_stage_widths_the_host_runs(digits, monkeypatch):
    # Weight-only or activation-only 8 bits: ONNX Runtime runs (and stores) the stage in
    # fp32, so it is costed as fp32, not at its 8-bit grid.
    from dataclasses import replace

    from evaluators.cost import estimate_cost
    from spaces import CompressionPolicy, StagePolicy

    monkeypatch.setattr(pipeline, "train", lambda *a, **k: pytest.fail("must not train"))
    base = get_candidate("tiny_dsconv")
    stages = len(base.arch.stages)

    def with_widths(weights: int, activations: int):
        policy = StagePolicy(weight_bits=weights, activation_bits=activations)
        return replace(base, policy=CompressionPolicy((policy,) * stages))

    context = _context(digits, Budget(peak_memory_kb=0.01))
    shape, classes = digits.input_shape, digits.num_classes
    fp32 = estimate_cost(with_widths(32, 32), shape, classes)
    for widths in ((32, 8), (8, 32)):
        metrics = evaluate_candidate(with_widths(*widths), context)
        assert metrics.peak_memory_kb == pytest.approx(fp32.peak_memory_kb)
        assert metrics.flash_kb == pytest.approx(fp32.flash_kb)
    int8 = evaluate_candidate(with_widths(8, 8), context)
    assert int8.peak_memory_kb < fp32.peak_memory_kb and int8.flash_kb < fp32.flash_kb


def test_a_feasible_candidate_is_trained_and_saved(digits, tmp_path):
    metrics = evaluate_candidate(
        get_candidate("tiny_dsconv"), _context(digits, Budget(latency_ms=1000)), tmp_path
    )
    assert metrics.status == "ok"
    assert 0.0 <= metrics.accuracy <= 1.0 and 0.0 <= metrics.test_accuracy <= 1.0
    assert metrics.train_subset == 200 and metrics.epochs == 1
    assert set(metrics.seconds) == {"cost", "latency", "train", "export"}
    assert {p.name for p in tmp_path.iterdir()} == {
        "model.pt",
        "candidate.json",
        "model.onnx",
        "channels.json",
    }
    assert metrics.int8 is False and metrics.executed
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert (
        sum(v.numel() for k, v in state.items() if "running" not in k and "num_batches" not in k)
        == metrics.params
    )


def test_every_candidate_trains_on_the_same_subset(digits):
    a = _context(digits, Budget())
    b = _context(digits, Budget())
    assert torch.equal(a.subset, b.subset) and len(a.subset) == 200


def test_a_factorized_candidate_is_factorized_fine_tuned_and_saved_thin(digits, tmp_path):
    from dataclasses import replace

    from evaluators.factorize import LowRank, build_deployed
    from spaces.candidate import Candidate, CompressionPolicy
    from spaces.channels import ChannelPlan

    base = get_candidate("tiny_mixed")
    stages = tuple(replace(s, rank_ratio=0.25) for s in base.policy.stages)
    candidate = Candidate(base.arch, CompressionPolicy(stages))
    metrics = evaluate_candidate(candidate, _context(digits, Budget(latency_ms=1000)), tmp_path)
    assert metrics.status == "ok", metrics.reason
    assert {"factorize", "finetune"} <= set(metrics.seconds)
    # model.pt holds the thin layers, and loads into the deployed structure.
    plan = ChannelPlan.from_json((tmp_path / "channels.json").read_text())
    model = build_deployed(candidate, 1, 10, plan=plan)
    model.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    assert any(isinstance(m, LowRank) for m in model.modules())
    assert sum(p.numel() for p in model.parameters()) == metrics.params
