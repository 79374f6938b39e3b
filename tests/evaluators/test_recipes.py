from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from evaluators.distill import TrainConfig
from evaluators.recipes import (
    DistillationRecipe,
    dynamic_quantize,
    linear_weight_dtypes,
    prunable_layers,
    sparsity,
    stored_size_bytes,
    unstructured_prune,
)

# --------------------------------------------------------------------------- distillation

STUDENT = np.array([[2.0, 0.5, -1.0], [0.2, 1.5, 0.3], [-0.7, 0.1, 2.2]])
TEACHER = np.array([[3.0, -0.5, 0.0], [1.0, 2.5, -1.0], [0.0, 0.4, 1.1]])
LABELS = np.array([0, 1, 2])


def _softmax(logits: np.ndarray) -> np.ndarray:
    exps = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exps / exps.sum(axis=1, keepdims=True)


def _by_hand(alpha: float, temperature: float, labels: np.ndarray) -> float:
    p = _softmax(TEACHER / temperature)
    q = _softmax(STUDENT / temperature)
    kl = (p * np.log(p / q)).sum(axis=1).mean()  # batch mean of the per-sample KL
    ce = -np.log(_softmax(STUDENT)[np.arange(len(labels)), labels]).mean()
    return alpha * temperature**2 * kl + (1 - alpha) * ce


def _loss(recipe: DistillationRecipe, labels: np.ndarray) -> float:
    return recipe.loss(torch.tensor(STUDENT), torch.tensor(TEACHER), torch.tensor(labels)).item()


@pytest.mark.parametrize(
    ("name", "alpha", "temperature"), [("kd", 0.9, 4.0), ("soft_labels_only", 1.0, 4.0)]
)
def test_named_distillation_recipes_equal_the_hand_computed_loss(name, alpha, temperature):
    recipe = DistillationRecipe.named(name)
    assert (recipe.alpha, recipe.temperature) == (alpha, temperature)
    assert _loss(recipe, LABELS) == pytest.approx(_by_hand(alpha, temperature, LABELS), abs=1e-9)


def test_soft_labels_only_never_reads_the_labels():
    recipe = DistillationRecipe.named("soft_labels_only")
    other = np.array([2, 0, 1])
    assert _loss(recipe, other) == _loss(recipe, LABELS)
    assert _loss(DistillationRecipe.named("kd"), other) != _loss(
        DistillationRecipe.named("kd"), LABELS
    )


def test_hard_labels_only_is_cross_entropy_and_recipes_fill_a_train_config():
    recipe = DistillationRecipe.named("hard_labels_only")
    assert _loss(recipe, LABELS) == pytest.approx(_by_hand(0.0, 4.0, LABELS), abs=1e-9)
    config = DistillationRecipe(alpha=1.0, temperature=2.0).train_config(TrainConfig(epochs=7))
    assert (config.alpha, config.temperature, config.epochs) == (1.0, 2.0, 7)


def test_a_bad_distillation_recipe_is_one_sentence():
    with pytest.raises(ValueError, match="unknown distillation recipe 'kd2'"):
        DistillationRecipe.named("kd2")
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        DistillationRecipe(alpha=1.5)


# --------------------------------------------------------------------------- pruning


def _net(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3),  # 216 weights
        nn.ReLU(),
        nn.Conv2d(8, 6, 1),  # 48
        nn.Flatten(),
        nn.Linear(6 * 4 * 4, 10),  # 960
        nn.ReLU(),
        nn.Linear(10, 3),  # 30
    )


def _zeros(module: nn.Module) -> int:
    return module.weight.numel() - int(torch.count_nonzero(module.weight))


def _assert_plain(model: nn.Module) -> None:
    names = [name for name, _ in model.named_parameters()]
    assert not any(name.endswith("weight_orig") for name in names)
    assert not any(name.endswith("weight_mask") for name, _ in model.named_buffers())
    for _, module in prunable_layers(model):
        assert not module._forward_pre_hooks
        assert isinstance(module.weight, nn.Parameter)


@pytest.mark.parametrize("method", ["l1", "random"])
@pytest.mark.parametrize("amount", [0.3, 0.5])
def test_layer_scope_zeroes_round_amount_times_numel_of_every_layer(method, amount):
    model = unstructured_prune(_net(), amount, method, "layer", seed=0)
    for _, module in prunable_layers(model):
        assert _zeros(module) == round(amount * module.weight.numel())
    _assert_plain(model)


@pytest.mark.parametrize("method", ["l1", "random"])
@pytest.mark.parametrize("amount", [0.3, 0.5])
def test_global_scope_zeroes_round_amount_times_total(method, amount):
    model = unstructured_prune(_net(), amount, method, "global", seed=0)
    layers = [module for _, module in prunable_layers(model)]
    total = sum(module.weight.numel() for module in layers)
    assert sum(_zeros(module) for module in layers) == round(amount * total)
    assert sparsity(model) == pytest.approx(round(amount * total) / total)
    _assert_plain(model)


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_l1_pruning_zeroes_the_smallest_magnitudes(scope):
    before = _net()
    original = {name: m.weight.detach().abs().clone() for name, m in prunable_layers(before)}
    model = unstructured_prune(before, 0.5, "l1", scope)
    groups = (
        [[name] for name in original] if scope == "layer" else [list(original)]
    )  # per layer, or all layers ranked together
    for names in groups:
        pruned, kept = [], []
        for name, module in prunable_layers(model):
            if name in names:
                zero = module.weight == 0
                pruned.append(original[name][zero])
                kept.append(original[name][~zero])
        assert torch.cat(pruned).max() <= torch.cat(kept).min()


def test_random_pruning_with_a_seed_is_repeatable_and_keeps_the_global_generator():
    first, second = _net(), _net()  # _net seeds the generator itself
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    unstructured_prune(first, 0.5, "random", "layer", seed=7)
    assert torch.equal(torch.rand(1), expected)
    unstructured_prune(second, 0.5, "random", "layer", seed=7)
    for (_, a), (_, b) in zip(prunable_layers(first), prunable_layers(second), strict=True):
        assert torch.equal(a.weight == 0, b.weight == 0)


def test_a_bad_pruning_amount_is_one_sentence():
    for amount in (1.0, -0.1):
        with pytest.raises(ValueError, match=r"fraction of weights to zero, in \[0, 1\)"):
            unstructured_prune(_net(), amount)
    with pytest.raises(ValueError, match=r"no nn\.Conv2d or nn\.Linear layer"):
        unstructured_prune(nn.Sequential(nn.ReLU()), 0.5)


def test_stored_size_counts_non_zeros_plus_a_bitmap_only_where_that_is_smaller():
    model = nn.Sequential(nn.Linear(10, 8))  # 80 weights, 8 outputs
    fixed = 8 * 4 + 64  # biases + metadata
    assert stored_size_bytes(model) == 80 * 4 + fixed
    unstructured_prune(model, 0.5)  # 40 non-zeros
    assert stored_size_bytes(model) == 40 * 4 + 10 + fixed
    # At 8 bits, 10 % sparsity: 72 + 10 sparse bytes > 80 dense bytes, so dense it stays.
    dense8 = nn.Sequential(nn.Linear(10, 8))
    unstructured_prune(dense8, 0.1)
    assert stored_size_bytes(dense8, bits=8) == 80 + fixed + 8 * 4  # + per-channel scales


# --------------------------------------------------------------------------- dynamic int8


def test_dynamic_quantization_stores_int8_linear_weights_and_keeps_the_predictions():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the known deprecation warnings are silenced inside
        quantized = dynamic_quantize(model)
    assert linear_weight_dtypes(model) == {"0": torch.float32, "2": torch.float32}
    assert linear_weight_dtypes(quantized) == {"0": torch.qint8, "2": torch.qint8}
    inputs = torch.randn(256, 32)
    with torch.no_grad():
        reference, outputs = model(inputs), quantized(inputs)
    assert outputs.dtype == torch.float32
    assert (outputs - reference).abs().max().item() < 0.05 * reference.abs().max().item()
    agreement = (outputs.argmax(dim=1) == reference.argmax(dim=1)).float().mean().item()
    assert agreement >= 0.95


def test_dynamic_int8_of_the_linear_layers_in_the_exported_onnx_file(tmp_path):
    """The config's ``compression.dynamic_linear``: ONNX Runtime's dynamic quantization of
    the fp32 classifier (MatMulInteger on int8 weights), convolutions untouched."""
    import onnx

    from evaluators.quantize import export_deployable, onnx_logits
    from spaces import build_model, get_candidate

    torch.manual_seed(0)
    candidate = get_candidate("tiny_mixed")
    model = build_model(candidate, 1, 10).eval()
    images = torch.rand(64, 1, 12, 12)
    plain = export_deployable(model, candidate, (1, 12, 12), tmp_path / "fp32.onnx", images)
    dynamic = export_deployable(
        model, candidate, (1, 12, 12), tmp_path / "dyn.onnx", images, dynamic_linear=True
    )
    ops = [node.op_type for node in onnx.load(str(dynamic.path)).graph.node]
    assert "MatMulInteger" in ops and "DynamicQuantizeLinear" in ops and "Gemm" not in ops
    assert ops.count("Conv") == [n.op_type for n in onnx.load(str(plain.path)).graph.node].count(
        "Conv"
    )
    assert dynamic.is_int8 and dynamic.method == "ptq+dynamic" and not plain.is_int8
    weights = {i.name: i.data_type for i in onnx.load(str(dynamic.path)).graph.initializer}
    assert "classifier.weight" not in weights  # stored as 8-bit integers only
    assert weights["classifier.weight_quantized"] in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)
    ours, reference = onnx_logits(dynamic.path, images), onnx_logits(plain.path, images)
    assert (ours.argmax(1) == reference.argmax(1)).float().mean() >= 0.9
    assert torch.allclose(ours, reference, atol=0.05 * reference.abs().max().item())
