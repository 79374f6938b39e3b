"""Export to ONNX and measure latency on this machine with ONNX Runtime.

Latency on the host does not depend on the trained weights of an fp32 model, so the search
measures it before training and rejects candidates over budget without training them.
"""

from __future__ import annotations

import itertools
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
from evaluators.probe_runner import cpu_name
from evaluators.timing_lock import timing

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


def export_onnx(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    path: str | Path,
    *,
    dynamic_batch: bool = False,
) -> Path:
    """Write ``model`` (eval mode, fp32) as ONNX to ``path`` atomically and return the path.

    The input is batch 1 unless ``dynamic_batch`` names axis 0 ``batch``: latency is
    measured at batch 1, and on this host ORT ran fixed-shape graphs 5-15 % faster (its
    layout passes need static shapes). Constant weights that the exporter deduplicated
    behind Identity nodes are turned back into initializers, because ORT's quantizer only
    quantizes initializers.
    """
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    held = next(itertools.chain(model.parameters(), model.buffers()), None)
    example = torch.zeros(1, *input_shape, device=held.device if held is not None else "cpu")
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            # The TorchScript exporter is deprecated, but it exports these small CNNs in
            # ~0.1 s (seconds for dynamo) and names nodes after module paths, which is how
            # quantization maps nodes to stages (evaluators.quantize.node_stages).
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(
                    model,
                    (example,),
                    str(tmp),
                    dynamo=False,
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    dynamic_axes=axes,
                )
            except Exception as error:
                try:
                    torch.onnx.export(
                        model,
                        (example,),
                        str(tmp),
                        dynamo=True,
                        external_data=False,
                        input_names=[INPUT_NAME],
                        output_names=[OUTPUT_NAME],
                        dynamic_shapes=({0: "batch"},) if dynamic_batch else None,
                    )
                except ModuleNotFoundError:
                    # The dynamo exporter needs onnxscript, which is optional: the first
                    # exporter's error says what in the model did not export.
                    raise error from None
        proto = onnx.load(str(tmp))
        _inline_identity_initializers(proto)
        onnx.save(proto, str(tmp))

    try:
        write_atomic(path, write)
    finally:
        model.train(was_training)
    return path


def _inline_identity_initializers(proto) -> None:
    graph = proto.graph
    initializers = {init.name: init for init in graph.initializer}
    keep = []
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in initializers:
            copy_ = type(initializers[node.input[0]])()
            copy_.CopyFrom(initializers[node.input[0]])
            copy_.name = node.output[0]
            graph.initializer.append(copy_)
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)
    used = {name for node in graph.node for name in node.input}
    used |= {output.name for output in graph.output}
    unused = [init for init in graph.initializer if init.name not in used]
    for init in unused:
        graph.initializer.remove(init)


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
    # The file's own input name: a user's ONNX teacher need not call it INPUT_NAME.
    feed = {
        session.get_inputs()[0].name: np.random.default_rng(0).standard_normal(
            (1, *input_shape), dtype=np.float32
        )
    }
    times = []
    with timing():  # no other worker on this host computes meanwhile
        for _ in range(warmup):
            session.run(None, feed)
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
            f"measured on this machine ({cpu_name()}, {os.cpu_count()} CPUs): onnxruntime "
            f"{ort.__version__} "
            f"CPUExecutionProvider, {self.threads} thread(s), batch 1, "
            f"median of {self.runs} runs after {self.warmup} warm-up"
        )
