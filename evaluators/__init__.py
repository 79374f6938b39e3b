"""HOW one candidate is judged: data, teacher, distillation, cost, hardware, pipeline; and the
textbook compression recipes (``evaluators.recipes``) it is compared with."""

from __future__ import annotations

from evaluators.budget import Budget
from evaluators.cost import Cost, estimate_cost, module_cost
from evaluators.data import (
    Dataset,
    DatasetError,
    DatasetLoader,
    Preprocessing,
    Split,
    dataset_names,
    load_dataset,
    make_dataset,
    register_dataset,
)
from evaluators.distill import TrainConfig, kd_loss, train
from evaluators.hardware import Host, LatencyMeasurement, export_onnx, measure_onnx_latency
from evaluators.metrics import Metrics
from evaluators.pipeline import EvaluationContext, evaluate_candidate
from evaluators.recipes import (
    DistillationRecipe,
    dynamic_quantize,
    sparsity,
    stored_size_bytes,
    unstructured_prune,
)
from evaluators.teacher import Teacher, TeacherConfig, prepare_teacher

__all__ = [
    "Budget",
    "Cost",
    "Dataset",
    "DatasetError",
    "DatasetLoader",
    "DistillationRecipe",
    "EvaluationContext",
    "Host",
    "LatencyMeasurement",
    "Metrics",
    "Preprocessing",
    "Split",
    "Teacher",
    "TeacherConfig",
    "TrainConfig",
    "dataset_names",
    "dynamic_quantize",
    "estimate_cost",
    "evaluate_candidate",
    "export_onnx",
    "kd_loss",
    "load_dataset",
    "make_dataset",
    "measure_onnx_latency",
    "module_cost",
    "prepare_teacher",
    "register_dataset",
    "sparsity",
    "stored_size_bytes",
    "train",
    "unstructured_prune",
]
