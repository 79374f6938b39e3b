"""Peak activation memory from the execution schedule, and flash from packed weights.

A microcontroller runtime (TFLite Micro, CMSIS-NN, TVM's AoT executor) runs the graph one
kernel at a time, and its arena must hold every tensor that is still needed: the kernel's
inputs and output, and anything an earlier kernel produced for a later one, such as the
input of a residual block that waits, across the block body, for the add. So the peak is
the largest sum of LIVE tensors at any step, not the largest input + output of one kernel.

The schedule is the module's own graph in execution order, from ``torch.fx.symbolic_trace``
(every built-in block kind traces: residual adds are ``add`` nodes, gconv's shuffle is an
``index_select``), with shapes from one batch-1 pass through it on the module's device (the
meta device in the search: shapes, no storage). A tensor is live from the step that
produces it to the step of its last consumer, both included. What a deployment runtime
materializes decides what counts as a tensor:

- Batch norm folds into the preceding conv and elementwise activations (ReLU, ReLU6, clip,
  ...) fuse into the kernel that produced their input, so they write in place: they ALIAS
  their input and allocate nothing, provided that input is read by nothing after them
  (otherwise the runtime must keep the unactivated tensor: they allocate like any kernel).
- Views (flatten, reshape, view, squeeze, unsqueeze, identity, eval-mode dropout) alias
  their input unconditionally: same bytes, new shape.
- Every other op, ``add`` included, writes a separate output buffer. An add whose input
  dies there could run in place, and some runtimes do; TFLite Micro's planners allocate a
  separate output, and that is the choice here (it can only overstate the peak, by at most
  one tensor at the add).
- Constants (``get_attr``: gconv's shuffle order, weights) live in flash, not in the arena.

Bytes of a tensor: numel at batch 1 x the activation bits of the stage whose module
produced it (``candidate_activation_bits``; the network input counts at stage 0's bits),
rounded up to whole bytes. The arena is taken as perfectly packed (no fragmentation, no
alignment padding), so this is the lower bound that a good offline planner reaches.

Block kinds registered by users are traced like the built-in ones. One whose forward does
not trace (Python control flow on tensor values or shapes) is refused, not kept whole:
counting only its input and output understated the peak by half for a fused MBConv, and
a budget on SRAM must not be met on paper only (``evaluators.block_contract``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from spaces.build import stage_of_parameter
from spaces.candidate import Candidate

ActivationBits = int | Callable[[str], int]
"""Activation bits of every tensor (an int), or of the tensors a module path produces."""

# Flash allowances, per conv / linear layer, beyond its packed weights.
LAYER_METADATA_BYTES = 64
"""Operator and tensor descriptors of one layer: shapes, strides, padding, the activation
quantization parameters and pointers. A TFLite flatbuffer spends roughly 50-100 bytes per
conv operator on these tables; 64 is the round figure taken here."""
BIAS_BYTES = 4
"""One 32-bit bias per output channel: batch norm folds into it, and int8 runtimes keep
int32 biases (fp32 for float layers: the same 4 bytes)."""
SCALE_BYTES = 4
"""One fp32 weight scale per output channel of a quantized layer (weight bits < 32):
weights are symmetric per output channel (``evaluators.quantize``), so no zero point."""

# In-place elementwise ops: fold or fuse into the producer of their input.
_IN_PLACE_MODULES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._BatchNorm,
    nn.ReLU,
    nn.ReLU6,
    nn.Hardtanh,
    nn.LeakyReLU,
    nn.Sigmoid,
    nn.Hardsigmoid,
    nn.Hardswish,
    nn.SiLU,
    nn.Tanh,
    nn.GELU,
    nn.ELU,
)
_IN_PLACE_FUNCTIONS: frozenset[Any] = frozenset(
    {
        F.relu,
        F.relu6,
        F.hardtanh,
        F.leaky_relu,
        F.hardsigmoid,
        F.hardswish,
        F.silu,
        F.gelu,
        F.elu,
        F.batch_norm,
        torch.relu,
        torch.sigmoid,
        torch.tanh,
        torch.clamp,
    }
)
_IN_PLACE_METHODS = frozenset({"relu", "relu_", "clamp", "clamp_", "sigmoid", "tanh"})
# Views: same storage, another shape.
_VIEW_MODULES: tuple[type[nn.Module], ...] = (
    nn.Flatten,
    nn.Unflatten,
    nn.Identity,
    nn.Dropout,
)
_VIEW_FUNCTIONS: frozenset[Any] = frozenset(
    {torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze}
)
_VIEW_METHODS = frozenset({"flatten", "view", "view_as", "reshape", "squeeze", "unsqueeze"})
# Modules whose output has the shape of their input: the shape pass skips running them
# (batch norm runs as a Python decomposition on the meta device, ~2/3 of a forward's time).
_SHAPE_KEEPING_MODULES = (*_IN_PLACE_MODULES, nn.Identity, nn.Dropout)


@dataclass(frozen=True)
class MemorySchedule:
    """Live activation bytes while each kernel runs (its inputs and output included), in
    execution order.

    ``steps``: (step, live bytes) for every node that writes a tensor: the network input
    ("input"), then kernels by module path (``stages.1.0.body.0.0``) or, for functions
    inside a module, ``path:function`` (``stages.1.1:add``).
    """

    steps: tuple[tuple[str, int], ...]

    @property
    def peak_bytes(self) -> int:
        return max(live for _, live in self.steps)

    @property
    def peak_step(self) -> str:
        """The first step at which the peak is reached."""
        peak = self.peak_bytes
        return next(step for step, live in self.steps if live == peak)


def candidate_activation_bits(candidate: Candidate) -> Callable[[str], int]:
    """Activation bits by module path of a ``CandidateNet``: the policy of the module's
    stage (``spaces.build.stage_of_parameter``); "" (the network input) is stage 0's."""
    stages = candidate.policy.stages

    def bits_of(path: str) -> int:
        stage = stage_of_parameter(path + ".", len(stages)) if path else 0
        return stages[stage].activation_bits

    return bits_of


def activation_schedule(
    model: nn.Module,
    input_shape: tuple[int, ...],
    activation_bits_of: ActivationBits = 32,
) -> MemorySchedule:
    """Live activation bytes of ``model`` at each step of one batch-1 inference on an input
    of ``input_shape`` (without the batch axis), by the rules of the module docstring.

    The pass runs on the device of ``model``'s parameters (meta: shapes only). Every module
    it calls (conv, linear, pooling, a user block kept whole) fires its forward hooks once,
    as in a plain forward, so a caller can count MACs in the same pass; batch norm,
    activations, identity and dropout are not called (their output shape is their input's).
    """
    bits_of = _bits_function(activation_bits_of)
    graph = _trace(model)
    numels = _numels(graph, model, input_shape)
    modules = dict(graph.named_modules())
    nodes = list(graph.graph.nodes)
    position = {node: index for index, node in enumerate(nodes)}

    buffer_of: dict[fx.Node, int] = {}  # tensor node -> index into the lists below
    aliases: list[list[fx.Node]] = []  # nodes whose value lives in the buffer
    sizes: list[int] = []
    births: list[int] = []
    owner: list[str] = []  # step that allocated the buffer
    for node in nodes:
        if node not in numels:
            continue  # output, constants, non-tensor values
        source = _first_tensor_input(node, numels)
        kind = _kind(node, modules)
        if source is not None and (
            kind == "view"
            or (kind == "in-place" and _dies_at(aliases[buffer_of[source]], node, position))
        ):
            buffer_of[node] = buffer_of[source]
            aliases[buffer_of[node]].append(node)
            continue
        path = _module_path(node)
        if path or source is None:
            bits = bits_of(path)
        else:  # a function at top level: it writes at the bits of what it reads
            bits = bits_of(_module_path(aliases[buffer_of[source]][0]))
        buffer_of[node] = len(sizes)
        aliases.append([node])
        sizes.append(math.ceil(numels[node] * bits / 8))
        births.append(position[node])
        owner.append(_label(node, path))

    deaths = list(births)  # a tensor nobody reads lives only at its own step
    for node in nodes:
        for used in node.all_input_nodes:
            if used in buffer_of:
                index = buffer_of[used]
                deaths[index] = max(deaths[index], position[node])

    steps = []
    for index, birth in enumerate(births):
        live = sum(
            size
            for size, start, end in zip(sizes, births, deaths, strict=True)
            if start <= birth <= end
        )
        steps.append((owner[index], live))
    return MemorySchedule(tuple(steps))


def flash_bytes(model: nn.Module, candidate: Candidate) -> int:
    """Stored bytes of a ``CandidateNet`` under ``candidate``'s policy, per conv / linear:

    - weights packed at the stage's weight bits, ``ceil(count * bits / 8)``; with
      unstructured sparsity only the non-zeros, ``count - round(count * sparsity)`` as
      ``evaluators.prune.apply_sparsity`` leaves them, at the weight bits, plus a bitmap
      index of 1 bit per weight, ``ceil(count / 8)``;
    - ``BIAS_BYTES`` per output channel (batch norm folded);
    - ``SCALE_BYTES`` per output channel when the weights are quantized (bits < 32);
    - ``LAYER_METADATA_BYTES`` per layer.

    Batch-norm parameters are not stored (folded); neither are constant index buffers such
    as gconv's shuffle order, which a runtime bakes into the kernel's addressing.
    """
    stages = candidate.policy.stages
    total = 0
    for name, module in model.named_modules():
        if not isinstance(module, nn.Conv2d | nn.Linear):
            continue
        policy = stages[stage_of_parameter(name + ".", len(stages))]
        count, outputs, bits = module.weight.numel(), module.weight.shape[0], policy.weight_bits
        if policy.sparsity > 0:
            kept = count - round(count * policy.sparsity)  # as torch's l1_unstructured counts
            total += math.ceil(kept * bits / 8) + math.ceil(count / 8)
        else:
            total += math.ceil(count * bits / 8)
        total += outputs * BIAS_BYTES + LAYER_METADATA_BYTES
        if bits < 32:
            total += outputs * SCALE_BYTES
    return total


def _bits_function(bits: ActivationBits) -> Callable[[str], int]:
    if callable(bits):
        return bits
    return lambda path: bits


def _trace(model: nn.Module) -> fx.GraphModule:
    try:
        return fx.symbolic_trace(model)
    except Exception as error:
        said = str(error).strip().splitlines()
        raise ValueError(
            f"the network does not trace with torch.fx ({type(error).__name__}: "
            f"{said[0] if said else ''}), so its peak memory cannot be scheduled; check each "
            "block kind of your own with evaluators.block_contract.check_block"
        ) from None


class _ShapePass(fx.Interpreter):
    """Runs the graph once, recording each tensor's numel; shape-keeping modules are not
    run (their output is their input), which makes the meta-device pass ~3x faster."""

    def __init__(self, graph: fx.GraphModule):
        super().__init__(graph)
        self.numels: dict[fx.Node, int] = {}

    def run_node(self, node: fx.Node) -> Any:
        result = super().run_node(node)
        if isinstance(result, torch.Tensor) and node.op not in ("get_attr", "output"):
            self.numels[node] = result.numel()
        return result

    def call_module(self, target: Any, args: tuple, kwargs: dict) -> Any:
        if isinstance(self.fetch_attr(target), _SHAPE_KEEPING_MODULES):
            return args[0]
        return super().call_module(target, args, kwargs)


def _numels(graph: fx.GraphModule, model: nn.Module, input_shape: tuple[int, ...]) -> dict:
    tensors = [*model.parameters(), *model.buffers()]
    device = tensors[0].device if tensors else torch.device("cpu")
    shapes = _ShapePass(graph)
    with torch.no_grad():
        shapes.run(torch.empty(1, *input_shape, device=device))
    return shapes.numels


def _kind(node: fx.Node, modules: dict[str, nn.Module]) -> str:
    """ "view", "in-place" (aliases its input if that input dies here) or "new"."""
    if node.op == "call_module":
        module = modules[node.target]
        if isinstance(module, _VIEW_MODULES):
            return "view"
        if isinstance(module, _IN_PLACE_MODULES):
            return "in-place"
    elif node.op == "call_function":
        if node.target in _VIEW_FUNCTIONS:
            return "view"
        if node.target in _IN_PLACE_FUNCTIONS:
            return "in-place"
    elif node.op == "call_method":
        if node.target in _VIEW_METHODS:
            return "view"
        if node.target in _IN_PLACE_METHODS:
            return "in-place"
    return "new"


def _dies_at(aliases: list[fx.Node], node: fx.Node, position: dict[fx.Node, int]) -> bool:
    """Whether nothing but ``node`` reads the buffer held by ``aliases`` from ``node`` on."""
    here = position[node]
    return all(
        position[user] < here for alias in aliases for user in alias.users if user is not node
    )


def _first_tensor_input(node: fx.Node, numels: dict[fx.Node, int]) -> fx.Node | None:
    return next((arg for arg in node.all_input_nodes if arg in numels), None)


def _module_path(node: fx.Node) -> str:
    """The path of the module that runs ``node`` ("" for the input and top-level code)."""
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack")
    return next(reversed(stack)) if stack else ""


def _label(node: fx.Node, path: str) -> str:
    if node.op == "placeholder":
        return "input"
    if node.op == "call_module":
        return path
    name = getattr(node.target, "__name__", str(node.target))
    return f"{path}:{name}" if path else name
