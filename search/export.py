"""``paretonas export``: hand one trial's measured artifact to a user, with a manifest.

The ONNX file exported is the very file whose latency and accuracy were measured during the
search (no re-export, no re-quantization); the manifest says how each number was obtained.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import shlex
import shutil
import socket
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from evaluators.files import write_atomic, write_text_atomic
from evaluators.hardware import INPUT_NAME, OUTPUT_NAME
from evaluators.signed_int8 import SIGNED_FILE
from search.config import ConfigError
from search.plugins import import_plugins
from search.report.run_facts import budget_text
from search.results import BASELINE, INTEGER_METRICS, METRIC_COLUMNS, budget_unmet
from search.storage import worker_host
from search.summary import (
    CONFIGURED,
    SUMMARY,
    latency_is_lower_bound,
    latency_kind,
    objectives,
)

log = logging.getLogger(__name__)

KNEE = "knee"  # --tier knee: the knee point summary.json names
ROOFLINE_NOTE = (
    "a roofline (the device's peak compute and bandwidth, no stalls): a lower bound, the "
    "device will be slower"
)
ARTIFACT_FILES = ("model.onnx", "model.pt", "candidate.json", "channels.json")
GOLDEN_FILE = "golden.npz"
GOLDEN_IMAGES = 8  # enough to tell a wrong port (layout, normalisation) from rounding
_LIBRARIES = ("torch", "onnx", "onnxruntime", "optuna", "paretonas")


def recommended_trial(run_dir: str | Path, tier: str = CONFIGURED) -> tuple[int, str]:
    """The trial summary.json recommends for the budget tier named ``tier`` (a tier's name,
    or the start of one, any case), and a sentence saying why it was picked."""
    run_dir = Path(run_dir)
    path = run_dir / SUMMARY
    if not path.is_file():
        raise ConfigError(
            f"{run_dir} has no {SUMMARY}; run 'paretonas report {run_dir}' to write it, or "
            "name the model with --trial N"
        )
    summary = json.loads(path.read_text())
    tiers = summary.get("tiers") or []
    wanted = tier.strip().lower()
    if wanted == KNEE and not any(str(t.get("name", "")).lower() == KNEE for t in tiers):
        if not summary.get("knee"):
            raise ConfigError(f"{run_dir} has no knee point (no Pareto member); name a --trial")
        return int(summary["knee"]["trial"]), (
            "the knee point: the Pareto member nearest the ideal point, each objective scaled "
            "over the front's range (a geometric balance, not a budget's pick)"
        )
    names = [str(t.get("name", "")) for t in tiers]
    # A tier's whole name, else the one name it begins ("looser" for "looser (bounds x2)").
    matches = [t for t, name in zip(tiers, names, strict=True) if name.lower() == wanted] or [
        t for t, name in zip(tiers, names, strict=True) if name.lower().startswith(wanted)
    ]
    if len(matches) != 1:
        what = "no budget tier" if not matches else "more than one budget tier named"
        listed = ", ".join(_short(name) for name in names) or "none"
        raise ConfigError(f"{run_dir} has {what} {tier!r}; pass --tier {listed} (or knee)")
    (chosen,) = matches
    if chosen.get("trial") is None:
        raise ConfigError(
            f"no model of {run_dir} meets the {chosen['name']}, {_bounds(chosen)}: "
            + _instead(run_dir, summary, tiers)
        )
    why = (
        f"recommended for the {chosen['name']}, {_bounds(chosen)}: the most accurate Pareto "
        "member within it, on validation accuracy"
    )
    return int(chosen["trial"]), why


def _bounds(tier: dict[str, Any]) -> str:
    return budget_text(tier.get("budget") or {})


def _instead(run_dir: Path, summary: dict[str, Any], tiers: list[dict[str, Any]]) -> str:
    """Why a tier has no model and what can be exported instead: another tier's pick where
    one has a model; where none has, the search trained no candidate within the budget, and
    only a new run (or a baseline by --trial) gives one."""
    others = [t for t in tiers if t.get("trial") is not None]
    if others:
        listed = "; ".join(f"--tier {_short(t['name'])} gives trial {t['trial']}" for t in others)
        return f"{listed}; or name a trial with --trial N"
    if summary.get("pareto_members"):
        return "no tier has a model; name a Pareto member (pareto.csv) with --trial N"
    trials = _read_trials(run_dir)
    run = _read_json(run_dir / "run.json")
    budget = run.get("budget") or next(
        (t.get("budget") for t in tiers if t.get("name") == CONFIGURED), {}
    )
    why = budget_unmet(trials, budget or {}) if len(trials) else None
    if why is None:
        why = (
            "the search has no candidate trained within its budget yet, so no tier has a "
            "model; run more trials, or raise budget.* in the config and run under a new --name"
        )
    baselines = _exportable_baselines(trials)
    if baselines:
        why += f"; a hand-designed baseline can be exported with --trial N ({baselines})"
    return why


def _short(name: str) -> str:
    """A tier's name as --tier takes it ("looser" for "looser (bounds x2)"), quoted for a
    shell where it has spaces."""
    return shlex.quote(name.split(" (")[0])


def _exportable_baselines(trials: pd.DataFrame) -> str:
    if BASELINE not in trials or "status" not in trials:
        return ""
    rows = trials[trials[BASELINE].notna() & (trials["status"] == "ok")]
    return ", ".join(f"trial {int(r['number'])}: {r[BASELINE]}" for _, r in rows.iterrows())


def _read_trials(run_dir: Path) -> pd.DataFrame:
    path = run_dir / "trials.csv"
    if not path.is_file() or path.stat().st_size == 0:
        return pd.DataFrame()
    return pd.read_csv(path)


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def export_trial(
    run_dir: str | Path, trial: int, out: str | Path | None = None, *, why: str | None = None
) -> Path:
    """Copy trial ``trial``'s measured artifacts to ``out`` (default RUN/export/TRIAL) and
    write manifest.json beside them; ``why`` says how the trial was chosen (default: named
    by the user, with whether it is on the run's Pareto front now)."""
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
        host = worker_host(row.get("worker"))
        elsewhere = ""
        if host is not None and host != socket.gethostname():
            # A worker on another machine keeps its model files in its own results folder.
            elsewhere = (
                f"; it was trained on {host}: copy {row['artifacts']} from that machine's "
                "run folder here, or give the workers a shared results folder"
            )
        raise ConfigError(
            f"trial {trial}'s artifacts in {source} lack {', '.join(missing)}{elsewhere}"
        )

    if why is None:
        on_front, membership = _front_membership(run_dir, row)
        why = f"named with --trial; {membership}"
        if not on_front:
            log.warning("trial %d is %s", trial, membership)

    _check_buildable(run_dir, source)  # before anything is written
    out = Path(out) if out is not None else run_dir / "export" / str(trial)
    out.mkdir(parents=True, exist_ok=True)
    for name in ARTIFACT_FILES:
        shutil.copy2(source / name, out / name)
    data = RunData(run_dir)
    signed = write_signed(data, row, out)
    golden = write_golden(data, row, out)
    text = json.dumps(manifest(run_dir, row, out, why, signed, data, golden), indent=2)
    write_text_atomic(out / "manifest.json", text)
    return out


def _check_buildable(run_dir: Path, source: Path) -> None:
    """Import the run's plugins and read the trial's candidate: a block kind of the user's
    own is unknown here until its module is imported."""
    import yaml

    from spaces.candidate import Candidate

    try:
        saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        saved = None  # the artifacts are what export needs; the config is read when there
    try:
        if isinstance(saved, dict) and isinstance(saved.get("plugins"), list):
            import_plugins(saved["plugins"])
        Candidate.from_json((source / "candidate.json").read_text())
    except ValueError as error:  # an unknown block kind, or JSON that does not parse
        raise ConfigError(f"{run_dir}: {error}") from None
    except (KeyError, TypeError, OSError) as error:
        raise ConfigError(
            f"{source / 'candidate.json'} is not a candidate paretonas wrote "
            f"({type(error).__name__}: {error}); export the trial from its run folder as written"
        ) from None


def _front_membership(run_dir: Path, row: pd.Series) -> tuple[bool, str]:
    """Whether trial ``row`` is on the run's front, and a phrase saying so and, where it is
    not, why: a baseline is never on it, a searched trial over budget cannot be, and
    otherwise some members beat it; which members are at least as good on every objective
    is computed, never assumed."""
    trial = int(row["number"])
    path = run_dir / "pareto.csv"
    if not path.is_file():
        return False, "not known to be on the front (the run has no pareto.csv)"
    pareto = pd.read_csv(path)
    members = [int(n) for n in pareto.get("number", pd.Series(dtype=int))]
    if trial in members:
        return True, "on the run's Pareto front"
    listed = f"pareto.csv: trials {', '.join(map(str, members)) or 'none'}"
    name = row.get(BASELINE)
    if isinstance(name, str) and name.strip():
        where = (
            f"the hand-designed baseline {name}, not a search member: baselines are drawn "
            f"beside the Pareto front ({listed}), never on it"
        )
    else:
        where = f"not on the run's Pareto front ({listed})"
    if str(row.get("feasible")).strip().lower() == "false":  # blank: not known
        where += "; it is over the run's budget"
    return False, f"{where}; {_dominance(run_dir, row, pareto)}"


def _dominance(run_dir: Path, row: pd.Series, pareto: pd.DataFrame) -> str:
    """Which Pareto members are at least as good as ``row`` on every objective of the run,
    as a phrase."""
    run = _read_json(run_dir / "run.json")
    names, directions = objectives(run, pareto)
    mine = pd.to_numeric(pd.Series([row.get(n) for n in names], dtype=object), errors="coerce")
    if not names or mine.isna().any():
        return "whether a member is at least as good on every objective is not known here"
    sign = [1.0 if d == "maximize" else -1.0 for d in directions]
    values = pareto[names].apply(pd.to_numeric, errors="coerce")
    better = ((values * sign) >= (mine.to_numpy(dtype=float) * sign)).all(axis=1)
    objectives_text = ", ".join(names)
    if not better.any():
        return f"no member is at least as good on every objective ({objectives_text})"
    numbers = [str(int(n)) for n in pareto.loc[better, "number"]]
    who = f"member {numbers[0]} is" if len(numbers) == 1 else f"members {', '.join(numbers)} are"
    return f"{who} at least as good on every objective ({objectives_text})"


class RunData:
    """The run's dataset as its config loads it (same split, same normalisation), loaded on
    first use only, and never downloaded: a machine without the data still exports, and
    what needed it says why it was not done."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self._dataset = None
        self.missing: str | None = None  # why it did not load, once tried

    def get(self):
        """The dataset, or None (``missing`` then says why)."""
        if self._dataset is None and self.missing is None:
            import yaml

            from search.config import parse_config

            path = self.run_dir / "config.yaml"
            try:
                config = parse_config(yaml.safe_load(path.read_text()), str(path))
                offline = config.dataset.model_copy(update={"download": False})
                self._dataset = config.model_copy(update={"dataset": offline}).load_dataset()
            except Exception as error:  # no data here: what needs it says so and goes on
                self.missing = _sentence(error, with_type=False)
        return self._dataset


def _preprocessing(run: dict[str, Any], data: RunData | None) -> Any:
    """How raw pixels become the model's input: run.json's record, else the statistics of
    the run's data loaded here (runs written before paretonas recorded them)."""
    if run.get("preprocessing"):
        return run["preprocessing"]
    dataset = data.get() if data is not None else None
    if dataset is not None and dataset.preprocessing is not None:
        return {
            **dataset.preprocessing.to_dict(),
            "source": "computed at export from the run's config (run.json predates the record)",
        }
    why = data.missing if data is not None else "no data loaded"
    log.warning(
        "the manifest cannot say how to normalise raw pixels: run.json does not record it and "
        "the run's data did not load here (%s); fed raw pixels the model is wrong most of the "
        "time: export on a machine with the data",
        why,
    )
    return f"not recorded (the run was written before paretonas recorded it; {why})"


def pixels_to_input(preprocessing: dict[str, Any], quant: dict[str, Any]) -> dict[str, Any]:
    """The preprocessing and the input's quantization folded into one affine map per
    channel of raw pixels: what a runtime fed integers computes from a camera's bytes, with
    no float input tensor (input = (pixels / pixel_scale - mean) / std, then
    q = round(input / scale) + zero_point)."""
    scale, zero = float(quant["scale"]), int(quant["zero_point"])
    pixel_scale = float(preprocessing["pixel_scale"])
    mean, std = preprocessing["mean"], preprocessing["std"]
    low, high = (-128, 127) if quant.get("dtype") == "int8" else (0, 255)
    return {
        "formula": f"q[c] = clip(round(pixels[c] * multiplier[c] + offset[c]), {low}, {high})",
        "pixels": "the resized image's raw values (0 to pixel_scale), channels and layout "
        "as in preprocessing",
        "multiplier": [1.0 / (pixel_scale * s * scale) for s in std],
        "offset": [zero - m / (s * scale) for m, s in zip(mean, std, strict=True)],
        "exact": "equal to preprocessing then QuantizeLinear, but for values that fall "
        "within float rounding of a half",
    }


def _with_pixel_map(signed: dict[str, Any] | None, preprocessing: Any) -> dict[str, Any] | None:
    if not signed or not signed.get("input") or not isinstance(preprocessing, dict):
        return signed
    return {**signed, "input_from_pixels": pixels_to_input(preprocessing, signed["input"])}


def manifest(
    run_dir: Path,
    row: pd.Series,
    out: Path,
    why: str = "",
    signed: dict | None = None,
    data: RunData | None = None,
    golden: dict | None = None,
) -> dict[str, Any]:
    run = _read_json(run_dir / "run.json")
    config_text = (
        (run_dir / "config.yaml").read_bytes() if (run_dir / "config.yaml").is_file() else b""
    )
    metrics = {key: _plain(row.get(key), integer=key in INTEGER_METRICS) for key in METRIC_COLUMNS}
    shape = run.get("input_shape")
    device = run.get("device") or {}
    predicted = latency_kind(run, row) == "predicted"
    latency_how = metrics["latency_source"]
    if predicted and latency_is_lower_bound(run, row):
        latency_how = f"{latency_how or 'predicted'}; {ROOFLINE_NOTE}"
    return {
        "trial": int(row["number"]),
        "chosen": why,
        "genome": row["genome"],
        "run": run.get("name", run_dir.name),
        "dataset": run.get("dataset"),
        "input_shape": shape,
        "num_classes": run.get("num_classes"),
        "input": {
            "name": INPUT_NAME,
            "shape": [1, *shape] if shape else None,
            "dtype": "float32",
            "batch": "1, fixed: the shape latency was "
            + ("predicted for" if predicted else "measured at")
            + "; run images one at a time",
        },
        "target": {
            "device": device.get("name"),
            "description": device.get("description"),
            "latency": device.get("latency"),
            "memory_limits_kb": device.get("memory_limits"),
        },
        "onnx": onnx_format(out / "model.onnx"),
        "quantization": quantization_format(out / "model.onnx"),
        "signed_int8": _with_pixel_map(signed, _preprocessing(run, data)),
        "preprocessing": _preprocessing(run, data),
        "output": {
            "name": OUTPUT_NAME,
            "shape": [1, run.get("num_classes")],
            "meaning": "logits: the class is the argmax (an index into class_names); "
            "softmax gives probabilities",
        },
        "class_names": run.get("class_names"),
        "golden": golden,
        "metrics": metrics,
        "how_measured": {
            "accuracy": "top-1 of model.onnx run by ONNX Runtime on the validation split "
            "(ranked on) and the test split (test_accuracy)",
            "expected_accuracy": "predicted, for a trial stopped early only: the validation "
            "accuracy it would have ended at, from the run's finished learning curves (median)",
            "latency_ms": latency_how,
            "peak_memory_kb": "computed: peak of live activation bytes over the execution "
            "schedule (evaluators.memory), at the width the device runs each stage's "
            "kernels at (on the host a stage runs int8 only with weights of 8 bits or fewer "
            "and 8-bit activations, any other fp32: metrics.executed), in a perfectly "
            "packed arena without the runtime's scratch buffers (im2col), overhead or stack: "
            "a lower bound; peak_memory_at names the kernel (module path) during which it is "
            "reached",
            "flash_kb": "computed: weights packed at the bit-widths the device stores them "
            "at (a stage the host runs in fp32 keeps fp32 weights) (+ sparse index), "
            "32-bit biases and scales, 64 bytes of metadata per layer",
            "artifact_bytes": "measured: size of model.onnx, an ONNX Runtime file with its "
            "graph and per-node metadata; not what a microcontroller's flash holds (flash_kb "
            "is that, computed)",
            "torch_test_accuracy": "top-1 in PyTorch on the test split of the module "
            "exported to model.onnx, just before export (fake-quantized under QAT)",
            "latency_p90_ms": "not measured: latency is predicted for this device"
            if predicted
            else "the 90th percentile of the same timed runs as latency_ms",
            "predicted_latency_ms": metrics["predicted_latency_source"]
            or "not predicted (no calibrated predictor for this device)",
            "model.pt": _weights_note(out, config_text),
        },
        "teacher": run.get("teacher"),
        "files": {
            name: _sha256(out / name)
            for name in (*ARTIFACT_FILES, SIGNED_FILE, GOLDEN_FILE)
            if (out / name).is_file()
        },
        "config_sha256": hashlib.sha256(config_text).hexdigest() if config_text else None,
        "libraries": {name: _version(name) for name in _LIBRARIES},
        "python": platform.python_version(),
        # Where the export ran: not the target (``target`` is), nor where it was measured.
        "exported_on": f"{platform.system()} {platform.machine()}",
        "exported": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def onnx_format(model_path: Path) -> dict[str, Any]:
    """The ONNX versions ``model_path`` was written with: what a converter checks first."""
    import onnx

    try:
        model = onnx.load(str(model_path), load_external_data=False)
    except Exception as error:  # a damaged file: said in the manifest, the export goes on
        return {"read": f"not read ({type(error).__name__}: {str(error)[:120]})"}
    return {
        "ir_version": int(model.ir_version),
        "opsets": {(entry.domain or "ai.onnx"): int(entry.version) for entry in model.opset_import},
        # ONNX's producer field: the tool that wrote the file last (ONNX Runtime's quantizer
        # for an int8 file), named so it is not read as an ONNX version.
        "written_by": f"{model.producer_name} {model.producer_version}".strip() or None,
    }


def quantization_format(model_path: Path) -> dict[str, Any]:
    """How ``model_path`` stores its int8 layers, read from the file: what a converter to
    a microcontroller runtime (which wants int8 weights with zero point 0) must know.

    Static stages are QDQ (a DequantizeLinear on each stored weight and bias); dynamic
    ones (``compression.dynamic_linear``) are MatMulInteger / ConvInteger on stored int8
    weights, their activations quantized at run time."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(model_path))
    except Exception as error:  # a damaged file: the manifest says so, the export goes on
        return {"format": f"not read ({type(error).__name__}: {str(error)[:120]})"}
    constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    parameters: set[str] = set()  # weights and biases
    activations: set[str] = set()
    formats: set[str] = set()
    unsigned_points: set[int] = set()
    input_quant = None

    def describe(kind: str, values: Any, scale: Any, zero: Any) -> None:
        points = sorted({int(v) for v in np.ravel(zero)}) if zero is not None else [0]
        sizes = [np.size(x) for x in (scale, zero) if x is not None]
        granularity = "per output channel" if any(n > 1 for n in sizes) else "per tensor"
        parameters.add(
            f"{kind}: {values.dtype}, {granularity}, zero point "
            + (", ".join(map(str, points)) if len(points) <= 4 else "per channel (varies)")
        )
        if kind == "weights" and values.dtype == np.uint8:
            unsigned_points.update(points)

    for node in model.graph.node:
        inputs = list(node.input) + [""] * 4
        if node.op_type == "DequantizeLinear" and inputs[0] in constants:
            values = constants[inputs[0]]
            kind = "biases" if values.dtype == np.int32 else "weights"
            describe(kind, values, constants.get(inputs[1]), constants.get(inputs[2]))
            formats.add("QDQ: QuantizeLinear / DequantizeLinear around each static int8 layer")
        elif node.op_type in ("MatMulInteger", "ConvInteger") and inputs[1] in constants:
            describe("weights", constants[inputs[1]], None, constants.get(inputs[3]))
            formats.add(f"dynamic: {node.op_type} on stored integer weights")
        elif node.op_type == "QuantizeLinear" and inputs[2] in constants:
            zero = constants[inputs[2]]
            activations.add(f"{zero.dtype}, per tensor")
            if inputs[0] == INPUT_NAME and inputs[1] in constants:
                input_quant = {
                    "scale": float(np.ravel(constants[inputs[1]])[0]),
                    "zero_point": int(np.ravel(zero)[0]),
                    "dtype": str(zero.dtype),
                    "meaning": "q = clip(round(input / scale) + zero_point), applied to the "
                    "preprocessed float input",
                }
        elif node.op_type == "DynamicQuantizeLinear":
            activations.add("uint8, per tensor, scale computed at run time (dynamic)")
    if not parameters and not activations:
        return {"format": "fp32: no quantized layer"}
    found = {
        "format": "ONNX " + "; ".join(sorted(formats)),
        "parameters": sorted(parameters) or None,
        "activations": sorted(activations) or None,
        "input": input_quant,
    }
    if unsigned_points == {128}:
        found["note"] = (
            "uint8 weights with zero point 128 are the int8 weights plus 128: the file was "
            "quantized on an x86 host without VNNI, where ONNX Runtime's int8-weight kernels "
            f"saturate; {SIGNED_FILE} holds the same weights as int8 with zero point 0"
        )
    return found


def write_signed(data: RunData, row: pd.Series, out: Path) -> dict[str, Any] | None:
    """Write ``SIGNED_FILE`` beside model.onnx when model.onnx has int8 layers, and say what
    it is and how it was checked: the test split run through both files by ONNX Runtime
    (same predictions, its accuracy). ``None`` for an fp32 model."""
    from evaluators.signed_int8 import NotConvertible, NothingToConvert, to_signed

    target = out / SIGNED_FILE
    target.unlink(missing_ok=True)  # an earlier export's, for another trial
    try:
        converted = to_signed(out / "model.onnx", target)
    except NothingToConvert:
        return None
    except NotConvertible as why:
        log.warning("no %s: model.onnx %s", SIGNED_FILE, why)
        return {"file": None, "why": f"model.onnx {why}"}
    except Exception as error:  # a graph the rewrite did not foresee: the export goes on
        target.unlink(missing_ok=True)
        reason = _sentence(error)
        log.warning("no %s: its rewrite failed (%s)", SIGNED_FILE, reason)
        return {"file": None, "why": f"the rewrite failed ({reason})"}
    found = {
        "file": SIGNED_FILE,
        "what": "model.onnx with signed 8-bit integers only, for runtimes that take int8 "
        "and not uint8 (TensorFlow Lite Micro, CMSIS-NN, ST Edge AI): int8 weights per "
        "channel with zero point 0, int8 activations per tensor with the zero point moved "
        "by -128; every quantized value is model.onnx's minus 128, so every layer computes "
        "the same numbers (evaluators.signed_int8)",
        "rewritten": {
            "uint8_weight_tensors": converted.weights,
            "uint8_activation_tensors": converted.activations,
            "int8_weight_tensors_kept": converted.already_signed,
        },
        "input": quantization_format(target).get("input"),
    }
    fp32 = _fp32_stages(row.get("executed"))
    if fp32:
        # The rewrite changes the int8 layers only: a runtime with no float kernels cannot
        # run the rest.
        found["mixed_precision"] = (
            f"{'stage' if len(fp32) == 1 else 'stages'} {', '.join(map(str, fp32))} "
            f"{'runs' if len(fp32) == 1 else 'run'} in fp32 in this file, as in "
            "model.onnx (the stem follows stage 0, the classifier the last stage): an "
            "integer-only runtime needs w8a8 in every stage (search with space.precisions: "
            "[w8a8])"
        )
    found["check"] = _compare_signed(data, row, out)
    return found


def golden_indices(labels: Any, count: int) -> list[int]:
    """Up to ``count`` positions in a split, taken from each class in turn (each class's
    first images, classes in index order): a port that mixes up classes, or a channel order
    that only some classes show, changes some of their predictions."""
    by_class: dict[int, list[int]] = {}
    for index, label in enumerate(labels.tolist()):
        by_class.setdefault(int(label), []).append(index)
    queues = [iter(by_class[label]) for label in sorted(by_class)]
    picked: list[int] = []
    while queues and len(picked) < count:
        for queue in list(queues):
            index = next(queue, None)
            if index is None:
                queues.remove(queue)
            elif len(picked) < count:
                picked.append(index)
    return sorted(picked)


def _test_accuracy_text(row: pd.Series) -> str:
    value = _plain(row.get("test_accuracy")) if row is not None else None
    return "not recorded" if value is None else f"{100 * float(value):.1f}%"


def write_golden(data: RunData, row: pd.Series, out: Path) -> dict[str, Any]:
    """Write ``GOLDEN_FILE``: test images from each class, as the model takes them, and the logits
    ONNX Runtime gives for them here, from model.onnx and (when written) the signed file.
    A port of the model to another runtime is checked against it before any accuracy run:
    a wrong layout or normalisation changes the logits at once."""
    import numpy as np

    from evaluators.quantize import onnx_logits

    target = out / GOLDEN_FILE
    target.unlink(missing_ok=True)  # an earlier export's, for another trial
    dataset = data.get()
    if dataset is None:
        log.warning("no %s: %s", GOLDEN_FILE, data.missing)
        return {"file": None, "why": f"the run's test split did not load here: {data.missing}"}
    indices = golden_indices(dataset.test.labels, GOLDEN_IMAGES)
    if not indices:
        return {"file": None, "why": "the run's test split has no images"}
    images = dataset.test.images[indices]
    arrays = {
        "inputs": images.numpy().astype(np.float32),
        "labels": dataset.test.labels[indices].numpy().astype(np.int64),
        "indices": np.asarray(indices, dtype=np.int64),
    }
    described = {
        "inputs": f"float32 {list(images.shape)}: {len(images)} images of the run's test "
        "split, from each class in turn, preprocessed (the model's input, fed one at a time)",
        "labels": "int64: their classes (indices into class_names)",
        "indices": "int64: their positions in the test split",
        "logits": "float32: model.onnx's output for each input",
    }
    files = {"logits": out / "model.onnx"}
    if (out / SIGNED_FILE).is_file():
        files["signed_logits"] = out / SIGNED_FILE
        described["signed_logits"] = f"float32: {SIGNED_FILE}'s output for each input"
    try:
        for name, path in files.items():
            arrays[name] = onnx_logits(path, images).numpy().astype(np.float32)
    except Exception as error:  # ONNX Runtime refused a file: said, not raised
        reason = _sentence(error)
        log.warning("no %s: %s", GOLDEN_FILE, reason)
        return {"file": None, "why": f"ONNX Runtime could not run the model here ({reason})"}

    def save(path: Path) -> None:
        with open(path, "wb") as handle:  # a name would get ".npz" appended
            np.savez(handle, **arrays)

    write_atomic(target, save)
    agree = int((arrays["logits"].argmax(1) == arrays["labels"]).sum())
    return {
        "file": GOLDEN_FILE,
        "arrays": described,
        "load": "numpy.load(path, allow_pickle=False)",
        "how": f"run by ONNX Runtime {_version('onnxruntime')} on {platform.system()} "
        f"{platform.machine()} (this export's machine), one image at a time; model.onnx "
        f"predicts the label of {agree} of these {len(images)} (its test accuracy, on the "
        f"whole split: {_test_accuracy_text(row)})",
        "use": "a port of the model should predict the same classes on these inputs; its "
        "logits differ from these by its kernels' rounding (more where it computes in int8)",
    }


def _fp32_stages(executed: Any) -> list[int]:
    """The stages the host file runs in fp32, from a trial's ``executed`` ("fp32, w8a8 int8",
    one entry per stage, numbered from 0 as in the genome)."""
    if not isinstance(executed, str) or not executed:
        return []
    return [i for i, how in enumerate(executed.split(", ")) if "int8" not in how.split(" (")[0]]


def _compare_signed(data: RunData, row: pd.Series, out: Path) -> dict[str, Any]:
    """Both files on the run's test split in ONNX Runtime on this machine; the run's data
    must load here, else the check says why it was not made."""
    from evaluators.distill import accuracy
    from evaluators.quantize import onnx_logits, weights_unsigned

    dataset = data.get()
    if dataset is None:  # the file is still written, unchecked
        log.warning("%s not checked against model.onnx: %s", SIGNED_FILE, data.missing)
        return {"measured": False, "why": f"the run's test split did not load here: {data.missing}"}
    test = dataset.test
    try:
        measured = onnx_logits(out / "model.onnx", test.images).argmax(1)
        signed = onnx_logits(out / SIGNED_FILE, test.images)
    except Exception as error:  # ONNX Runtime refused a file: said, not raised
        reason = _sentence(error)
        log.warning("%s not checked against model.onnx: %s", SIGNED_FILE, reason)
        return {"measured": False, "why": f"ONNX Runtime could not run it here ({reason})"}
    same = float((signed.argmax(1) == measured).float().mean())
    signed_accuracy = accuracy(signed, test.labels)
    log.info(
        "%s: test accuracy %.4f (model.onnx %.4f); same prediction on %.2f%% of %d test images",
        SIGNED_FILE,
        signed_accuracy,
        _test_accuracy(row),
        100 * same,
        len(test.labels),
    )
    return {
        "measured": True,
        "test_accuracy": round(signed_accuracy, 6),
        "same_prediction_as_model_onnx": round(same, 6),
        "images": len(test.labels),
        **(
            {
                "note": "this machine's ONNX Runtime int8 kernels saturate (x86 without VNNI), "
                "differently for uint8 and int8 activations: predictions that differ come "
                "from the kernels, not from the file, whose numbers are model.onnx's"
            }
            if same < 1.0 and weights_unsigned()
            else {}
        ),
        "how": f"top-1 on the run's test split, both files run by ONNX Runtime "
        f"{_version('onnxruntime')} on {platform.system()} {platform.machine()} (this "
        "export's machine), one image at a time",
    }


def _sentence(error: Exception, with_type: bool = True) -> str:
    """An error as one line for a log and the manifest (a user error's message is the
    sentence itself; another's type says what kind of failure it was)."""
    first = str(error).splitlines()[0][:200] if str(error) else ""
    if not with_type:
        return first or type(error).__name__
    return f"{type(error).__name__}: {first}"


def _test_accuracy(row: pd.Series) -> float:
    value = _plain(row.get("test_accuracy"))
    return float("nan") if value is None else float(value)


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


def _plain(value: Any, integer: bool = False) -> Any:
    """A trials.csv value as JSON takes it; ``integer``: a count read back from a column
    with blanks, which pandas reads as floats (53477.0 bytes), as the count it is."""
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return None
    value = value.item() if hasattr(value, "item") else value
    if integer and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


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
