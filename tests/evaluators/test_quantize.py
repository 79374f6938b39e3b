from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from sklearn.datasets import load_digits
from torch import nn

from evaluators.distill import TrainConfig, evaluate_accuracy, predict_logits, train
from evaluators.hardware import export_onnx
from evaluators.quantize import (
    ActivationFakeQuant,
    QATConv2d,
    QATLinear,
    calibrate,
    export_deployable,
    fake_quantize_weight,
    fold_batchnorm,
    node_stages,
    onnx_accuracy,
    onnx_logits,
    prepare_qat,
    weights_unsigned,
)
from spaces import build_model, get_candidate
from spaces.candidate import ArchSpec, Candidate, CompressionPolicy, StagePolicy, StageSpec

DIGITS_SHAPE = (1, 8, 8)
FP32 = StagePolicy()
W8A8 = StagePolicy(weight_bits=8, activation_bits=8)


def with_policy(candidate: Candidate, *stages: StagePolicy) -> Candidate:
    if len(stages) == 1:
        stages = stages * len(candidate.arch.stages)
    return Candidate(candidate.arch, CompressionPolicy(stages))


@pytest.fixture(scope="module")
def digits():
    """sklearn's digits as 1x8x8 images in [0, 1]: 1400 to train on, 397 held out."""
    data = load_digits()
    images = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16
    labels = torch.tensor(data.target)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    train_idx, test_idx = order[:1400], order[1400:]
    return images[train_idx], labels[train_idx], images[test_idx], labels[test_idx]


@pytest.fixture(scope="module")
def trained(digits):
    """tiny_mixed trained on digits (~98 % held-out), so predictions are not one class."""
    torch.manual_seed(0)
    images, labels, _, _ = digits
    model = build_model(get_candidate("tiny_mixed"), 1, 10)
    config = TrainConfig(epochs=8, batch_size=64, lr=1e-2, alpha=0.0)
    train(model, images, labels, None, config, progress=False)
    return model.eval()


def graph_of(path):
    graph = onnx.load(str(path)).graph
    initializers = {init.name: init for init in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    return graph, initializers, producers


def int8_weight(node, initializers, producers) -> np.ndarray | None:
    """The integer weights behind a Conv / Gemm weight input (zero point removed), or None
    when the weight is float. Stored as int8, or as uint8 with zero point 128 on hosts
    whose kernels saturate (``weights_unsigned``)."""
    producer = producers.get(node.input[1])
    if producer is None or producer.op_type != "DequantizeLinear":
        return None
    init = initializers[producer.input[0]]
    expected = onnx.TensorProto.UINT8 if weights_unsigned() else onnx.TensorProto.INT8
    assert init.data_type == expected
    zero_point = numpy_helper.to_array(initializers[producer.input[2]]).astype(np.int64)
    assert (zero_point == (128 if weights_unsigned() else 0)).all()  # symmetric
    return numpy_helper.to_array(init).astype(np.int64) - int(zero_point.flat[0])


# --------------------------------------------------------------------------- folding

ODD_WIDTHS = Candidate(
    ArchSpec(
        5,
        (
            StageSpec("dsconv", 1, 7, 3),
            StageSpec("mbconv", 2, 9, 3, expansion=3, stride=2),
            StageSpec("gconv", 1, 9, 5, expansion=1, groups=3),
            StageSpec("conv", 1, 11, 3),
        ),
    )
)


@pytest.mark.parametrize(
    "candidate", [get_candidate("tiny_mixed"), get_candidate("tiny_dsconv"), ODD_WIDTHS]
)
def test_folding_batch_norm_preserves_eval_outputs(candidate):
    torch.manual_seed(0)
    model = build_model(candidate, 3, 10)
    images, labels = torch.randn(96, 3, 16, 16) * 2 + 0.5, torch.randint(0, 10, (96,))
    # A few training steps move weights, BN affine parameters and running statistics.
    train(model, images, labels, None, TrainConfig(epochs=2, batch_size=32), progress=False)
    model.eval()
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules()), "original untouched"
    x = torch.randn(8, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), atol=1e-5, rtol=0)
        folded.train()  # no batch statistics are left: training mode computes the same
        torch.testing.assert_close(folded(x), model(x), atol=1e-5, rtol=0)


def test_a_conv_and_batch_norm_kept_apart_fold_unless_the_convs_output_is_shared():
    # A block written timm's way (self.conv, self.bn) is no nn.Sequential: found on the
    # graph. A conv whose output another module also reads must keep its own weights.
    class Apart(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(8)
            self.side = nn.Conv2d(8, 8, 1)
            self.side_bn = nn.BatchNorm2d(8)
            self.shared = nn.BatchNorm2d(8)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + torch.relu(self.side_bn(self.side(y))) + self.shared(y)

    torch.manual_seed(0)
    model = Apart()
    for bn in (model.bn, model.side_bn, model.shared):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 2.0)
    model.eval()
    folded = fold_batchnorm(model).eval()
    assert isinstance(folded.side_bn, nn.Identity) and folded.side.bias is not None
    assert isinstance(folded.bn, nn.BatchNorm2d) and isinstance(folded.shared, nn.BatchNorm2d)
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), atol=1e-5, rtol=0)


# --------------------------------------------------------------------------- fake quantization


def test_weights_are_rounded_to_a_symmetric_per_channel_grid():
    weight = torch.tensor([[1.0, -0.6, 0.3], [0.2, 0.12, -0.05]])
    # 2 bits: levels {-1, 0, 1} x max|w| per row.
    expected = torch.tensor([[1.0, -1.0, 0.0], [0.2, 0.2, 0.0]])
    torch.testing.assert_close(fake_quantize_weight(weight, 2), expected)
    # 4 bits: scale max|w| / 7 per row.
    scale = torch.tensor([[1 / 7], [0.2 / 7]])
    torch.testing.assert_close(fake_quantize_weight(weight, 4), torch.round(weight / scale) * scale)
    assert fake_quantize_weight(weight, 32) is weight


def test_weight_fake_quantization_passes_gradients_straight_through():
    weight = torch.randn(4, 3, 3, 3, requires_grad=True)
    fake_quantize_weight(weight, 4).sum().backward()
    torch.testing.assert_close(weight.grad, torch.ones_like(weight))


def test_four_bit_weights_take_at_most_fifteen_values_per_output_channel():
    candidate = with_policy(
        get_candidate("tiny_mixed"), StagePolicy(weight_bits=4, activation_bits=8)
    )
    qat = prepare_qat(build_model(candidate, 1, 10), candidate)
    convs = [m for m in qat.modules() if isinstance(m, QATConv2d)]
    assert len(convs) == 13
    for conv in convs:
        weight = conv.quantized_weight().detach()
        for channel in weight:
            assert len(torch.unique(channel)) <= 2**4 - 1


def test_prepare_qat_wraps_only_stages_below_32_bits():
    candidate = with_policy(
        get_candidate("tiny_mixed"),
        StagePolicy(weight_bits=8, activation_bits=8),
        StagePolicy(weight_bits=16, activation_bits=32),
        FP32,
        StagePolicy(weight_bits=32, activation_bits=16),
    )
    qat = prepare_qat(build_model(candidate, 1, 10), candidate)
    kinds = {name: type(m) for name, m in qat.named_modules()}
    assert kinds["stem.0"] is QATConv2d and kinds["stages.0.0.body.0"] is QATConv2d
    assert kinds["stages.1.0.body.0.0"] is QATConv2d
    assert qat.stages[1][0].body[0][0].act_quant is None
    assert kinds["stages.2.0.body.0.0"] is nn.Conv2d
    assert kinds["classifier"] is QATLinear and qat.classifier.weight_bits == 32
    assert qat.classifier.act_quant.bits == 16
    assert not any(isinstance(m, nn.BatchNorm2d) for m in qat.modules())


def test_calibrate_sets_ranges_to_the_min_max_and_leaves_eval_mode(digits):
    images = digits[0][:300]
    candidate = with_policy(get_candidate("tiny_mixed"), W8A8)
    qat = prepare_qat(build_model(candidate, 1, 10), candidate).eval()
    with pytest.raises(RuntimeError, match="calibrate"):
        qat(images[:2])
    weights = {k: v.clone() for k, v in qat.state_dict().items() if k.endswith("weight")}
    calibrate(qat, images, batch_size=128)
    assert not qat.training
    stem = qat.stem[0].act_quant
    assert stem.min_val.item() == images.min().item()
    assert stem.max_val.item() == images.max().item()
    for key, value in weights.items():
        assert torch.equal(qat.state_dict()[key], value), key
    assert all(bool(m.observed) for m in qat.modules() if isinstance(m, ActivationFakeQuant))


def test_sixteen_bit_fake_quantization_is_near_lossless(digits, trained):
    # Calibrated on the images it is compared on: no activation is clipped, so what is
    # left is rounding error alone.
    images = digits[2]
    candidate = with_policy(get_candidate("tiny_mixed"), StagePolicy(0.0, 16, 16))
    qat = calibrate(prepare_qat(trained, candidate), images)
    reference = predict_logits(fold_batchnorm(trained), images)
    torch.testing.assert_close(predict_logits(qat, images), reference, atol=2e-3, rtol=0)


def test_qat_model_fine_tunes_with_distillation(digits, trained):
    images, labels, _, _ = digits
    candidate = with_policy(
        get_candidate("tiny_mixed"),
        StagePolicy(weight_bits=4, activation_bits=8),
        StagePolicy(weight_bits=2, activation_bits=8),
        StagePolicy(weight_bits=8, activation_bits=16),
        StagePolicy(weight_bits=16, activation_bits=32),
    )
    teacher_logits = predict_logits(trained, images)
    qat = calibrate(prepare_qat(trained, candidate), images[:300])
    before = qat.stem[0].weight.detach().clone()
    # 2-bit weights in one stage wreck the rounded network (~0.3 held out) ...
    rounded = evaluate_accuracy(qat, digits[2], digits[3])
    result = train(
        qat,
        images[:512],
        labels[:512],
        teacher_logits[:512],
        # Hinton's T=4, not the search's default T=1: the margin below was set with it (at
        # T=1 one epoch won back 0.16 on the lent H100, under the 0.2 asked here).
        TrainConfig(epochs=1, batch_size=128, lr=3e-3, alpha=0.9, temperature=4.0),
        progress=False,
    )
    assert np.isfinite(result.final_loss)
    assert not torch.equal(qat.stem[0].weight, before), "the latent weights were trained"
    # ... and one epoch of KD through the fake quantizers wins much of it back (~0.7).
    assert evaluate_accuracy(qat, digits[2], digits[3]) > max(0.5, rounded + 0.2)


# --------------------------------------------------------------------------- deployment


def test_node_names_map_to_stages():
    names = [
        "/stem/stem.0/Conv",
        "/stages.0/stages.0.0/body/body.0/Conv",
        "/stages.2/stages.2.0/body/body.1/Reshape",
        "/pool/GlobalAveragePool",
        "/Flatten",
        "/classifier/Gemm",
        "Constant_12",
    ]
    assert node_stages(names, 4) == [0, 0, 2, 3, 3, 3, 3]


def test_int8_everywhere_exports_int8_weights_that_agree_with_the_qat_model(
    tmp_path, digits, trained
):
    train_images, _, test_images, _ = digits
    candidate = with_policy(get_candidate("tiny_mixed"), W8A8)
    qat = calibrate(prepare_qat(trained, candidate), train_images[:300])
    artifact = export_deployable(
        qat, candidate, DIGITS_SHAPE, tmp_path / "int8.onnx", train_images[:300], method="qat"
    )
    assert artifact.method == "qat" and artifact.is_int8
    assert artifact.executed_bits == ("w8a8 int8",) * 4
    graph, initializers, producers = graph_of(artifact.path)
    ops = {node.op_type for node in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    convs = [node for node in graph.node if node.op_type == "Conv"]
    assert len(convs) == 13
    for node in convs + [n for n in graph.node if n.op_type == "Gemm"]:
        assert int8_weight(node, initializers, producers) is not None, node.name
    assert artifact.int8_initializers == 14  # 13 conv weights + the classifier's
    assert artifact.file_bytes == artifact.path.stat().st_size
    # Nothing dead is left for ONNX Runtime to warn about at every load (the quantizer
    # drops ReLU6 but left its bound constants).
    read = {name for node in graph.node for name in node.input} | {"logits"}
    assert not [node.name for node in graph.node if not set(node.output) & read]

    # ORT requantizes 8-bit on-grid weights to exactly the QAT integers.
    stem_int8 = int8_weight(convs[0], initializers, producers)
    stem_qat = qat.stem[0].quantized_weight().detach()
    scale = stem_qat.abs().flatten(1).amax(1) / 127
    np.testing.assert_array_equal(
        stem_int8, torch.round(stem_qat / scale.reshape(-1, 1, 1, 1)).numpy()
    )

    ours = onnx_logits(artifact.path, test_images).argmax(1)
    reference = predict_logits(qat, test_images).argmax(1)
    agreement = (ours == reference).float().mean().item()
    assert agreement >= 0.97, agreement


def test_mixed_policy_quantizes_only_the_int8_stage(tmp_path, digits, trained):
    train_images, _, test_images, test_labels = digits
    candidate = with_policy(get_candidate("tiny_mixed"), W8A8, FP32, FP32, FP32)
    artifact = export_deployable(
        trained, candidate, DIGITS_SHAPE, tmp_path / "mixed.onnx", train_images[:300]
    )
    assert artifact.method == "ptq"
    assert artifact.executed_bits == ("w8a8 int8", "fp32", "fp32", "fp32")
    graph, initializers, producers = graph_of(artifact.path)
    quantized = [
        node.name
        for node in graph.node
        if node.op_type in ("Conv", "Gemm")
        and int8_weight(node, initializers, producers) is not None
    ]
    assert quantized == ["/stem/stem.0/Conv", "/stages.0/stages.0.0/body/body.0/Conv"]
    assert artifact.int8_initializers == 2
    for node in graph.node:
        if node.op_type in ("Conv", "Gemm") and node.name not in quantized:
            assert initializers[node.input[1]].data_type == onnx.TensorProto.FLOAT
    fp32_accuracy = evaluate_accuracy(trained, test_images, test_labels)
    assert onnx_accuracy(artifact.path, test_images, test_labels) >= fp32_accuracy - 0.02


def test_fp32_policy_exports_plain_fp32_matching_pytorch(tmp_path, digits, trained):
    train_images, _, test_images, _ = digits
    candidate = get_candidate("tiny_mixed")
    artifact = export_deployable(
        trained, candidate, DIGITS_SHAPE, tmp_path / "fp32.onnx", train_images[:100]
    )
    assert not artifact.is_int8 and artifact.int8_initializers == 0
    assert artifact.executed_bits == ("fp32",) * 4
    graph, initializers, _ = graph_of(artifact.path)
    assert all(init.data_type == onnx.TensorProto.FLOAT for init in initializers.values())
    assert not {"QuantizeLinear", "DequantizeLinear"} & {node.op_type for node in graph.node}
    torch.testing.assert_close(
        onnx_logits(artifact.path, test_images),
        predict_logits(trained, test_images),
        atol=1e-4,
        rtol=0,
    )


def test_four_bit_qat_stage_runs_as_int8_on_its_four_bit_grid(tmp_path, digits, trained):
    train_images, _, test_images, _ = digits
    w4a8 = StagePolicy(weight_bits=4, activation_bits=8)
    candidate = with_policy(get_candidate("tiny_mixed"), W8A8, w4a8, FP32, StagePolicy(0, 16, 32))
    qat = calibrate(prepare_qat(trained, candidate), train_images[:300])
    artifact = export_deployable(
        qat, candidate, DIGITS_SHAPE, tmp_path / "w4.onnx", train_images[:300]
    )
    assert artifact.method == "qat"
    assert "executed as int8" in artifact.executed_bits[1]
    assert artifact.executed_bits[2:] == ("fp32", "w16a32 executed as fp32")
    graph, initializers, producers = graph_of(artifact.path)
    stage_1 = [n for n in graph.node if n.op_type == "Conv" and n.name.startswith("/stages.1/")]
    assert len(stage_1) == 6
    for node in stage_1:
        values = int8_weight(node, initializers, producers)
        assert values is not None and np.abs(values).max() == 7, node.name
    assert onnx_logits(artifact.path, test_images).isfinite().all()


def test_ptq_int8_accuracy_is_within_two_points_of_fp32(tmp_path, digits, trained):
    train_images, _, test_images, test_labels = digits
    candidate = with_policy(get_candidate("tiny_mixed"), W8A8)
    artifact = export_deployable(
        trained, candidate, DIGITS_SHAPE, tmp_path / "ptq.onnx", train_images[:300], method="ptq"
    )
    fp32_accuracy = evaluate_accuracy(trained, test_images, test_labels)
    int8_accuracy = onnx_accuracy(artifact.path, test_images, test_labels)
    assert fp32_accuracy > 0.9
    assert int8_accuracy >= fp32_accuracy - 0.02, (int8_accuracy, fp32_accuracy)


def test_method_must_match_the_model(tmp_path, digits, trained):
    candidate = with_policy(get_candidate("tiny_mixed"), W8A8)
    images = digits[0][:64]
    qat = calibrate(prepare_qat(trained, candidate), images)
    with pytest.raises(ValueError, match="method 'qat'"):
        export_deployable(qat, candidate, DIGITS_SHAPE, tmp_path / "a.onnx", images, method="ptq")
    with pytest.raises(ValueError, match="prepare_qat"):
        export_deployable(
            trained, candidate, DIGITS_SHAPE, tmp_path / "b.onnx", images, method="qat"
        )


def test_onnx_logits_runs_fixed_batch_files_image_by_image(tmp_path, digits, trained):
    images = digits[2][:20]
    path = export_onnx(trained, DIGITS_SHAPE, tmp_path / "static.onnx")
    torch.testing.assert_close(
        onnx_logits(path, images, batch_size=8), predict_logits(trained, images), atol=1e-4, rtol=0
    )
