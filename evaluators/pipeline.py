"""How one candidate is judged, cheapest check first.

cost (milliseconds, meta device) -> build -> host latency (ONNX Runtime, ~0.1 s) ->
over budget? stop: infeasible, never trained -> KD training at the search fidelity ->
validation and test accuracy -> artifacts (state dict, candidate.json, model.onnx).

Real pruning and quantization slot in between training and measurement (issue 3); until
then a policy must be uncompressed, which the run config enforces.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from evaluators.budget import Budget
from evaluators.cost import estimate_cost
from evaluators.distill import TrainConfig, evaluate_accuracy, train
from evaluators.files import save_torch_atomic, write_text_atomic
from evaluators.hardware import Host, export_onnx
from evaluators.metrics import Metrics
from spaces.build import build_model
from spaces.candidate import Candidate

if TYPE_CHECKING:
    from evaluators.data import Dataset


@dataclass(frozen=True)
class EvaluationContext:
    """Everything that stays fixed across the candidates of one search."""

    dataset: Dataset
    teacher_logits: torch.Tensor
    budget: Budget
    host: Host
    train_config: TrainConfig
    subset: torch.Tensor  # training-split indices every candidate trains on (same for all)
    progress: bool = True
    # Where candidates train; latency is always the host's, measured with ONNX Runtime.
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @classmethod
    def create(
        cls,
        dataset: Dataset,
        teacher_logits: torch.Tensor,
        budget: Budget,
        host: Host,
        train_config: TrainConfig,
        train_subset: int | None,
        progress: bool = True,
        device: torch.device | str = "cpu",
    ) -> EvaluationContext:
        if len(teacher_logits) != len(dataset.train):
            raise ValueError(
                f"{len(teacher_logits)} teacher logits for {len(dataset.train)} training images"
            )
        size = len(dataset.train) if train_subset is None else min(train_subset, len(dataset.train))
        generator = torch.Generator().manual_seed(train_config.seed)
        subset = torch.randperm(len(dataset.train), generator=generator)[:size]
        return cls(
            dataset,
            teacher_logits,
            budget,
            host,
            train_config,
            subset,
            progress,
            torch.device(device),
        )


def evaluate_candidate(
    candidate: Candidate,
    context: EvaluationContext,
    artifact_dir: str | Path | None = None,
    description: str = "candidate",
) -> Metrics:
    """Judge ``candidate``; exceptions propagate (the caller records them as failed)."""
    if not candidate.policy.is_uncompressed:
        raise ValueError(
            f"policy {candidate.policy.genome} asks for pruning or quantization, which this "
            "version does not apply yet"
        )
    dataset = context.dataset
    shape = dataset.input_shape
    seconds: dict[str, float] = {}

    start = time.perf_counter()
    cost = estimate_cost(candidate, shape, dataset.num_classes)
    seconds["cost"] = time.perf_counter() - start

    start = time.perf_counter()
    torch.manual_seed(context.train_config.seed)
    model = build_model(candidate, shape[0], dataset.num_classes)
    latency = context.host.measure(model, shape)
    seconds["latency"] = time.perf_counter() - start

    common = dict(
        latency_ms=latency.median_ms,
        latency_p90_ms=latency.p90_ms,
        latency_source=latency.source,
        peak_memory_kb=cost.peak_memory_kb,
        flash_kb=cost.flash_kb,
        params=cost.params,
        macs=cost.macs,
    )
    constraints = context.budget.constraints(
        latency_ms=latency.median_ms, peak_memory_kb=cost.peak_memory_kb, flash_kb=cost.flash_kb
    )
    over = Budget.violated(constraints)
    if over:
        reason = "over budget: " + ", ".join(
            f"{name} {constraints[name] + getattr(context.budget, name):.4g} > "
            f"{getattr(context.budget, name):.4g}"
            for name in over
        )
        return Metrics(status="infeasible", reason=reason, seconds=seconds, **common)

    start = time.perf_counter()
    subset = context.subset
    model.to(context.device)
    train(
        model,
        dataset.train.images[subset],
        dataset.train.labels[subset],
        context.teacher_logits[subset],
        context.train_config,
        progress=context.progress,
        description=description,
    )
    seconds["train"] = time.perf_counter() - start

    start = time.perf_counter()
    val_accuracy = evaluate_accuracy(model, dataset.val.images, dataset.val.labels)
    test_accuracy = evaluate_accuracy(model, dataset.test.images, dataset.test.labels)
    seconds["eval"] = time.perf_counter() - start

    if artifact_dir is not None:
        save_artifacts(model.cpu(), candidate, shape, Path(artifact_dir))
    return Metrics(
        status="ok",
        accuracy=val_accuracy,
        test_accuracy=test_accuracy,
        train_subset=len(subset),
        epochs=context.train_config.epochs,
        seconds=seconds,
        **common,
    )


def save_artifacts(
    model: torch.nn.Module, candidate: Candidate, input_shape: tuple[int, int, int], folder: Path
) -> None:
    """What a user ships: weights (load with weights_only=True), the genome, and ONNX."""
    folder.mkdir(parents=True, exist_ok=True)
    save_torch_atomic(model.state_dict(), folder / "model.pt")
    write_text_atomic(folder / "candidate.json", candidate.to_json())
    export_onnx(model, input_shape, folder / "model.onnx")
