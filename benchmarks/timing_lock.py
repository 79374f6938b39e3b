"""Does a worker that trains beside a measurement change the latency measured?

With ``search --workers N`` the other workers train on the same machine while one times a
candidate. This benchmark times fixed models (the hand-designed baselines, exported to
ONNX, ONNX Runtime with one thread, batch 1, median of --runs runs after 10 warm-up, the
search's measurement) in three conditions, --repeats times each, interleaved so that drift
of the host hits all three alike:

- alone: nothing else runs;
- beside training, lock off: --trainers processes train a network with
  ``evaluators.distill.train`` (one torch thread each) and ``PARETONAS_TIMING_LOCK=off``;
- beside training, lock on: the same, with the host's timing lock (the default), so the
  trainers pause at their next step while a model is timed.

It also counts the trainers' steps per second in each condition: what the pauses cost.
Writes results/benchmarks/timing_lock.json and the README table.

    .venv/bin/python benchmarks/timing_lock.py [--repeats 9] [--trainers 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import (  # noqa: E402
    RESULTS,
    markdown_table,
    source_line,
    update_readme,
    write_result,
)

MODELS = ("mobilenetv2_050", "plain_cnn")
SHAPE = (1, 28, 28)

TRAINER = """
import sys, time, torch
torch.set_num_threads(1)
from evaluators import distill
from spaces.build import create_model
model = create_model("mobilenetv2_035", 1, 10)
images, labels = torch.randn(256, 1, 28, 28), torch.randint(0, 10, (256,))
def count(epoch, model):
    print(time.monotonic(), epoch * 2, flush=True)
distill.train(model, images, labels, None, distill.TrainConfig(epochs=100000, batch_size=128),
              progress=False, on_epoch=count)
"""


def trainers(count: int, lock: bool, folder: str) -> list[subprocess.Popen]:
    environment = dict(os.environ)
    environment["PARETONAS_TIMING_LOCK"] = str(Path(folder) / "timing") if lock else "off"
    return [
        subprocess.Popen(
            [sys.executable, "-c", TRAINER],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]


def steps_per_second(process: subprocess.Popen) -> float:
    """From the trainer's (time, steps) lines: the rate between its first and last epoch."""
    process.kill()
    out, _ = process.communicate()
    points = [tuple(map(float, line.split())) for line in out.splitlines() if line.strip()]
    if len(points) < 2:
        return float("nan")
    (t0, s0), (t1, s1) = points[0], points[-1]
    return (s1 - s0) / (t1 - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--trainers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=20.0, help="per condition and repeat")
    parser.add_argument("--out", default=None)
    parser.add_argument(
        "--table", action="store_true", help="only rewrite the README table from the JSON"
    )
    args = parser.parse_args()
    if args.table:
        write_table(RESULTS / "timing_lock.json")
        return

    import torch

    from evaluators.hardware import export_onnx, measure_onnx_latency
    from spaces.build import create_model

    torch.set_num_threads(1)
    conditions = ("alone", "lock off", "lock on")
    samples: dict[str, dict[str, list[float]]] = {m: {c: [] for c in conditions} for m in MODELS}
    rates: dict[str, list[float]] = {"lock off": [], "lock on": []}
    with tempfile.TemporaryDirectory(prefix="paretonas-bench-") as folder:
        os.environ["PARETONAS_TIMING_LOCK"] = str(Path(folder) / "timing")
        paths = {
            name: export_onnx(create_model(name, 1, 10), SHAPE, Path(folder) / f"{name}.onnx")
            for name in MODELS
        }
        for repeat in range(args.repeats):
            for condition in conditions:
                running = []
                if condition != "alone":
                    running = trainers(args.trainers, condition == "lock on", folder)
                    time.sleep(4)  # their imports and first steps
                end = time.monotonic() + args.seconds
                while time.monotonic() < end:
                    for name, path in paths.items():
                        if condition != "lock on":
                            os.environ["PARETONAS_TIMING_LOCK"] = "off"
                        measured = measure_onnx_latency(path, SHAPE, threads=1, runs=args.runs)
                        os.environ["PARETONAS_TIMING_LOCK"] = str(Path(folder) / "timing")
                        samples[name][condition].append(measured.median_ms)
                for process in running:
                    rates[condition].append(steps_per_second(process))
            print(f"repeat {repeat + 1}/{args.repeats} done", flush=True)

    figures = {
        name: {
            condition: {
                "median_ms": statistics.median(values),
                "measurements": len(values),
                "vs_alone": statistics.median(values) / statistics.median(by["alone"]),
            }
            for condition, values in by.items()
        }
        for name, by in samples.items()
    }
    steps = {condition: statistics.median(values) for condition, values in rates.items()}
    result = {
        "trainers": args.trainers,
        "repeats": args.repeats,
        "seconds_per_condition": args.seconds,
        "how": (
            "measured: median over all measurements of each measurement's median latency "
            f"(ONNX Runtime, 1 thread, batch 1, {args.runs} runs after 10 warm-up); trainers "
            "run evaluators.distill.train on mobilenetv2_035 (batch 128, 1 torch thread)"
        ),
        "latency": figures,
        "trainer_steps_per_second": steps,
    }
    path = write_result("timing_lock", result, args.out)
    print(path)
    if args.out is None:
        write_table(path)


def write_table(path: Path) -> None:
    """The README block, from the JSON record alone."""
    record = json.loads(path.read_text())
    conditions = ("alone", "lock off", "lock on")
    span = record["repeats"] * record["seconds_per_condition"]
    rows = [
        [name] + [f"{by[c]['median_ms']:.3f} ({by[c]['vs_alone']:.2f}x)" for c in conditions]
        for name, by in record["latency"].items()
    ]
    # Each condition times the models in turn for the same span: fewer measurements in
    # it means each took longer, the wait for a trainer's step included.
    counts = {
        c: sum(by[c]["measurements"] for by in record["latency"].values()) for c in conditions
    }
    rows.append(["seconds per measurement"] + [f"{span / counts[c]:.3f}" for c in conditions])
    steps = record["trainer_steps_per_second"]
    rows.append(["trainer steps / s", "-"] + [f"{steps[c]:.2f}" for c in conditions[1:]])
    table = markdown_table(
        ["model", "alone: ms", f"beside {record['trainers']} trainer(s), lock off", "lock on"],
        rows,
    )
    update_readme("timing_lock", f"{record['how']}. {source_line(path, record)}\n\n{table}")


if __name__ == "__main__":
    main()
