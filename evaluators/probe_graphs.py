"""One-kernel ONNX probe graphs, built from a feature row with ``onnx.helper`` alone.

Building a probe takes about a millisecond and involves no torch export, so a calibration
can afford thousands. fp32 probes are the kernel as the exporter writes it (Conv + Relu,
which ORT fuses; Gemm; GlobalAveragePool; Gather; Add). int8 probes are in the QDQ form
``onnxruntime.quantization.quantize_static`` writes (uint8 activations, per-channel
weights, int32 bias), which ORT fuses into QLinearConv / QGemm / QLinearAdd /
QLinearGlobalAveragePool, with uint8 graph inputs and outputs so that no float conversion
is timed with the kernel. The int8 shuffle is timed with the two Transposes ORT wraps it in
inside an int8 network (its convs run channels-last there).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evaluators.layer_features import LayerFeatures

OPSET = 17  # per-channel DequantizeLinear needs 13; 17 keeps old runtimes on devices able


def build_layer_probe(row: LayerFeatures, path: str | Path, unsigned_weights: bool = True) -> Path:
    """Write a one-kernel ONNX model with ``row``'s shapes and precision to ``path``."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    graph = _int8_graph(row, unsigned_weights) if row.precision == "int8" else _fp32_graph(row)
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)])
    model.ir_version = 8  # readable by onnxruntime >= 1.10
    onnx.save(model, str(path))
    return path


def build_empty_probe(path: str | Path, channels: int = 8) -> Path:
    """The per-run overhead of ONNX Runtime itself: one Identity on a small tensor."""
    import onnx
    from onnx import TensorProto, helper

    shape = [1, channels, 4, 4]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["input"], ["output"])],
        "empty",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _shape(row: LayerFeatures, out: bool = False) -> list[int]:
    if row.op == "linear":
        return [1, row.out_channels if out else row.in_channels]
    if out:
        return [1, row.out_channels, row.out_h, row.out_w]
    return [1, row.in_channels, row.in_h, row.in_w]


def _conv_attrs(row: LayerFeatures) -> dict:
    pad = row.kernel // 2
    return {
        "kernel_shape": [row.kernel, row.kernel],
        "pads": [pad] * 4,
        "strides": [row.stride, row.stride],
        "group": row.groups,
    }


def _weights(row: LayerFeatures, rng: np.random.Generator) -> np.ndarray:
    if row.op == "linear":
        shape = (row.out_channels, row.in_channels)
    else:
        shape = (row.out_channels, row.in_channels // row.groups, row.kernel, row.kernel)
    return (rng.standard_normal(shape) * 0.1).astype(np.float32)


def _fp32_graph(row: LayerFeatures):
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = []
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, _shape(row))]
    out_type = TensorProto.FLOAT
    op = row.op
    if op in ("conv", "dwconv", "gconv", "linear"):
        inits.append(numpy_helper.from_array(_weights(row, rng), "W"))
        inits.append(numpy_helper.from_array(np.zeros(row.out_channels, np.float32), "B"))
        if op == "linear":
            nodes = [helper.make_node("Gemm", ["input", "W", "B"], ["output"], transB=1)]
        else:
            nodes = [
                helper.make_node("Conv", ["input", "W", "B"], ["conv"], **_conv_attrs(row)),
                helper.make_node("Relu", ["conv"], ["output"]),
            ]
    elif op == "pool":
        nodes = [_pool_node(row, "input", "output")]
    elif op == "shuffle":
        inits.append(numpy_helper.from_array(_shuffle_order(row), "order"))
        nodes = [helper.make_node("Gather", ["input", "order"], ["output"], axis=1)]
    elif op == "add":
        inputs.append(helper.make_tensor_value_info("other", TensorProto.FLOAT, _shape(row)))
        nodes = [helper.make_node("Add", ["input", "other"], ["output"])]
    else:
        raise ValueError(f"{op} has no fp32 probe")
    outputs = [helper.make_tensor_value_info("output", out_type, _shape(row, out=True))]
    return helper.make_graph(nodes, f"{op}_fp32", inputs, outputs, inits)


def _int8_graph(row: LayerFeatures, unsigned_weights: bool):
    """QDQ form, as ``onnxruntime.quantization.quantize_static`` writes it (uint8
    activations, per-channel weights, int32 bias), with uint8 graph inputs and outputs."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    u8 = TensorProto.UINT8
    x_scale, x_zero, y_scale = np.float32(0.02), np.uint8(128), np.float32(0.05)
    inits = [
        numpy_helper.from_array(np.array(x_scale), "x_scale"),
        numpy_helper.from_array(np.array(x_zero), "x_zero"),
        numpy_helper.from_array(np.array(y_scale), "y_scale"),
        numpy_helper.from_array(np.array(np.uint8(0)), "y_zero"),
    ]
    inputs = [helper.make_tensor_value_info("input", u8, _shape(row))]
    nodes = []
    op = row.op

    def dequantize_input(name: str) -> str:
        nodes.append(
            helper.make_node("DequantizeLinear", [name, "x_scale", "x_zero"], [name + "_f"])
        )
        return name + "_f"

    def quantize_output(name: str) -> None:
        nodes.append(helper.make_node("QuantizeLinear", [name, "y_scale", "y_zero"], ["output"]))

    if op in ("conv", "dwconv", "gconv", "linear"):
        weight = _weights(row, rng)
        scales = (np.abs(weight).reshape(len(weight), -1).max(axis=1) / 127).astype(np.float32)
        q = np.clip(np.round(weight / scales.reshape(-1, *[1] * (weight.ndim - 1))), -127, 127)
        if unsigned_weights:
            w_q, w_zero = (q + 128).astype(np.uint8), np.full(len(q), 128, np.uint8)
        else:
            w_q, w_zero = q.astype(np.int8), np.zeros(len(q), np.int8)
        inits += [
            numpy_helper.from_array(w_q, "W_q"),
            numpy_helper.from_array(scales, "W_scale"),
            numpy_helper.from_array(w_zero, "W_zero"),
            numpy_helper.from_array(np.zeros(row.out_channels, np.int32), "B_q"),
            numpy_helper.from_array((scales * x_scale).astype(np.float32), "B_scale"),
            numpy_helper.from_array(np.zeros(row.out_channels, np.int32), "B_zero"),
        ]
        x = dequantize_input("input")
        nodes += [
            helper.make_node("DequantizeLinear", ["W_q", "W_scale", "W_zero"], ["W"], axis=0),
            helper.make_node("DequantizeLinear", ["B_q", "B_scale", "B_zero"], ["B"], axis=0),
        ]
        if op == "linear":
            nodes.append(helper.make_node("Gemm", [x, "W", "B"], ["y"], transB=1))
        else:
            nodes.append(helper.make_node("Conv", [x, "W", "B"], ["y"], **_conv_attrs(row)))
        quantize_output("y")
        out_type = u8
    elif op == "pool":
        nodes.append(_pool_node(row, dequantize_input("input"), "y"))
        quantize_output("y")
        out_type = u8
    elif op == "add":
        inputs.append(helper.make_tensor_value_info("other", u8, _shape(row)))
        a, b = dequantize_input("input"), dequantize_input("other")
        nodes.append(helper.make_node("Add", [a, b], ["y"]))
        quantize_output("y")
        out_type = u8
    elif op == "shuffle":
        # In an int8 network ORT runs QLinearConv channels-last and wraps the Gather in
        # two Transposes (NHWC -> NCHW -> NHWC): the probe times the three together.
        c, h, w = row.in_channels, row.in_h, row.in_w
        inputs = [helper.make_tensor_value_info("input", u8, [1, h, w, c])]
        inits.append(numpy_helper.from_array(_shuffle_order(row), "order"))
        nodes += [
            helper.make_node("Transpose", ["input"], ["nchw"], perm=[0, 3, 1, 2]),
            helper.make_node("Gather", ["nchw", "order"], ["shuffled"], axis=1),
            helper.make_node("Transpose", ["shuffled"], ["output"], perm=[0, 2, 3, 1]),
        ]
        outputs = [helper.make_tensor_value_info("output", u8, [1, h, w, c])]
        return helper.make_graph(nodes, "shuffle_int8", inputs, outputs, inits)
    elif op == "quantize":
        inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, _shape(row))]
        nodes.append(helper.make_node("QuantizeLinear", ["input", "x_scale", "x_zero"], ["output"]))
        out_type = u8
    elif op == "dequantize":
        nodes.append(
            helper.make_node("DequantizeLinear", ["input", "x_scale", "x_zero"], ["output"])
        )
        out_type = TensorProto.FLOAT
    else:
        raise ValueError(f"{op} has no int8 probe")
    outputs = [helper.make_tensor_value_info("output", out_type, _shape(row, out=True))]
    return helper.make_graph(nodes, f"{op}_int8", inputs, outputs, inits)


def _pool_node(row: LayerFeatures, source: str, target: str):
    from onnx import helper

    if row.out_h == 1 and row.out_w == 1:
        return helper.make_node("GlobalAveragePool", [source], [target])
    return helper.make_node(
        "AveragePool",
        [source],
        [target],
        kernel_shape=[row.kernel, row.kernel],
        strides=[row.stride, row.stride],
    )


def _shuffle_order(row: LayerFeatures) -> np.ndarray:
    groups = row.groups if row.in_channels % max(row.groups, 1) == 0 else 1
    order = np.arange(row.in_channels).reshape(groups, -1).T.reshape(-1)
    return order.astype(np.int64)
