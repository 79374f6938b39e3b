"""What a block kind must do for the rest of the system to judge it right, checked.

A registered block kind (``spaces.register_block``) is trained, costed, pruned, quantized
and exported by code that does not know it. Four things make that work, and a block that
breaks one is not always refused downstream: a weight used through ``F.conv2d`` costs
nothing (the cost model counts the MACs and bytes of conv / linear modules), and a block
that ignores its stride trains at the wrong resolution under a genome that says otherwise.
So a run checks each user kind its space may draw, before any data is read, and says
what is wrong in one sentence naming the kind (``search.runner``). An author checks a new
kind the same way in a test::

    from evaluators.block_contract import check_block
    check_block("fused_mbconv")  # raises BlockContractError with the first problem

Also checked, at one shape: the block exports to ONNX and ONNX Runtime computes what torch
does, since every trial's latency and artifacts come from that file. Not checked here:
int8 quantization in ONNX Runtime (each trial does that, and a failure fails the trial
with its reason).
"""

from __future__ import annotations

import functools
import math
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import fx, nn
from torch.utils.flop_counter import FlopCounterMode

from evaluators.cost import counting_macs
from evaluators.hardware import export_onnx, onnx_session
from spaces.blocks import create_block, registered_blocks
from spaces.candidate import StageSpec, unknown_kind

# Where a block is tried: widths that change and that do not, both strides, two kernels.
SHAPES = ((8, 16, 1, 3), (16, 16, 1, 3), (16, 24, 2, 5))
SIZE = 16  # input height and width: even, so stride 2 halves it exactly
COSTED_MODULES = (nn.Conv2d, nn.Linear, nn.modules.batchnorm._BatchNorm)


class BlockContractError(ValueError):
    """A block kind that the cost model, the memory model or the builder cannot rely on."""


def check_block(kind: str) -> None:
    """Build ``kind`` at ``SHAPES`` and run it once on each; raise ``BlockContractError``
    naming the first broken promise: it builds and runs; it returns ``out_channels``
    channels at the input's size divided by ``stride``; its weights are in conv / linear /
    batch-norm modules; every multiply-accumulate it does is one of theirs; it traces with
    ``torch.fx``."""
    if kind not in registered_blocks():
        raise BlockContractError(unknown_kind(kind))
    for in_channels, out_channels, stride, kernel in SHAPES:
        block = _check_shape(kind, in_channels, out_channels, stride, kernel)
    _check_onnx(kind, block, in_channels, out_channels, stride, kernel)


def _check_onnx(
    kind: str, block: nn.Module, in_channels: int, out_channels: int, stride: int, kernel: int
) -> None:
    where = (
        f"block kind {kind!r} built for {in_channels} -> {out_channels} channels, "
        f"kernel {kernel}, stride {stride}"
    )
    image = torch.randn(1, in_channels, SIZE, SIZE)
    with tempfile.TemporaryDirectory(prefix="paretonas-block-") as folder:
        try:
            path = export_onnx(block, (in_channels, SIZE, SIZE), Path(folder) / "block.onnx")
            session = onnx_session(path)
            (got,) = session.run(None, {session.get_inputs()[0].name: image.numpy()})
        except Exception as error:
            raise BlockContractError(
                f"{where}: exporting it to ONNX and running it in ONNX Runtime failed "
                f"({_said(error)}); every trial's latency and model file come from that export"
            ) from None
    with torch.no_grad():
        expected = block(image).numpy()
    if got.shape != expected.shape or not np.allclose(got, expected, atol=1e-4, rtol=1e-3):
        raise BlockContractError(
            f"{where}: ONNX Runtime computes something else from its ONNX export than torch "
            "does from the block (an op the exporter maps differently); every trial's "
            "latency and model file come from that export"
        )


def check_block_once(kind: str) -> None:
    """``check_block``, once per process for each registered class (a config is validated
    more than once in a run)."""
    _check_class(kind, registered_blocks().get(kind))


@functools.cache
def _check_class(kind: str, cls: type | None) -> None:
    check_block(kind)


def _check_shape(
    kind: str, in_channels: int, out_channels: int, stride: int, kernel: int
) -> nn.Module:
    where = (
        f"block kind {kind!r} built for {in_channels} -> {out_channels} channels, "
        f"kernel {kernel}, stride {stride}"
    )
    stage = StageSpec(kind, depth=1, width=out_channels, kernel=kernel, stride=stride)
    try:
        block = create_block(in_channels, out_channels, stride, stage).eval()
    except Exception as error:
        raise BlockContractError(f"{where}: building it failed: {_said(error)}") from None
    image = torch.randn(1, in_channels, SIZE, SIZE)
    try:
        with torch.no_grad(), counting_macs(block) as macs, FlopCounterMode(display=False) as ops:
            output = block(image)
    except Exception as error:
        raise BlockContractError(
            f"{where}: running it on a {tuple(image.shape)} input failed: {_said(error)}"
        ) from None
    side = math.ceil(SIZE / stride)
    expected = (1, out_channels, side, side)
    got = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
    if got != expected:
        raise BlockContractError(
            f"{where}: returned {got} for a {tuple(image.shape)} input, not {expected} "
            "(out_channels channels, the input's height and width divided by stride)"
        )
    for name, module in block.named_modules():
        if isinstance(module, COSTED_MODULES):
            continue
        own = next((n for n, _ in module.named_parameters(recurse=False)), None)
        if own is not None:
            path = f"{name}.{own}" if name else own
            raise BlockContractError(
                f"{where}: weight {path!r} is held by a {type(module).__name__}, not an "
                "nn.Conv2d / nn.Linear / batch-norm module: the cost model counts MACs and "
                "weight bytes from those modules only, so it would cost nothing; hold it in "
                "an nn.Conv2d or nn.Linear"
            )
    done = ops.get_total_flops() // 2  # a multiply-accumulate is two of its flops
    if done > macs[0]:
        raise BlockContractError(
            f"{where}: does {done} multiply-accumulates per image, of which the cost model "
            f"sees {macs[0]} (those of its nn.Conv2d / nn.Linear modules): a matmul, einsum "
            "or functional convolution it does is not costed; do it through an nn.Conv2d "
            "or nn.Linear module"
        )
    try:
        fx.symbolic_trace(block)
    except Exception as error:
        raise BlockContractError(
            f"{where}: does not trace with torch.fx ({_said(error)}), and the memory model "
            "schedules every tensor of the network through its graph; decide in __init__ "
            "what depends on shapes (they are its arguments), or wrap the function that "
            "does not trace with torch.fx.wrap"
        ) from None
    return block


def _said(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
