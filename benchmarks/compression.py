"""Is compression real on this machine? fp32 vs int8 ONNX, unpruned vs pruned 0.25 / 0.5.

One fixed mid-size candidate is trained once on Fashion-MNIST with KD from the cached
teacher, then pruned (and KD fine-tuned) and exported fp32 and int8 (PTQ). For each
artifact: latency measured with ONNX Runtime (batch 1, 1 thread, median of --runs runs),
file size, and test accuracy of the ONNX file itself. Writes
results/benchmarks/compression.json with the machine, the command and the figures, and
states which of the goals held (int8 not slower than fp32, pruned 0.5 faster than
unpruned, int8 PTQ within 1 point of fp32); the figures decide, nothing is assumed.

    .venv/bin/python benchmarks/compression.py [--runs 200] [--subset 20000] [--epochs 4]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks.common import (  # noqa: E402
    goals_markdown,
    markdown_table,
    source_line,
    update_readme,
    write_result,
)
from evaluators.data import load_dataset  # noqa: E402
from evaluators.distill import TrainConfig, train  # noqa: E402
from evaluators.hardware import measure_onnx_latency  # noqa: E402
from evaluators.prune import prune_model  # noqa: E402
from evaluators.quantize import export_deployable, onnx_accuracy, weights_unsigned  # noqa: E402
from evaluators.teacher import TeacherConfig, prepare_teacher  # noqa: E402
from spaces import ArchSpec, Candidate, CompressionPolicy, StagePolicy, StageSpec, build_model  # noqa: E402
from spaces.channels import plan_channels  # noqa: E402

ARCH = ArchSpec(
    16,
    (
        StageSpec("conv", 1, 32, 3),
        StageSpec("mbconv", 2, 48, 3, expansion=4, stride=2),
        StageSpec("dsconv", 2, 96, 3, stride=2),
    ),
)


def policy(ratio: float, bits: int) -> CompressionPolicy:
    stage = StagePolicy(prune_ratio=ratio, weight_bits=bits, activation_bits=bits)
    return CompressionPolicy((stage,) * len(ARCH.stages))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--subset", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--out", default=None, help="default results/benchmarks/compression.json")
    parser.add_argument(
        "--reuse", action="store_true", help="only rewrite the README table from the JSON"
    )
    args = parser.parse_args()
    if args.reuse:
        path = Path(args.out) if args.out else ROOT / "results" / "benchmarks" / "compression.json"
        return publish(path, readme=args.out is None)
    torch.manual_seed(0)
    started = time.perf_counter()

    dataset = load_dataset("fashion-mnist", seed=0)
    teacher = prepare_teacher(
        dataset,
        # A lighter teacher than the demo's (1 epoch of 16-32-64 channels, ~8x cheaper on
        # 2 cores): the figures compare compressions of one student, not teachers.
        TeacherConfig(widths=(16, 32, 64), blocks=(1, 1, 1), epochs=1),
        ROOT / "results" / "teachers",
    )
    subset = torch.randperm(len(dataset.train), generator=torch.Generator().manual_seed(0))[
        : args.subset
    ]
    images, labels = dataset.train.images[subset], dataset.train.labels[subset]
    logits = teacher.train_logits[subset]
    recipe = TrainConfig(epochs=args.epochs, lr=0.02, temperature=4.0, alpha=0.9)
    base = build_model(Candidate(ARCH), 1, 10)
    train(base, images, labels, logits, recipe, description="benchmark candidate")
    calibration = images[:256]

    rows = []
    for ratio in (0.0, 0.25, 0.5):
        candidate = Candidate(ARCH, policy(ratio, 32))
        model = base
        if ratio > 0:
            plan = plan_channels(candidate, align=4)
            model = prune_model(
                base, candidate, plan, "l1", (images[:256], labels[:256], logits[:256])
            )
            train(
                model,
                images,
                labels,
                logits,
                replace(recipe, epochs=1),
                description=f"finetune {ratio}",
            )
        for bits in (32, 8):
            target = Candidate(ARCH, policy(ratio, bits))
            with tempfile.TemporaryDirectory() as tmp:
                artifact = export_deployable(
                    model.eval(),
                    target,
                    dataset.input_shape,
                    Path(tmp) / "m.onnx",
                    calibration,
                    method="ptq",
                )
                latency = measure_onnx_latency(
                    artifact.path, dataset.input_shape, threads=1, warmup=20, runs=args.runs
                )
                accuracy = onnx_accuracy(artifact.path, dataset.test.images, dataset.test.labels)
            rows.append(
                {
                    "prune_ratio": ratio,
                    "format": "int8 (PTQ, QDQ)" if bits == 8 else "fp32",
                    "params": sum(p.numel() for p in model.parameters()),
                    "latency_ms_median": latency.median_ms,
                    "latency_ms_p90": latency.p90_ms,
                    "file_bytes": artifact.file_bytes,
                    "test_accuracy": accuracy,
                    "int8_initializers": artifact.int8_initializers,
                }
            )
            print(
                f"prune {ratio:<4} {rows[-1]['format']:<16} latency {latency.median_ms:.4f} ms  "
                f"size {artifact.file_bytes / 1024:.1f} KB  test acc {accuracy:.4f}",
                flush=True,
            )

    def find(ratio: float, fmt: str) -> dict:
        return next(r for r in rows if r["prune_ratio"] == ratio and r["format"].startswith(fmt))

    goals = {
        "int8_not_slower_than_fp32": find(0.0, "int8")["latency_ms_median"]
        <= find(0.0, "fp32")["latency_ms_median"],
        "pruned_0.5_faster_than_unpruned": find(0.5, "fp32")["latency_ms_median"]
        < find(0.0, "fp32")["latency_ms_median"],
        "int8_ptq_drop_at_most_1_point": find(0.0, "fp32")["test_accuracy"]
        - find(0.0, "int8")["test_accuracy"]
        <= 0.01,
    }
    result = {
        "candidate": Candidate(ARCH).genome,
        "measurement": (
            "measured: onnxruntime CPUExecutionProvider, 1 thread, batch 1, "
            f"median of {args.runs} runs after 20 warm-up; accuracy of the ONNX file on the "
            f"{len(dataset.test)}-image test split"
        ),
        "training": {
            "train_subset": args.subset,
            "epochs": args.epochs,
            "finetune_epochs": 1,
            "kd": "T=4, alpha=0.9",
            "teacher_test_accuracy": teacher.test_accuracy,
        },
        "int8_weights": "uint8, zero point 128" if weights_unsigned() else "int8",
        "rows": rows,
        "goals": goals,
        "seconds": time.perf_counter() - started,
    }
    path = write_result("compression", result, args.out)
    return publish(path, readme=args.out is None)


def publish(path: Path, readme: bool = True) -> int:
    """Print the goals of a written record and put its table into the README."""
    record = json.loads(path.read_text())
    rows, goals = record["rows"], record["goals"]
    table = markdown_table(
        ["prune ratio", "format", "params", "latency ms (median)", "file KB", "test acc"],
        [
            [
                r["prune_ratio"],
                r["format"],
                f"{r['params']:,}",
                f"{r['latency_ms_median']:.3f}",
                f"{r['file_bytes'] / 1024:.1f}",
                f"{r['test_accuracy']:.4f}",
            ]
            for r in rows
        ],
    )
    if readme:
        machine = record["machine"]
        update_readme(
            "compression",
            f"Candidate `{record['candidate']}` on Fashion-MNIST; {record['measurement']}; "
            f"{machine['cpu']} ({', '.join(machine['simd']) or 'no AVX'}), int8 weights stored "
            f"{record['int8_weights']}. {source_line(path, record)}\n\n{table}\n\n"
            f"{goals_markdown(goals)}",
        )
    print(json.dumps(goals, indent=2))
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
