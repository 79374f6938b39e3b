"""Each classic compression method alone, at two strengths, on one trained candidate; and a
joint policy of the search's space at a similar size.

One fixed mid-size candidate (the compression benchmark's) is trained once on
Fashion-MNIST with KD (T=4, alpha=0.9) from the demo's cached teacher. Each method is then applied
to that same trained network:

- distillation: the candidate trained again from the same start with hard labels only
  (alpha 0) and with soft labels only (alpha 1), same epochs;
- structured pruning (whole channels, L1) at 0.25 and 0.5, then one KD fine-tune epoch;
- low-rank factorization (truncated SVD of 1x1 convs and the classifier) at rank ratio 0.5
  and 0.25, then one KD fine-tune epoch;
- unstructured pruning (torch.nn.utils.prune, global) by L1 magnitude and at random, 50%
  and 80% of the weights, no fine-tune;
- static int8 (post-training, ONNX Runtime QDQ) with 8-bit and 4-bit weights;
- dynamic int8 of the Linear layers (PyTorch ``quantize_dynamic``): it does not export to
  ONNX, so its latency and accuracy are measured in PyTorch, beside the fp32 network
  measured the same way;
- a joint policy (pruning + factorization + int8 QAT): of the joint policies in the
  search's space, the one whose stored size (cost model) is closest to the median stored
  size of the single-method rows; KD fine-tune and one QAT epoch.

For each row: test accuracy of the exported ONNX file on the 10,000-image test split,
parameters, ONNX file size, stored size (computed: weights at their bits, sparse layers as
non-zeros plus a 1-bit index; ``evaluators.recipes.stored_size_bytes``) and latency
measured with ONNX Runtime (batch 1, 1 thread, median of --runs). Writes
results/benchmarks/methods.json and the README table.

    .venv/bin/python benchmarks/methods.py [--subset 8000] [--epochs 4] [--runs 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks.common import (  # noqa: E402
    markdown_table,
    source_line,
    update_readme,
    write_result,
)
from benchmarks.compression import ARCH  # noqa: E402
from evaluators.cost import estimate_cost  # noqa: E402
from evaluators.data import load_dataset  # noqa: E402
from evaluators.distill import (  # noqa: E402
    TrainConfig,
    evaluate_accuracy,
    resolve_device,
    train,
)
from evaluators.factorize import factorize_model  # noqa: E402
from evaluators.hardware import measure_onnx_latency  # noqa: E402
from evaluators.pipeline import QAT_LR_FACTOR  # noqa: E402
from evaluators.prune import prune_model  # noqa: E402
from evaluators.quantize import (  # noqa: E402
    calibrate,
    export_deployable,
    onnx_accuracy,
    prepare_qat,
)
from evaluators.recipes import (  # noqa: E402
    dynamic_quantize,
    sparsity,
    stored_size_bytes,
    unstructured_prune,
)
from evaluators.teacher import TeacherConfig, prepare_teacher  # noqa: E402
from spaces import Candidate, CompressionPolicy, StagePolicy, build_model  # noqa: E402
from spaces.channels import plan_channels  # noqa: E402


def candidate_with(**policy) -> Candidate:
    return Candidate(ARCH, CompressionPolicy((StagePolicy(**policy),) * len(ARCH.stages)))


def torch_latency_ms(model: torch.nn.Module, shape: tuple[int, ...], runs: int) -> float:
    """Median ms of one batch-1 forward pass in PyTorch, 1 thread (for rows that cannot
    run in ONNX Runtime, and the fp32 reference they are compared with)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x = torch.randn(1, *shape)
        times = []
        with torch.inference_mode():
            for index in range(runs + 20):
                start = time.perf_counter()
                model(x)
                if index >= 20:
                    times.append((time.perf_counter() - start) * 1000)
        return statistics.median(times)
    finally:
        torch.set_num_threads(threads)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subset", type=int, default=8000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--out", default=None, help="default results/benchmarks/methods.json")
    parser.add_argument(
        "--reuse", action="store_true", help="only rewrite the README table from the JSON"
    )
    args = parser.parse_args()
    if args.reuse:
        path = Path(args.out) if args.out else ROOT / "results" / "benchmarks" / "methods.json"
        return publish(path, readme=args.out is None)
    started = time.perf_counter()

    dataset = load_dataset("fashion-mnist", seed=0)
    shape = dataset.input_shape
    teacher = prepare_teacher(
        dataset,
        # The demo's teacher (configs/fashion-mnist-cpu.yaml), cached under results/teachers:
        # ~15 min to train on 2 CPU cores, seconds on a GPU (device auto).
        TeacherConfig(widths=(32, 64, 128), blocks=(1, 1, 1), epochs=3, batch_size=128),
        ROOT / "results" / "teachers",
        device=resolve_device("auto"),
    )
    subset = torch.randperm(len(dataset.train), generator=torch.Generator().manual_seed(0))[
        : args.subset
    ]
    images, labels = dataset.train.images[subset], dataset.train.labels[subset]
    logits = teacher.train_logits[subset]
    recipe = TrainConfig(epochs=args.epochs, lr=0.02, temperature=4.0, alpha=0.9)
    finetune = replace(recipe, epochs=1)
    calibration = images[:256]
    test_images, test_labels = dataset.test.images, dataset.test.labels
    batch = (images[:256], labels[:256], logits[:256])

    def trained(alpha: float) -> torch.nn.Module:
        torch.manual_seed(0)  # the same initial weights for every recipe
        model = build_model(Candidate(ARCH), 1, 10)
        train(model, images, labels, logits, replace(recipe, alpha=alpha), description=f"a={alpha}")
        return model.eval()

    base = trained(0.9)
    rows: list[dict] = []

    def measure(
        method: str,
        strength: str,
        model: torch.nn.Module,
        candidate: Candidate,
        *,
        bits: int = 32,
        exported: torch.nn.Module | None = None,
    ) -> None:
        """``model`` is counted (params, stored size); ``exported`` (default ``model``, or
        its QAT version) is exported, measured and scored."""
        exported = model if exported is None else exported
        with tempfile.TemporaryDirectory() as tmp:
            artifact = export_deployable(
                exported.eval(), candidate, shape, Path(tmp) / "m.onnx", calibration
            )
            latency = measure_onnx_latency(
                artifact.path, shape, threads=1, warmup=20, runs=args.runs
            )
            accuracy = onnx_accuracy(artifact.path, test_images, test_labels)
            file_bytes = artifact.file_bytes
        add_row(method, strength, model, accuracy, latency.median_ms, "onnxruntime", bits)
        rows[-1]["file_bytes"] = file_bytes
        rows[-1]["int8"] = artifact.is_int8

    def add_row(method, strength, model, accuracy, latency_ms, runtime, bits) -> None:
        rows.append(
            {
                "method": method,
                "strength": strength,
                "test_accuracy": accuracy,
                "params": sum(p.numel() for p in model.parameters()),
                "sparsity": sparsity(model),
                "stored_bytes": stored_size_bytes(model, bits),
                "latency_ms_median": latency_ms,
                "latency_runtime": runtime,
                "file_bytes": None,
                "int8": None,
            }
        )
        r = rows[-1]
        print(
            f"{method:<28} {strength:<18} acc {accuracy:.4f}  params {r['params']:>7,}  "
            f"stored {r['stored_bytes'] / 1024:7.1f} KB  {latency_ms:.3f} ms ({runtime})",
            flush=True,
        )

    fp32 = candidate_with()
    measure("none (KD-trained)", "-", base, fp32)

    for name, alpha in (("hard labels only", 0.0), ("soft labels only", 1.0)):
        measure("distillation", f"{name} (alpha {alpha:g})", trained(alpha), fp32)

    for ratio in (0.25, 0.5):
        candidate = candidate_with(prune_ratio=ratio)
        pruned = prune_model(base, candidate, plan_channels(candidate, 4), "l1", batch)
        train(pruned, images, labels, logits, finetune, description=f"prune {ratio}")
        measure("structured pruning (L1)", f"{ratio:.0%} channels", pruned, fp32)

    for ratio in (0.5, 0.25):
        candidate = candidate_with(rank_ratio=ratio)
        thin = factorize_model(_copy(base), candidate)
        train(thin, images, labels, logits, finetune, description=f"rank {ratio}")
        measure("low-rank (SVD)", f"rank ratio {ratio:g}", thin, fp32)

    for method in ("l1", "random"):
        for amount in (0.5, 0.8):
            sparse = unstructured_prune(_copy(base), amount, method, "global", seed=0)
            measure(f"unstructured ({method}, global)", f"{amount:.0%} weights", sparse, fp32)

    for bits in (8, 4):
        measure(
            "static int8 (PTQ)",
            f"w{bits}a8",
            base,
            candidate_with(weight_bits=bits, activation_bits=8),
            bits=bits,
        )

    reference_ms = torch_latency_ms(base, shape, args.runs)
    dynamic = dynamic_quantize(base)
    add_row(
        "fp32 in PyTorch (reference)",
        "-",
        base,
        evaluate_accuracy(base, test_images, test_labels),
        reference_ms,
        "pytorch",
        32,
    )
    add_row(
        "dynamic int8 (Linear only)",
        "qint8 weights",
        base,  # its parameters: the float module's (the quantized one hides them)
        evaluate_accuracy(dynamic, test_images, test_labels),
        torch_latency_ms(dynamic, shape, args.runs),
        "pytorch",
        32,
    )
    rows[-1]["stored_bytes"] += stored_size_bytes(base.classifier, 8) - stored_size_bytes(
        base.classifier, 32
    )  # the classifier's weights stored at 8 bits

    single = [r["stored_bytes"] for r in rows if r["method"] not in ("none (KD-trained)",)]
    target = statistics.median(single)
    joint_options = [
        candidate_with(prune_ratio=p, rank_ratio=r, weight_bits=8, activation_bits=8)
        for p in (0.0, 0.25, 0.5)
        for r in (1.0, 0.5, 0.25)
        if p or r < 1
    ]
    joint = min(
        joint_options,
        key=lambda c: abs(estimate_cost(c, shape, 10).weight_bytes - target),
    )
    policy = joint.policy.stages[0]
    model = base
    if policy.prune_ratio:
        model = prune_model(base, joint, plan_channels(joint, 4), "l1", batch)
    model = factorize_model(_copy(model), joint) if policy.factorizes else model
    train(model, images, labels, logits, finetune, description="joint finetune")
    qat = calibrate(prepare_qat(model, joint), calibration)
    qat_recipe = replace(finetune, lr=finetune.lr * QAT_LR_FACTOR)  # as the pipeline does
    train(qat, images, labels, logits, qat_recipe, description="joint qat")
    measure(
        "joint policy (search space)",
        f"prune {policy.prune_ratio:g}, rank {policy.rank_ratio:g}, w8a8 QAT",
        model,
        joint,
        bits=8,
        exported=qat,
    )

    result = {
        "candidate": Candidate(ARCH).genome,
        "measurement": (
            "measured: test accuracy of the ONNX file (PyTorch for the two PyTorch rows) on the "
            f"{len(test_labels)}-image test split; latency batch 1, 1 thread, median of "
            f"{args.runs} runs after 20 warm-up (onnxruntime CPUExecutionProvider, or PyTorch "
            "where marked); stored size computed (weights at their bits, sparse layers as "
            "non-zeros + 1-bit index, biases, scales, per-layer metadata)"
        ),
        "training": {
            "train_subset": args.subset,
            "epochs": args.epochs,
            "finetune_epochs": 1,
            "kd": "T=4, alpha=0.9",
            "teacher_test_accuracy": teacher.test_accuracy,
        },
        "joint_policy": {"genome": joint.genome, "target_stored_bytes": target},
        "rows": rows,
        "seconds": time.perf_counter() - started,
    }
    path = write_result("methods", result, args.out)
    return publish(path, readme=args.out is None)


def _copy(model: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(model)


def publish(path: Path, readme: bool = True) -> int:
    record = json.loads(path.read_text())
    table = markdown_table(
        ["method", "strength", "test acc", "params", "stored KB", "latency ms", "runtime"],
        [
            [
                r["method"],
                r["strength"],
                f"{r['test_accuracy']:.4f}",
                f"{r['params']:,}",
                f"{r['stored_bytes'] / 1024:.1f}",
                f"{r['latency_ms_median']:.3f}",
                r["latency_runtime"],
            ]
            for r in record["rows"]
        ],
    )
    if readme:
        machine = record["machine"]
        training = record["training"]
        update_readme(
            "methods",
            f"Candidate `{record['candidate']}` on Fashion-MNIST, trained once "
            f"({training['train_subset']} images x {training['epochs']} epochs, KD "
            f"{training['kd']}, teacher {training['teacher_test_accuracy']:.4f}); each method "
            f"applied to that network. {record['measurement']}; {machine['cpu']} "
            f"({', '.join(machine['simd']) or 'no AVX'}). Unstructured sparsity shrinks "
            f"stored size only: its latency is the dense network's. "
            f"{source_line(path, record)}\n\n{table}",
        )
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
