"""The run config: one validated object read from YAML; its resolved copy is saved per run.

Every mistake becomes a ``ConfigError`` whose message is one line naming the field, e.g.
``budget.latency_ms: must be greater than 0 (got -1)``; the CLI prints it and exits 2.
"""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from evaluators.budget import Budget
from evaluators.data import Dataset
from evaluators.devices import Device, DeviceError, get_device, restrict_space
from evaluators.distill import TrainConfig, resolve_device
from evaluators.early_stopping import EarlyStopping
from evaluators.hardware import Host
from evaluators.pipeline import CompressionConfig
from evaluators.teacher import TeacherConfig
from spaces.candidate import ACTIVATION_BITS, BLOCK_KINDS, KERNELS, WEIGHT_BITS
from spaces.params import Choice, Int
from spaces.space import SearchSpace, parse_precision, precision_name, precision_widths

OBJECTIVE_DIRECTIONS = {
    "accuracy": "maximize",
    "latency_ms": "minimize",
    "peak_memory_kb": "minimize",
    "flash_kb": "minimize",
    "params": "minimize",
    "macs": "minimize",
}


class ConfigError(Exception):
    """A config mistake, in one sentence that names the field and how to fix it."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetSection(_Section):
    name: str = "digits"
    root: str | None = None
    download: bool = False
    val_fraction: float = Field(0.1, gt=0, lt=1)
    image_size: int | None = Field(None, ge=8, le=512)

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        from evaluators.data import dataset_names

        if name not in dataset_names():
            raise ValueError(
                f"unknown dataset {name!r}; choose one of: {', '.join(dataset_names())} (a dataset of "
                "your own is registered by a module the run's config lists under plugins)"
            )
        return name


class TeacherSection(_Section):
    widths: list[int] = Field(default_factory=lambda: [32, 64, 128], min_length=1)
    blocks: list[int] = Field(default_factory=lambda: [1, 1, 1], min_length=1)
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(3e-3, gt=0)
    checkpoint: str | None = None

    @model_validator(mode="after")
    def _same_length(self) -> TeacherSection:
        if len(self.widths) != len(self.blocks):
            raise ValueError("teacher.widths and teacher.blocks must have the same length")
        return self


# The early-stopping defaults are the stopper's own (why each: evaluators/early_stopping.py).
_STOPPING = EarlyStopping()


class TrainingSection(_Section):
    """How every candidate is trained: the search fidelity and the distillation recipe."""

    train_subset: int | None = Field(
        5000, ge=1, description="training images per candidate; null = all"
    )
    epochs: int = Field(2, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-2, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    # 1, not Hinton's 4: at a search's few epochs T=4 costs small students up to 14 points
    # of validation accuracy against plain training, T=1 none; chosen on the validation
    # split, never the test split (benchmarks/distillation.py).
    temperature: float = Field(1.0, gt=0)
    alpha: float = Field(0.9, ge=0, le=1)
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="where candidates and the teacher train; auto = CUDA when present"
    )
    early_stopping: bool = Field(
        _STOPPING.enabled,
        description="stop training a candidate that cannot reach the current front, or would "
        "add less than early_stopping_min_gain to its hypervolume",
    )
    early_stopping_min_epochs: int = Field(
        _STOPPING.min_epochs, ge=1, description="epochs before judging"
    )
    early_stopping_slack: float = Field(
        _STOPPING.slack, ge=0, le=1, description="accuracy added to the optimistic extrapolation"
    )
    early_stopping_quantile: float = Field(
        _STOPPING.quantile,
        gt=0,
        le=1,
        description="which quantile of the finished curves' late gains a candidate is "
        "granted: 1 = the largest (optimistic); lower stops more, which loses hypervolume "
        "at a fixed number of trials but not at a fixed compute (0.5 with ~1.5x the trials: "
        "README, search quality)",
    )
    early_stopping_min_gain: float = Field(
        _STOPPING.min_gain,
        ge=0,
        lt=1,
        description="also stop a candidate that, at its optimistic accuracy, would add less "
        "than this share to the front's hypervolume (reference: accuracy 0 and the budget); "
        "0 stops only candidates the front dominates (keeps a little more hypervolume at a "
        "fixed number of trials, saves little training)",
    )
    early_stopping_keep_contenders: bool = Field(
        _STOPPING.keep_contenders,
        description="never stop for early_stopping_min_gain a candidate whose optimistic "
        "accuracy is above every front member's (it could still become the most accurate "
        "model within budget, the report's pick); true saved 27% of training instead of "
        "37% for no measurable gain in that model (README, early stopping by setting)",
    )
    early_stopping_feedback: Literal["stopped", "expected"] = Field(
        _STOPPING.feedback,
        description="the accuracy a stopped candidate reports to the sampler: its "
        "validation accuracy when stopped, or its final accuracy expected from the run's "
        "finished curves (median); the trial's metrics keep both",
    )

    @field_validator("device")
    @classmethod
    def _available(cls, name: str) -> str:
        resolve_device(name)
        return name


class SpaceSection(_Section):
    """Options per dimension; see ``spaces.SearchSpace``."""

    num_stages: list[int] = Field(default_factory=lambda: [1, 3], min_length=2, max_length=2)
    stem_width: list[int] = Field(default_factory=lambda: [8, 16], min_length=1)
    stem_stride: list[Literal[1, 2]] = Field(default_factory=lambda: [1], min_length=1)
    kind: list[str] = Field(default_factory=lambda: list(BLOCK_KINDS), min_length=1)
    depth: list[int] = Field(default_factory=lambda: [1, 2], min_length=2, max_length=2)
    width: list[int] = Field(default_factory=lambda: [16, 24, 32, 48], min_length=1)
    kernel: list[int] = Field(default_factory=lambda: [3, 5], min_length=1)
    expansion: list[int] = Field(default_factory=lambda: [2, 4], min_length=1)
    groups: list[int] = Field(default_factory=lambda: [2, 4], min_length=1)
    stride: list[Literal[1, 2]] = Field(default_factory=lambda: [1, 2], min_length=1)
    prune_ratio: list[float] = Field(default_factory=lambda: [0.0], min_length=1)
    weight_bits: list[int] = Field(default_factory=lambda: [32], min_length=1)
    activation_bits: list[int] = Field(default_factory=lambda: [32], min_length=1)
    precisions: list[str] | None = Field(
        None,
        min_length=1,
        description="per-stage weight and activation bit-widths drawn together, e.g. "
        "[w8a8, w32a32], instead of weight_bits x activation_bits, whose mixed pairs the "
        "host runs as fp32 (w8a32, w32a8): the same cost, more rounding",
    )
    sparsity: list[float] = Field(default_factory=lambda: [0.0], min_length=1)
    rank_ratio: list[float] = Field(
        default_factory=lambda: [1.0],
        min_length=1,
        description="low-rank factorization per stage: 1.0 is off, 0.5 keeps half the rank",
    )
    factorize_kxk: list[bool] = Field(
        default_factory=lambda: [False],
        min_length=1,
        description="with rank_ratio < 1, also split k x k convs into k x 1 then 1 x k",
    )

    @field_validator("kind")
    @classmethod
    def _kinds(cls, kinds: list[str]) -> list[str]:
        from spaces.blocks import registered_blocks
        from spaces.candidate import unknown_kind

        known = set(BLOCK_KINDS) | set(registered_blocks())
        bad = [k for k in kinds if k not in known]
        if bad:
            raise ValueError(unknown_kind(bad[0]))
        return kinds

    @model_validator(mode="after")
    def _user_kinds_keep_the_block_contract(self) -> SpaceSection:
        for kind in self.kind:
            if kind not in BLOCK_KINDS:  # the built-in kinds' tests check theirs
                from evaluators.block_contract import check_block_once

                check_block_once(kind, self.kernel, self.stride)
        return self

    @field_validator("kernel")
    @classmethod
    def _kernels(cls, kernels: list[int]) -> list[int]:
        return _subset_of(kernels, KERNELS, "kernel size")

    @field_validator("weight_bits")
    @classmethod
    def _weight_bits(cls, bits: list[int]) -> list[int]:
        return _subset_of(bits, WEIGHT_BITS, "weight bit-width")

    @field_validator("activation_bits")
    @classmethod
    def _activation_bits(cls, bits: list[int]) -> list[int]:
        return _subset_of(bits, ACTIVATION_BITS, "activation bit-width")

    @field_validator("precisions")
    @classmethod
    def _precisions(cls, values: list[str] | None) -> list[str] | None:
        if values is None:
            return None
        return list(dict.fromkeys(precision_name(*parse_precision(v)) for v in values))

    @model_validator(mode="before")
    @classmethod
    def _bits_one_way(cls, data: Any) -> Any:
        """With precisions, weight_bits and activation_bits are the widths its pairs use
        (so a saved config reads back as it was written); other values are refused."""
        if not isinstance(data, dict) or not data.get("precisions"):
            return data
        try:
            weights, activations = precision_widths(data["precisions"])
        except (TypeError, ValueError):
            return data  # the field's own check says what is wrong
        implied = {"weight_bits": list(weights), "activation_bits": list(activations)}
        for name, widths in implied.items():
            given = data.get(name)
            same = isinstance(given, list | tuple) and sorted(map(str, given)) == sorted(
                map(str, widths)
            )
            if given is not None and not same:
                raise ValueError(
                    f"precisions draws the bit-widths in pairs, so {name} {given} would be "
                    f"ignored: keep one of the two, e.g. precisions: [w8a8, w32a32]"
                )
        return {**data, **implied}

    @field_validator("num_stages", "depth")
    @classmethod
    def _range(cls, bounds: list[int]) -> list[int]:
        low, high = bounds
        if low < 1 or high < low:
            raise ValueError(f"must be [low, high] with 1 <= low <= high, got {bounds}")
        return bounds

    @field_validator("stem_width", "width", "expansion", "groups")
    @classmethod
    def _positive(cls, values: list[int]) -> list[int]:
        if any(v < 1 for v in values):
            raise ValueError(f"values must be >= 1, got {values}")
        return values

    @field_validator("prune_ratio")
    @classmethod
    def _ratios(cls, ratios: list[float]) -> list[float]:
        if any(not 0.0 <= r <= 0.9 for r in ratios):
            raise ValueError(f"prune ratios must be in [0, 0.9], got {ratios}")
        return ratios

    @field_validator("rank_ratio")
    @classmethod
    def _ranks(cls, values: list[float]) -> list[float]:
        if any(not 0.0 < v <= 1.0 for v in values):
            raise ValueError(f"rank ratios must be in (0, 1] (1.0 = not factorized), got {values}")
        return values

    @field_validator("sparsity")
    @classmethod
    def _sparsities(cls, values: list[float]) -> list[float]:
        if any(not 0.0 <= v <= 0.95 for v in values):
            raise ValueError(f"sparsity must be in [0, 0.95], got {values}")
        return values

    def to_space(self) -> SearchSpace:
        return SearchSpace(
            num_stages=Int(*self.num_stages),
            stem_width=Choice(tuple(self.stem_width)),
            stem_stride=Choice(tuple(self.stem_stride)),
            kind=Choice(tuple(self.kind)),
            depth=Int(*self.depth),
            width=Choice(tuple(self.width)),
            kernel=Choice(tuple(self.kernel)),
            expansion=Choice(tuple(self.expansion)),
            groups=Choice(tuple(self.groups)),
            stride=Choice(tuple(self.stride)),
            prune_ratio=Choice(tuple(self.prune_ratio)),
            weight_bits=Choice(tuple(self.weight_bits)),
            activation_bits=Choice(tuple(self.activation_bits)),
            precision=Choice(tuple(self.precisions)) if self.precisions else None,
            sparsity=Choice(tuple(self.sparsity)),
            rank_ratio=Choice(tuple(self.rank_ratio)),
            factorize_kxk=Choice(tuple(self.factorize_kxk)),
        )


class CompressionSection(_Section):
    """How a candidate's policy is applied: prune -> KD fine-tune -> quantize -> export."""

    align: int = Field(4, ge=1, le=64, description="pruned channel counts are multiples of this")
    criterion: Literal["l1", "l2", "taylor"] = "l1"
    finetune_epochs: int = Field(1, ge=0, description="KD fine-tuning after pruning")
    quantization: Literal["qat", "ptq"] = "qat"
    qat_epochs: int = Field(1, ge=0, description="KD fine-tuning with fake quantization")
    sparsity_method: Literal["l1", "random"] = Field(
        "l1", description="which weights the space's unstructured sparsity zeroes"
    )
    dynamic_linear: bool = Field(
        False,
        description="quantize the linear layers left in fp32 dynamically (int8 weights, "
        "activations quantized at run time, ONNX Runtime)",
    )
    calibration_images: int = Field(256, ge=8, le=10000)


class DeviceSection(_Section):
    """The target: a registered device name (``evaluators.devices.list_devices()``) or the
    path of a device YAML file. ``threads`` / ``warmup`` / ``runs`` set how this host
    measures latency with ONNX Runtime (the host is measured for every device: the
    deployable file runs here, and its accuracy is measured here)."""

    name: str = "host"
    threads: int = Field(1, ge=1)
    warmup: int = Field(10, ge=0)
    runs: int = Field(30, ge=5)

    @field_validator("name")
    @classmethod
    def _known_device(cls, name: str) -> str:
        try:
            get_device(name)
        except DeviceError as error:
            raise ValueError(str(error)) from None
        return name


class BudgetSection(_Section):
    latency_ms: float | None = Field(None, gt=0)
    peak_memory_kb: float | None = Field(None, gt=0)
    flash_kb: float | None = Field(None, gt=0)


class RaySection(_Section):
    """Ray Tune: where the cluster is and what one trial may use there."""

    address: str | None = Field(
        None,
        description="auto, HOST:PORT or ray://HOST:PORT; null = RAY_ADDRESS when set, else a "
        "new local Ray on this machine",
    )
    concurrent: int = Field(2, ge=1, description="trials running at once")
    cpus_per_trial: float = Field(1.0, gt=0)
    gpus_per_trial: float = Field(0.0, ge=0)


class ExecutionSection(_Section):
    """How trials run: backend, workers, time limits, and how dead workers are noticed.

    May change between invocations of the same run (resuming with more workers is fine).
    """

    backend: Literal["optuna", "ray"] = "optuna"
    workers: int = Field(1, ge=1, description="local worker processes (optuna backend)")
    threads_per_worker: int | None = Field(
        None, ge=1, description="torch threads per worker; null = this machine's cores / workers"
    )
    trial_timeout_s: float | None = Field(
        None, gt=0, description="a trial running longer is failed with that reason"
    )
    heartbeat_s: int = Field(20, ge=1, description="how often a running trial says it is alive")
    grace_s: int = Field(
        90, ge=1, description="a trial silent this long is taken as dead, failed and retried"
    )
    max_retries: int = Field(2, ge=0, description="retries of a trial whose worker died")
    ray: RaySection = Field(default_factory=RaySection)

    @model_validator(mode="after")
    def _grace_exceeds_heartbeat(self) -> ExecutionSection:
        if self.grace_s <= self.heartbeat_s:
            raise ValueError(
                f"grace_s ({self.grace_s}) must exceed heartbeat_s ({self.heartbeat_s}), or "
                "live trials would be taken as dead"
            )
        if self.backend == "ray" and self.workers > 1:
            raise ValueError(
                f"workers ({self.workers}) are the optuna backend's processes; under Ray "
                "set execution.ray.concurrent (--concurrent N) instead"
            )
        return self


class TierSection(BudgetSection):
    """A named budget the report also recommends a model for (e.g. a cheaper device)."""

    name: str = Field(min_length=1)


class RunConfig(_Section):
    name: str = Field("run", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    seed: int = 0
    sampler_seed: int | None = Field(
        None,
        description="seeds only the sampler (null: seed); data split and teacher keep seed",
    )
    trials: int = Field(
        12, ge=1, description="finished trials the run holds; a rerun goes on to this total"
    )
    sampler: Literal["tpe", "nsga2", "random", "gp"] = "tpe"
    objectives: list[str] = Field(
        default_factory=lambda: ["accuracy", "latency_ms", "peak_memory_kb"], min_length=1
    )
    storage: str | None = Field(
        None, description="Optuna storage URL; default results/<run>/study.db"
    )
    results_dir: str = "results"
    dataset: DatasetSection = Field(default_factory=DatasetSection)
    teacher: TeacherSection = Field(default_factory=TeacherSection)
    training: TrainingSection = Field(default_factory=TrainingSection)
    space: SpaceSection = Field(default_factory=SpaceSection)
    compression: CompressionSection = Field(default_factory=CompressionSection)
    device: DeviceSection = Field(default_factory=DeviceSection)
    budget: BudgetSection = Field(default_factory=BudgetSection)
    execution: ExecutionSection = Field(default_factory=ExecutionSection)
    tiers: list[TierSection] = Field(
        default_factory=list,
        description="extra named budgets for the report's summary; default x0.5 and x2",
    )
    plugins: list[str] = Field(
        default_factory=list,
        description="your Python modules, imported first: they register block kinds, "
        "datasets, devices or models",
    )

    @model_validator(mode="before")
    @classmethod
    def _import_plugins(cls, data: Any) -> Any:
        # Before any field is checked: the space, dataset or device may name what they add.
        if isinstance(data, dict) and data.get("plugins") is not None:
            from search.plugins import import_plugins

            import_plugins(data["plugins"])
        return data

    @field_validator("device", mode="before")
    @classmethod
    def _device_by_name(cls, value: Any) -> Any:
        # `device: cortex-m7` is what one writes first; it means the device of that name.
        return {"name": value} if isinstance(value, str) else value

    @field_validator("objectives")
    @classmethod
    def _objectives(cls, names: list[str]) -> list[str]:
        bad = [n for n in names if n not in OBJECTIVE_DIRECTIONS]
        if bad:
            raise ValueError(
                f"unknown objective {bad[0]!r}; choose from {list(OBJECTIVE_DIRECTIONS)}"
            )
        if len(set(names)) != len(names):
            raise ValueError("objectives must not repeat")
        return names

    @model_validator(mode="after")
    def _space_is_valid(self) -> RunConfig:
        try:
            self.search_space()
        except DeviceError as error:
            raise ValueError(f"device: {error}") from None
        except ValueError as error:
            raise ValueError(f"space: {error}") from None
        return self

    # Value objects for the other packages: dicts stop at this edge.
    @property
    def directions(self) -> list[str]:
        return [OBJECTIVE_DIRECTIONS[name] for name in self.objectives]

    def target(self) -> Device:
        return get_device(self.device.name)

    def search_space(self) -> SearchSpace:
        """The configured space, less what the device cannot run (bit-widths, block kinds)."""
        return restrict_space(self.space.to_space(), self.target())

    def budget_value(self) -> Budget:
        """The configured budget, tightened to the device's SRAM (peak activation memory)
        and flash (stored weights) where the device has them."""
        budget = self.budget.model_dump()
        memory = self.target().memory
        for key, limit in (("peak_memory_kb", memory.sram_kb), ("flash_kb", memory.flash_kb)):
            if limit is not None:
                budget[key] = limit if budget[key] is None else min(budget[key], limit)
        return Budget(**budget)

    def budget_beyond_device(self) -> list[str]:
        """Budget bounds larger than the device has, each as a sentence: ``budget_value``
        holds the run to the device's figure, which a user who asked for more must hear."""
        memory = self.target().memory
        notes = []
        for key, limit, what in (
            ("peak_memory_kb", memory.sram_kb, "SRAM"),
            ("flash_kb", memory.flash_kb, "flash"),
        ):
            asked = getattr(self.budget, key)
            if limit is not None and asked is not None and asked > limit:
                notes.append(
                    f"budget.{key} {asked:g} is more than {self.device.name} has ({limit:g} KB "
                    f"of {what}); the run holds candidates to {limit:g} KB"
                )
        return notes

    def load_dataset(self) -> Dataset:
        """The run's dataset, split and normalised by its seed (``evaluators.data``)."""
        from evaluators.data import load_dataset

        return load_dataset(
            self.dataset.name,
            self.dataset.root,
            download=self.dataset.download,
            val_fraction=self.dataset.val_fraction,
            seed=self.seed,
            image_size=self.dataset.image_size,
        )

    def host(self) -> Host:
        return Host(threads=self.device.threads, warmup=self.device.warmup, runs=self.device.runs)

    def teacher_config(self) -> TeacherConfig:
        t = self.teacher
        return TeacherConfig(
            widths=tuple(t.widths),
            blocks=tuple(t.blocks),
            epochs=t.epochs,
            batch_size=t.batch_size,
            lr=t.lr,
            seed=self.seed,
            checkpoint=t.checkpoint,
        )

    def train_config(self) -> TrainConfig:
        t = self.training
        return TrainConfig(
            epochs=t.epochs,
            batch_size=t.batch_size,
            lr=t.lr,
            weight_decay=t.weight_decay,
            temperature=t.temperature,
            alpha=t.alpha,
            seed=self.seed,
        )

    def compression_config(self) -> CompressionConfig:
        """The compression settings, pruned counts aligned to the device's channel blocks
        too: a pruned 20-channel stage on a 16-channel device runs as 32 channels."""
        settings = self.compression.model_dump()
        settings["align"] = math.lcm(settings["align"], self.target().executes.channel_align)
        return CompressionConfig(**settings)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _subset_of(values: list[int], allowed: tuple[int, ...], what: str) -> list[int]:
    bad = [v for v in values if v not in allowed]
    if bad:
        raise ValueError(f"{what} {bad[0]} is not allowed; choose from {list(allowed)}")
    return values


def parse_config(data: Any, source: str = "config") -> RunConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of settings at the top level")
    try:
        return RunConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"{source}: {_first_error(error)}") from None


def load_config(path: str | Path, **overrides: Any) -> RunConfig:
    """Read YAML (safe_load), apply top-level ``overrides`` that are not None, validate."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; pass --config with a YAML file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}; fix the syntax") from None
    if isinstance(data, dict):
        data.update({key: value for key, value in overrides.items() if value is not None})
    return parse_config(data, str(path))


def _first_error(error: ValidationError) -> str:
    """Pydantic's first complaint as one line: ``field.path: what is wrong``."""
    # A misspelt key is both unknown and, under its right name, missing: the unknown one
    # names the typo, so it is said first.
    detail = min(error.errors(), key=lambda error: error["type"] != "extra_forbidden")
    where = ".".join(str(part) for part in detail["loc"])
    message = detail["msg"].removeprefix("Value error, ")
    if detail["type"] == "extra_forbidden":
        parent, key = detail["loc"][:-1], str(detail["loc"][-1])
        allowed = _allowed_keys(parent)
        # A misspelling of a key of this section, else the key put in the wrong section.
        meant = difflib.get_close_matches(key, allowed, n=1) or _sections_with(key)
        hint = f" (did you mean {' or '.join(meant)}?)" if meant else ""
        return f"unknown key {where!r}{hint}; allowed here: {', '.join(allowed)}"
    if "input" in detail and detail["type"] not in ("missing", "value_error"):
        message += f" (got {detail['input']!r})"
    return f"{where}: {message}" if where else message


def _sections_with(key: str, model: type[BaseModel] = RunConfig, prefix: str = "") -> list[str]:
    """Where else in the config ``key`` is allowed, as dotted paths: a key put in the wrong
    section (``latency_ms`` at the top instead of under ``budget``) is a common slip."""
    found = []
    for name, field in model.model_fields.items():
        annotation, item = field.annotation, ""
        if get_origin(annotation) is list:
            (annotation,), item = get_args(annotation), "[]"  # a list of sections: tiers
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found += _sections_with(key, annotation, f"{prefix}{name}{item}.")
        elif name == key:
            found.append(f"{prefix}{name}" if prefix else f"{name} (top level)")
    return found


def _allowed_keys(location: tuple) -> list[str]:
    model: type[BaseModel] = RunConfig
    for part in location:
        if isinstance(part, int):  # an item of a list section (tiers): same model
            continue
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if get_origin(annotation) is list:
            (annotation,) = get_args(annotation)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            break
        model = annotation
    return list(model.model_fields)
