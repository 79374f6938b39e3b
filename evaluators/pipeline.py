"""How one candidate is judged, cheapest check first, on the artifact a user would ship.

    plan channels (pruned counts follow from the policy alone, never from weights)
 -> cost of the pruned network (meta device, milliseconds)
 -> latency of the deployable ONNX (pruned, int8 where the policy says so), on random
    weights: latency does not depend on weight values, so this is measured before training
 -> over budget? stop: infeasible, never trained
 -> KD training (full width) -> prune channels for real -> low-rank factorization (SVD
    of the kept weights into two thin layers) -> KD fine-tune
 -> quantize (QAT with KD, or PTQ) -> unstructured sparsity -> export the deployable ONNX
 -> measure that same file: latency, size, and accuracy by running it in ONNX Runtime

The file that was measured is the file that is saved and exported.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from evaluators.budget import Budget
from evaluators.cost import module_cost
from evaluators.devices import Device, get_device
from evaluators.distill import TrainConfig, check_deadline, evaluate_accuracy, train
from evaluators.early_stopping import (
    EarlyStopping,
    HypervolumeGain,
    ParetoStopper,
    StoppedEarly,
    expected_accuracy,
)
from evaluators.factorize import build_deployed, factorize_model
from evaluators.files import save_torch_atomic, write_text_atomic
from evaluators.hardware import Host, LatencyMeasurement, measure_onnx_latency
from evaluators.latency import LatencyOracle
from evaluators.metrics import Metrics
from evaluators.prune import apply_sparsity, prune_model
from evaluators.quantize import (
    DeployedArtifact,
    calibrate,
    export_deployable,
    onnx_accuracy,
    prepare_qat,
)
from spaces.build import build_model
from spaces.candidate import Candidate
from spaces.channels import ChannelPlan, plan_channels

if TYPE_CHECKING:
    from evaluators.data import Dataset


# Validation images judged after each epoch for early stopping (a cheap, fixed subset).
VAL_CHECK = 1000
# QAT fine-tunes a trained network whose batch norm is folded away: at the training rate
# it can diverge (a first run of benchmarks/methods.py at lr 0.02, not kept), so it runs at
# a tenth of it, as fine-tuning recipes do.
QAT_LR_FACTOR = 0.1


@dataclass(frozen=True)
class CompressionConfig:
    align: int = 4
    criterion: str = "l1"
    finetune_epochs: int = 1
    quantization: str = "qat"  # or "ptq"
    qat_epochs: int = 1
    dynamic_linear: bool = False  # the fp32 linear layers as dynamic int8 (ORT)
    sparsity_method: str = "l1"  # or "random": which weights unstructured sparsity zeroes
    calibration_images: int = 256


@dataclass(frozen=True)
class EvaluationContext:
    """Everything that stays fixed across the candidates of one search."""

    dataset: Dataset
    teacher_logits: torch.Tensor
    budget: Budget
    host: Host
    train_config: TrainConfig
    subset: torch.Tensor  # training-split indices every candidate trains on (same for all)
    compression: CompressionConfig = field(default_factory=CompressionConfig)
    # How latency is known on the target; None: measured on this host, nothing predicted.
    latency: LatencyOracle | None = None
    progress: bool = True
    # Where candidates train (cpu or cuda); latency and accuracy are always of the ONNX file.
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    # Seconds one candidate may take from start to measured artifact; None: no limit.
    timeout_s: float | None = None
    early_stopping: EarlyStopping = field(default_factory=EarlyStopping)

    @classmethod
    def create(
        cls,
        dataset: Dataset,
        teacher_logits: torch.Tensor,
        budget: Budget,
        host: Host,
        train_config: TrainConfig,
        train_subset: int | None,
        compression: CompressionConfig | None = None,
        latency: LatencyOracle | None = None,
        progress: bool = True,
        device: torch.device | str = "cpu",
        timeout_s: float | None = None,
        early_stopping: EarlyStopping | None = None,
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
            compression or CompressionConfig(),
            latency,
            progress,
            torch.device(device),
            timeout_s,
            early_stopping or EarlyStopping(),
        )

    @property
    def calibration_images(self) -> torch.Tensor:
        return self.dataset.train.images[self.subset[: self.compression.calibration_images]]


def evaluate_candidate(
    candidate: Candidate,
    context: EvaluationContext,
    artifact_dir: str | Path | None = None,
    description: str = "candidate",
    front: Sequence[Mapping[str, float]] = (),
    curves: Sequence[Sequence[float]] = (),
    gain: HypervolumeGain | None = None,
) -> Metrics:
    """Judge ``candidate``; exceptions propagate (the caller records them as failed).

    ``front``: the objective values of the finished trials on the current Pareto front
    (name -> value, ``accuracy`` among them); with it, training stops early when the
    candidate cannot reach the front at its cost, or would add too little to it
    (``evaluators.early_stopping``).
    ``curves``: the per-epoch validation curves of the run's finished trials, from which
    the stopper extrapolates. ``gain``: the share of the front's hypervolume a point would
    add (``search.objective.front_gain``), for ``EarlyStopping.min_gain``.
    """
    dataset = context.dataset
    shape = dataset.input_shape
    channels, classes = shape[0], dataset.num_classes
    settings = context.compression
    seconds: dict[str, float] = {}
    deadline = None if context.timeout_s is None else time.monotonic() + context.timeout_s

    start = time.perf_counter()
    plan = plan_channels(candidate, settings.align)
    pruned = plan != ChannelPlan.full(candidate.arch)
    meta_model = build_deployed(candidate, channels, classes, plan=plan, device="meta").eval()
    cost = module_cost(meta_model, candidate, shape, _target(context))
    seconds["cost"] = time.perf_counter() - start

    start = time.perf_counter()
    oracle = context.latency
    predicted = oracle.predict(candidate, shape, classes, settings.align) if oracle else None
    measures = oracle is None or oracle.measures
    artifact = None
    if measures:
        torch.manual_seed(context.train_config.seed)
        untrained = build_deployed(candidate, channels, classes, plan=plan)
        with tempfile.TemporaryDirectory(prefix="paretonas-") as tmp:
            artifact = _export(untrained, candidate, Path(tmp) / "model.onnx", context)
            measured = _measure(artifact, context)
        latency = _Latency(measured.median_ms, measured.p90_ms, measured.source)
    else:
        assert predicted is not None  # a device that is not measured always predicts
        latency = _Latency(predicted.latency_ms, None, predicted.source)
    seconds["latency"] = time.perf_counter() - start

    common = dict(
        peak_memory_kb=cost.peak_memory_kb,
        peak_memory_at=cost.peak_step or None,
        flash_kb=cost.flash_kb,
        params=cost.params,
        macs=cost.macs,
        channels=_describe_plan(plan) if pruned else None,
        predicted_latency_ms=predicted.latency_ms if predicted else None,
        predicted_latency_source=predicted.source if predicted else None,
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
        return Metrics(
            status="infeasible",
            reason=reason,
            seconds=seconds,
            latency_ms=latency.median_ms,
            latency_p90_ms=latency.p90_ms,
            latency_source=latency.source + (" (before training)" if measures else ""),
            executed=", ".join(artifact.executed_bits) if artifact else None,
            int8=artifact.is_int8 if artifact else None,
            **common,
        )

    subset = context.subset
    images, labels = dataset.train.images[subset], dataset.train.labels[subset]
    logits = context.teacher_logits[subset]

    def fit(
        model: torch.nn.Module, epochs: int, phase: str, on_epoch=None, lr_factor: float = 1.0
    ) -> None:
        if epochs < 1:
            return
        begin = time.perf_counter()
        config = replace(
            context.train_config, epochs=epochs, lr=context.train_config.lr * lr_factor
        )
        try:
            train(
                model,
                images,
                labels,
                logits,
                config,
                progress=context.progress,
                description=f"{description} {phase}",
                deadline=deadline,
                on_epoch=on_epoch,
            )
        finally:
            seconds[phase] = seconds.get(phase, 0.0) + time.perf_counter() - begin

    stopper = ParetoStopper(
        tuple(front),
        {
            "latency_ms": latency.median_ms,
            "peak_memory_kb": cost.peak_memory_kb,
            "flash_kb": cost.flash_kb,
            "params": float(cost.params),
            "macs": float(cost.macs),
        },
        context.early_stopping,
        tuple(tuple(c) for c in curves),
        gain,
    )
    history: list[float] = []
    val_images, val_labels = dataset.val.images[:VAL_CHECK], dataset.val.labels[:VAL_CHECK]

    watching = bool(front) and context.early_stopping.enabled

    def judge(epoch: int, model: torch.nn.Module) -> None:
        # Recorded for every trial: later trials extrapolate from the finished curves.
        history.append(evaluate_accuracy(model, val_images, val_labels))
        reason = stopper.check(history, context.train_config.epochs) if watching else None
        if reason is not None:
            total = context.train_config.epochs
            expected = expected_accuracy(history, total, stopper.curves)
            raise StoppedEarly(reason, epoch, history[-1], expected)

    torch.manual_seed(context.train_config.seed)
    model = build_model(candidate, channels, classes).to(context.device)
    try:
        fit(model, context.train_config.epochs, "train", judge)
    except StoppedEarly as stopped:
        return Metrics(
            status="pruned",
            reason=stopped.reason,
            accuracy=stopped.accuracy,  # PyTorch validation accuracy when it stopped
            expected_accuracy=stopped.expected,
            latency_ms=latency.median_ms,
            latency_p90_ms=latency.p90_ms,
            latency_source=latency.source + (" (before training)" if measures else ""),
            executed=", ".join(artifact.executed_bits) if artifact else None,
            int8=artifact.is_int8 if artifact else None,
            train_subset=len(subset),
            epochs=stopped.epoch,
            val_curve=list(history),
            seconds=seconds,
            **common,
        )

    if pruned:
        begin = time.perf_counter()
        batch = (images[:256], labels[:256], logits[:256])
        model = prune_model(model.cpu(), candidate, plan, settings.criterion, batch)
        seconds["prune"] = time.perf_counter() - begin
    factorized = any(s.factorizes for s in candidate.policy.stages)
    if factorized:  # after pruning: the SVD of the channels that are kept
        begin = time.perf_counter()
        model = factorize_model(model.cpu(), candidate)
        seconds["factorize"] = time.perf_counter() - begin
    if pruned or factorized:  # one KD fine-tune recovers from both
        fit(model.to(context.device), settings.finetune_epochs, "finetune")
    model = model.cpu()
    check_deadline(deadline, "pruning")
    deployable_weights = model  # the pruned / factorized fp32 module: what model.pt holds

    if candidate.policy.quantized and settings.quantization == "qat":
        begin = time.perf_counter()
        model = prepare_qat(model, candidate)
        calibrate(model, context.calibration_images)
        seconds["quantize"] = time.perf_counter() - begin
        fit(model.to(context.device), settings.qat_epochs, "qat", lr_factor=QAT_LR_FACTOR)
        model = model.cpu().eval()
    if candidate.policy.sparse:
        apply_sparsity(model, candidate, settings.sparsity_method)

    check_deadline(deadline, "quantization")
    begin = time.perf_counter()
    torch_test_accuracy = evaluate_accuracy(model, dataset.test.images, dataset.test.labels)
    with tempfile.TemporaryDirectory(prefix="paretonas-") as tmp:
        folder = Path(artifact_dir) if artifact_dir is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        artifact = _export(model, candidate, folder / "model.onnx", context)
        if measures:
            measured = _measure(artifact, context)
            latency = _Latency(measured.median_ms, measured.p90_ms, measured.source)
        val_accuracy = onnx_accuracy(artifact.path, dataset.val.images, dataset.val.labels)
        test_accuracy = onnx_accuracy(artifact.path, dataset.test.images, dataset.test.labels)
        if artifact_dir is not None:
            save_torch_atomic(deployable_weights.state_dict(), folder / "model.pt")
            write_text_atomic(folder / "candidate.json", candidate.to_json())
            write_text_atomic(folder / "channels.json", plan.to_json())
    seconds["export"] = time.perf_counter() - begin

    return Metrics(
        status="ok",
        accuracy=val_accuracy,
        test_accuracy=test_accuracy,
        torch_test_accuracy=torch_test_accuracy,
        latency_ms=latency.median_ms,
        latency_p90_ms=latency.p90_ms,
        latency_source=latency.source,
        artifact_bytes=artifact.file_bytes,
        executed=", ".join(artifact.executed_bits),
        int8=artifact.is_int8,
        train_subset=len(subset),
        epochs=context.train_config.epochs,
        val_curve=list(history),
        seconds=seconds,
        **common,
    )


@dataclass(frozen=True)
class _Latency:
    median_ms: float
    p90_ms: float | None
    source: str


def _export(
    model: torch.nn.Module, candidate: Candidate, path: Path, context: EvaluationContext
) -> DeployedArtifact:
    # QAT models export their trained fake-quant grids; anything else is quantized by PTQ.
    return export_deployable(
        model.cpu().eval(),
        candidate,
        context.dataset.input_shape,
        path,
        context.calibration_images,
        dynamic_linear=context.compression.dynamic_linear,
    )


def _target(context: EvaluationContext) -> Device:
    """The device the candidate is costed for: the latency oracle's, else this host (whose
    latency is then measured without one)."""
    return context.latency.device if context.latency is not None else get_device("host")


def _measure(artifact: DeployedArtifact, context: EvaluationContext) -> LatencyMeasurement:
    host = context.host
    return measure_onnx_latency(
        artifact.path, context.dataset.input_shape, host.threads, host.warmup, host.runs
    )


def _describe_plan(plan: ChannelPlan) -> str:
    stages = ",".join(str(stage.width) for stage in plan.stages)
    return f"stem {plan.stem}, stage widths {stages}" + (
        f" ({'; '.join(plan.notes)})" if plan.notes else ""
    )
