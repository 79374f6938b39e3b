"""The CUDA path (``training.device: cuda``): teacher, KD training, pruning, factorization
and QAT run on the GPU, and the deployable file is still exported and measured on the host.

Runs only where a CUDA GPU is present (CI has none; checked on a lent GPU machine, see the
README's "Tests" section). Everything else in the suite runs on the CPU.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from evaluators.budget import Budget
from evaluators.data import load_dataset
from evaluators.distill import TrainConfig, resolve_device, train
from evaluators.hardware import Host
from evaluators.pipeline import CompressionConfig, EvaluationContext, evaluate_candidate
from evaluators.teacher import TeacherConfig, prepare_teacher
from spaces import build_model, get_candidate
from spaces.candidate import Candidate, CompressionPolicy

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def test_auto_picks_the_gpu_and_training_stays_on_it(digits):
    device = resolve_device("auto")
    assert device.type == "cuda"
    model = build_model(get_candidate("tiny_mixed"), 1, 10).to(device)
    images, labels = digits.train.images[:512], digits.train.labels[:512]
    seen = []

    def on_epoch(epoch, trained):
        seen.append({p.device.type for p in trained.parameters()})

    result = train(
        model,
        images,
        labels,
        None,
        TrainConfig(epochs=3, batch_size=64),
        progress=False,
        on_epoch=on_epoch,
    )
    assert seen == [{"cuda"}] * 3
    assert result.final_loss < math.log(10)  # below a uniform guess's cross-entropy


def test_teacher_trains_on_the_gpu(digits, tmp_path):
    teacher = prepare_teacher(
        digits,
        TeacherConfig(widths=(16, 32), blocks=(1, 1), epochs=5),
        tmp_path,
        progress=False,
        device="cuda",
    )
    assert "on cuda" in teacher.source
    assert teacher.train_logits.device.type == "cpu"  # cached for CPU consumers
    assert teacher.test_accuracy > 0.3  # learned: chance is 0.1


def test_a_compressed_candidate_is_evaluated_with_training_on_the_gpu(digits, tmp_path):
    base = get_candidate("tiny_mixed")
    stages = tuple(
        replace(s, prune_ratio=0.5, rank_ratio=0.5, weight_bits=8, activation_bits=8)
        for s in base.policy.stages
    )
    candidate = Candidate(base.arch, CompressionPolicy(stages))
    logits = torch.randn(len(digits.train), 10)  # unused: alpha 0 trains on the labels
    context = EvaluationContext.create(
        digits,
        logits,
        Budget(latency_ms=1000),
        Host(runs=5, warmup=1),
        TrainConfig(epochs=4, batch_size=64, alpha=0.0),
        400,
        compression=CompressionConfig(finetune_epochs=1, qat_epochs=1),
        device="cuda",
        progress=False,
    )
    metrics = evaluate_candidate(candidate, context, tmp_path)
    assert metrics.status == "ok", metrics.reason
    assert {"train", "prune", "factorize", "finetune", "quantize", "qat"} <= set(metrics.seconds)
    assert metrics.int8  # the int8 file was exported and measured on the host
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert all(t.device.type == "cpu" for t in state.values())
