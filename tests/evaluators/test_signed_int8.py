"""The all-signed int8 file holds the measured file's numbers, shifted by 128."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from evaluators import quantize
from evaluators.probes import export_candidate
from evaluators.signed_int8 import NotConvertible, dequantized_constants, to_signed
from spaces import ArchSpec, StageSpec
from spaces.candidate import Candidate, CompressionPolicy, StagePolicy

# Two stages, the second fp32: the rewrite must leave fp32 layers alone.
ARCH = ArchSpec(8, (StageSpec("mbconv", 1, 16, 3, 2, stride=2), StageSpec("dsconv", 1, 16, 3)))
INT8 = StagePolicy(weight_bits=8, activation_bits=8)
FP32 = StagePolicy()
# Whether this host's int8 kernels saturate (no VNNI), read before any test patches it.
SATURATING_HOST = quantize.weights_unsigned()


def _quantized(tmp_path, monkeypatch, unsigned: bool, policies=(INT8, FP32)):
    monkeypatch.setattr(quantize, "weights_unsigned", lambda: unsigned)
    candidate = Candidate(ARCH, CompressionPolicy(tuple(policies)))
    return export_candidate(candidate, (1, 8, 8), 10, tmp_path / "measured.onnx")


def _types(path) -> set[str]:
    model = onnx.load(str(path))
    return {onnx.TensorProto.DataType.Name(t.data_type) for t in model.graph.initializer}


def _fake_quantize(x: np.ndarray, scale: float, zero: int, low: int, high: int) -> np.ndarray:
    """QuantizeLinear then DequantizeLinear, as ONNX defines them (round half to even)."""
    q = np.clip(np.rint(x / np.float32(scale)) + zero, low, high)
    return ((q - zero) * np.float32(scale)).astype(np.float32)


@pytest.mark.parametrize("unsigned", [True, False])
def test_every_quantized_tensor_becomes_int8_with_the_same_values(tmp_path, monkeypatch, unsigned):
    source = _quantized(tmp_path, monkeypatch, unsigned)
    target = tmp_path / "signed.onnx"
    converted = to_signed(source, target)
    assert "UINT8" in _types(source) and "UINT8" not in _types(target)
    assert "INT8" in _types(target)
    # Stored weights (and int32 biases) dequantize to exactly the same floats.
    before, after = dequantized_constants(source), dequantized_constants(target)
    assert before.keys() == after.keys() and len(before) >= 8
    assert all(np.array_equal(before[name], after[name]) for name in before)
    if unsigned:
        assert converted.weights == 4 and converted.already_signed == 0
    else:
        assert converted.weights == 0 and converted.already_signed == 4
    assert converted.activations == 5  # the input and the four int8 layers' outputs
    # Each activation's quantize-dequantize gives the same floats in both forms.
    old = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(str(source)).graph.initializer}
    new = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(str(target)).graph.initializer}
    x = np.random.default_rng(0).normal(scale=4.0, size=10_000).astype(np.float32)
    for node in onnx.load(str(target)).graph.node:
        if node.op_type != "QuantizeLinear":
            continue
        scale, zero = float(new[node.input[1]]), int(new[node.input[2]])
        assert new[node.input[2]].dtype == np.int8 and zero == int(old[node.input[2]]) - 128
        np.testing.assert_array_equal(
            _fake_quantize(x, scale, zero, -128, 127),
            _fake_quantize(x, scale, zero + 128, 0, 255),
        )


def test_onnx_runtime_gives_the_same_predictions_from_both_files(tmp_path, monkeypatch):
    import onnxruntime as ort

    source = _quantized(tmp_path, monkeypatch, unsigned=True)
    to_signed(source, tmp_path / "signed.onnx")
    images = np.random.default_rng(1).normal(size=(200, 1, 1, 8, 8)).astype(np.float32)
    outputs = []
    for path in (source, tmp_path / "signed.onnx"):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        outputs.append(np.concatenate([session.run(None, {"input": x})[0] for x in images]))
    measured, signed = outputs
    assert (measured.argmax(1) == signed.argmax(1)).mean() >= 0.95
    if not SATURATING_HOST:
        # With VNNI, ORT's int8 kernels do not saturate: the arithmetic is the same.
        np.testing.assert_array_equal(measured, signed)


def test_files_with_no_signed_form_are_refused_in_a_sentence(tmp_path, monkeypatch):
    from evaluators.quantize import quantize_linear_dynamic

    fp32 = _quantized(tmp_path, monkeypatch, False, (FP32, FP32))
    with pytest.raises(NotConvertible, match="no quantized layer"):
        to_signed(fp32, tmp_path / "out.onnx")
    monkeypatch.setattr(quantize, "weights_unsigned", lambda: True)
    quantize_linear_dynamic(fp32, tmp_path / "dynamic.onnx")
    with pytest.raises(NotConvertible, match="dynamic_linear: false"):
        to_signed(tmp_path / "dynamic.onnx", tmp_path / "out.onnx")
    (tmp_path / "damaged.onnx").write_bytes(b"x")
    with pytest.raises(NotConvertible, match="could not be read"):
        to_signed(tmp_path / "damaged.onnx", tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()
