"""The pipeline applies a policy for real: pruned, int8, sparse; the measured file is saved."""

from __future__ import annotations

import hashlib

import onnx
import pytest
import torch

from evaluators.budget import Budget
from evaluators.cost import estimate_cost
from evaluators.data import load_dataset
from evaluators.distill import TrainConfig
from evaluators.hardware import Host
from evaluators.pipeline import CompressionConfig, EvaluationContext, evaluate_candidate
from spaces import ArchSpec, Candidate, CompressionPolicy, StagePolicy, StageSpec

ARCH = ArchSpec(
    16,
    (StageSpec("mbconv", 2, 32, 3, expansion=2, stride=2), StageSpec("dsconv", 1, 48, 3, stride=2)),
)


@pytest.fixture(scope="module")
def context():
    digits = load_dataset("digits", seed=0)
    # Random "teacher" logits with alpha 0: these tests check what the pipeline builds.
    return EvaluationContext.create(
        digits,
        torch.randn(len(digits.train), 10),
        Budget(latency_ms=1000),
        Host(runs=5, warmup=1),
        TrainConfig(epochs=3, batch_size=64, alpha=0.0),
        600,
        compression=CompressionConfig(
            align=4, finetune_epochs=1, quantization="qat", qat_epochs=1, calibration_images=64
        ),
        progress=False,
    )


def _candidate(ratio=0.0, bits=32, sparsity=0.0):
    stage = StagePolicy(
        prune_ratio=ratio,
        weight_bits=bits,
        activation_bits=8 if bits <= 8 else 32,
        sparsity=sparsity,
    )
    return Candidate(ARCH, CompressionPolicy((stage, stage)))


def _int8_initializers(path):
    # int8 weights, or uint8 ones with zero point 128 where the host's kernels need it.
    integer = (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)
    graph = onnx.load(str(path)).graph
    return sum(t.data_type in integer and len(t.dims) > 1 for t in graph.initializer)


def test_a_pruned_int8_candidate_ships_a_smaller_int8_model(context, tmp_path):
    dense = evaluate_candidate(_candidate(), context, tmp_path / "dense")
    small = evaluate_candidate(_candidate(0.5, 8), context, tmp_path / "small")
    assert dense.status == small.status == "ok"
    assert small.params < 0.6 * dense.params and small.macs < 0.6 * dense.macs
    assert small.int8 and not dense.int8
    assert "int8" in small.executed
    assert _int8_initializers(tmp_path / "small" / "model.onnx") > 0
    assert _int8_initializers(tmp_path / "dense" / "model.onnx") == 0
    # Weights: half the channels at a quarter of the bits. The file also holds the graph,
    # names and per-channel scales, which dominate for a network this small.
    assert small.flash_kb < dense.flash_kb / 3
    assert small.artifact_bytes < dense.artifact_bytes
    assert small.artifact_bytes == (tmp_path / "small" / "model.onnx").stat().st_size
    # The cost model costed the pruned candidate before training, exactly.
    cost = estimate_cost(_candidate(0.5, 8), context.dataset.input_shape, 10, align=4)
    assert (cost.params, cost.macs) == (small.params, small.macs)
    # Accuracy is the ONNX artifact's own, and close to the PyTorch model's.
    assert 0.5 < small.test_accuracy <= 1.0
    assert abs(small.test_accuracy - small.torch_test_accuracy) < 0.05
    assert {"train", "prune", "finetune", "qat", "export"} <= set(small.seconds)


def test_sparsity_shrinks_stored_size_not_the_latency_source(context, tmp_path):
    dense = evaluate_candidate(_candidate(0.0, 8), context, tmp_path / "dense")
    sparse = evaluate_candidate(_candidate(0.0, 8, sparsity=0.75), context, tmp_path / "sparse")
    # Weights: a quarter of the values plus a 1-bit index; biases, scales and per-layer
    # metadata are fixed (about 3.5 KB of the 12 KB here), so the total drops to ~55 %.
    assert sparse.flash_kb < 0.6 * dense.flash_kb
    # Latency is measured on the same dense graph: same operators, same shapes.
    graphs = [onnx.load(str(tmp_path / name / "model.onnx")).graph for name in ("dense", "sparse")]
    assert [n.op_type for n in graphs[0].node] == [n.op_type for n in graphs[1].node]
    assert sparse.latency_source == dense.latency_source


def test_the_saved_onnx_is_the_measured_one(context, tmp_path):
    metrics = evaluate_candidate(_candidate(0.25, 8), context, tmp_path)
    data = (tmp_path / "model.onnx").read_bytes()
    assert len(data) == metrics.artifact_bytes
    assert {p.name for p in tmp_path.iterdir()} >= {
        "model.onnx",
        "model.pt",
        "candidate.json",
        "channels.json",
    }
    assert hashlib.sha256(data).hexdigest()
