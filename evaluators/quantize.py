"""Quantization: batch-norm folding, mixed-precision QAT, and a real int8 ONNX artifact.

A candidate's policy gives every stage weight bits (2, 4, 8, 16, 32) and activation bits
(8, 16, 32); the stem follows stage 0 and pool + classifier the last stage, as everywhere
(``spaces.build.stage_of_parameter``). Three steps turn a trained fp32 network into what
the report measures:

1. ``fold_batchnorm``: every conv + batch norm pair becomes one conv with bias (eval-mode
   running statistics), which is what any deployment runs, so QAT trains that network.
2. ``prepare_qat`` / ``calibrate``: fake quantization at the policy's bit-widths, so KD
   fine-tuning (``evaluators.distill.train``) learns weights that survive rounding.
   Weights: symmetric, per output channel, scale = max|w| / (2^(b-1) - 1), zero point 0,
   i.e. the restricted range [-(2^(b-1) - 1), 2^(b-1) - 1] (at most 2^b - 1 levels): the
   scheme ONNX Runtime uses for per-channel int8 weights, so 8-bit QAT weights reach the
   int8 artifact unchanged. Activations: the input of every conv / linear, per tensor,
   asymmetric unsigned ([0, 2^b - 1] with a zero point, the same arithmetic ORT uses for
   uint8 activations), over a range that is an EMA of batch min / max in training mode,
   frozen in eval mode, and the plain min / max over the calibration images in
   ``calibrate`` (the same rule as ORT's MinMax calibrator). Gradients pass straight
   through the rounding (``torch.fake_quantize_*`` are straight-through estimators).
3. ``export_deployable``: the host executes int8 (ONNX Runtime CPU) and fp32, nothing else.
   Stages with weight bits <= 8 and activation bits == 8 become real int8 through
   ``onnxruntime.quantization.quantize_static`` (QDQ, per-channel int8 weights, uint8
   activations, MinMax calibration); every other node stays fp32. Weights of every stage
   are exported on their policy's grid (a 4-bit stage holds 4-bit values in int8
   storage, a 16-bit stage 16-bit values in fp32), so the artifact's accuracy is that of
   the policy, measured, not a guess.

The deployed ONNX file takes batch 1, the shape its latency is measured at (and the
shape of edge inference); ``onnx_accuracy`` runs it one image at a time. Measured with ORT
1.32 on this host (1 thread), a dynamic batch axis made the same graphs 5-15 % slower, fp32
and int8 alike, once the channel shuffle is a Gather (``spaces.blocks.ChannelShuffle``;
the reshape-transpose form was up to 1.6x slower in int8 with static shapes).
"""

from __future__ import annotations

import copy
import functools
import logging
import platform
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from evaluators.distill import accuracy
from evaluators.files import write_atomic
from evaluators.hardware import INPUT_NAME, export_onnx, onnx_session
from evaluators.timing_lock import computing
from spaces.build import stage_of_parameter
from spaces.candidate import Candidate, StagePolicy

FULL_PRECISION = 32
QuantMethod = Literal["ptq", "qat"]


# --------------------------------------------------------------------------- folding


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` in which every Conv2d -> BatchNorm2d pair is one Conv2d.

    A pair is a batch norm that reads a conv's output and nothing else does, found on the
    network's ``torch.fx`` graph: so a block of the user's own that keeps ``self.conv`` and
    ``self.bn`` apart folds as ``spaces.blocks.conv_bn``'s sequence does (unfolded, its
    QAT would learn a grid that the export's own folding then rounds off). A network that
    does not trace folds the pairs that sit next to each other in an ``nn.Sequential``.
    The conv gets a bias, the batch norm becomes ``nn.Identity`` so module names (and hence
    ``stage_of_parameter`` and the ONNX node names) stay as they were. The copy computes
    what the original computes in eval mode (running statistics); when every batch norm
    folded (all of the built-in blocks'), in either mode, since it has no batch statistics
    left. A batch norm that is not a pair's (its conv's output is read elsewhere too, or it
    keeps no running statistics) stays. Channel counts come from the modules themselves,
    so physically pruned networks fold too.
    """
    folded = copy.deepcopy(model)
    try:
        graph = fx.symbolic_trace(folded).graph
    except Exception:  # any trace failure: the sequences' pairs below
        return _fold_sequential_pairs(folded)
    modules = dict(folded.named_modules())
    # A module called twice is one set of weights for two places: folded for one, wrong
    # for the other.
    calls = Counter(node.target for node in graph.nodes if node.op == "call_module")
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules[node.target], nn.BatchNorm2d):
            continue
        (source,) = node.all_input_nodes or (None,)
        if (
            modules[node.target].running_mean is None  # batch statistics only: nothing to fold
            or source is None
            or source.op != "call_module"
            or type(modules[source.target]) is not nn.Conv2d
            or len(source.users) != 1
            or calls[source.target] != 1
            or calls[node.target] != 1
        ):
            continue
        conv, bn = modules[source.target], modules[node.target]
        _set_submodule(folded, source.target, _fold_conv_bn(conv, bn))
        _set_submodule(folded, node.target, nn.Identity())
    return folded


def _fold_sequential_pairs(folded: nn.Module) -> nn.Module:
    for container in folded.modules():
        if not isinstance(container, nn.Sequential):
            continue
        children = list(container.named_children())
        for (conv_name, conv), (bn_name, bn) in pairwise(children):
            if not isinstance(bn, nn.BatchNorm2d):
                continue
            if isinstance(conv, nn.Conv2d):
                setattr(container, conv_name, _fold_conv_bn(conv, bn))
                setattr(container, bn_name, nn.Identity())
            elif isinstance(conv, nn.Sequential) and len(conv) and isinstance(conv[-1], nn.Conv2d):
                # a factorized conv (evaluators.factorize.LowRank): into its last layer
                conv[len(conv) - 1] = _fold_conv_bn(conv[-1], bn)
                setattr(container, bn_name, nn.Identity())
    return folded


@torch.no_grad()
def _fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("cannot fold a batch norm that tracks no running statistics")
    if bn.num_features != conv.out_channels:
        raise ValueError(
            f"batch norm has {bn.num_features} features after a conv with "
            f"{conv.out_channels} output channels"
        )
    # float64: the fold must reproduce the unfolded network to ~1e-6, and var + eps can be
    # small enough for float32 rounding of 1 / sqrt to show.
    weight = conv.weight.double()
    mean, var = bn.running_mean.double(), bn.running_var.double()
    gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(mean)
    beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(mean)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(mean)
    scale = gamma / torch.sqrt(var + bn.eps)
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,  # type: ignore[arg-type]
        stride=conv.stride,  # type: ignore[arg-type]
        padding=conv.padding,  # type: ignore[arg-type]
        dilation=conv.dilation,  # type: ignore[arg-type]
        groups=conv.groups,
        bias=True,
        padding_mode=conv.padding_mode,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )
    fused.weight.copy_(weight * scale.reshape(-1, 1, 1, 1))
    fused.bias.copy_(beta + (bias - mean) * scale)
    fused.train(conv.training)
    return fused


# --------------------------------------------------------------------------- fake quantization


def weight_qmax(bits: int) -> int:
    """Largest integer of the symmetric restricted range [-qmax, qmax] at ``bits``."""
    return 2 ** (bits - 1) - 1


def weight_scale(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-output-channel scale max|w| / qmax (1 for an all-zero channel, as ORT does)."""
    amax = weight.detach().abs().flatten(1).amax(dim=1)
    return torch.where(amax > 0, amax / weight_qmax(bits), torch.ones_like(amax)).float()


def fake_quantize_weight(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """Round ``weight`` to its symmetric per-channel grid; gradients pass straight through.

    The scale is computed from the detached weight (an observer, not a learned scale).
    """
    if bits >= FULL_PRECISION:
        return weight
    qmax = weight_qmax(bits)
    scale = weight_scale(weight, bits).to(weight.device)
    zero_point = torch.zeros(len(scale), dtype=torch.int32, device=weight.device)
    return torch.fake_quantize_per_channel_affine(weight, scale, zero_point, 0, -qmax, qmax)


class ActivationFakeQuant(nn.Module):
    """Per-tensor asymmetric fake quantization of an activation at ``bits`` bits.

    Training mode: the range is an EMA (``momentum``) of each batch's min / max, the first
    batch taken as is. Eval mode: the range is frozen. ``calibrating``: the range is the
    running min / max over all batches seen (``calibrate`` resets it first). The range
    always contains 0, so zero (ReLU outputs, padding) is exact, as in ORT.
    """

    def __init__(self, bits: int, momentum: float = 0.1):
        super().__init__()
        self.bits = bits
        self.momentum = momentum
        self.calibrating = False
        self.register_buffer("min_val", torch.zeros(()))
        self.register_buffer("max_val", torch.zeros(()))
        self.register_buffer("observed", torch.zeros((), dtype=torch.bool))

    @property
    def quant_max(self) -> int:
        return 2**self.bits - 1

    def reset(self) -> None:
        self.min_val.zero_()
        self.max_val.zero_()
        self.observed.fill_(False)

    @torch.no_grad()
    def _observe(self, x: torch.Tensor) -> None:
        low, high = x.detach().min().float(), x.detach().max().float()
        if not bool(self.observed):
            self.min_val.copy_(low)
            self.max_val.copy_(high)
            self.observed.fill_(True)
        elif self.calibrating:
            self.min_val.copy_(torch.minimum(self.min_val, low))
            self.max_val.copy_(torch.maximum(self.max_val, high))
        else:
            self.min_val.lerp_(low, self.momentum)
            self.max_val.lerp_(high, self.momentum)

    def scale_and_zero_point(self) -> tuple[torch.Tensor, torch.Tensor]:
        low = torch.clamp(self.min_val, max=0.0)
        high = torch.clamp(self.max_val, min=0.0)
        scale = (high - low) / self.quant_max
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        zero_point = torch.clamp(torch.round(-low / scale), 0, self.quant_max).to(torch.int32)
        return scale.float(), zero_point

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or self.calibrating:
            self._observe(x)
        elif not bool(self.observed):
            raise RuntimeError(
                "activation range was never observed: call calibrate() (or train) before "
                "running a QAT model in eval mode"
            )
        scale, zero_point = self.scale_and_zero_point()
        return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, 0, self.quant_max)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, momentum={self.momentum}"


class QATConv2d(nn.Conv2d):
    """A Conv2d that fake-quantizes its input and weight; same parameter names as Conv2d.

    Subclassing (not wrapping) keeps module paths, state-dict keys and ``isinstance``
    checks (the cost model's) unchanged.
    """

    weight_bits: int
    act_quant: ActivationFakeQuant | None

    @classmethod
    def from_float(cls, conv: nn.Conv2d, weight_bits: int, activation_bits: int) -> QATConv2d:
        qat = cls(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,  # type: ignore[arg-type]
            stride=conv.stride,  # type: ignore[arg-type]
            padding=conv.padding,  # type: ignore[arg-type]
            dilation=conv.dilation,  # type: ignore[arg-type]
            groups=conv.groups,
            bias=conv.bias is not None,
            padding_mode=conv.padding_mode,
            device=conv.weight.device,
            dtype=conv.weight.dtype,
        )
        _copy_parameters(conv, qat)
        _attach_quantizers(qat, weight_bits, activation_bits)
        qat.train(conv.training)
        return qat

    def quantized_weight(self) -> torch.Tensor:
        return fake_quantize_weight(self.weight, self.weight_bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.act_quant is not None:
            x = self.act_quant(x)
        return self._conv_forward(x, self.quantized_weight(), self.bias)

    def to_float(self) -> nn.Conv2d:
        """A plain Conv2d holding the fake-quantized (on-grid) weight."""
        conv = nn.Conv2d(
            self.in_channels,
            self.out_channels,
            self.kernel_size,  # type: ignore[arg-type]
            stride=self.stride,  # type: ignore[arg-type]
            padding=self.padding,  # type: ignore[arg-type]
            dilation=self.dilation,  # type: ignore[arg-type]
            groups=self.groups,
            bias=self.bias is not None,
            padding_mode=self.padding_mode,
            device=self.weight.device,
            dtype=self.weight.dtype,
        )
        _copy_parameters(self, conv, quantized=True)
        return conv


class QATLinear(nn.Linear):
    """A Linear that fake-quantizes its input and weight; same parameter names as Linear."""

    weight_bits: int
    act_quant: ActivationFakeQuant | None

    @classmethod
    def from_float(cls, linear: nn.Linear, weight_bits: int, activation_bits: int) -> QATLinear:
        qat = cls(
            linear.in_features,
            linear.out_features,
            bias=linear.bias is not None,
            device=linear.weight.device,
            dtype=linear.weight.dtype,
        )
        _copy_parameters(linear, qat)
        _attach_quantizers(qat, weight_bits, activation_bits)
        qat.train(linear.training)
        return qat

    def quantized_weight(self) -> torch.Tensor:
        return fake_quantize_weight(self.weight, self.weight_bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.act_quant is not None:
            x = self.act_quant(x)
        return F.linear(x, self.quantized_weight(), self.bias)

    def to_float(self) -> nn.Linear:
        linear = nn.Linear(
            self.in_features,
            self.out_features,
            bias=self.bias is not None,
            device=self.weight.device,
            dtype=self.weight.dtype,
        )
        _copy_parameters(self, linear, quantized=True)
        return linear


_QAT_MODULES = (QATConv2d, QATLinear)


def _attach_quantizers(module: nn.Module, weight_bits: int, activation_bits: int) -> None:
    module.weight_bits = weight_bits
    module.act_quant = (
        ActivationFakeQuant(activation_bits).to(module.weight.device)
        if activation_bits < FULL_PRECISION
        else None
    )


@torch.no_grad()
def _copy_parameters(source: nn.Module, target: nn.Module, quantized: bool = False) -> None:
    weight = source.quantized_weight() if quantized else source.weight  # type: ignore[operator]
    target.weight.copy_(weight)
    if source.bias is not None:
        target.bias.copy_(source.bias)


def is_qat_model(model: nn.Module) -> bool:
    return any(isinstance(module, _QAT_MODULES) for module in model.modules())


def prepare_qat(model: nn.Module, candidate: Candidate) -> nn.Module:
    """A BN-folded copy of ``model`` with fake quantization at each stage's bit-widths.

    Every Conv2d / Linear of a stage whose weight or activation bits are below 32 becomes
    a ``QATConv2d`` / ``QATLinear`` (16 bits are fake-quantized too: near-lossless, and
    what the stored size assumes); fp32 stages keep plain modules. The result trains with
    ``evaluators.distill.train`` like any module; run ``calibrate`` (or train) before
    evaluating it, so activation ranges exist.
    """
    if is_qat_model(model):
        raise ValueError("model is already prepared for QAT")
    folded = fold_batchnorm(model)
    stages = candidate.policy.stages
    for name, module in list(folded.named_modules()):
        if type(module) not in (nn.Conv2d, nn.Linear):
            continue
        policy = stages[stage_of_parameter(name + ".", len(stages))]
        if policy.weight_bits >= FULL_PRECISION and policy.activation_bits >= FULL_PRECISION:
            continue
        cls = QATConv2d if isinstance(module, nn.Conv2d) else QATLinear
        _set_submodule(
            folded, name, cls.from_float(module, policy.weight_bits, policy.activation_bits)
        )
    return folded


def strip_qat(model: nn.Module) -> nn.Module:
    """A copy with plain Conv2d / Linear holding the fake-quantized weights (no act quant)."""
    plain = copy.deepcopy(model)
    for name, module in list(plain.named_modules()):
        if isinstance(module, _QAT_MODULES):
            _set_submodule(plain, name, module.to_float())
    return plain


def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, child, module)


@torch.no_grad()
def calibrate(model: nn.Module, images: torch.Tensor, batch_size: int = 256) -> nn.Module:
    """Set every activation range to the min / max over ``images``; weights are untouched.

    Runs in eval mode without gradients (so nothing but the ranges changes) and leaves
    the model in eval mode, ready to evaluate or export. Returns the model for chaining.
    """
    quantizers = [m for m in model.modules() if isinstance(m, ActivationFakeQuant)]
    model.eval()
    device = next(model.parameters()).device
    for quantizer in quantizers:
        quantizer.reset()
        quantizer.calibrating = True
    try:
        for start in range(0, len(images), batch_size):
            model(images[start : start + batch_size].to(device))
    finally:
        for quantizer in quantizers:
            quantizer.calibrating = False
    return model


# --------------------------------------------------------------------------- deployment


def executes_as_int8(policy: StagePolicy) -> bool:
    """Whether ONNX Runtime on the host runs this stage in int8 (else it runs fp32)."""
    return policy.weight_bits <= 8 and policy.activation_bits == 8


def describe_execution(policy: StagePolicy) -> str:
    """How the host executes a stage, for the report: says what was not executed as asked."""
    w, a = policy.weight_bits, policy.activation_bits
    if w == FULL_PRECISION and a == FULL_PRECISION:
        return "fp32"
    if executes_as_int8(policy):
        if w == 8:
            return "w8a8 int8"
        return (
            f"w{w}a8 executed as int8 ({w}-bit weight values in int8 storage; "
            f"flash counts them packed at {w} bits)"
        )
    return f"w{w}a{a} executed as fp32"


@dataclass(frozen=True)
class DeployedArtifact:
    """The ONNX file the host runs, and what it really executes per stage."""

    path: Path
    executed_bits: tuple[str, ...]
    is_int8: bool
    file_bytes: int
    int8_initializers: int
    method: str


def node_stages(node_names: list[str], num_stages: int) -> list[int]:
    """The stage of each ONNX node, from the module path the legacy exporter names it by.

    ``/stem/...`` -> 0, ``/stages.i/...`` -> i, ``/pool/...``, ``/classifier/...`` and the
    top-level ``/Flatten`` -> the last stage. A node with any other name (none in a
    ``CandidateNet`` today) takes the stage of the node before it in graph order.
    """
    stages = []
    previous = 0
    for name in node_names:
        head = name.lstrip("/").split("/", 1)[0]
        if head == "stem":
            stage = 0
        elif head.startswith("stages."):
            stage = int(head.split(".")[1])
        elif head in ("pool", "classifier", "Flatten"):
            stage = num_stages - 1
        else:
            stage = previous
        stages.append(stage)
        previous = stage
    return stages


class _ImageBatches:
    """A calibration data reader (ORT duck-types ``get_next``) over in-memory images."""

    def __init__(self, images: torch.Tensor, batch_size: int):
        array = images.detach().cpu().float().numpy()
        self._batches: Iterator[np.ndarray] = (
            array[start : start + batch_size] for start in range(0, len(array), batch_size)
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {INPUT_NAME: batch}


@contextmanager
def _quiet_ort_quantizer() -> Iterator[None]:
    # quantize_static logs on the root logger, on every call, a pre-processing suggestion
    # (our graphs are already folded by us and shape-inferred by the exporter) and, with a
    # dynamic batch, one line per integer shape tensor it rightly leaves unquantized.
    noise = ("pre-process", "unsupported type to quantize")

    def drop(record: logging.LogRecord) -> bool:
        return not any(text in record.getMessage() for text in noise)

    root = logging.getLogger()
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)


def export_deployable(
    model: nn.Module,
    candidate: Candidate,
    input_shape: tuple[int, int, int],
    path: str | Path,
    calibration_images: torch.Tensor,
    *,
    method: QuantMethod | None = None,
    calibration_batch_size: int = 64,
    dynamic_batch: bool = False,
    dynamic_linear: bool = False,
) -> DeployedArtifact:
    """Write the ONNX file the host runs for ``candidate`` and say what it executes.

    ``model`` is a trained fp32 network (``method="ptq"``) or the output of ``prepare_qat``
    after fine-tuning (``method="qat"``); ``None`` infers the method from the model.

    - BN is folded, and every stage's weights are rounded to its policy's grid: PTQ
      rounds the trained weights to the nearest level, QAT exports the fake-quantized
      weights it trained (fake-quant modules stripped, activation ranges dropped).
    - Stages with weight bits <= 8 and activation bits == 8 are quantized for real with
      ``quantize_static``: QDQ format (ORT fuses DQ -> Conv -> Q into QLinearConv at load
      time; ORT's recommended CPU format), int8 weights per output channel, uint8
      activations, no reduce_range (this host's CPU has VNNI, whose u8 x s8 dot product
      is native: uint8 activations measured 1.2-1.5x faster than int8 ones at batch 1),
      MinMax calibration over ``calibration_images`` (a few hundred suffice; activations
      outside their range are clipped). ORT would recompute per-channel scales as
      max|w| / 127, which for
      on-grid 8-bit weights is exactly our QAT scale; we pass our scale max|w| / qmax(b)
      explicitly (``TensorQuantOverrides``) so that 2- and 4-bit weights land on their
      exact integers in [-qmax, qmax] instead of being re-rounded onto the int8 grid.
      Activation ranges are ORT's own MinMax over the calibration images.
    - Nodes of all other stages are excluded and run fp32 (the host runs nothing at 2, 4
      or 16 bits); a policy with no int8 stage gives a plain fp32 file.
    - ``dynamic_linear``: the linear layers left in fp32 are then quantized dynamically
      (``quantize_linear_dynamic``): int8 weights, activations quantized at run time.

    Measure the artifact, not the fp32 network: on very small networks the Q / DQ work
    outweighs the int8 arithmetic (tiny_mixed at 3x32x32: 0.13 ms int8 vs 0.094 ms fp32),
    while wider ones gain (0.40 vs 0.74 ms for 32-256 channels).
    """
    import onnx

    is_qat = is_qat_model(model)
    if method is None:
        method = "qat" if is_qat else "ptq"
    if method not in ("ptq", "qat"):
        raise ValueError(f"method must be 'ptq' or 'qat', got {method!r}")
    policies = candidate.policy.stages
    any_quantized = any(
        p.weight_bits < FULL_PRECISION or p.activation_bits < FULL_PRECISION for p in policies
    )
    if method == "qat" and not is_qat and any_quantized:
        raise ValueError("method 'qat' needs a model from prepare_qat (this one has no fake quant)")
    if method == "ptq" and is_qat:
        raise ValueError("this is a QAT model (from prepare_qat): export it with method 'qat'")

    deploy = strip_qat(model) if is_qat else strip_qat(prepare_qat(model, candidate))
    deploy.eval()
    path = Path(path)
    int8_stages = {i for i, p in enumerate(policies) if executes_as_int8(p)}
    with tempfile.TemporaryDirectory(prefix="paretonas-quant-") as tmp:
        fp32_path = export_onnx(
            deploy, input_shape, Path(tmp) / "fp32.onnx", dynamic_batch=dynamic_batch
        )
        if not int8_stages:
            write_atomic(path, lambda target: shutil.copyfile(fp32_path, target))
        else:
            proto = onnx.load(str(fp32_path))
            names = [node.name for node in proto.graph.node]
            stages = node_stages(names, len(policies))
            exclude = [n for n, s in zip(names, stages, strict=True) if s not in int8_stages]
            overrides = _weight_overrides(proto, stages, policies)
            if is_qat:
                overrides.update(_learned_input_ranges(model, proto, stages, int8_stages))
            reader = _ImageBatches(
                calibration_images, calibration_batch_size if dynamic_batch else 1
            )
            write_atomic(
                path,
                lambda target: _quantize_static(fp32_path, target, reader, exclude, overrides),
            )
        if dynamic_linear:
            static = Path(tmp) / "static.onnx"
            shutil.copyfile(path, static)
            write_atomic(path, lambda target: quantize_linear_dynamic(static, target))
    return _describe_artifact(path, candidate, method + ("+dynamic" if dynamic_linear else ""))


def quantize_linear_dynamic(source: str | Path, target: str | Path) -> int:
    """Dynamic int8 of the fp32 linear layers of the ONNX file ``source``, written to
    ``target``; returns how many layers were quantized.

    ONNX Runtime's ``quantize_dynamic`` (weights int8 ahead of time, each input quantized
    at run time from its own range by ``DynamicQuantizeLinear``, ``MatMulInteger``) handles
    MatMul but not Gemm, which is how PyTorch exports ``nn.Linear``: a float Gemm whose
    weight is a constant becomes MatMul + Add first (the same arithmetic). Gemms already
    quantized statically (their weight comes from a DequantizeLinear) are left alone.
    Weights are stored as on static int8 stages (``weights_unsigned``).
    """
    import onnx
    from onnx import helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(source))
    graph = model.graph
    constants = {init.name: init for init in graph.initializer}
    users: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            users[name] = users.get(name, 0) + 1
    rewritten = []
    matmuls = []
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        weight = node.input[1] if node.op_type == "Gemm" and len(node.input) > 1 else None
        if (
            weight in constants
            and users[weight] == 1
            and attrs.get("alpha", 1.0) == 1.0
            and attrs.get("beta", 1.0) == 1.0
            and not attrs.get("transA", 0)
        ):
            array = numpy_helper.to_array(constants[weight])
            if attrs.get("transB", 0):
                array = array.T.copy()
            constants[weight].CopyFrom(numpy_helper.from_array(array, weight))
            product = f"{node.output[0]}_matmul"
            matmul = helper.make_node("MatMul", [node.input[0], weight], [product], node.name)
            rewritten.append(matmul)
            matmuls.append(node.name)
            if len(node.input) > 2 and node.input[2]:
                rewritten.append(
                    helper.make_node(
                        "Add", [product, node.input[2]], [node.output[0]], node.name + "_bias"
                    )
                )
            else:
                rewritten[-1].output[0] = node.output[0]
        else:
            rewritten.append(node)
    del graph.node[:]
    graph.node.extend(rewritten)
    with tempfile.TemporaryDirectory(prefix="paretonas-dynamic-") as tmp:
        plain = Path(tmp) / "matmul.onnx"
        onnx.save(model, str(plain))
        if not matmuls:
            shutil.copyfile(plain, target)
            return 0
        with _quiet_ort_quantizer():
            quantize_dynamic(
                plain,
                target,
                op_types_to_quantize=["MatMul"],
                nodes_to_quantize=matmuls,
                per_channel=False,
                weight_type=QuantType.QUInt8 if weights_unsigned() else QuantType.QInt8,
            )
    # The quantizer leaves its shape-inference results in the file: bytes, no information.
    quantized = onnx.load(str(target))
    del quantized.graph.value_info[:]
    onnx.save(quantized, str(target))
    return len(matmuls)


def _learned_input_ranges(
    model: nn.Module, proto, stages: list[int], int8_stages: set[int]
) -> dict[str, list[dict]]:
    """(scale, zero point) that QAT learned for the input of every int8-stage Conv / Gemm.

    ORT then quantizes those tensors exactly as fine-tuning saw them; the tensors QAT
    does not fake-quantize (conv outputs, residual sums) keep ORT's MinMax calibration.
    The exporter writes nodes in execution order, which is the order of the modules in
    ``named_modules`` for every ``CandidateNet``; shapes are checked pair by pair.
    """
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    nodes = [
        (node, stage)
        for node, stage in zip(proto.graph.node, stages, strict=True)
        if node.op_type in ("Conv", "Gemm")
    ]
    if len(layers) != len(nodes):
        return {}
    initializers = {init.name: init for init in proto.graph.initializer}
    overrides: dict[str, list[dict]] = {}
    for layer, (node, stage) in zip(layers, nodes, strict=True):
        weight = initializers.get(node.input[1])
        if weight is None or tuple(weight.dims) != tuple(layer.weight.shape):
            return {}  # not the layer we think it is: fall back to calibration everywhere
        quantizer = getattr(layer, "act_quant", None)
        if stage not in int8_stages or quantizer is None or quantizer.bits != 8:
            continue
        scale, zero_point = quantizer.scale_and_zero_point()
        overrides.setdefault(
            node.input[0],
            [
                {
                    "scale": np.array(scale.item(), np.float32),
                    "zero_point": np.array(zero_point.item(), np.uint8),
                }
            ],
        )
    return overrides


def _weight_overrides(proto, stages: list[int], policies: tuple[StagePolicy, ...]) -> dict:
    """Per-channel (scale, zero point) of every int8-stage Conv / Gemm weight.

    Symmetric either way: zero point 0 for int8 storage, 128 for uint8 storage (see
    ``weights_unsigned``), so a b-bit weight is the same integer in [-qmax, qmax].
    """
    zero_point = np.uint8(128) if weights_unsigned() else np.int8(0)
    from onnx import numpy_helper

    initializers = {init.name: init for init in proto.graph.initializer}
    overrides: dict[str, list[dict]] = {}
    for node, stage in zip(proto.graph.node, stages, strict=True):
        policy = policies[stage]
        if node.op_type not in ("Conv", "Gemm") or not executes_as_int8(policy):
            continue
        weight_name = node.input[1]
        if weight_name not in initializers or weight_name in overrides:
            continue
        if node.op_type == "Gemm" and not any(
            a.name == "transB" and a.i == 1 for a in node.attribute
        ):
            continue  # the exporter writes Linear as Gemm(transB=1): output channels on axis 0
        weight = torch.from_numpy(numpy_helper.to_array(initializers[weight_name]).copy())
        scales = weight_scale(weight, policy.weight_bits).numpy()
        overrides[weight_name] = [
            {"axis": 0, "scale": np.float32(s), "zero_point": zero_point} for s in scales
        ]
    return overrides


@functools.cache
def weights_unsigned() -> bool:
    """Whether int8 weights are stored as uint8 (zero point 128) for this host's kernels.

    ORT's default u8 x s8 kernels multiply pairs into int16 with saturation on x86 CPUs
    without VNNI (AVX2 / AVX-512 ``vpmaddubsw``), which is ORT's documented accuracy
    caveat: on this project's AMD EPYC CI host (AVX2, no VNNI) it flipped 7 % of the test
    predictions of a digits model. u8 x u8 kernels do not saturate, keep full 8-bit
    weights (unlike ``reduce_range``'s 7 bits) and ran 9 % slower there; with VNNI, or
    off x86, the s8 weights are exact and faster, so they are kept.
    """
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False  # not Linux: no way to tell; ORT's default
    return not any(flag in flags.split() for flag in ("avx512_vnni", "avx_vnni", "amx_int8"))


def _quantize_static(
    source: Path, target: Path, reader: _ImageBatches, exclude: list[str], overrides: dict
) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    with _quiet_ort_quantizer():
        quantize_static(
            str(source),
            str(target),
            calibration_data_reader=reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=False,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QUInt8 if weights_unsigned() else QuantType.QInt8,
            nodes_to_exclude=exclude,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"TensorQuantOverrides": overrides},
        )
    _drop_unused_constants(target)


def _drop_unused_constants(path: Path) -> None:
    """Remove Constant nodes whose output no node reads. The quantizer drops a ReLU6 whose
    bounds the activation's uint8 range already enforces but keeps the Clip's two bound
    constants, which ONNX Runtime then reports, at every load, as initializers to remove."""
    import onnx

    proto = onnx.load(str(path))
    graph = proto.graph
    read = {name for node in graph.node for name in node.input}
    read |= {output.name for output in graph.output}
    dead = [
        node
        for node in graph.node
        if node.op_type == "Constant" and not any(name in read for name in node.output)
    ]
    if dead:
        for node in dead:
            graph.node.remove(node)
        onnx.save(proto, str(path))


def _describe_artifact(path: Path, candidate: Candidate, method: str) -> DeployedArtifact:
    import onnx

    graph = onnx.load(str(path)).graph
    int8_types = (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)
    dequantized = {node.input[0] for node in graph.node if node.op_type == "DequantizeLinear"}
    int8_weights = sum(
        1
        for init in graph.initializer
        if init.data_type in int8_types and init.name in dequantized and len(init.dims) > 0
    )
    has_qdq = any(
        node.op_type
        in (
            "QuantizeLinear",
            "DequantizeLinear",
            "QLinearConv",
            "ConvInteger",
            "DynamicQuantizeLinear",
            "MatMulInteger",
        )
        for node in graph.node
    )
    return DeployedArtifact(
        path=path,
        executed_bits=tuple(describe_execution(p) for p in candidate.policy.stages),
        is_int8=has_qdq or int8_weights > 0,
        file_bytes=path.stat().st_size,
        int8_initializers=int8_weights,
        method=method,
    )


# --------------------------------------------------------------------------- evaluation


def onnx_logits(path: str | Path, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Logits of the ONNX model at ``path`` run by ONNX Runtime (CPU), as a float tensor.

    Files with a fixed batch axis (the default of ``evaluators.hardware.export_onnx``)
    run one image at a time; files with a dynamic batch run ``batch_size`` at a time.
    """
    session = onnx_session(path, threads=torch.get_num_threads())
    batch_axis = session.get_inputs()[0].shape[0]
    step = batch_size if not isinstance(batch_axis, int) else batch_axis
    array = images.detach().cpu().float().numpy()
    outputs = []
    # The host's timing lock is held per chunk of at least batch_size images: a file with a
    # fixed batch of 1 runs one image in ~0.1 ms, which a lock per image would slow.
    chunk = max(step, batch_size // step * step)
    for begin in range(0, len(array), chunk):
        with computing():
            for start in range(begin, min(begin + chunk, len(array)), step):
                outputs.append(session.run(None, {INPUT_NAME: array[start : start + step]})[0])
    return torch.from_numpy(np.concatenate(outputs)) if outputs else torch.empty(0)


def onnx_accuracy(
    path: str | Path, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 256
) -> float:
    """Top-1 accuracy of the deployed artifact itself: the number a report shows."""
    return accuracy(onnx_logits(path, images, batch_size), labels.cpu())
