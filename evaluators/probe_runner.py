"""Time ONNX probe models with ONNX Runtime: needs only numpy and onnxruntime.

This file is copied verbatim into every probe kit as ``run_probes.py`` (see
``evaluators.probes.write_probe_kit``), so that a device we cannot reach from here
measures the probes with nothing installed but ``pip install onnxruntime numpy``, and
the host calibration measures its probes with the very same code. Hence: standard
library, numpy and onnxruntime imports only, and nothing from this project.

Interference from other processes only ever slows a run down, so every probe is timed in
``--passes`` separate passes over the whole set (default 3, minutes apart on a large kit)
and the pass with the lowest median is kept: a burst of load during one pass does not
end up in the fit. (On this project's shared 2-core VM, a third to a half of 50-run
blocks ran 10-100 % slower than the best, in bursts of seconds, with nothing else running
inside the VM: one pass is not enough there.)

Session settings are those of ``evaluators.hardware.onnx_session`` (sequential execution,
one inter-op thread, all graph optimizations, CPU execution provider), so a probe is
timed the way a candidate is. Each probe's inputs are random tensors of the dtype and
shape its graph declares (int8 probes take uint8 tensors).

    python run_probes.py [--dir KIT] [--threads 1] [--warmup 10] [--runs 50] [--passes 3]
        [--resume]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

COLUMNS = ("probe", "median_ms", "p90_ms", "runs")
_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int64)": np.int64,
}


def session(path: str | Path, threads: int = 1) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def random_feed(sess: ort.InferenceSession, seed: int = 0) -> dict[str, np.ndarray]:
    """One random tensor per graph input, at its declared dtype; symbolic dims are 1."""
    rng = np.random.default_rng(seed)
    feed = {}
    for spec in sess.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in spec.shape]
        dtype = _DTYPES.get(spec.type)
        if dtype is None:
            raise ValueError(f"input {spec.name!r} has unsupported type {spec.type}")
        if dtype is np.float32:
            feed[spec.name] = rng.standard_normal(shape).astype(np.float32)
        else:
            info = np.iinfo(dtype)
            feed[spec.name] = rng.integers(info.min, min(info.max, 255), shape, dtype=dtype)
    return feed


def measure(
    path: str | Path, threads: int = 1, warmup: int = 10, runs: int = 50
) -> tuple[float, float]:
    """(median ms, p90 ms) of ``runs`` timed runs after ``warmup`` untimed ones."""
    sess = session(path, threads)
    feed = random_feed(sess)
    for _ in range(warmup):
        sess.run(None, feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, math.ceil(0.9 * runs) - 1)]


def probe_files(kit: Path) -> list[str]:
    """Probe file names in the order of ``probes.csv`` (else every ``probes/*.onnx``)."""
    listing = kit / "probes.csv"
    if listing.exists():
        with listing.open(newline="") as handle:
            names = [row["probe"] for row in csv.DictReader(handle)]
        return list(dict.fromkeys(names))
    return sorted(p.name for p in (kit / "probes").glob("*.onnx"))


def measure_passes(
    paths: list[Path],
    threads: int = 1,
    warmup: int = 10,
    runs: int = 50,
    passes: int = 3,
    report=None,
    best: dict[str, tuple[float, float]] | None = None,
    timed: dict[str, int] | None = None,
) -> dict[str, tuple[float, float]]:
    """probe file name -> (median ms, p90 ms) of its fastest pass over ``paths``.

    ``report(done, total)`` is called after every probe (progress). ``best`` and ``timed``
    (probe -> passes timed), where given, are filled in place as probes are timed, so that
    a caller interrupted midway (Ctrl-C) still holds what was timed; given filled, from an
    interrupted run, a probe is timed only in the passes it has not had yet.
    """
    best = {} if best is None else best
    timed = {} if timed is None else timed
    todo = [(n, path) for n in range(passes) for path in paths if timed.get(path.name, 0) <= n]
    for done, (_, path) in enumerate(todo, start=1):
        median, p90 = measure(path, threads, warmup, runs)
        if path.name not in best or median < best[path.name][0]:
            best[path.name] = (median, p90)
        timed[path.name] = timed.get(path.name, 0) + 1
        if report is not None:
            report(done, len(todo))
    return best


def write_measurements(out: Path, measured: dict[str, tuple[float, float]], runs: int) -> Path:
    """``measurements.csv``: probe, median_ms, p90_ms, runs (written atomically)."""
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for name, (median, p90) in measured.items():
            writer.writerow((name, f"{median:.6f}", f"{p90:.6f}", runs))
    os.replace(tmp, out)
    return out


def read_measurements(path: Path) -> dict[str, tuple[float, float]]:
    """probe -> (median ms, p90 ms) of a file written by ``write_measurements``."""
    with path.open(newline="") as handle:
        return {
            row["probe"]: (float(row["median_ms"]), float(row["p90_ms"]))
            for row in csv.DictReader(handle)
        }


# What must match for an interrupted run's times to be finished by another: the same kit
# (a new kit reuses probe names for other graphs), runtime, machine and timing settings
# (the pass count may change).
_RESUME_KEYS = ("kit", "onnxruntime", "threads", "warmup", "runs", "machine", "cpus")


def cpu_name() -> str:
    """This machine's CPU model as the OS names it ("AMD EPYC 9R14"), else its architecture:
    what tells one machine from another (two x86_64 hosts must not look alike). Here, not
    in ``evaluators.hardware``, because the kit's copy of this file imports nothing of the
    project; hardware describes the host with it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _kit_digest(kit: Path) -> str | None:
    listing = kit / "probes.csv"
    return hashlib.sha256(listing.read_bytes()).hexdigest()[:16] if listing.is_file() else None


def resume_from(
    partial: Path, info: dict, paths: list[Path]
) -> tuple[dict[str, tuple[float, float]], dict[str, int]]:
    """The times and per-probe pass counts of an interrupted run, to go on from; ValueError,
    in one sentence, when they cannot be finished by this run."""
    side = partial.with_suffix(".json")
    if not partial.is_file() or not side.is_file():
        raise ValueError(
            f"--resume: no interrupted run to go on from ({partial} and its .json are "
            "written when a run is stopped with Ctrl-C); run without --resume"
        )
    saved = json.loads(side.read_text())
    differ = [k for k in _RESUME_KEYS if saved.get(k) != info[k]]
    if differ:
        what = ", ".join(f"{k} {saved.get(k)!r} then, {info[k]!r} now" for k in differ)
        raise ValueError(
            f"--resume: {partial} was timed with other settings ({what}); times from both "
            "would not be comparable: run again with the same options, or without --resume"
        )
    best = read_measurements(partial)
    names = {p.name for p in paths}
    # A run saved before pass counts were recorded: its probes count as timed once.
    timed = {n: int(c) for n, c in saved.get("timed_passes", dict.fromkeys(best, 1)).items()}
    unknown = sorted(set(best) - names)
    if unknown:
        raise ValueError(
            f"--resume: {partial} times {len(unknown)} probe(s) this kit does not have "
            f"(first {unknown[0]}): it belongs to another kit; run without --resume"
        )
    return best, timed


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time every probe of a kit with ONNX Runtime and write measurements.csv "
        "(probe, median_ms, p90_ms, runs), for `paretonas calibrate`."
    )
    parser.add_argument(
        "--dir",
        default=os.path.dirname(os.path.abspath(__file__)),
        help="the probe kit folder, with probes.csv and probes/ (default: this file's folder)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="ONNX Runtime intra-op threads: the count the device will run models with (default 1)",
    )
    parser.add_argument(
        "--warmup", type=int, default=10, help="untimed runs before timing each probe (default 10)"
    )
    parser.add_argument(
        "--runs", type=int, default=50, help="timed runs per probe, their median kept (default 50)"
    )
    parser.add_argument(
        "--passes",
        type=int,
        default=3,
        help="passes over the whole kit; each probe keeps its fastest pass, so a burst of "
        "other load in one pass is not measured (default 3)",
    )
    parser.add_argument(
        "--out", default=None, help="the CSV to write (default: KIT/measurements.csv)"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="go on from the times an interrupted run saved (OUT's .partial.csv): each probe "
        "is timed only in the passes it has not had",
    )
    args = parser.parse_args(argv)
    kit = Path(args.dir)
    out = Path(args.out) if args.out else kit / "measurements.csv"
    paths = [kit / "probes" / name for name in probe_files(kit)]
    info = {
        "onnxruntime": ort.__version__,
        "threads": args.threads,
        "warmup": args.warmup,
        "runs": args.runs,
        "passes": args.passes,
        "machine": f"{platform.machine()} {cpu_name()}".strip(),
        "kit": _kit_digest(kit),
        "cpus": os.cpu_count(),
    }
    partial = out.with_name(out.stem + ".partial.csv")
    measured: dict[str, tuple[float, float]] = {}
    timed: dict[str, int] = {}
    if args.resume:
        try:
            measured, timed = resume_from(partial, info, paths)
        except ValueError as error:
            print(error, file=sys.stderr)
            return 2
        left = sum(max(0, args.passes - timed.get(p.name, 0)) for p in paths)
        print(
            f"resuming {partial}: {len(measured)} of {len(paths)} probes timed, "
            f"{left} timings to go",
            file=sys.stderr,
        )
    elif partial.is_file():
        print(
            f"{partial} holds an interrupted run's times; this run starts over (--resume "
            "would go on from them) and replaces them when it is interrupted too or "
            "finishes",
            file=sys.stderr,
        )
    started = time.perf_counter()
    said = [started]

    def report(done: int, total: int) -> None:
        now = time.perf_counter()
        # Every 100 timings, or every 30 s on a slow device, so a run never looks hung.
        if done % 100 and now - said[0] < 30 and done != total:
            return
        said[0] = now
        left = (now - started) / done * (total - done)
        print(
            f"{done}/{total} probe timings ({len(paths)} probes x {args.passes} passes), "
            f"about {_duration(left)} left",
            file=sys.stderr,
            flush=True,
        )

    already = dict(timed)
    try:
        measure_passes(
            paths,
            args.threads,
            args.warmup,
            args.runs,
            args.passes,
            report,
            best=measured,
            timed=timed,
        )
    except KeyboardInterrupt:
        if timed == already:
            kept = f"; {partial} is as it was" if args.resume else ""
            print(
                f"\ninterrupted before any probe was timed: nothing saved{kept}",
                file=sys.stderr,
            )
            return 130
        # What was timed is kept, beside the full file's name: a complete measurements.csv
        # of an earlier run is not replaced by a partial one.
        write_measurements(partial, measured, args.runs)
        info["measured"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        info["interrupted"] = True
        info["timed_passes"] = timed
        partial.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
        print(
            f"\ninterrupted: saved the {len(measured)} of {len(paths)} probes timed so far to "
            f"{partial}; give it to `paretonas calibrate --measurements` (probes left out "
            "are left out of the fit), or run again with --resume to time the rest",
            file=sys.stderr,
        )
        return 130
    write_measurements(out, measured, args.runs)
    info["measured"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    # Finished: an interrupted run's times are superseded (or, resumed, in the full file
    # now), and a later --resume must not go on from them.
    partial.unlink(missing_ok=True)
    partial.with_suffix(".json").unlink(missing_ok=True)
    print(f"wrote {out} (onnxruntime {ort.__version__}, {args.threads} thread(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
