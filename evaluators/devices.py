"""Devices: the targets a search costs candidates against, as data (one YAML file each).

Why data and not code: a device is a handful of numbers (which ops and bit-widths it runs,
its SRAM and flash, how fast it multiplies and moves bytes) plus where those numbers come
from. In YAML a user adds a target by writing one file, a report can quote the sources,
and a saved run config that names a device still means the same thing later.

Bit-widths follow one model on every device:

- ``executes.weight_bits`` / ``executes.activation_bits``: what a candidate's policy may
  propose for this device; ``restrict_space`` intersects a search space with them.
- ``executes.native_bits``: the widths the device has kernels for. A proposable width that
  is not native is stored at its own width (packed: flash counts it at its own width) and
  executed at the next wider native width. The host proposes 2/4/8/16/32-bit weights, but
  ONNX Runtime's CPU provider runs int8 and fp32 only (``evaluators.quantize``): a 4-bit
  stage runs as int8, a 16-bit stage as fp32.

``executes.channel_align``: the device's kernels work on blocks of this many channels
(CMSIS-NN's fast int8 convolutions on multiples of 4). ``restrict_space`` rounds the
space's stem and stage widths up to multiples of it, and with them the hidden widths
(expansion times a width). Not aligned: the input's channels, the classes, a factorized
layer's rank. Pruned counts are multiples of both this and the run's ``compression.align``
(``RunConfig.compression_config``).

Latency is known one of three ways (``latency.source``):

- ``measured``: ONNX Runtime on this machine (``evaluators.hardware``); ``kind: host`` only.
- ``predicted``: a kernel-level predictor fitted on measurements made on the device, kept
  under ``results/devices/<name>/`` (``Device.predictor_dir``).
- ``roofline``: modeled from ``macs_per_second`` (per native width), ``bytes_per_second``
  and ``overhead_ms``; such a device says ``modeled: true`` and lists its ``sources``.

Built-in profiles live in ``evaluators/device_profiles/``. Users add theirs by path
(``get_device("boards/mine.yaml")``), with ``register_device``, or as files in a folder
named by ``PARETONAS_DEVICES`` (folders separated by ``os.pathsep``: ``:`` on Linux/macOS).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import logging
import math
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from spaces.candidate import ACTIVATION_BITS, WEIGHT_BITS, StagePolicy
from spaces.params import Choice
from spaces.space import SearchSpace, parse_precision, precision_name

__all__ = [
    "BITS",
    "BLOCK_OPS",
    "DEVICE_KINDS",
    "ENV_VAR",
    "NETWORK_OPS",
    "OP_KINDS",
    "PROFILE_DIR",
    "Device",
    "DeviceError",
    "Executes",
    "Latency",
    "Memory",
    "alike_note",
    "get_device",
    "list_devices",
    "load_device_file",
    "register_device",
    "restrict_space",
]

BITS: tuple[int, ...] = (2, 4, 8, 16, 32)
DEVICE_KINDS: tuple[str, ...] = ("host", "mcu", "mobile", "accelerator")
OP_KINDS: tuple[str, ...] = (
    "conv",
    "depthwise",
    "group_conv",
    "linear",
    "avgpool",
    "add",
    "shuffle",
)
# Every network has a conv stem, a global average pool and a linear classifier
# (``spaces.build.CandidateNet``); the blocks add their own ops (``spaces.blocks``).
NETWORK_OPS: tuple[str, ...] = ("conv", "avgpool", "linear")
BLOCK_OPS: dict[str, tuple[str, ...]] = {
    "mbconv": ("conv", "depthwise", "add"),
    "dsconv": ("depthwise", "conv"),
    "gconv": ("group_conv", "shuffle", "depthwise", "add"),
    "conv": ("conv",),
}
ENV_VAR = "PARETONAS_DEVICES"
PROFILE_DIR = Path(__file__).with_name("device_profiles")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
# A validator that knows the exact field starts its message with "<dotted.field>: ".
_FIELD_PREFIX = re.compile(r"^([a-z_][a-z0-9_.]*): (.*)$", re.DOTALL)
log = logging.getLogger(__name__)


class DeviceError(Exception):
    """A device cannot be found, read or used; the message is one line saying what to change."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _bit_widths(values: tuple[int, ...]) -> tuple[int, ...]:
    bad = sorted({v for v in values if v not in BITS})
    if bad:
        raise ValueError(f"bit-widths must be among {list(BITS)}")
    if len(set(values)) != len(values):
        raise ValueError("lists a bit-width twice")
    return tuple(sorted(values))


class Executes(_Frozen):
    """What the device runs: op kinds, proposable and native bit-widths, channel alignment."""

    ops: tuple[str, ...] = Field(min_length=1)
    weight_bits: tuple[int, ...] = Field(min_length=1)
    activation_bits: tuple[int, ...] = Field(min_length=1)
    native_bits: tuple[int, ...] = Field(min_length=1)
    channel_align: int = Field(ge=1)

    @field_validator("ops")
    @classmethod
    def _ops(cls, ops: tuple[str, ...]) -> tuple[str, ...]:
        bad = [op for op in ops if op not in OP_KINDS]
        if bad:
            raise ValueError(f"unknown op kinds {bad}; known: {', '.join(OP_KINDS)}")
        return tuple(dict.fromkeys(ops))

    @field_validator("weight_bits", "activation_bits", "native_bits")
    @classmethod
    def _bits(cls, bits: tuple[int, ...], info: ValidationInfo) -> tuple[int, ...]:
        bits = _bit_widths(bits)
        # These lists are what a policy may propose, so a width no candidate can hold would
        # be listed, offered in advice ("add w8a4") and then refused by the space: say so
        # here, where the file is. What else the hardware runs belongs in native_bits.
        usable = {"weight_bits": WEIGHT_BITS, "activation_bits": ACTIVATION_BITS}
        allowed = usable.get(str(info.field_name))
        if allowed is not None and (unusable := [b for b in bits if b not in allowed]):
            what = str(info.field_name).replace("_", " ")
            raise ValueError(
                f"{unusable} are not {what} a candidate can use (those are {list(allowed)}); "
                "drop them (widths the hardware also runs may stay in executes.native_bits)"
            )
        return bits

    @model_validator(mode="after")
    def _natively_executable(self) -> Executes:
        widest = max(self.native_bits)
        for name in ("weight_bits", "activation_bits"):
            over = [b for b in getattr(self, name) if b > widest]
            if over:
                raise ValueError(
                    f"{name}: {over} are wider than every native width {list(self.native_bits)}, "
                    "so nothing could execute them; add a native width or drop them"
                )
        return self


class Memory(_Frozen):
    """On-device memory in KB; ``null`` means unlimited (a host's DRAM and disk)."""

    sram_kb: Annotated[float, Field(gt=0)] | None = Field(
        description="activations: the peak of live tensors must fit"
    )
    flash_kb: Annotated[float, Field(gt=0)] | None = Field(
        description="weights, stored packed at their bit-width"
    )


class Latency(_Frozen):
    """How latency is known, and the roofline numbers where it is modeled."""

    source: Literal["measured", "predicted", "roofline"]
    # widest_operand: a kernel runs both operands at one native width (CPUs, MCUs).
    # bit_serial: time per MAC grows with weight bits x activation bits (Stripes, Bit Fusion).
    scaling: Literal["widest_operand", "bit_serial"] = "widest_operand"
    macs_per_second: dict[int, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)
    bytes_per_second: Annotated[float, Field(gt=0)] | None = None
    overhead_ms: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _roofline_numbers(self) -> Latency:
        if self.source == "roofline" and not self.macs_per_second:
            raise ValueError("macs_per_second: a roofline device needs MAC/s per native bit-width")
        if self.source == "roofline" and self.bytes_per_second is None:
            raise ValueError("bytes_per_second: a roofline device needs its memory bandwidth")
        if self.scaling == "bit_serial" and self.macs_per_second and len(self.macs_per_second) != 1:
            raise ValueError(
                "macs_per_second: bit_serial scaling takes one reference width, e.g. {8: 2.56e+11}"
            )
        return self


class Device(_Frozen):
    """One target: what it executes, its memory, how its latency is known, and from where."""

    name: str
    description: str = Field(min_length=1)
    kind: Literal["host", "mcu", "mobile", "accelerator"]
    executes: Executes
    memory: Memory
    latency: Latency
    modeled: bool
    sources: tuple[Annotated[str, Field(min_length=1)], ...] = ()

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not _NAME.match(name):
            raise ValueError(
                "must be lower-case letters, digits, '.', '_' or '-' (it names results/devices/<name>/)"
            )
        return name

    @model_validator(mode="after")
    def _consistent(self) -> Device:
        latency, native = self.latency, self.executes.native_bits
        if latency.source == "measured" and self.kind != "host":
            raise ValueError(
                f"latency.source: measured means ONNX Runtime on this machine, so only kind host "
                f"may use it (kind is {self.kind!r}); use predicted or roofline"
            )
        extra = sorted(set(latency.macs_per_second) - set(native))
        if extra:
            raise ValueError(
                f"latency.macs_per_second: bit-widths {extra} are not among "
                f"executes.native_bits {list(native)}"
            )
        missing = sorted(set(native) - set(latency.macs_per_second))
        if latency.macs_per_second and latency.scaling == "widest_operand" and missing:
            raise ValueError(
                f"latency.macs_per_second: needs an entry for every native bit-width "
                f"{list(native)} (missing {missing})"
            )
        if latency.source == "roofline" and not self.modeled:
            raise ValueError("modeled: must be true for a roofline device (its latency is a model)")
        if latency.source == "measured" and self.modeled:
            raise ValueError("modeled: must be false when latency.source is measured")
        if self.modeled and not self.sources:
            raise ValueError(
                "sources: a modeled device must list the public sources of its numbers"
            )
        return self

    @property
    def weight_bits(self) -> tuple[int, ...]:
        """Weight bit-widths a policy may propose for this device."""
        return self.executes.weight_bits

    @property
    def activation_bits(self) -> tuple[int, ...]:
        """Activation bit-widths a policy may propose for this device."""
        return self.executes.activation_bits

    def executed_bits(self, bits: int) -> int:
        """The native width that runs ``bits``-bit operands: the narrowest one at least as wide."""
        for native in self.executes.native_bits:
            if native >= bits:
                return native
        raise DeviceError(
            f"device {self.name} cannot execute {bits}-bit operands; "
            f"its native bit-widths are {list(self.executes.native_bits)}"
        )

    def held_widths(self, stage: StagePolicy) -> StagePolicy:
        """``stage`` at the widths this device holds it at, which memory and flash are
        computed at. A kernel runs at the native width of its wider operand (``mac_rate``),
        so its activations are held at that width: a w32a8 stage runs fp32 kernels on fp32
        tensors, whatever its 8-bit activation grid. Beside integer kernels (narrower than
        32 bits) weights keep their own width, packed, as 4-bit weights beside int8 kernels;
        float kernels take float weights, so a stage whose kernels run at 32 bits stores
        them at 32 whatever its weight bits (a w8a32 or w16a16 stage's weights are fp32 in
        the file ONNX Runtime runs). So fewer weight bits never cost more flash. A
        bit-serial device runs each operand at its own width: nothing changes."""
        if self.latency.scaling == "bit_serial":
            return stage
        kernel = self.executed_bits(max(stage.weight_bits, stage.activation_bits))
        weights = stage.weight_bits if kernel < 32 else kernel
        return dataclasses.replace(stage, weight_bits=weights, activation_bits=kernel)

    def mac_rate(self, weight_bits: int, activation_bits: int) -> float:
        """Peak MAC/s for a layer with these operand widths, from the roofline numbers."""
        rates = self.latency.macs_per_second
        if not rates:
            raise DeviceError(
                f"device {self.name} has no roofline numbers (latency.source is "
                f"{self.latency.source}); add latency.macs_per_second to its file"
            )
        if self.latency.scaling == "bit_serial":
            ((reference, rate),) = rates.items()
            w, a = self.executed_bits(weight_bits), self.executed_bits(activation_bits)
            return rate * reference * reference / (w * a)
        return rates[self.executed_bits(max(weight_bits, activation_bits))]

    def predictor_dir(self, results: str | Path = "results") -> Path:
        """Where a ``predicted`` device keeps its fitted predictor and the measurements behind it."""
        return Path(results) / "devices" / self.name


# --- reading files ------------------------------------------------------------------------

_TYPE_MESSAGES = {
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "too_short": "must not be empty",
}


def _loc(parts: tuple[Any, ...]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out


def _known_fields(loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model that holds ``loc``, to suggest in place of an unknown key."""
    model: type[BaseModel] = Device
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (inspect.isclass(annotation) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _shown(value: Any) -> str:
    scalars = (str, int, float, bool, type(None))
    simple = isinstance(value, scalars) or (
        isinstance(value, list | tuple) and all(isinstance(v, scalars) for v in value)
    )
    text = repr(value)
    return f" (got {text})" if simple and len(text) <= 60 else ""


def _describe(error: Any) -> str:
    """One pydantic error as ``field.path: what is wrong (got value)``."""
    loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "missing":
        return f"missing field {_loc(loc)}"
    if kind == "extra_forbidden":
        known = _known_fields(loc)
        hint = f" (known: {', '.join(known)})" if known else ""
        return f"unknown field {_loc(loc)}{hint}"
    if kind == "value_error":
        message = str(error["ctx"]["error"])
        prefixed = _FIELD_PREFIX.match(message)
        if prefixed:
            loc, message = (*loc, prefixed.group(1)), prefixed.group(2)
    else:
        message = _TYPE_MESSAGES.get(kind) or re.sub(r"^Input should be", "must be", error["msg"])
    where = _loc(loc) or "device"
    return f"{where}: {message}{_shown(error.get('input'))}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def load_device_file(path: str | Path) -> Device:
    """Read and validate one device file; the file's stem must equal its ``name``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        where = "" if path.is_absolute() else f", relative to {Path.cwd()}"
        raise DeviceError(
            f"{path}: cannot read the device file ({err.strerror or err}{where}); give its "
            "path from the folder the command runs in, or an absolute one"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or err
        raise DeviceError(_one_line(f"{path}: not valid YAML{where}: {problem}")) from None
    if not isinstance(data, dict):
        raise DeviceError(
            f"{path}: a device file must be a YAML mapping with name, description, kind, "
            f"executes, memory, latency, modeled and sources (got {type(data).__name__})"
        )
    try:
        device = Device.model_validate(data)
    except ValidationError as err:
        # A misspelt key is both unknown and, under its right name, missing: the unknown
        # one names the typo, so it is said first.
        errors = sorted(err.errors(), key=lambda error: error["type"] != "extra_forbidden")
        rest = [e for e in errors[1:] if not _same_typo(e, errors)]
        more = f"; also {_describe(rest[0])}" if rest else ""
        more += f" (and {len(rest) - 1} more)" if len(rest) > 1 else ""
        raise DeviceError(_one_line(f"{path}: {_describe(errors[0])}{more}")) from None
    if device.name != path.stem:
        raise DeviceError(
            f"{path}: name: must match the file name {path.stem!r} (got {device.name!r})"
        )
    return device


def _same_typo(error: Any, errors: list[Any]) -> bool:
    """Whether ``error`` is a required key that an unknown key beside it misspells: the
    unknown one says it already."""
    if error["type"] != "missing":
        return False
    parent, name = error["loc"][:-1], str(error["loc"][-1])
    unknown = [
        str(e["loc"][-1])
        for e in errors
        if e["type"] == "extra_forbidden" and e["loc"][:-1] == parent
    ]
    return bool(
        difflib.get_close_matches(name.lower(), [u.lower() for u in unknown], n=1, cutoff=0.6)
    )


# --- the registry ---------------------------------------------------------------------------

_REGISTERED: dict[str, Device] = {}


def _device_files(folder: Path) -> list[Path]:
    return sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])


def _load_folder(folder: Path) -> dict[str, tuple[Device, str]]:
    found: dict[str, tuple[Device, str]] = {}
    for path in _device_files(folder):
        _add(found, load_device_file(path), str(path))
    return found


def _add(catalog: dict[str, tuple[Device, str]], device: Device, origin: str) -> None:
    if device.name in catalog:
        raise DeviceError(
            f"{origin}: device {device.name!r} is already defined by {catalog[device.name][1]}; "
            "rename one of them"
        )
    catalog[device.name] = (device, origin)


@functools.cache
def _builtin() -> dict[str, tuple[Device, str]]:
    return _load_folder(PROFILE_DIR)


def _env_folders() -> list[Path]:
    """Folders named by ``PARETONAS_DEVICES``, read on every lookup so a change takes effect."""
    raw = os.environ.get(ENV_VAR, "").split(os.pathsep)
    folders = [Path(p.strip()).expanduser() for p in raw if p.strip()]
    for folder in folders:
        if not folder.is_dir():
            raise DeviceError(f"{ENV_VAR} names {folder}, which is not a folder")
    return folders


def _declared_name(path: Path) -> str:
    """The name a device file that does not load gives its device, where it can be read
    (the name a config asks for), else its file's stem."""
    try:
        name = yaml.safe_load(path.read_text()).get("name")
    except Exception:  # not YAML, not a mapping: the stem is all there is
        return path.stem
    return name if isinstance(name, str) and name else path.stem


def _catalog() -> tuple[dict[str, tuple[Device, str]], dict[str, str]]:
    """The usable devices by name, with where each comes from; and the user files that
    cannot be used, by the name their file gives them, with the one-line reason.

    A broken user file is an error only where its device is asked for (``get_device``):
    one bad file among a user's boards must not stop a search on the host, nor
    ``paretonas devices``, which is where one looks to find it. A name two files define
    is broken too, since either would be a guess.
    """
    catalog = dict(_builtin())
    broken: dict[str, str] = {}
    for folder in _env_folders():
        for path in _device_files(folder):
            try:
                device = load_device_file(path)
                if device.name in _builtin():
                    # A copy of a built-in file not yet renamed. Refused where it is used
                    # rather than the built-in taken silently: its numbers may be edited.
                    broken[device.name] = (
                        f"{path}: {device.name!r} is a built-in device's name; give your copy "
                        "its own (its name: field and its file's name)"
                    )
                    continue
                _add(catalog, device, str(path))
            except DeviceError as error:
                broken.setdefault(_declared_name(path), str(error))
    # Registered devices were checked against the files when registered; they win.
    for name, device in _REGISTERED.items():
        catalog[name] = (device, "register_device")
        broken.pop(name, None)
    usable = {name: entry for name, entry in catalog.items() if name not in broken}
    return usable, broken


def register_device(device: Device, *, overwrite: bool = False) -> Device:
    """Make ``device`` known by name in this process (timm's ``register_model`` for targets)."""
    usable, broken = _catalog()
    if not overwrite and (device.name in usable or device.name in broken):
        raise DeviceError(
            f"device {device.name!r} is already known; pass overwrite=True to replace it"
        )
    _REGISTERED[device.name] = device
    return device


def list_devices() -> list[str]:
    """Names of the usable built-in, user-folder and registered devices, sorted (the broken
    user files are in ``describe_devices``)."""
    return sorted(_catalog()[0])


def describe_devices(results: str | Path = "results") -> str:
    """A table of every known device: what it executes, its memory, and how its latency is
    known here (measured; a fitted predictor under ``results``; or its roofline)."""
    from evaluators.predictor import predictor_dir, predictor_problem

    usable, broken = _catalog()
    rows = [("device", "kind", "bits w/a", "align", "SRAM KB", "flash KB", "latency", "from")]
    for name, (device, origin) in sorted(usable.items()):
        fitted = (predictor_dir(name, results) / "meta.json").is_file()
        # What a search with this results folder would use, in the words its reports use:
        # a fitted predictor replaces the roofline; the host's is only recorded beside.
        if device.latency.source == "measured":
            how = "measured (ONNX Runtime here)" + (", predictor beside" if fitted else "")
        elif fitted and (problem := predictor_problem(predictor_dir(name, results))):
            how = f"refused: its fitted predictor: {problem} (calibrate again)"
        elif fitted:
            how = "predicted (fitted predictor" + (
                ", not the roofline)" if device.latency.source == "roofline" else ")"
            )
        elif device.latency.source == "roofline":
            how = "predicted (roofline, a lower bound)"
        else:
            how = "predicted (not calibrated yet)"
        rows.append(
            (
                name,
                device.kind,
                f"{','.join(map(str, device.weight_bits))}/"
                f"{','.join(map(str, device.activation_bits))}",
                str(device.executes.channel_align),
                "-" if device.memory.sram_kb is None else f"{device.memory.sram_kb:g}",
                "-" if device.memory.flash_kb is None else f"{device.memory.flash_kb:g}",
                how,
                "built-in" if Path(origin).parent == PROFILE_DIR else origin,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    if broken:
        # Below the table, one whole line each: the reason is the file's path and its field.
        lines.append("not usable until fixed (an error only where the device is used):")
        lines += [f"  {name}: {reason}" for name, reason in sorted(broken.items())]
    return "\n".join(lines)


def get_device(name: str | Path) -> Device:
    """A device by name, or by the path of its YAML file (a Path, ``*.yaml`` or ``*.yml``)."""
    if isinstance(name, Path) or name.endswith((".yaml", ".yml")) or os.sep in name:
        return load_device_file(name)
    catalog, broken = _catalog()
    if name in broken:
        raise DeviceError(broken[name])
    if name not in catalog:
        raise DeviceError(
            f"unknown device {name!r}; known devices are {', '.join(sorted(catalog))} "
            f"(to add one, pass its YAML file's path or put the file in a folder named by {ENV_VAR})"
        )
    return catalog[name][0]


# --- restricting a search space -------------------------------------------------------------


def _intersect(space_bits: tuple[int, ...], device: Device, field: str) -> tuple[int, ...]:
    allowed: tuple[int, ...] = getattr(device, field)
    kept = tuple(b for b in space_bits if b in allowed)
    if not kept:
        what = field.replace("_", " ")
        raise DeviceError(
            f"device {device.name} executes {what} {list(allowed)}; the space allows only "
            f"{list(space_bits)}: add {' or '.join(map(str, allowed))} to space.{field}"
        )
    return kept


def _executable_kinds(kinds: tuple[str, ...], device: Device) -> tuple[str, ...]:
    ops = set(device.executes.ops)
    missing = [op for op in NETWORK_OPS if op not in ops]
    if missing:
        raise DeviceError(
            f"device {device.name} does not execute {missing}, which every network needs "
            "(conv stem, global average pool, linear classifier)"
        )
    # A kind registered by a user has ops this module cannot know: it is kept.
    kept = tuple(k for k in kinds if set(BLOCK_OPS.get(k, ())) <= ops)
    if not kept:
        needs = "; ".join(
            f"{k} needs {sorted(set(BLOCK_OPS[k]) - ops)}" for k in kinds if k in BLOCK_OPS
        )
        raise DeviceError(
            f"device {device.name} executes none of the space's block kinds {list(kinds)} "
            f"({needs}): add a kind it executes to space.kind"
        )
    return kept


_SAID_ALIGNED: set[tuple] = set()  # (device, widths) whose rounding this process logged


def _aligned(space: SearchSpace, device: Device) -> SearchSpace:
    """``space`` with its widths rounded up to the device's channel alignment, said once."""
    align = device.executes.channel_align
    try:
        aligned = space.aligned(align)
    except ValueError as error:  # a rounded width that gconv's groups no longer divide
        groups = space.groups.values if "gconv" in space.kind.values else ()
        raise DeviceError(
            f"device {device.name} runs channel counts in multiples of {align} "
            f"(executes.channel_align), so the space's widths round up, but then "
            f"{str(error).split(';')[0]}: "
            f"give space.width and space.stem_width multiples of {math.lcm(align, *groups)}"
        ) from None
    before = (*space.stem_width.values, *space.width.values)
    after = (*aligned.stem_width.values, *aligned.width.values)
    key = (device.name, space.stem_width.values, space.width.values)
    if before != after and key not in _SAID_ALIGNED:
        _SAID_ALIGNED.add(key)
        log.warning(
            "device %s runs channel counts in multiples of %d (executes.channel_align): "
            "stem widths %s and widths %s are searched as %s and %s",
            device.name,
            align,
            list(space.stem_width.values),
            list(space.width.values),
            list(aligned.stem_width.values),
            list(aligned.width.values),
        )
    return aligned


def restrict_space(space: SearchSpace, device: Device) -> SearchSpace:
    """The part of ``space`` that ``device`` executes: bit-widths, block kinds, and widths
    rounded up to its channel alignment (``SearchSpace.aligned``).

    Restricting the space, rather than rejecting candidates after sampling, keeps the
    sampler from spending trials on points that are infeasible by construction (a 4-bit
    stage on an int8-only MCU) or dominated (6 channels where the kernels run blocks of 4)
    and from learning nothing from them. A device with ``channel_align`` 1 (the host)
    keeps the space's widths as they are, so its runs' genomes do not change.
    """
    if space.precision is not None:
        bits = {"precision": Choice(_executable_pairs(space.precision.values, device))}
    else:
        bits = {
            "weight_bits": Choice(_intersect(space.weight_bits.values, device, "weight_bits")),
            "activation_bits": Choice(
                _intersect(space.activation_bits.values, device, "activation_bits")
            ),
        }
    restricted = dataclasses.replace(
        space, **bits, kind=Choice(_executable_kinds(space.kind.values, device))
    )
    return _aligned(restricted, device)


def _executable_pairs(precisions: tuple[str, ...], device: Device) -> tuple[str, ...]:
    executes = device.executes
    kept = tuple(
        p
        for p in precisions
        if parse_precision(p)[0] in executes.weight_bits
        and parse_precision(p)[1] in executes.activation_bits
    )
    if not kept:
        raise DeviceError(
            f"device {device.name} executes weight bits {list(executes.weight_bits)} and "
            f"activation bits {list(executes.activation_bits)}; none of space.precisions "
            f"{list(precisions)} is among them: add one such as "
            f"{precision_name(max(executes.weight_bits), max(executes.activation_bits))}"
        )
    return kept


def alike_pairs(pairs: Iterable[tuple[int, int]], device: Device) -> dict[str, tuple[str, ...]]:
    """The (weight, activation) ``pairs`` that ``device`` holds at the same widths
    (``Device.held_widths``), by those widths, where two or more are: the pairs of a group
    cost the same, and those narrower than the held widths only round more."""
    groups: dict[str, list[str]] = {}
    for w, a in pairs:
        held = device.held_widths(StagePolicy(weight_bits=w, activation_bits=a))
        key = precision_name(held.weight_bits, held.activation_bits)
        groups.setdefault(key, []).append(precision_name(w, a))
    return {held: tuple(found) for held, found in groups.items() if len(found) > 1}


def alike_note(space: SearchSpace, device: Device) -> str | None:
    """What to tell a user whose space (as ``restrict_space`` left it) draws precision pairs
    that ``device`` runs alike, and which pairs to draw instead; None when it draws none."""
    if space.precision is not None:
        pairs = [parse_precision(p) for p in space.precision.values]
    else:
        pairs = [(w, a) for w in space.weight_bits.values for a in space.activation_bits.values]
    alike = alike_pairs(pairs, device)
    if not alike:
        return None
    said, dropped = [], set()
    for held, found in alike.items():
        # Keep the pair that rounds least: the widths the device holds them at, else the one
        # whose narrower operand is widest (w16a16 rounds less than w8a32).
        kept = held if held in found else max(found, key=lambda p: sorted(parse_precision(p)))
        others = [p for p in found if p != kept]
        dropped.update(others)
        listed = ", ".join(others[:-1]) + " and " + others[-1] if len(others) > 1 else others[0]
        said.append(f"{listed} like {kept}")
    keep = ", ".join(p for p in (precision_name(*pair) for pair in pairs) if p not in dropped)
    if space.precision is not None:
        drawn = f"space.precisions spends trials on {', '.join(sorted(dropped))}, which"
    else:
        drawn = (
            f"drawn apart, space.weight_bits {list(space.weight_bits.values)} and "
            f"activation_bits {list(space.activation_bits.values)} spend trials on pairs that"
        )
    return (
        f"device {device.name} runs {'; '.join(said)}, at the same cost: {drawn} only round "
        f"more; draw space.precisions: [{keep}] instead"
    )
