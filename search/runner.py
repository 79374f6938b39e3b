"""One search run, end to end: config -> data -> teacher -> study -> results/<run>/."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import optuna
import pandas as pd
import yaml

from evaluators.data import Dataset, load_dataset
from evaluators.distill import resolve_device
from evaluators.files import write_text_atomic
from evaluators.hardware import Host
from evaluators.latency import LatencyOracle
from evaluators.pipeline import EvaluationContext
from evaluators.teacher import Teacher, prepare_teacher
from search.config import ConfigError, RunConfig, parse_config
from search.objective import Objective
from search.report import write_report
from search.results import export_pareto_models, pareto_frame, trials_frame, write_tables
from search.study import default_storage, open_study, safe_url

log = logging.getLogger("paretonas")

# Settings that may change between invocations of the same run without invalidating it.
_RESUMABLE = {"trials", "name", "results_dir"}


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    trials: pd.DataFrame
    pareto: pd.DataFrame


def run_search(config: RunConfig, *, trials: int | None = None, progress: bool = True) -> RunResult:
    run_dir = Path(config.results_dir) / config.name
    run_dir.mkdir(parents=True, exist_ok=True)
    _save_config(config, run_dir)
    # Cheap checks first: a broken storage URL or a missing dataset must not cost a teacher.
    storage = config.storage or default_storage(run_dir)
    latency = LatencyOracle.for_device(config.target(), config.results_dir)
    study = open_study(config.name, storage, config.directions, config.sampler, config.seed)
    dataset = load_dataset(
        config.dataset.name,
        config.dataset.root,
        download=config.dataset.download,
        val_fraction=config.dataset.val_fraction,
        seed=config.seed,
        image_size=config.dataset.image_size,
    )
    log.info(
        "dataset %s: %d train / %d val / %d test, shape %s (%s)",
        dataset.name,
        len(dataset.train),
        len(dataset.val),
        len(dataset.test),
        dataset.input_shape,
        dataset.source,
    )
    device = resolve_device(config.training.device)
    teacher = prepare_teacher(
        dataset,
        config.teacher_config(),
        Path(config.results_dir) / "teachers",
        progress=progress,
        device=device,
    )
    host = config.host()
    context = EvaluationContext.create(
        dataset,
        teacher.train_logits,
        config.budget_value(),
        host,
        config.train_config(),
        config.training.train_subset,
        compression=config.compression_config(),
        latency=latency,
        progress=progress,
        device=device,
    )
    objective = Objective(config.search_space(), context, config.objectives, run_dir)
    todo = trials if trials is not None else config.trials
    before = len(study.trials)
    log.info(
        "run %s: %d trial(s) in the study, running %d more; storage %s",
        config.name,
        before,
        todo,
        safe_url(storage),
    )

    description = _describe_latency(latency, host)

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        write_results(study, config, run_dir, dataset, teacher, description)

    start = time.perf_counter()
    study.optimize(
        objective,
        n_trials=todo,
        catch=(Exception,),
        callbacks=[after_trial],
        gc_after_trial=False,
        show_progress_bar=False,
    )
    result = write_results(study, config, run_dir, dataset, teacher, host.description)
    log.info(
        "run %s: %d trials, %d Pareto members, %.0f s; report: %s",
        config.name,
        len(result.trials),
        len(result.pareto),
        time.perf_counter() - start,
        run_dir / "report.html",
    )
    return result


def _describe_latency(latency: LatencyOracle, host: Host) -> str:
    device = latency.device
    if latency.measures:
        return host.description
    how = (
        latency.predictor.source
        if latency.predictor is not None
        else "predicted (roofline of its public numbers)"
    )
    return f"{device.name} ({device.description}): latency {how}, not measured"


def write_results(
    study: optuna.Study,
    config: RunConfig,
    run_dir: Path,
    dataset: Dataset,
    teacher: Teacher,
    device_description: str,
) -> RunResult:
    trials = trials_frame(study)
    pareto = pareto_frame(trials, config.objectives, config.directions)
    write_tables(run_dir, trials, pareto)
    export_pareto_models(run_dir, pareto)
    run_info = {
        "name": config.name,
        "dataset": dataset.name,
        "dataset_source": dataset.source,
        "input_shape": list(dataset.input_shape),
        "num_classes": dataset.num_classes,
        "teacher": teacher.summary(),
        "budget": asdict(config.budget_value()),  # with the device's SRAM and flash
        "objectives": [
            {"name": name, "direction": direction}
            for name, direction in zip(config.objectives, config.directions, strict=True)
        ],
        "device": {"name": config.device.name, "description": device_description},
        "fidelity": {
            "train_subset": min(
                config.training.train_subset or len(dataset.train), len(dataset.train)
            ),
            "epochs": config.training.epochs,
        },
        "sampler": config.sampler,
        "seed": config.seed,
        "updated": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_text_atomic(run_dir / "run.json", json.dumps(run_info, indent=2))
    write_report(run_dir)
    return RunResult(run_dir, trials, pareto)


def _save_config(config: RunConfig, run_dir: Path) -> None:
    """Save the resolved config; refuse to mix a changed config into an existing run."""
    path = run_dir / "config.yaml"
    if path.exists():
        try:
            # Re-validated, so settings added to the schema since take their defaults.
            saved = parse_config(yaml.safe_load(path.read_text()), str(path)).model_dump(
                mode="json"
            )
        except ConfigError:
            saved = {}
        current = config.model_dump(mode="json")
        changed = [
            key
            for key in sorted(set(_flatten(saved)) | set(_flatten(current)))
            if key.split(".")[0] not in _RESUMABLE
            and _flatten(saved).get(key) != _flatten(current).get(key)
        ]
        if changed:
            raise ConfigError(
                f"{run_dir} already holds a run with a different config (changed: "
                f"{', '.join(changed[:5])}); use another --name, or the config it was started with"
            )
    write_text_atomic(path, config.to_yaml())


def _flatten(data: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
