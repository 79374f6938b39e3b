"""What a block kind must do for the rest of the system to judge it right, checked.

A registered block kind (``spaces.register_block``) is trained, costed, quantized,
factorized and exported by code that does not know it. Some promises make that work,
and a block that breaks one is not always refused downstream: a weight used through
``F.conv2d`` costs nothing (the cost model counts the MACs and bytes of conv / linear
modules), and a block that ignores its stride trains at the wrong resolution under a
genome that says otherwise. So a run checks each user kind its space may draw, at the
space's kernels and strides, before any data is read, and says what is wrong in one
sentence naming the kind (``search.config``). An author checks a new kind the same way in
a test::

    from evaluators.block_contract import check_block
    check_block("fused_mbconv")  # raises BlockContractError with the first problem

Not checked here: int8 quantization in ONNX Runtime (each trial does that, and a failure
fails the trial with its reason).
"""

from __future__ import annotations

import copy
import functools
import math
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import fx, nn
from torch.utils.flop_counter import FlopCounterMode

from evaluators.cost import counting_macs
from evaluators.factorize import factorize_modules
from evaluators.hardware import export_onnx, onnx_session
from evaluators.quantize import fold_batchnorm
from spaces.blocks import create_block, registered_blocks
from spaces.candidate import StagePolicy, StageSpec, unknown_kind

SIZE = 16  # input height and width: even, so stride 2 halves it exactly
COSTED_MODULES = (nn.Conv2d, nn.Linear, nn.modules.batchnorm._BatchNorm)
_OTHER_NORMS = (nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)
# As thin as the space can ask: every conv and linear layer that can be factorized is.
FACTORIZED = StagePolicy(rank_ratio=0.25, factorize_kxk=True)


class BlockContractError(ValueError):
    """A block kind that the cost model, the memory model or the builder cannot rely on."""


@dataclass(frozen=True)
class _Shape:
    in_channels: int
    out_channels: int
    stride: int
    kernel: int

    def where(self, kind: str) -> str:
        return (
            f"block kind {kind!r} built for {self.in_channels} -> {self.out_channels} "
            f"channels, kernel {self.kernel}, stride {self.stride}"
        )

    def output(self, batch: int = 1) -> tuple[int, ...]:
        side = math.ceil(SIZE / self.stride)
        return (batch, self.out_channels, side, side)


def check_block(
    kind: str, kernels: Iterable[int] = (3, 5), strides: Iterable[int] = (1, 2)
) -> None:
    """Build ``kind`` at each of ``kernels`` and ``strides`` (a space's), with widths that
    change and that do not, and raise ``BlockContractError`` naming the first broken
    promise: it builds and runs, in eval mode and in training mode on a batch; it returns
    ``out_channels`` channels at the input's size divided by ``stride``; its weights are in
    conv / linear / batch-norm modules and every multiply-accumulate it does is one of
    theirs; it traces with ``torch.fx``; it runs with its layers factorized and its batch
    norms folded, as the compression does; and it exports to ONNX as ONNX Runtime then
    computes it."""
    if kind not in registered_blocks():
        raise BlockContractError(unknown_kind(kind))
    # Its own random numbers: checked while a config is read, it must not move a run's.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        _check_kind(kind, kernels, strides)


def _check_kind(kind: str, kernels: Iterable[int], strides: Iterable[int]) -> None:
    kernels, strides = sorted(set(kernels)), sorted(set(strides))
    shapes = [_Shape(8, 16, strides[0], kernels[0]), _Shape(16, 16, 1, kernels[0])]
    shapes += [_Shape(16, 24, stride, kernel) for kernel in kernels for stride in strides]
    for shape in shapes:
        block = _check_shape(kind, shape)
    _check_rewritten(kind, block, shape)
    _check_onnx(kind, block, shape)


def check_block_once(
    kind: str, kernels: Iterable[int] = (3, 5), strides: Iterable[int] = (1, 2)
) -> None:
    """``check_block``, once per process for each registered class and shapes (a config
    is validated more than once in a run)."""
    _check_class(
        kind, registered_blocks().get(kind), tuple(sorted(kernels)), tuple(sorted(strides))
    )


@functools.cache
def _check_class(kind: str, cls: type | None, kernels: tuple, strides: tuple) -> None:
    check_block(kind, kernels, strides)


def _check_shape(kind: str, shape: _Shape) -> nn.Module:
    where = shape.where(kind)
    stage = StageSpec(
        kind, depth=1, width=shape.out_channels, kernel=shape.kernel, stride=shape.stride
    )
    try:
        block = create_block(shape.in_channels, shape.out_channels, shape.stride, stage)
    except Exception as error:
        raise BlockContractError(f"{where}: building it failed: {_said(error)}") from None
    batch = torch.randn(2, shape.in_channels, SIZE, SIZE)
    try:
        output = block.train()(batch)
    except Exception as error:
        raise BlockContractError(
            f"{where}: running it in training mode on a {tuple(batch.shape)} batch failed: "
            f"{_said(error)}"
        ) from None
    _check_output(where, output, batch, shape.output(2))
    image = batch[:1]
    block.eval()
    try:
        with torch.no_grad(), counting_macs(block) as macs, FlopCounterMode(display=False) as ops:
            output = block(image)
    except Exception as error:
        raise BlockContractError(
            f"{where}: running it on a {tuple(image.shape)} input failed: {_said(error)}"
        ) from None
    _check_output(where, output, image, shape.output())
    for name, module in block.named_modules():
        if isinstance(module, COSTED_MODULES):
            continue
        own = next((n for n, _ in module.named_parameters(recurse=False)), None)
        if own is not None:
            path = f"{name}.{own}" if name else own
            instead = (
                "use nn.BatchNorm2d, which folds into its conv when deployed"
                if isinstance(module, _OTHER_NORMS)
                else "hold it in an nn.Conv2d or nn.Linear"
            )
            raise BlockContractError(
                f"{where}: weight {path!r} is held by a {type(module).__name__}, not an "
                "nn.Conv2d / nn.Linear / batch-norm module: the cost model counts MACs and "
                f"weight bytes from those modules only, so it would cost nothing; {instead}"
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


def _check_output(where: str, output: object, given: torch.Tensor, expected: tuple) -> None:
    got = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
    if got != expected:
        raise BlockContractError(
            f"{where}: returned {got} for a {tuple(given.shape)} input, not {expected} "
            "(out_channels channels, the input's height and width divided by stride)"
        )


def _check_rewritten(kind: str, block: nn.Module, shape: _Shape) -> None:
    """The block with its layers replaced as compression replaces them: factorized (each
    conv / linear layer by a two-layer ``LowRank``) and batch norms folded (quantization)."""
    where = shape.where(kind)
    image = torch.randn(1, shape.in_channels, SIZE, SIZE)

    def run(what: str, rewrite: Callable[[], nn.Module]) -> torch.Tensor:
        try:
            output = rewrite()(image)
        except Exception as error:
            raise BlockContractError(
                f"{where}: {what}, running it failed ({_said(error)}); take shapes from "
                "__init__'s arguments, not from the attributes of its layers"
            ) from None
        _check_output(where, output, image, shape.output())
        return output

    with torch.no_grad():
        expected = block.eval()(image)
        run(
            "with its layers factorized (compression.rank_ratio: each conv or linear layer "
            "replaced by a two-layer evaluators.factorize.LowRank)",
            lambda: factorize_modules(copy.deepcopy(block), lambda _: FACTORIZED).eval(),
        )
        folded = run(
            "with its batch norms folded into their convs (as quantization does: the batch "
            "norm becomes nn.Identity)",
            lambda: fold_batchnorm(block).eval(),
        )
        if not torch.allclose(folded, expected, atol=1e-4, rtol=1e-3):
            raise BlockContractError(
                f"{where}: with its batch norms folded into their convs (as quantization does) "
                "it computes something else; read each batch norm only through its call"
            )


def _check_onnx(kind: str, block: nn.Module, shape: _Shape) -> None:
    where = shape.where(kind)
    image = torch.randn(1, shape.in_channels, SIZE, SIZE)
    with tempfile.TemporaryDirectory(prefix="paretonas-block-") as folder:
        try:
            path = export_onnx(block, (shape.in_channels, SIZE, SIZE), Path(folder) / "block.onnx")
            session = onnx_session(path)
            (got,) = session.run(None, {session.get_inputs()[0].name: image.numpy()})
        except Exception as error:
            raise BlockContractError(
                f"{where}: exporting it to ONNX and running it in ONNX Runtime failed "
                f"({_said(error)}); every trial's latency and model file come from that export"
            ) from None
    with torch.no_grad():
        expected = block.eval()(image).numpy()
    if got.shape != expected.shape or not np.allclose(got, expected, atol=1e-4, rtol=1e-3):
        raise BlockContractError(
            f"{where}: ONNX Runtime computes something else from its ONNX export than torch "
            "does from the block (an op the exporter maps differently); every trial's "
            "latency and model file come from that export"
        )


def _said(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
