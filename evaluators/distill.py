"""Knowledge distillation: the student learns the teacher's softened outputs.

loss = alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE(student, y)

The T^2 factor keeps the soft term's gradients on the scale of the hard term's as T grows
(Hinton et al., 2015). KL uses batch-mean reduction: the per-sample KL averaged over the
batch, which is the mathematically correct mean (PyTorch's "mean" would also divide by the
number of classes). Teacher logits are precomputed once per dataset, so training a
candidate never runs the teacher.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from evaluators.progress import progress_bar
from evaluators.timing_lock import computing


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite: the candidate is failed, not trained further."""


class TrialTimeout(TimeoutError):
    """A candidate ran past its time limit (``execution.trial_timeout_s``)."""


def check_deadline(deadline: float | None, where: str) -> None:
    """Raise ``TrialTimeout`` once ``time.monotonic()`` has passed ``deadline``."""
    if deadline is not None and time.monotonic() > deadline:
        raise TrialTimeout(f"ran past its time limit (execution.trial_timeout_s) during {where}")


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    labels: torch.Tensor,
    temperature: float = 4.0,
    alpha: float = 0.9,
) -> torch.Tensor:
    """The module's formula; alpha 0 (or no teacher logits) is plain cross-entropy, and
    alpha 1 the soft term alone, which never reads ``labels``."""
    if teacher_logits is None or alpha == 0:
        return F.cross_entropy(student_logits, labels)
    soft = F.kl_div(
        F.log_softmax(student_logits / temperature, dim=1),
        F.log_softmax(teacher_logits / temperature, dim=1),
        reduction="batchmean",
        log_target=True,
    ) * (temperature**2)
    if alpha == 1:
        return soft
    return alpha * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 2
    batch_size: int = 128
    lr: float = 1e-2
    weight_decay: float = 1e-4
    temperature: float = 1.0  # the search's default (search.config.TrainingSection)
    alpha: float = 0.9
    seed: int = 0


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` trains on CUDA when this machine has it, else on the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA is not available on this machine; use device auto or cpu")
    return torch.device(name)


@dataclass(frozen=True)
class TrainResult:
    epochs: int
    final_loss: float
    seconds: float
    images_per_second: float


def train(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    config: TrainConfig,
    *,
    progress: bool = True,
    description: str = "train",
    deadline: float | None = None,
    on_epoch: Callable[[int, nn.Module], None] | None = None,
) -> TrainResult:
    """Train ``model`` in place with AdamW and a cosine schedule, KD when logits are given.

    ``teacher_logits[i]`` must belong to ``images[i]``. Alpha 0 (or no logits) is plain
    cross-entropy training, which is also how the teacher itself is trained. Past
    ``deadline`` (a ``time.monotonic()`` value) it stops with ``TrialTimeout``.
    ``on_epoch(epoch, model)`` runs after each epoch (1-based) and may raise to stop.
    """
    if teacher_logits is not None and len(teacher_logits) != len(images):
        raise ValueError(f"{len(teacher_logits)} teacher logits for {len(images)} images")
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(config.seed)
    steps_per_epoch = math.ceil(len(images) / config.batch_size)
    total_steps = max(1, steps_per_epoch * config.epochs)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=total_steps, pct_start=0.15
    )
    model.train()
    start = time.perf_counter()
    loss_value = float("nan")
    bar = progress_bar(total=total_steps, desc=description, enabled=progress)
    for epoch in range(config.epochs):
        order = torch.randperm(len(images), generator=generator)
        running = 0.0
        for step in range(steps_per_epoch):
            index = order[step * config.batch_size : (step + 1) * config.batch_size]
            with computing():
                x = images[index].to(device, non_blocking=True)
                y = labels[index].to(device, non_blocking=True)
                t = teacher_logits[index].to(device) if teacher_logits is not None else None
                loss = kd_loss(model(x), t, y, config.temperature, config.alpha)
                if deadline is not None and time.monotonic() > deadline:
                    bar.close()
                    check_deadline(deadline, f"{description}, epoch {epoch + 1}")
                if not torch.isfinite(loss):
                    bar.close()
                    raise TrainingDiverged(
                        f"loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}"
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                running += loss.item()
            bar.update(1)
        loss_value = running / steps_per_epoch
        bar.set_postfix(epoch=epoch + 1, loss=f"{loss_value:.3f}")
        if on_epoch is not None:
            try:
                on_epoch(epoch + 1, model)
            except BaseException:
                bar.close()
                raise
            model.train()
    bar.close()
    seconds = time.perf_counter() - start
    return TrainResult(
        epochs=config.epochs,
        final_loss=loss_value,
        seconds=seconds,
        images_per_second=len(images) * config.epochs / max(seconds, 1e-9),
    )


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    model.eval()
    device = next(model.parameters()).device
    outputs = []
    for i in range(0, len(images), batch_size):
        with computing():
            outputs.append(model(images[i : i + batch_size].to(device)).float().cpu())
    return torch.cat(outputs) if outputs else torch.empty(0)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(dim=1) == labels).float().mean()) if len(labels) else float("nan")


def evaluate_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    return accuracy(predict_logits(model, images), labels)
