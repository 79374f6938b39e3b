"""Which distillation temperature suits the search's short training?

The search ranks candidates trained for a few epochs on a subset (its fidelity). Three
students of different sizes (those of benchmarks/search_quality.py) are trained from the
same start with plain cross-entropy (alpha 0) and with KD at alpha 0.9 and temperatures
1, 2 and 4, from the demo's cached teacher, at two fidelities: --short (the search's) and
--long (4x the images). Accuracy of each, in PyTorch, on the validation split (carved
from the training images; what the temperature is chosen on) and on the 10,000-image test
split (reported only: choosing the search's default on it would bias the figure). Writes results/benchmarks/distillation.json and the README table.

    .venv/bin/python benchmarks/distillation.py [--short 2000] [--long 8000] [--epochs 4]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import markdown_table, source_line, update_readme, write_result  # noqa: E402
from benchmarks.search_quality import (  # noqa: E402
    STUDENTS,
    TEACHER,
    teacher_and_data,
    trained_student,
)

RECIPES = (("plain", 0.0, 4.0), ("KD T=1", 0.9, 1.0), ("KD T=2", 0.9, 2.0), ("KD T=4", 0.9, 4.0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", type=int, default=2000)
    parser.add_argument("--long", type=int, default=8000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    from evaluators.distill import evaluate_accuracy

    started = time.perf_counter()
    dataset, teacher, order = teacher_and_data()
    rows = []
    for images in (args.short, args.long):
        subset = order[:images]
        for size, arch in STUDENTS.items():
            row: dict = {"train_images": images, "epochs": args.epochs, "student": size}
            for name, alpha, temperature in RECIPES:
                model = trained_student(
                    arch, dataset, teacher, subset, args.epochs, alpha, temperature
                )
                row[name] = evaluate_accuracy(model, dataset.test.images, dataset.test.labels)
                row[f"{name} validation"] = evaluate_accuracy(
                    model, dataset.val.images, dataset.val.labels
                )
                row["params"] = sum(p.numel() for p in model.parameters())
            rows.append(row)
            print(json.dumps(row), flush=True)
    result = {
        "teacher": {**TEACHER, "test_accuracy": teacher.test_accuracy},
        "measurement": (
            "measured: PyTorch accuracy after training from the same initial weights (AdamW, "
            "lr 0.02, cosine, batch 128), on the validation split (chosen on) and on the "
            "10,000-image test split (reported); KD alpha 0.9"
        ),
        "rows": rows,
        # The search's default temperature is the one the validation split prefers: the
        # best mean validation accuracy over the students at the search's fidelity.
        "chosen_on_validation": max(
            (name for name, alpha, _ in RECIPES if alpha > 0),
            key=lambda name: sum(
                r[f"{name} validation"] for r in rows if r["train_images"] == args.short
            ),
        ),
        "seconds": time.perf_counter() - started,
    }
    path = write_result("distillation", result, args.out)
    record = json.loads(path.read_text())
    names = [name for name, _, _ in RECIPES]
    table = markdown_table(
        ["train images x epochs", "student", "params", *(f"{n}: val / test" for n in names)],
        [
            [f"{r['train_images']} x {r['epochs']}", r["student"], f"{r['params']:,}"]
            + [f"{r[f'{name} validation']:.4f} / {r[name]:.4f}" for name in names]
            for r in rows
        ],
    )
    if args.out is None:
        update_readme(
            "distillation",
            f"Fashion-MNIST; teacher ResNet {TEACHER['widths']} (test accuracy "
            f"{teacher.test_accuracy:.4f}); {result['measurement']}; "
            f"{record['machine']['cpu']}. Best mean validation accuracy at "
            f"{args.short} x {args.epochs}: {result['chosen_on_validation']}. "
            f"{source_line(path, record)}\n\n{table}",
        )
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
