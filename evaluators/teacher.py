"""The teacher: trained (or loaded) once per dataset, its training-set logits cached on disk.

Cache layout, one folder per teacher under ``results/teachers/<key>/``, where the key hashes
the teacher's config and the dataset's fingerprint:

    teacher.pt         state dict (loaded with weights_only=True)
    logits_train.pt    teacher logits for every training image, in training-split order
    meta.json          test accuracy, params, where it came from, seconds spent

Files are written to a temporary name and renamed, so a crash never leaves a half-written
file that a later run would take as complete. A user's own teacher is either a state dict
for the built-in architecture (``.pt``) or any network exported to ONNX (``.onnx``); its
logits are computed once and cached the same way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from evaluators.distill import TrainConfig, accuracy, predict_logits, train
from evaluators.files import save_torch_atomic, write_text_atomic

if TYPE_CHECKING:
    from evaluators.data import Dataset
    from evaluators.hardware import Host

log = logging.getLogger(__name__)


class TeacherError(Exception):
    """A teacher checkpoint that cannot be used; the message says how to fix it."""


@dataclass(frozen=True)
class TeacherConfig:
    """A CIFAR-style ResNet (3x3 stem, no max-pool) for small inputs.

    widths=(64, 128, 256, 512) with blocks=(2, 2, 2, 2) is ResNet-18; the defaults are a
    narrower, shallower ResNet that trains in minutes on two CPU cores.
    """

    widths: tuple[int, ...] = (32, 64, 128)
    blocks: tuple[int, ...] = (1, 1, 1)
    epochs: int = 3
    batch_size: int = 128
    lr: float = 3e-3
    seed: int = 0
    checkpoint: str | None = None


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNetTeacher(nn.Module):
    def __init__(
        self, in_channels: int, num_classes: int, widths: tuple[int, ...], blocks: tuple[int, ...]
    ):
        super().__init__()
        if len(widths) != len(blocks):
            raise ValueError(f"teacher widths {widths} and blocks {blocks} differ in length")
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(),
        )
        layers = []
        width = widths[0]
        for index, (out_width, count) in enumerate(zip(widths, blocks, strict=True)):
            for block in range(count):
                stride = 2 if index > 0 and block == 0 else 1
                layers.append(BasicBlock(width, out_width, stride))
                width = out_width
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.layers(self.stem(x))), 1))


@dataclass(frozen=True)
class Teacher:
    train_logits: torch.Tensor
    test_accuracy: float
    params: int | None
    source: str
    cache_dir: Path
    # Measured on the run's host like every candidate (``with_measured_latency``); None
    # where the run's device is predicted, not measured.
    latency_ms: float | None = None
    latency_source: str | None = None

    def summary(self) -> dict[str, Any]:
        facts = {"test_accuracy": self.test_accuracy, "params": self.params, "source": self.source}
        if self.latency_ms is not None:
            facts |= {"latency_ms": self.latency_ms, "latency_source": self.latency_source}
        return facts


def teacher_key(config: TeacherConfig, dataset: Dataset) -> str:
    payload: dict[str, Any] = asdict(config)
    if config.checkpoint:
        payload["checkpoint"] = _file_digest(Path(config.checkpoint))
    payload["dataset"] = dataset.fingerprint()
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def prepare_teacher(
    dataset: Dataset,
    config: TeacherConfig,
    cache_root: str | Path,
    *,
    progress: bool = True,
    device: torch.device | str = "cpu",
) -> Teacher:
    """Load the cached teacher for ``dataset``, or train/load it once and cache it."""
    cache_dir = Path(cache_root) / teacher_key(config, dataset)
    meta_path = cache_dir / "meta.json"
    logits_path = cache_dir / "logits_train.pt"
    if meta_path.exists() and logits_path.exists():
        meta = json.loads(meta_path.read_text())
        logits = torch.load(logits_path, weights_only=True)
        if logits.shape == (len(dataset.train), dataset.num_classes):
            log.info("teacher: cached in %s (test accuracy %.4f)", cache_dir, meta["test_accuracy"])
            warn_if_near_chance(meta["test_accuracy"], dataset.num_classes)
            return Teacher(logits, meta["test_accuracy"], meta["params"], meta["source"], cache_dir)
        log.warning("teacher: cached logits in %s do not match the dataset; recomputing", cache_dir)

    cache_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if config.checkpoint and Path(config.checkpoint).suffix == ".onnx":
        train_logits, test_logits, params, source = _onnx_teacher_logits(
            dataset, Path(config.checkpoint)
        )
    else:
        model, source = _torch_teacher(dataset, config, progress, torch.device(device))
        save_torch_atomic(
            {k: v.cpu() for k, v in model.state_dict().items()}, cache_dir / "teacher.pt"
        )
        train_logits = predict_logits(model, dataset.train.images)
        test_logits = predict_logits(model, dataset.test.images)
        params = sum(p.numel() for p in model.parameters())
    test_accuracy = accuracy(test_logits, dataset.test.labels)
    save_torch_atomic(train_logits, logits_path)
    meta = {
        "test_accuracy": test_accuracy,
        "params": params,
        "source": source,
        "dataset": dataset.name,
        "config": asdict(config),
        "seconds": time.perf_counter() - start,
    }
    write_text_atomic(meta_path, json.dumps(meta, indent=2))
    log.info("teacher: %s, test accuracy %.4f, cached in %s", source, test_accuracy, cache_dir)
    warn_if_near_chance(test_accuracy, dataset.num_classes)
    return Teacher(train_logits, test_accuracy, params, source, cache_dir)


def warn_if_near_chance(test_accuracy: float, num_classes: int) -> bool:
    """Warn when the teacher is little better than guessing (within a quarter of the way
    from chance to perfect): its soft targets would then teach the students noise, and the
    run would still end without an error."""
    chance = 1.0 / num_classes
    if test_accuracy >= chance + 0.25 * (1.0 - chance):
        return False
    log.warning(
        "teacher: test accuracy %.4f is close to chance (%.4f for %d classes), so distilling "
        "from it will mislead the students; train it longer (teacher.epochs), give it a "
        "trained checkpoint (teacher.checkpoint), or distil less (training.alpha)",
        test_accuracy,
        chance,
        num_classes,
    )
    return True


def with_measured_latency(
    teacher: Teacher, config: TeacherConfig, dataset: Dataset, host: Host
) -> Teacher:
    """``teacher`` with its batch-1 latency measured by ``host`` as the candidates' is (ONNX
    Runtime, the same threads, warm-up and runs), so that a report can say how many times
    faster a candidate is. A ResNet teacher is timed as the fp32 ONNX export of a fresh copy
    of its architecture (latency does not depend on weight values); an ONNX teacher as its
    own file, with the batch fixed to 1 as the candidates' files are (fixed shapes run
    faster in ONNX Runtime). A teacher that cannot be timed keeps no latency, and the
    report then claims no speed-up: the run goes on."""
    from evaluators.hardware import export_onnx, measure_onnx_latency

    checkpoint = Path(config.checkpoint) if config.checkpoint else None
    try:
        with tempfile.TemporaryDirectory(prefix="paretonas-teacher-") as tmp:
            if checkpoint is not None and checkpoint.suffix == ".onnx":
                path, what = _at_batch_one(checkpoint, Path(tmp) / "teacher.onnx")
            else:
                channels, _, _ = dataset.input_shape
                model = ResNetTeacher(channels, dataset.num_classes, config.widths, config.blocks)
                path = export_onnx(model.eval(), dataset.input_shape, Path(tmp) / "teacher.onnx")
                what = "its fp32 ONNX export"
            timed = measure_onnx_latency(
                path, dataset.input_shape, host.threads, host.warmup, host.runs
            )
    except Exception as error:  # a missing figure must not stop the search
        log.warning(
            "teacher: latency not measured (%s); the report claims no speed-up over it",
            str(error).splitlines()[0] if str(error) else type(error).__name__,
        )
        return teacher
    source = (
        f"measured: {timed.runtime}, {timed.threads} thread(s), batch 1, median of "
        f"{timed.runs} runs after {timed.warmup} warm-up, on {what}"
    )
    log.info("teacher: %.3f ms per image (%s)", timed.median_ms, source)
    return replace(teacher, latency_ms=timed.median_ms, latency_source=source)


def _at_batch_one(path: Path, copy: Path) -> tuple[Path, str]:
    """``path`` itself where its input is fixed at batch 1, else a copy fixed at 1."""
    import onnx

    proto = onnx.load(str(path))
    batch = proto.graph.input[0].type.tensor_type.shape.dim[0]
    if batch.HasField("dim_value") and batch.dim_value == 1:
        return path, "its ONNX file"
    batch.dim_value = 1  # replaces a symbolic batch ("N") as well
    for output in proto.graph.output:
        dims = output.type.tensor_type.shape.dim
        if dims:
            dims[0].dim_value = 1
    onnx.save(proto, str(copy))
    return copy, "its ONNX file with the batch fixed to 1"


def _torch_teacher(
    dataset: Dataset, config: TeacherConfig, progress: bool, device: torch.device
) -> tuple[nn.Module, str]:
    channels, _, _ = dataset.input_shape
    torch.manual_seed(config.seed)
    model = ResNetTeacher(channels, dataset.num_classes, config.widths, config.blocks)
    name = f"ResNet widths={list(config.widths)} blocks={list(config.blocks)}"
    if config.checkpoint:
        path = Path(config.checkpoint)
        if not path.is_file():
            raise TeacherError(f"teacher checkpoint {path} does not exist; fix teacher.checkpoint")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            raise TeacherError(
                f"teacher checkpoint {path} is not a file torch.load reads with "
                f"weights_only=True ({type(error).__name__}); save the teacher with "
                "torch.save(model.state_dict(), path), or export it to ONNX and pass the .onnx"
            ) from None
        differences = _state_differences(model, state)
        if differences:
            raise TeacherError(
                f"teacher checkpoint {path} is not a state dict of the configured teacher "
                f"({name}): {differences}; set teacher.widths/blocks to match it, or export "
                "your teacher to ONNX and pass the .onnx file"
            )
        model.load_state_dict(state)
        return model.to(device), f"{name}, loaded from {path}"
    train_config = TrainConfig(
        epochs=config.epochs,
        batch_size=config.batch_size,
        lr=config.lr,
        alpha=0.0,
        seed=config.seed,
    )
    model.to(device)
    result = train(
        model,
        dataset.train.images,
        dataset.train.labels,
        None,
        train_config,
        progress=progress,
        description="teacher",
    )
    return model, (
        f"{name}, trained here for {config.epochs} epochs on {device.type} ({result.seconds:.0f} s)"
    )


def _state_differences(model: nn.Module, state: Any) -> str:
    """How ``state`` differs from ``model``'s state dict, in a few words; "" if it fits."""
    if not isinstance(state, dict):
        return f"it holds a {type(state).__name__}, not a state dict"
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    shapes = [
        f"{key} is {tuple(state[key].shape)} in the file, {tuple(value.shape)} here"
        for key, value in expected.items()
        if key in state and hasattr(state[key], "shape") and state[key].shape != value.shape
    ]

    def some(keys: list[str]) -> str:
        return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")

    parts = [f"missing {some(missing)}"] if missing else []
    parts += [f"unexpected {some(unexpected)}"] if unexpected else []
    parts += [some(shapes)] if shapes else []
    return "; ".join(parts)


def _onnx_teacher_logits(
    dataset: Dataset, path: Path
) -> tuple[torch.Tensor, torch.Tensor, None, str]:
    from evaluators.hardware import onnx_session

    if not path.is_file():
        raise TeacherError(f"teacher checkpoint {path} does not exist; fix teacher.checkpoint")
    try:
        session = onnx_session(path, threads=os.cpu_count() or 1)
    except Exception as error:
        raise TeacherError(
            f"teacher checkpoint {path} is not an ONNX model ONNX Runtime can load "
            f"({_first_line(error)}); export the teacher with torch.onnx.export"
        ) from None
    given = session.get_inputs()[0]
    wanted = (1, *dataset.input_shape)
    if any(
        isinstance(a, int) and a != b for a, b in zip(given.shape[1:], wanted[1:], strict=False)
    ):
        raise TeacherError(
            f"teacher {path} takes input {list(given.shape)}, but this dataset's images are "
            f"{list(dataset.input_shape)}; export the teacher for that shape, or set "
            "dataset.image_size to the teacher's"
        )
    batch = given.shape[0] if isinstance(given.shape[0], int) else 256

    def run(images: torch.Tensor) -> torch.Tensor:
        try:
            outputs = [
                session.run(None, {given.name: images[i : i + batch].numpy().astype(np.float32)})[0]
                for i in range(0, len(images), batch)
            ]
        except Exception as error:
            raise TeacherError(
                f"teacher {path} failed on this dataset's images {list(dataset.input_shape)} "
                f"({_first_line(error)}); check its input shape and batch"
            ) from None
        return torch.from_numpy(np.concatenate(outputs))

    train_logits, test_logits = run(dataset.train.images), run(dataset.test.images)
    if train_logits.ndim != 2 or train_logits.shape[1] != dataset.num_classes:
        raise TeacherError(
            f"teacher {path} gives outputs of shape {list(train_logits.shape[1:])} per image, "
            f"but {dataset.name} has {dataset.num_classes} classes; give a teacher trained on "
            "this dataset's classes (its first output must be the class logits)"
        )
    return train_logits, test_logits, None, f"ONNX model {path}"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def _file_digest(path: Path) -> str:
    if not path.is_file():
        raise TeacherError(f"teacher checkpoint {path} does not exist; fix teacher.checkpoint")
    return hashlib.sha256(path.read_bytes()).hexdigest()
