"""Which distillation temperature suits the search's short training?

The search ranks candidates trained for a few epochs on a subset (its fidelity). Three
students of different sizes (those of benchmarks/search_quality.py) are trained from the
same start with plain cross-entropy (alpha 0) and with KD at alpha 0.9 and temperatures
1, 2 and 4, from the demo's cached teacher, at two fidelities: --short (the search's) and
--long (4x the images). Test accuracy of each, in PyTorch, on the 10,000-image test split.
Writes results/benchmarks/distillation.json and the README table.

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
    train_student,
)

RECIPES = (("plain", 0.0, 4.0), ("KD T=1", 0.9, 1.0), ("KD T=2", 0.9, 2.0), ("KD T=4", 0.9, 4.0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", type=int, default=2000)
    parser.add_argument("--long", type=int, default=8000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    dataset, teacher, order = teacher_and_data()
    rows = []
    for images in (args.short, args.long):
        subset = order[:images]
        for size, arch in STUDENTS.items():
            row: dict = {"train_images": images, "epochs": args.epochs, "student": size}
            for name, alpha, temperature in RECIPES:
                row[name], row["params"] = train_student(
                    arch, dataset, teacher, subset, args.epochs, alpha, temperature
                )
            rows.append(row)
            print(json.dumps(row), flush=True)
    result = {
        "teacher": {**TEACHER, "test_accuracy": teacher.test_accuracy},
        "measurement": (
            "measured: PyTorch test accuracy on the 10,000-image test split after training "
            "from the same initial weights (AdamW, lr 0.02, cosine, batch 128); KD alpha 0.9"
        ),
        "rows": rows,
        "seconds": time.perf_counter() - started,
    }
    path = write_result("distillation", result, args.out)
    record = json.loads(path.read_text())
    names = [name for name, _, _ in RECIPES]
    table = markdown_table(
        ["train images x epochs", "student", "params", *names],
        [
            [f"{r['train_images']} x {r['epochs']}", r["student"], f"{r['params']:,}"]
            + [f"{r[name]:.4f}" for name in names]
            for r in rows
        ],
    )
    if args.out is None:
        update_readme(
            "distillation",
            f"Fashion-MNIST; teacher ResNet {TEACHER['widths']} (test accuracy "
            f"{teacher.test_accuracy:.4f}); {result['measurement']}; "
            f"{record['machine']['cpu']}. {source_line(path, record)}\n\n{table}",
        )
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
