"""The textbook compression recipes, for any torch ``nn.Module``: named, small, comparable.

The search pipeline compresses a candidate by its policy (``evaluators.prune``,
``evaluators.quantize``); the functions here are the classic recipes that policy is
measured against, applied to any network, ours or not:

- distillation (Hinton et al., 2015): ``DistillationRecipe`` names an (alpha, temperature)
  pair of ``evaluators.distill.kd_loss``: ``kd``, ``soft_labels_only``, ``hard_labels_only``;
- unstructured magnitude or random pruning (Han et al., 2015), per layer or global:
  ``unstructured_prune``, with ``sparsity`` and ``stored_size_bytes`` to report it;
- dynamic int8 quantization of linear layers: ``dynamic_quantize``.

Each returns an ordinary module, so one script can apply them one after another and
measure each step with the same accuracy and size code.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from evaluators.distill import TrainConfig, kd_loss
from evaluators.memory import BIAS_BYTES, LAYER_METADATA_BYTES, SCALE_BYTES

PRUNABLE: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.Linear)
"""The layers whose weights the pruning recipes zero and ``sparsity`` counts."""

# --------------------------------------------------------------------------- distillation


@dataclass(frozen=True)
class DistillationRecipe:
    """A named (alpha, temperature) of ``kd_loss``; in a run config: ``training.alpha`` and
    ``training.temperature``.

    ``alpha`` weighs the soft term ``T^2 * KL(softmax(teacher / T) || softmax(student / T))``
    (batch-mean KL) against the hard term ``CE(student, labels)``: 1 learns from the
    teacher's soft labels only (the labels are not read), 0 is plain training.
    """

    alpha: float = 0.9
    temperature: float = 4.0

    NAMES: ClassVar[tuple[str, ...]] = ("kd", "soft_labels_only", "hard_labels_only")

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")

    @classmethod
    def named(cls, name: str) -> DistillationRecipe:
        """``kd``: alpha 0.9, T 4 (Hinton's recipe, for training to convergence; a search's
        short fidelity defaults to T 1); ``soft_labels_only``: alpha 1, T 4;
        ``hard_labels_only``: alpha 0 (no teacher: the baseline every KD gain is against)."""
        recipes = {
            "kd": cls(0.9, 4.0),
            "soft_labels_only": cls(1.0, 4.0),
            "hard_labels_only": cls(0.0, 4.0),
        }
        if name not in recipes:
            raise ValueError(f"unknown distillation recipe {name!r}; choose from {cls.NAMES}")
        return recipes[name]

    def loss(
        self,
        student_logits: torch.Tensor,
        teacher_logits: torch.Tensor | None,
        labels: torch.Tensor,
    ) -> torch.Tensor:
        return kd_loss(student_logits, teacher_logits, labels, self.temperature, self.alpha)

    def train_config(self, base: TrainConfig | None = None) -> TrainConfig:
        """``base`` (default: ``TrainConfig()``) with this recipe's alpha and temperature,
        for ``evaluators.distill.train``."""
        return dataclasses.replace(
            base or TrainConfig(), alpha=self.alpha, temperature=self.temperature
        )


# --------------------------------------------------------------------------- pruning


def prunable_layers(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """(name, module) of every ``nn.Conv2d`` / ``nn.Linear`` in ``model``, in module order."""
    return ((name, m) for name, m in model.named_modules() if isinstance(m, PRUNABLE))


def unstructured_prune(
    model: nn.Module,
    amount: float,
    method: Literal["l1", "random"] = "l1",
    scope: Literal["global", "layer"] = "layer",
    *,
    seed: int | None = None,
) -> nn.Module:
    """Zero, in place, a fraction ``amount`` of the conv / linear weights; return ``model``.

    ``method``: ``l1`` zeroes the smallest |w| (magnitude pruning), ``random`` a uniformly
    random choice (the baseline magnitude pruning must beat). ``scope``: ``layer`` zeroes
    ``round(amount * numel)`` weights of every layer; ``global`` ranks all layers' weights
    together and zeroes ``round(amount * total)`` of them, so layers with many small
    weights lose more. ``seed`` makes ``random`` repeatable without touching torch's
    global random state. Biases are never pruned.

    Built on ``torch.nn.utils.prune`` and then ``prune.remove``: the result holds plain
    zeros, with no masks, ``weight_orig`` parameters or hooks. This shrinks the stored size
    (``stored_size_bytes``: non-zeros plus an index), never the latency: dense kernels
    still multiply the zeros.
    """
    amount = float(amount)
    if not 0.0 <= amount < 1.0:
        raise ValueError(f"amount is the fraction of weights to zero, in [0, 1); got {amount}")
    if method not in ("l1", "random"):
        raise ValueError(f"unknown pruning method {method!r}; choose 'l1' or 'random'")
    if scope not in ("global", "layer"):
        raise ValueError(f"unknown pruning scope {scope!r}; choose 'global' or 'layer'")
    layers = [module for _, module in prunable_layers(model)]
    if not layers:
        raise ValueError(f"{type(model).__name__} has no nn.Conv2d or nn.Linear layer to prune")
    if amount == 0:
        return model
    cuda = sorted({_cuda_index(m.weight.device) for m in layers if m.weight.is_cuda})
    with torch.random.fork_rng(devices=cuda, enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        if scope == "global":
            torch_prune.global_unstructured(
                [(module, "weight") for module in layers],
                pruning_method=(
                    torch_prune.L1Unstructured if method == "l1" else torch_prune.RandomUnstructured
                ),
                amount=amount,
            )
        else:
            prune_layer = (
                torch_prune.l1_unstructured if method == "l1" else torch_prune.random_unstructured
            )
            for module in layers:
                prune_layer(module, "weight", amount=amount)
    for module in layers:
        torch_prune.remove(module, "weight")
    return model


def _cuda_index(device: torch.device) -> int:
    return device.index if device.index is not None else torch.cuda.current_device()


def sparsity(model: nn.Module) -> float:
    """Fraction of the conv / linear weights that are exactly zero (0 for none)."""
    zeros = total = 0
    for _, module in prunable_layers(model):
        total += module.weight.numel()
        zeros += module.weight.numel() - int(torch.count_nonzero(module.weight))
    return zeros / total if total else 0.0


def stored_size_bytes(model: nn.Module, bits: int = 32) -> int:
    """Stored bytes of the conv / linear layers with weights at ``bits`` bits, by the cost
    model's rule (``evaluators.memory.flash_bytes``), for any module:

    - per layer, its weights dense, ``ceil(numel * bits / 8)``, or, when that is smaller,
      sparse: the non-zeros at ``bits`` plus a bitmap index of 1 bit per weight,
      ``ceil(nnz * bits / 8) + ceil(numel / 8)`` (a format is chosen per layer, as an
      exporter would);
    - ``BIAS_BYTES`` per output channel, ``SCALE_BYTES`` per output channel when ``bits``
      < 32, ``LAYER_METADATA_BYTES`` per layer.

    Other parameters (batch norm folds into the conv) are not counted.
    """
    if not 1 <= bits <= 32:
        raise ValueError(f"bits must be in [1, 32], got {bits}")
    total = 0
    for _, module in prunable_layers(model):
        count, outputs = module.weight.numel(), module.weight.shape[0]
        kept = int(torch.count_nonzero(module.weight))
        dense = math.ceil(count * bits / 8)
        sparse = math.ceil(kept * bits / 8) + math.ceil(count / 8)
        total += min(dense, sparse) + outputs * BIAS_BYTES + LAYER_METADATA_BYTES
        if bits < 32:
            total += outputs * SCALE_BYTES
    return total


# --------------------------------------------------------------------------- dynamic int8


def dynamic_quantize(model: nn.Module) -> nn.Module:
    """A CPU copy of ``model`` whose ``nn.Linear`` layers run in dynamic int8; ``model`` is
    left untouched.

    PyTorch's eager dynamic quantization (``torch.ao.quantization.quantize_dynamic``,
    qint8): weights are stored as int8 (per tensor, symmetric) ahead of time; activations
    are quantized at run time from each batch's own range, so no calibration data is needed.
    Convolutions stay fp32. The result runs on the CPU in PyTorch only: PyTorch cannot
    export these modules to ONNX, so it is compared in PyTorch, not in the ONNX Runtime
    pipeline that measures candidates.

    ``torch.ao.quantization`` is deprecated in favour of torchao; this torch (2.14) still
    runs it, and only its two deprecation warnings are silenced here.
    """
    quantizable = copy.deepcopy(model).cpu().eval()
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"torch\.ao\.quantization is deprecated", category=DeprecationWarning
        )
        warnings.filterwarnings(
            "ignore",
            message=r"torch\.quantize_per_tensor, torch\.quantize_per_channel",
            category=UserWarning,
        )
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(quantizable, {nn.Linear}, dtype=torch.qint8, inplace=True)


def linear_weight_dtypes(model: nn.Module) -> dict[str, torch.dtype]:
    """The weight dtype of every linear layer, float or dynamically quantized, by name."""
    from torch.ao.nn.quantized import dynamic as quantized_dynamic

    dtypes = {}
    for name, module in model.named_modules():
        if isinstance(module, quantized_dynamic.Linear):
            dtypes[name] = module.weight().dtype
        elif isinstance(module, nn.Linear):
            dtypes[name] = module.weight.dtype
    return dtypes
