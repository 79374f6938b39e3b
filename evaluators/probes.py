"""Probe models for a kernel-level latency predictor, and the kit that measures them anywhere.

Two kinds of probes are timed (nn-Meter's recipe, adapted to ONNX Runtime):

- layer probes: one kernel alone (a conv, depthwise or grouped conv, linear, pool, gather,
  add, quantize or dequantize) with given shapes, fp32 or int8 (QDQ, which ORT fuses into
  QLinearConv / QGemm / QLinearAdd ...; int8 probes take and return uint8 tensors, so
  that no float conversion is timed with them). Their time minus an empty graph's
  (``empty`` probe: one Identity) is the kernel's latency.
- model probes: whole candidates of the search space with random compression policies,
  exported exactly as the search exports them (``evaluators.quantize.export_deployable``),
  so that the predictor learns what the layer probes cannot see (per-run overhead, layout
  changes between kernels, fusions) from the real thing.

Layer shapes are drawn half from the layers of random candidates (the shapes the search
will ask about) and half from a grid (channels 8-256, kernels 1/3/5/7, strides 1/2,
resolutions 4-32, groups 2/4/8) so the predictor also covers other spaces and inputs.
Probes are ordered round-robin over kernel families, so a time budget that stops early
still leaves every family measured.

Layer probes are built from the feature row alone (``evaluators.probe_graphs``).
"""

from __future__ import annotations

import csv
import itertools
import json
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from evaluators.layer_features import FULL_PRECISION, OPS, LayerFeatures, layer_features
from evaluators.probe_graphs import OPSET, build_empty_probe, build_layer_probe
from spaces.candidate import Candidate, CompressionPolicy, StagePolicy
from spaces.params import Choice
from spaces.space import SearchSpace

ROLES = ("empty", "layer", "model")
PROBE_COLUMNS = ("probe", "role", "genome", *LayerFeatures.__dataclass_fields__)
RUNNER = Path(__file__).with_name("probe_runner.py")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Probe:
    """One ONNX file to time: its kernels (one for a layer probe) and how to write it."""

    name: str
    role: str
    rows: tuple[LayerFeatures, ...]
    build: Callable[[Path], object] = field(compare=False, repr=False)
    genome: str = ""

    def csv_rows(self) -> list[dict[str, object]]:
        if not self.rows:  # the empty probe: listed, so the runner times it, but no kernel
            return [{"probe": self.name, "role": self.role, "genome": self.genome}]
        return [
            {"probe": self.name, "role": self.role, "genome": self.genome, **row.to_row()}
            for row in self.rows
        ]


# --------------------------------------------------------------------------- sampling


class RandomTrial:
    """A seeded stand-in for an Optuna trial, so ``SearchSpace.suggest`` samples uniformly."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1) -> int:
        return self.rng.randrange(low, high + 1, step)

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float:
        if log:
            return math.exp(self.rng.uniform(math.log(low), math.log(high)))
        return self.rng.uniform(low, high)

    def suggest_categorical(self, name: str, choices: Sequence) -> object:
        return self.rng.choice(list(choices))


PRUNE_RATIOS: tuple[float, ...] = (0.0, 0.25, 0.5)


def sample_candidates(
    count: int,
    seed: int = 0,
    space: SearchSpace | None = None,
    prune_ratios: Sequence[float] = PRUNE_RATIOS,
    precisions: tuple[str, ...] = ("fp32", "int8"),
) -> list[Candidate]:
    """``count`` distinct candidates of ``space`` with policies the host executes.

    Architectures come from ``space`` (default: ``SearchSpace()``, the project's default);
    each candidate's policy is, in turn, all fp32, all int8 (w8a8) or a per-stage mix, with
    a random prune ratio per stage from ``prune_ratios``: the policies ONNX Runtime runs.
    """
    out = []
    for candidate in iter_candidates(seed, space, prune_ratios, precisions):
        if len(out) == count:
            break
        out.append(candidate)
    return out


def iter_candidates(
    seed: int = 0,
    space: SearchSpace | None = None,
    prune_ratios: Sequence[float] = PRUNE_RATIOS,
    precisions: tuple[str, ...] = ("fp32", "int8"),
) -> Iterator[Candidate]:
    """The stream ``sample_candidates`` takes its first ``count`` from (ends only when
    the space runs out of new genomes); policies only of ``precisions``."""
    space = space or SearchSpace()
    space = replace(space, prune_ratio=Choice(tuple(prune_ratios)))
    rng = random.Random(seed)
    seen: set[str] = set()
    misses = 0
    while misses < 1000:
        candidate = space.suggest(RandomTrial(rng))
        modes = [m for m in ("fp32", "int8", "mixed") if m in precisions or len(precisions) > 1]
        mode = modes[len(seen) % len(modes)]
        stages = []
        for policy in candidate.policy.stages:
            int8 = mode == "int8" or (mode == "mixed" and rng.random() < 0.5)
            bits = 8 if int8 else FULL_PRECISION
            stages.append(StagePolicy(policy.prune_ratio, bits, bits))
        candidate = Candidate(candidate.arch, CompressionPolicy(tuple(stages)))
        if candidate.genome in seen:
            misses += 1
            continue
        misses = 0
        seen.add(candidate.genome)
        yield candidate


def _grid_row(op: str, precision: str, rng: random.Random) -> LayerFeatures:
    channels = [8, 12, 16, 20, 24, 32, 40, 48, 64, 72, 96, 128, 144, 192, 256]
    resolution = rng.choice([4, 5, 7, 8, 10, 14, 16, 20, 24, 28, 32])
    cin = rng.choice(channels)
    cout = rng.choice(channels)
    kernel, stride, groups = 1, 1, 1
    if op == "conv":
        kernel = rng.choice([1, 1, 3, 3, 5, 7])
        stride = rng.choice([1, 1, 2])
        cin = rng.choice([1, 3, *channels]) if rng.random() < 0.15 else cin
    elif op == "dwconv":
        kernel, stride = rng.choice([3, 3, 5, 7]), rng.choice([1, 1, 2])
        cout = groups = cin
    elif op == "gconv":
        groups = rng.choice([2, 4, 8])
        cin = groups * max(1, cin // groups)
        cout = groups * max(1, cout // groups)
    elif op == "linear":
        resolution, cout = 1, rng.choice([10, 10, 100, cout])
    elif op in ("pool", "shuffle", "add", "quantize", "dequantize"):
        cout = cin
        groups = rng.choice([2, 4, 8]) if op == "shuffle" else 1
        if op == "shuffle":
            cin = cout = groups * max(groups, cin // groups)
    return _make_row(op, precision, cin, cout, kernel, stride, groups, resolution)


def _make_row(
    op: str,
    precision: str,
    cin: int,
    cout: int,
    kernel: int,
    stride: int,
    groups: int,
    resolution: int,
) -> LayerFeatures:
    bits = 8 if precision == "int8" else FULL_PRECISION
    h = resolution
    if op in ("conv", "dwconv", "gconv"):
        out_h = (h + 2 * (kernel // 2) - kernel) // stride + 1
    elif op == "pool":
        out_h = 1
        kernel = stride = h
    else:
        out_h = h
    macs = 0
    weight_bytes = 0.0
    if op in ("conv", "dwconv", "gconv"):
        macs = out_h * out_h * cout * (cin // groups) * kernel * kernel
        weight_bytes = cout * (cin // groups) * kernel * kernel * bits / 8 + cout * 4
    elif op == "linear":
        macs = cin * cout
        weight_bytes = cin * cout * bits / 8 + cout * 4
    act_in = act_out = bits / 8
    wbits, abits = bits, bits
    if op == "quantize":
        act_in, act_out, wbits, abits = 4.0, 1.0, FULL_PRECISION, 8
    elif op == "dequantize":
        act_in, act_out, wbits, abits = 1.0, 4.0, FULL_PRECISION, 8
    inputs = 2 if op == "add" else 1
    return LayerFeatures(
        op=op,
        in_channels=cin,
        out_channels=cout,
        kernel=kernel,
        stride=stride,
        groups=groups,
        in_h=h,
        in_w=h,
        out_h=out_h,
        out_w=out_h,
        macs=macs,
        input_bytes=inputs * cin * h * h * act_in,
        output_bytes=cout * out_h * out_h * act_out,
        weight_bytes=weight_bytes,
        weight_bits=wbits,
        activation_bits=abits,
        name="grid",
    )


def _key(row: LayerFeatures) -> tuple:
    return (
        row.group,
        row.in_channels,
        row.out_channels,
        row.kernel,
        row.stride,
        row.groups,
        row.in_h,
        row.in_w,
    )


FAMILY_WEIGHTS: dict[str, int] = {"conv": 3, "dwconv": 3, "gconv": 2, "linear": 1}


def layer_rows(
    count: int,
    input_shape: tuple[int, int, int] = (1, 28, 28),
    num_classes: int = 10,
    seed: int = 0,
    space: SearchSpace | None = None,
    precisions: tuple[str, ...] = ("fp32", "int8"),
) -> list[LayerFeatures]:
    """Up to ``count`` distinct kernel shapes, round-robin over kernel families (of the
    ``precisions`` the device runs: an int8-only microcontroller has no fp32 kernel).

    Half come from the kernels of random candidates of ``space`` (the shapes a search
    asks about), half from the grid; families are weighted by ``FAMILY_WEIGHTS`` (convs
    dominate a network's latency, so they get more probes).
    """
    rng = random.Random(seed)
    families = [f"{op}/{p}" for op in OPS for p in ("fp32", "int8")]
    families = [f for f in families if not f.startswith(("quantize/fp32", "dequantize/fp32"))]
    families = [f for f in families if f.split("/")[1] in precisions]
    pools: dict[str, list[LayerFeatures]] = {f: [] for f in families}
    seen: set[tuple] = set()
    sampled = sample_candidates(
        min(100, max(10, count // 8)), seed + 1, space, precisions=precisions
    )
    for candidate in sampled:
        for row in layer_features(candidate, input_shape, num_classes, runtime_bits=True):
            if _key(row) not in seen and row.group in pools:
                seen.add(_key(row))
                pools[row.group].append(replace(row, name="candidate"))
    for pool in pools.values():
        rng.shuffle(pool)
    mixed: dict[str, Iterator[LayerFeatures]] = {}
    for family in families:
        op, precision = family.split("/")
        mixed[family] = _alternate(iter(pools[family]), _grid_rows(op, precision, rng, 10 * count))
    out: list[LayerFeatures] = []
    grew = True
    while len(out) < count and grew:
        grew = False
        for family in families:
            for _ in range(FAMILY_WEIGHTS.get(family.split("/")[0], 1)):
                row = next(mixed[family], None)
                while row is not None and _key(row) in seen and row.name == "grid":
                    row = next(mixed[family], None)
                if row is not None:
                    seen.add(_key(row))
                    out.append(row)
                    grew = True
    return out[:count]


def _grid_rows(op: str, precision: str, rng: random.Random, count: int) -> Iterator[LayerFeatures]:
    for _ in range(count):
        yield _grid_row(op, precision, rng)


def _alternate(first: Iterator, second: Iterator) -> Iterator:
    """first, second, first, second, ...; the rest of either once the other runs dry."""
    sentinel = object()
    while True:
        a = next(first, sentinel)
        if a is not sentinel:
            yield a
        b = next(second, sentinel)
        if b is not sentinel:
            yield b
        if a is sentinel and b is sentinel:
            return


# --------------------------------------------------------------------------- probe sets


def layer_probes(
    count: int,
    input_shape: tuple[int, int, int] = (1, 28, 28),
    num_classes: int = 10,
    seed: int = 0,
    space: SearchSpace | None = None,
    unsigned_weights: bool | None = None,
    precisions: tuple[str, ...] = ("fp32", "int8"),
) -> list[Probe]:
    """The empty probe, then ``count`` one-kernel probes in the order to measure them."""
    if unsigned_weights is None:
        from evaluators.quantize import weights_unsigned

        unsigned_weights = weights_unsigned()
    unsigned = unsigned_weights
    probes = [Probe("empty.onnx", "empty", (), build_empty_probe)]
    rows = layer_rows(count, input_shape, num_classes, seed, space, precisions)
    for index, row in enumerate(rows):
        probes.append(
            Probe(
                f"layer_{index:05d}_{row.op}_{row.precision}.onnx",
                "layer",
                (row,),
                lambda path, row=row: build_layer_probe(row, path, unsigned),
            )
        )
    return probes


def model_probes(
    input_shape: tuple[int, int, int] = (1, 28, 28),
    num_classes: int = 10,
    seed: int = 0,
    space: SearchSpace | None = None,
    align: int = 4,
    precisions: tuple[str, ...] = ("fp32", "int8"),
) -> Iterator[Probe]:
    """Whole-candidate probes, generated lazily (featurising one takes ~50 ms), cycling
    all-fp32, all-int8 and mixed policies of ``precisions`` (``iter_candidates``)."""
    candidates = iter_candidates(seed + 2, space, precisions=precisions)
    for index, candidate in enumerate(candidates):
        rows = layer_features(candidate, input_shape, num_classes, align=align, runtime_bits=True)
        yield Probe(
            f"model_{index:05d}.onnx",
            "model",
            tuple(rows),
            lambda path, c=candidate: export_candidate(c, input_shape, num_classes, path, align),
            candidate.genome,
        )


def export_candidate(
    candidate: Candidate,
    input_shape: tuple[int, int, int],
    num_classes: int,
    path: str | Path,
    align: int = 4,
    seed: int = 0,
) -> Path:
    """Export ``candidate`` (untrained, pruned by its policy) as the search exports it."""
    import torch

    from evaluators.factorize import build_deployed
    from evaluators.quantize import export_deployable
    from spaces.channels import plan_channels

    torch.manual_seed(seed)
    plan = plan_channels(candidate, align)
    model = build_deployed(candidate, input_shape[0], num_classes, plan=plan).eval()
    images = torch.randn(8, *input_shape, generator=torch.Generator().manual_seed(seed))
    return export_deployable(model, candidate, input_shape, path, images).path


def write_probe_csv(path: str | Path, probes: Iterable[Probe]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=PROBE_COLUMNS)
        writer.writeheader()
        for probe in probes:
            writer.writerows(probe.csv_rows())
    return path


def read_probe_csv(path: str | Path) -> dict[str, tuple[str, str, list[LayerFeatures]]]:
    """probe name -> (role, genome, rows), from a ``probes.csv``."""
    out: dict[str, tuple[str, str, list[LayerFeatures]]] = {}
    with Path(path).open(newline="") as handle:
        for row in csv.DictReader(handle):
            name = row["probe"]
            if name not in out:
                out[name] = (row["role"], row.get("genome") or "", [])
            if row["role"] != "empty":
                out[name][2].append(LayerFeatures.from_row(row))
    return out


# The fewest measured layer probes of a kernel family that a predictor is fitted on: each
# family's law has four coefficients (MACs, bytes moved, weight bytes, a fixed cost), and a
# handful of shapes fits them to whatever those few happened to be. A kit holding fewer
# of a family needs all of them.
MIN_LAYERS_PER_FAMILY = 10


@dataclass(frozen=True)
class Coverage:
    """Which of a kit's layer probes were measured, by kernel family (e.g. ``conv/int8``)."""

    layers: tuple[tuple[str, str], ...]  # (probe, family) of every layer probe, in kit order
    measured: frozenset[str]
    # The families the networks of the device's space run: those of the model probes and
    # of the layer probes taken from candidates; a family only the grid adds is extra.
    used: tuple[str, ...]

    @classmethod
    def of(
        cls, probes: dict[str, tuple[str, str, list[LayerFeatures]]], measured: Iterable[str]
    ) -> Coverage:
        layers = tuple(
            (name, rows[0].group) for name, (role, _, rows) in probes.items() if role == "layer"
        )
        used = {
            row.group
            for role, _, rows in probes.values()
            for row in rows
            if role == "model" or (role == "layer" and row.name == "candidate")
        }
        every = dict.fromkeys(family for _, family in layers)
        return cls(
            layers, frozenset(measured), tuple(f for f in every if f in used) or tuple(every)
        )

    def needed(self, family: str) -> int:
        return min(MIN_LAYERS_PER_FAMILY, sum(f == family for _, f in self.layers))

    def count(self, family: str) -> int:
        return sum(f == family and n in self.measured for n, f in self.layers)

    @property
    def measured_layers(self) -> int:
        return sum(name in self.measured for name, _ in self.layers)

    def short(self) -> list[tuple[str, int, int]]:
        """(family, measured, needed) of every used family with too few measured probes."""
        counts = [(f, self.count(f), self.needed(f)) for f in self.used]
        return [(f, got, need) for f, got, need in counts if got < need]

    def prefix(self) -> int:
        """How many of the kit's first layer probes hold enough of every used family (the
        kit lists them round-robin over families, so a prefix covers all of them)."""
        left = {f: self.needed(f) for f in self.used}
        for index, (_, family) in enumerate(self.layers):
            if family in left:
                left[family] -= 1
            if all(n <= 0 for n in left.values()):
                return index + 1
        return len(self.layers)


def write_probe_kit(
    out_dir: str | Path,
    *,
    layer_count: int = 600,
    model_count: int = 120,
    input_shape: tuple[int, int, int] = (1, 28, 28),
    num_classes: int = 10,
    seed: int = 0,
    space: SearchSpace | None = None,
    unsigned_weights: bool | None = None,
    align: int = 4,
    progress: bool = True,
    precisions: tuple[str, ...] = ("fp32", "int8"),
    device: str | None = None,
) -> Path:
    """Write a kit to measure a device we cannot reach: probes, features, a runner.

    ``out_dir`` gets ``probes/*.onnx``, ``probes.csv`` (every probe's kernel rows),
    ``run_probes.py`` (needs only onnxruntime and numpy; writes ``measurements.csv``),
    ``kit.json`` and ``README.txt``. Copy the folder to the device, run
    ``python run_probes.py --threads N`` there, bring ``measurements.csv`` back and call
    ``fit_from_measurements(out_dir, measurements.csv)``. ``unsigned_weights`` (None: as
    on this host) should follow the device: uint8 weights for x86 without VNNI.
    """
    from evaluators.predictor import MAX_HELD_OUT_ERROR  # imports this module: not at the top
    from evaluators.progress import progress_bar

    if unsigned_weights is None:
        from evaluators.quantize import weights_unsigned

        unsigned_weights = weights_unsigned()
    out = Path(out_dir)
    (out / "probes").mkdir(parents=True, exist_ok=True)
    _set_aside_measurements(out)
    layers = layer_probes(
        layer_count, input_shape, num_classes, seed, space, unsigned_weights, precisions
    )
    models = list(
        itertools.islice(
            model_probes(input_shape, num_classes, seed, space, align, precisions), model_count
        )
    )
    probes = layers + models
    for probe in progress_bar(probes, desc="probe kit", enabled=progress, leave=True):
        probe.build(out / "probes" / probe.name)
    write_probe_csv(out / "probes.csv", probes)
    shutil.copyfile(RUNNER, out / "run_probes.py")
    # The fewest a calibration accepts: the first ``needed`` layer probes in kit order.
    coverage = Coverage.of(read_probe_csv(out / "probes.csv"), ())
    needed = coverage.prefix()
    info = {
        "device": device,
        "input_shape": list(input_shape),
        "num_classes": num_classes,
        "layer_probes": len(layers) - 1,
        "model_probes": len(models),
        "seed": seed,
        "opset": OPSET,
        "unsigned_weights": unsigned_weights,
        "precisions": list(precisions),
        "min_layer_probes": needed,
    }
    (out / "kit.json").write_text(json.dumps(info, indent=2) + "\n")
    last = coverage.layers[needed - 1][0] if needed else "none"
    (out / "README.txt").write_text(
        _KIT_README.format(
            device=device or "DEVICE",
            made_for=f"Made for device {device}, at input {'x'.join(map(str, input_shape))}.\n"
            if device
            else "",
            needed=needed,
            last=last,
            per_family=MIN_LAYERS_PER_FAMILY,
            max_error=MAX_HELD_OUT_ERROR,
        )
    )
    return out


def _set_aside_measurements(out: Path) -> None:
    """Rename a measurements.csv (and its .json) already in ``out`` to
    measurements.old-<time>.csv: it timed an older kit's probes, whose names the new kit
    reuses for other shapes, so a calibrate given the folder would fit on stale times.
    Renamed rather than deleted: they may be the only copy of hours on a board."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name in ("measurements", "measurements.partial"):  # the latter: an interrupted run
        old = out / f"{name}.csv"
        if not old.is_file():
            continue
        moved = out / f"{name}.old-{stamp}.csv"
        serial = 1
        while moved.exists():  # two kits written within one second
            moved, serial = out / f"{name}.old-{stamp}-{serial}.csv", serial + 1
        os.replace(old, moved)
        side = old.with_suffix(".json")
        if side.is_file():
            os.replace(side, moved.with_suffix(".json"))
        log.warning(
            "%s held measurements of an older kit: renamed to %s, so that calibrate does "
            "not fit the new probes on them",
            old,
            moved.name,
        )


_KIT_README = """\
Latency probes for paretonas's kernel-level latency predictor.
{made_for}
On a device that runs Python (Python 3 with: pip install onnxruntime numpy):

    python run_probes.py --threads 1 --warmup 10 --runs 50

It times every probes/*.onnx listed in probes.csv with ONNX Runtime (CPU execution
provider, all graph optimizations, sequential) and writes measurements.csv
(probe, median_ms, p90_ms, runs). Use the thread count the device will run with.
Ctrl-C saves what was timed to measurements.partial.csv; the same command with
--resume goes on from it, timing each probe only in the passes it has not had.

On a device without Python (a microcontroller): convert each probe with the toolchain
the model will ship with (e.g. to TensorFlow Lite Micro or CMSIS-NN), time it on the
board, and write measurements.csv yourself with at least the columns probe (the file
name, as in probes.csv; with another extension, e.g. .tflite, or none, is fine) and
median_ms (milliseconds). Probes left out are left out of the fit: the layer_*.onnx
probes are the ones the predictor needs, empty.onnx gives the fixed cost of a run, and
model_*.onnx calibrate the sum of a network's layers and measure how far off the
predictor is on whole networks.

Calibration refuses fewer than {per_family} measured layer probes of each kernel
family the device's networks run. The layer probes come round-robin over the
families, so the first {needed} of probes.csv cover them all, through
{last}: time at least those, and the more the better.
It also refuses a predictor that mispredicts the probes it was not fitted on by more
than {max_error:.0%} (median over networks; over layer probes weighted by their time):
what mislabelled or mixed-up measurements look like.
It refuses times implausible next to the device's roofline too: median_ms must be in
milliseconds and timed on the device itself, not on the machine that wrote this kit.

Bring measurements.csv back and fit the predictor with

    paretonas calibrate --device {device} --measurements measurements.csv --results RESULTS

where RESULTS is the results_dir of the runs that will use it (default: results).
"""
