"""The measured int8 file rewritten with signed 8-bit integers only, for microcontroller
runtimes.

ONNX Runtime on x86 runs uint8 activations (and, on CPUs without VNNI, uint8 weights with
zero point 128: ``evaluators.quantize.weights_unsigned``), so that is what the search
measures. TensorFlow Lite Micro, CMSIS-NN and ST Edge AI take int8 only: weights per
channel with zero point 0, activations per tensor with a zero point in [-128, 127].

The two forms hold the same numbers. A uint8 value q with zero point z stands for
(q - z) * scale; the int8 value q - 128 with zero point z - 128 stands for the same real
number, and QuantizeLinear's rounding and clipping to [0, 255] become rounding and
clipping to [-128, 127], shifted by 128. So the rewrite moves every uint8 tensor of the
QDQ graph (stored weights, zero points, and through them the activations that
QuantizeLinear writes) down by 128 and changes nothing else; ``dequantized_constants``
lets a test check that every weight still dequantizes to the same float32 values.

Dynamically quantized layers (``DynamicQuantizeLinear``, which ONNX defines for uint8
only) have no signed form: such files are refused with a sentence saying so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SIGNED_FILE = "model.s8s8.onnx"

_QDQ = ("QuantizeLinear", "DequantizeLinear")


class NotConvertible(ValueError):
    """The file has no all-signed form; the message says why."""


class NothingToConvert(NotConvertible):
    """The file has no quantized layer: it is fp32 throughout, signed already."""


@dataclass(frozen=True)
class SignedConversion:
    """What ``to_signed`` changed: uint8 constants moved to int8, by use."""

    weights: int  # stored weight tensors (uint8 values dequantized by a DequantizeLinear)
    activations: int  # activation tensors quantized by a QuantizeLinear
    already_signed: int  # int8 weight tensors left as they were


def to_signed(source: str | Path, target: str | Path) -> SignedConversion:
    """Write ``source`` (a QDQ ONNX file) to ``target`` with every uint8 constant shifted
    to int8, so that every quantized tensor is signed; raise ``NotConvertible`` when the
    file has a layer with no signed form or no quantized layer at all."""
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(source))
    except Exception as error:  # a damaged file: the caller says so and goes on
        raise NotConvertible(f"could not be read ({type(error).__name__})") from error
    graph = model.graph
    if any(node.op_type == "DynamicQuantizeLinear" for node in graph.node):
        raise NotConvertible(
            "its linear layers are quantized dynamically (DynamicQuantizeLinear, which ONNX "
            "defines for uint8 only); set compression.dynamic_linear: false for an all-int8 model"
        )
    uses: dict[str, list[tuple[str, int]]] = {}
    for node in graph.node:
        for position, name in enumerate(node.input):
            uses.setdefault(name, []).append((node.op_type, position))
    initializers = {t.name: t for t in graph.initializer}
    if not any(node.op_type in _QDQ for node in graph.node):
        raise NothingToConvert("it has no quantized layer (every layer runs in fp32)")

    weights = activations = already_signed = 0
    for name, tensor in initializers.items():
        users = uses.get(name, [])
        if tensor.data_type == onnx.TensorProto.INT8 and ("DequantizeLinear", 0) in users:
            already_signed += 1
        if tensor.data_type != onnx.TensorProto.UINT8:
            continue
        # A uint8 constant is a zero point (input 2) or stored values (DequantizeLinear's
        # input 0); anything else reads raw bytes and would change meaning.
        if not users or any(
            op not in _QDQ or position == 1 or (op == "QuantizeLinear" and position == 0)
            for op, position in users
        ):
            raise NotConvertible(
                f"its uint8 constant {name!r} is read by {sorted({op for op, _ in users})}, "
                "not only by QuantizeLinear / DequantizeLinear"
            )
        values = numpy_helper.to_array(tensor).astype(np.int16) - 128
        tensor.CopyFrom(numpy_helper.from_array(values.astype(np.int8), name))
        if ("DequantizeLinear", 0) in users:
            weights += 1
        elif ("QuantizeLinear", 2) in users:
            activations += 1
    # Shape inference recorded the activations' uint8 type; ONNX Runtime infers it again.
    del graph.value_info[:]
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(target))
    return SignedConversion(weights, activations, already_signed)


def dequantized_constants(path: str | Path) -> dict[str, np.ndarray]:
    """The float32 value of every constant a DequantizeLinear reads, keyed by the node's
    output: (q - zero point) * scale, broadcast per channel along ``axis``."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    values = {}
    for node in model.graph.node:
        if node.op_type != "DequantizeLinear" or node.input[0] not in constants:
            continue
        stored = constants[node.input[0]].astype(np.int64)
        scale = constants[node.input[1]].astype(np.float32)
        zero = constants[node.input[2]].astype(np.int64) if len(node.input) > 2 else 0
        if np.ndim(scale) == 1 and stored.ndim > 1:
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            shape = [1] * stored.ndim
            shape[axis] = -1
            scale = scale.reshape(shape)
            zero = np.reshape(zero, shape)
        values[node.output[0]] = ((stored - zero) * scale).astype(np.float32)
    return values
