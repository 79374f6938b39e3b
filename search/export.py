"""``paretonas export``: hand one trial's measured artifact to a user, with a manifest.

The ONNX file exported is the very file whose latency and accuracy were measured during the
search (no re-export, no re-quantization); the manifest says how each number was obtained.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from evaluators.files import write_text_atomic
from search.config import ConfigError
from search.results import METRIC_COLUMNS

ARTIFACT_FILES = ("model.onnx", "model.pt", "candidate.json", "channels.json")
_LIBRARIES = ("torch", "onnx", "onnxruntime", "optuna", "paretonas")


def export_trial(run_dir: str | Path, trial: int, out: str | Path | None = None) -> Path:
    run_dir = Path(run_dir)
    trials_path = run_dir / "trials.csv"
    if not trials_path.is_file():
        raise ConfigError(
            f"{run_dir} is not a run folder (no trials.csv); pass a folder written by 'paretonas search'"
        )
    trials = pd.read_csv(trials_path)
    rows = trials[trials["number"] == trial]
    if rows.empty:
        raise ConfigError(f"{run_dir} has no trial {trial}; trials are 0..{len(trials) - 1}")
    row = rows.iloc[0]
    if row["status"] != "ok" or not isinstance(row.get("artifacts"), str):
        raise ConfigError(
            f"trial {trial} has no model to export (status {row['status']}); "
            "pick a trial with status ok, e.g. one from pareto.csv"
        )
    source = run_dir / row["artifacts"]
    missing = [name for name in ARTIFACT_FILES if not (source / name).is_file()]
    if missing:
        raise ConfigError(f"trial {trial}'s artifacts in {source} lack {', '.join(missing)}")

    out = Path(out) if out is not None else run_dir / "export" / str(trial)
    out.mkdir(parents=True, exist_ok=True)
    for name in ARTIFACT_FILES:
        shutil.copy2(source / name, out / name)
    write_text_atomic(out / "manifest.json", json.dumps(manifest(run_dir, row, out), indent=2))
    return out


def manifest(run_dir: Path, row: pd.Series, out: Path) -> dict[str, Any]:
    run = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else {}
    config_text = (
        (run_dir / "config.yaml").read_bytes() if (run_dir / "config.yaml").is_file() else b""
    )
    metrics = {key: _plain(row.get(key)) for key in METRIC_COLUMNS}
    return {
        "trial": int(row["number"]),
        "genome": row["genome"],
        "run": run.get("name", run_dir.name),
        "dataset": run.get("dataset"),
        "input_shape": run.get("input_shape"),
        "num_classes": run.get("num_classes"),
        "metrics": metrics,
        "how_measured": {
            "accuracy": "top-1 of model.onnx run by ONNX Runtime on the validation split "
            "(ranked on) and the test split (test_accuracy)",
            "latency_ms": metrics["latency_source"],
            "peak_memory_kb": "computed: peak of live activation bytes over the execution "
            "schedule (evaluators.memory), at the policy's activation bits",
            "flash_kb": "computed: weights packed at the policy's bit-widths (+ sparse index), "
            "32-bit biases and scales, 64 bytes of metadata per layer",
            "artifact_bytes": "measured: size of model.onnx",
            "torch_test_accuracy": "top-1 in PyTorch on the test split of the module "
            "exported to model.onnx, just before export (fake-quantized under QAT)",
            "latency_p90_ms": "the 90th percentile of the same timed runs as latency_ms",
            "predicted_latency_ms": metrics["predicted_latency_source"]
            or "not predicted (no calibrated predictor for this device)",
            "model.pt": _weights_note(out, config_text),
        },
        "teacher": run.get("teacher"),
        "files": {name: _sha256(out / name) for name in ARTIFACT_FILES},
        "config_sha256": hashlib.sha256(config_text).hexdigest() if config_text else None,
        "libraries": {name: _version(name) for name in _LIBRARIES},
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}",
        "exported": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _weights_note(out: Path, config_text: bytes) -> str:
    """What model.pt holds for this candidate: no figure in the manifest was measured on it
    as such, and how far it is from model.onnx depends on the policy."""
    import yaml

    from spaces.candidate import Candidate

    policy = Candidate.from_json((out / "candidate.json").read_text()).policy
    config = yaml.safe_load(config_text) if config_text else None
    compression = (config or {}).get("compression") or {}
    mode = compression.get("quantization", "qat")
    note = (
        "fp32 state dict of the pruned / factorized module after its KD fine-tune, for "
        "search.export.load_exported; not itself measured (model.onnx is)"
    )
    quantized, sparse = policy.quantized, policy.sparse
    if quantized and mode == "qat":
        note += "; before quantization-aware training, whose fine-tune and folded batch "
        note += "norm are only in model.onnx"
        if sparse:
            note += "; dense (the unstructured sparsity was applied after QAT)"
    elif quantized:
        note += "; before post-training quantization (model.onnx holds the int8 result)"
    if sparse and not (quantized and mode == "qat"):
        note += "; with the unstructured sparsity applied"
    return note


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def load_exported(folder: str | Path):
    """The pruned fp32 PyTorch module of an export folder, weights loaded, in eval mode.

    Rebuilt from candidate.json and channels.json (the pruned channel counts) and
    manifest.json (input channels, classes); the state dict loads with
    ``weights_only=True``. For fine-tuning or inspection: the deployable model is
    model.onnx, which is int8 where the policy says so.
    """
    import torch

    from evaluators.factorize import build_deployed
    from spaces.candidate import Candidate
    from spaces.channels import ChannelPlan

    folder = Path(folder)
    if not (folder / "manifest.json").exists():
        # A run's models/<trial>/ folders hold the same files but no manifest.
        raise FileNotFoundError(
            f"{folder} is not an export folder (no manifest.json); export the trial first: "
            "paretonas export RUN --trial N --out DIR, then load DIR"
        )
    manifest_ = json.loads((folder / "manifest.json").read_text())
    candidate = Candidate.from_json((folder / "candidate.json").read_text())
    plan = ChannelPlan.from_json((folder / "channels.json").read_text())
    shape, classes = manifest_["input_shape"], manifest_["num_classes"]
    model = build_deployed(candidate, shape[0], classes, plan=plan)
    state = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()
