"""Export to ONNX and measure latency on this machine with ONNX Runtime.

Latency on the host does not depend on the trained weights of an fp32 model, so the search
measures it before training and rejects candidates over budget without training them.
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from evaluators.files import write_atomic

INPUT_NAME = "input"
OUTPUT_NAME = "logits"


@dataclass(frozen=True)
class LatencyMeasurement:
    median_ms: float
    p90_ms: float
    runs: int
    warmup: int
    threads: int
    runtime: str

    @property
    def source(self) -> str:
        return (
            f"measured: {self.runtime}, {self.threads} thread(s), batch 1, "
            f"median of {self.runs} runs after {self.warmup} warm-up"
        )


def export_onnx(model: nn.Module, input_shape: tuple[int, int, int], path: str | Path) -> Path:
    """Write ``model`` (batch 1, eval mode) to ``path`` atomically and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    example = torch.zeros(1, *input_shape, device=next(model.parameters()).device)

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            # The TorchScript exporter is deprecated but exports these small CNNs in ~0.1 s,
            # against seconds for the dynamo exporter, on a path that runs once per trial.
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(
                    model,
                    (example,),
                    str(tmp),
                    dynamo=False,
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                )
            except Exception:
                torch.onnx.export(
                    model,
                    (example,),
                    str(tmp),
                    dynamo=True,
                    external_data=False,
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                )

    try:
        write_atomic(path, write)
    finally:
        model.train(was_training)
    return path


def onnx_session(path: str | Path, threads: int = 1):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def measure_onnx_latency(
    path: str | Path,
    input_shape: tuple[int, int, int],
    threads: int = 1,
    warmup: int = 10,
    runs: int = 30,
) -> LatencyMeasurement:
    import onnxruntime as ort

    session = onnx_session(path, threads)
    feed = {
        INPUT_NAME: np.random.default_rng(0).standard_normal((1, *input_shape), dtype=np.float32)
    }
    for _ in range(warmup):
        session.run(None, feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return LatencyMeasurement(
        median_ms=statistics.median(times),
        p90_ms=times[min(len(times) - 1, math.ceil(0.9 * len(times)) - 1)],
        runs=runs,
        warmup=warmup,
        threads=threads,
        runtime=f"onnxruntime {ort.__version__} CPUExecutionProvider",
    )


@dataclass(frozen=True)
class Host:
    """This machine as a target: latency measured with ONNX Runtime on the CPU."""

    threads: int = 1
    warmup: int = 10
    runs: int = 30
    name: str = "host"

    def measure(self, model: nn.Module, input_shape: tuple[int, int, int]) -> LatencyMeasurement:
        with tempfile.TemporaryDirectory(prefix="paretonas-") as tmp:
            path = export_onnx(model, input_shape, Path(tmp) / "model.onnx")
            return measure_onnx_latency(path, input_shape, self.threads, self.warmup, self.runs)

    @property
    def description(self) -> str:
        import onnxruntime as ort

        return (
            f"measured on this machine ({os.cpu_count()} CPUs): onnxruntime {ort.__version__} "
            f"CPUExecutionProvider, {self.threads} thread(s), batch 1, "
            f"median of {self.runs} runs after {self.warmup} warm-up"
        )
