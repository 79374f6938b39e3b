"""What the evaluation of one candidate yields: a value object the search stores per trial.

Every figure says where it came from: ``latency_source`` names the runtime, threads and
runs of a measurement; memory and flash are computed from the built module (exact for the
candidate as built, at the policy's bit-widths).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

STATUSES = ("ok", "infeasible", "failed", "pruned")


@dataclass(frozen=True)
class Metrics:
    status: str
    reason: str | None = None
    # Validation accuracy of the deployed artifact (the ONNX model): what the search ranks on.
    accuracy: float | None = None
    # Test accuracy of the deployed artifact: what the report shows; never used to choose.
    test_accuracy: float | None = None
    # Test accuracy of the PyTorch model before export (fp32, or fake-quantized after QAT).
    torch_test_accuracy: float | None = None
    latency_ms: float | None = None
    latency_p90_ms: float | None = None
    latency_source: str | None = None
    # A prediction beside the figure above (a device's only latency figure when it cannot
    # be measured here; for the host, the calibrated predictor's, to compare).
    predicted_latency_ms: float | None = None
    predicted_latency_source: str | None = None
    peak_memory_kb: float | None = None
    # The kernel during which peak_memory_kb is reached, by module path, counted from 0
    # ("stages.1.0.body.0.0": the second stage's first block), or "input".
    peak_memory_at: str | None = None
    flash_kb: float | None = None
    params: int | None = None
    macs: int | None = None
    # The deployed ONNX file, and how each stage runs on the host (e.g. "w8a8 int8").
    artifact_bytes: int | None = None
    executed: str | None = None
    int8: bool | None = None
    channels: str | None = None  # channel counts as deployed, when pruned
    train_subset: int | None = None
    epochs: int | None = None
    # PyTorch validation accuracy after each training epoch (on the pipeline's VAL_CHECK
    # images): early stopping extrapolates from the run's finished curves.
    val_curve: list[float] | None = None
    # A stopped trial's final validation accuracy as predicted from the run's finished
    # curves (``early_stopping.expected_accuracy``): a prediction, never a front figure.
    expected_accuracy: float | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    @property
    def seconds_total(self) -> float:
        return float(sum(self.seconds.values()))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Metrics:
        return cls(**data)
