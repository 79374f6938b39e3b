"""Does any distillation recipe help the smallest student once it is trained to the end?

benchmarks/search_quality.py found that KD at T=4, alpha 0.9 does not beat plain training
for its smallest student (506 parameters) even at 200 epochs, while it gains for the
larger two. The distillation literature's explanation is the capacity gap between teacher
and student, and its remedy a teacher assistant (Mirzadeh et al., 2020): a mid-size
network distilled from the teacher, which then teaches the small one. This benchmark
trains the small student on the same 2,000 images for --epochs, from --seeds seeds
(initial weights and batch order; every recipe of a seed starts from the same weights):

- plain cross-entropy (alpha 0);
- KD at T=4, alpha 0.9 from the teacher (the issue's recipe);
- KD at T=2 and at the search's default temperature (T=1), alpha 0.9, from the teacher;
- KD at T=4 with alpha 0.5 from the teacher: half the weight back on the labels, which
  tells a temperature too high for the student from soft targets weighted too much;
- KD at T=4, alpha 0.9 from an assistant: search_quality's mid and large students, each
  trained with KD at T=4 from the teacher for --epochs (seed 0); their logits on the
  training images replace the teacher's;
- KD at T=4 and T=1, alpha 0.9 from an early-stopped teacher: the same ResNet trained
  EARLY_TEACHER_EPOCHS epoch instead of 3. Cho & Hariharan (ICCV 2019, "On the Efficacy
  of Knowledge Distillation") found that a teacher stopped early teaches a small student
  better than the fully trained one, whose targets are harder to follow.

Test accuracy on the 10,000-image test split, in PyTorch; each training in a worker
process with one torch thread (--jobs workers). Gains are paired by seed. Writes
results/benchmarks/kd_small_student.json and the README table; with --runs, each
training is kept there and read back instead of trained again.

    .venv/bin/python benchmarks/kd_small_student.py [--seeds 10] [--epochs 200] [--jobs 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import markdown_table, source_line, update_readme, write_result  # noqa: E402
from benchmarks.search_quality import STUDENTS, TEACHER  # noqa: E402

STUDENT = "small"
ASSISTANTS = ("mid", "large")
EARLY = "early-stopped teacher"
EARLY_TEACHER_EPOCHS = 1
# (name, teacher: "teacher" or an assistant, alpha, temperature)
RECIPES = (
    ("plain", "teacher", 0.0, 4.0),
    ("KD T=4", "teacher", 0.9, 4.0),
    ("KD T=2", "teacher", 0.9, 2.0),
    ("KD T=1", "teacher", 0.9, 1.0),
    ("KD T=4 alpha 0.5", "teacher", 0.5, 4.0),
    *((f"KD T=4 via {name}", name, 0.9, 4.0) for name in ASSISTANTS),
    ("KD T=4 early teacher", EARLY, 0.9, 4.0),
    ("KD T=1 early teacher", EARLY, 0.9, 1.0),
)


def _train(job: dict) -> dict:
    """One training in a worker process: the student (or an assistant) of ``job``, kept in
    ``job["folder"]``; an assistant also keeps its logits on the training images."""
    import torch

    torch.set_num_threads(1)
    from benchmarks.search_quality import teacher_and_data, trained_student
    from evaluators.distill import evaluate_accuracy, predict_logits

    folder = Path(job["folder"])
    kept = folder / f"{job['name']}.json"
    if kept.is_file():
        return json.loads(kept.read_text())
    started = time.perf_counter()
    dataset, teacher, order = teacher_and_data()
    subset = order[: job["images"]]
    if job["teacher"] == EARLY:
        teacher = teacher_and_data(EARLY_TEACHER_EPOCHS)[1]
    elif job["teacher"] != "teacher":
        logits = teacher.train_logits.clone()
        logits[subset] = torch.load(folder / f"assistant-{job['teacher']}.pt", weights_only=True)
        teacher = dataclasses.replace(teacher, train_logits=logits)
    model = trained_student(
        STUDENTS[job["student"]],
        dataset,
        teacher,
        subset,
        job["epochs"],
        job["alpha"],
        job["temperature"],
        job["seed"],
    )
    if job["name"].startswith("assistant-"):
        torch.save(
            predict_logits(model, dataset.train.images[subset]), folder / f"{job['name']}.pt"
        )
    row = {key: job[key] for key in ("name", "student", "teacher", "alpha", "temperature", "seed")}
    row["test_accuracy"] = evaluate_accuracy(model, dataset.test.images, dataset.test.labels)
    row["params"] = sum(p.numel() for p in model.parameters())
    row["seconds"] = time.perf_counter() - started
    kept.write_text(json.dumps(row, indent=2))
    print(f"{row['name']}: test accuracy {row['test_accuracy']:.4f}", flush=True)
    return row


def summary(rows: list[dict]) -> list[dict]:
    """Per recipe: mean test accuracy, and its gain over plain training paired by seed."""
    plain = {r["seed"]: r["test_accuracy"] for r in rows if r["recipe"] == "plain"}
    out = []
    for name, teacher, alpha, temperature in RECIPES:
        mine = sorted((r for r in rows if r["recipe"] == name), key=lambda r: r["seed"])
        gains = [100 * (r["test_accuracy"] - plain[r["seed"]]) for r in mine]
        std = statistics.stdev(gains) if len(gains) > 1 else 0.0
        out.append(
            {
                "recipe": name,
                "teacher": teacher,
                "alpha": alpha,
                "temperature": temperature,
                "seeds": len(mine),
                "test_accuracy_mean": statistics.mean(r["test_accuracy"] for r in mine),
                "gain_points": gains,
                "gain_mean": statistics.mean(gains),
                "gain_std": std,
                "gain_standard_error": std / len(gains) ** 0.5,
                "gains_above_zero": sum(gain > 0 for gain in gains),
            }
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--runs", default=None, help="keep each training here (resumable)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    from benchmarks.search_quality import teacher_and_data
    from spaces import Candidate

    # Trained here, once, if not cached: workers that each found the cache empty would all
    # train it, on one thread each.
    teacher = teacher_and_data()[1]
    early = teacher_and_data(EARLY_TEACHER_EPOCHS)[1]
    with tempfile.TemporaryDirectory(prefix="kd-small-") as tmp:
        folder = Path(args.runs or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        common = {"folder": str(folder), "images": args.images, "epochs": args.epochs}
        assistants = [
            {
                **common,
                "name": f"assistant-{name}",
                "student": name,
                "teacher": "teacher",
                "alpha": 0.9,
                "temperature": 4.0,
                "seed": 0,
            }
            for name in ASSISTANTS
        ]
        students = {
            (recipe, seed): {
                **common,
                "name": f"{STUDENT}-{_file_name(recipe)}-seed{seed}",
                "recipe": recipe,
                "student": STUDENT,
                "teacher": taught_by,
                "alpha": alpha,
                "temperature": temperature,
                "seed": seed,
            }
            for recipe, taught_by, alpha, temperature in RECIPES
            for seed in range(args.seeds)
        }
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
            # The assistants first (the large one is the longest training); the recipes that
            # need no assistant fill the other worker meanwhile.
            assistant_runs = [pool.submit(_train, job) for job in assistants]
            runs = {
                key: pool.submit(_train, job)
                for key, job in students.items()
                if job["teacher"] == "teacher"
            }
            assistant_rows = [run.result() for run in assistant_runs]
            runs |= {
                key: pool.submit(_train, job)
                for key, job in students.items()
                if job["teacher"] != "teacher"
            }  # the early-stopped teacher's too: it is cached already (above)
            rows = [{**run.result(), "recipe": key[0]} for key, run in runs.items()]
    rows.sort(key=lambda r: (r["recipe"], r["seed"]))
    result = {
        "teacher": {**TEACHER, "test_accuracy": teacher.test_accuracy},
        "early_stopped_teacher": {
            **TEACHER,
            "epochs": EARLY_TEACHER_EPOCHS,
            "test_accuracy": early.test_accuracy,
        },
        "student": {
            "name": STUDENT,
            "params": rows[0]["params"],
            "genome": Candidate(STUDENTS[STUDENT]).genome,
        },
        "train_images": args.images,
        "epochs": args.epochs,
        "assistants": assistant_rows,
        "measurement": (
            "measured: PyTorch test accuracy (10,000 images) after training on the same "
            f"{args.images} images for {args.epochs} epochs (AdamW, lr 0.02, cosine, batch 128), "
            "every recipe of a seed from the same initial weights and batch order; one torch "
            "thread per training; gains in points over plain training of the same seed"
        ),
        "rows": rows,
        "summary": summary(rows),
        "seconds": time.perf_counter() - started,
        # The trainings' own seconds (one thread each), also when they were read back.
        "training_seconds": sum(r["seconds"] for r in [*rows, *assistant_rows]),
    }
    path = write_result("kd_small_student", result, args.out)
    record = json.loads(path.read_text())
    table = markdown_table(
        [
            "recipe",
            "taught by",
            "test acc (mean)",
            "gain (points): mean",
            "std",
            "std error",
            "seeds above 0",
            "per seed",
        ],
        [
            [
                s["recipe"],
                "labels only"
                if s["alpha"] == 0
                else _teacher_label(s["teacher"], assistant_rows, teacher, early),
                f"{s['test_accuracy_mean']:.4f}",
                "-" if s["recipe"] == "plain" else f"{s['gain_mean']:+.2f}",
                "-" if s["recipe"] == "plain" else f"{s['gain_std']:.2f}",
                "-" if s["recipe"] == "plain" else f"{s['gain_standard_error']:.2f}",
                "-" if s["recipe"] == "plain" else f"{s['gains_above_zero']} of {s['seeds']}",
                "-"
                if s["recipe"] == "plain"
                else " / ".join(f"{g:+.1f}" for g in s["gain_points"]),
            ]
            for s in result["summary"]
        ],
    )
    if args.out is None:
        update_readme(
            "kd_small_student",
            f"Fashion-MNIST; student `{result['student']['genome']}` "
            f"({result['student']['params']} parameters), {args.seeds} seeds; teacher ResNet "
            f"{TEACHER['widths']} (test accuracy {teacher.test_accuracy:.4f}); "
            f"{result['measurement']}; {record['machine']['cpu']}. "
            f"{source_line(path, record)}\n\n{table}",
        )
    print(path)
    return 0


def _file_name(recipe: str) -> str:
    return recipe.replace(" alpha ", " a").replace(" ", "_").replace("=", "")


def _teacher_label(name: str, assistants: list[dict], teacher, early) -> str:
    if name == "teacher":
        return f"teacher ({teacher.test_accuracy:.4f})"
    if name == EARLY:
        return f"teacher after {EARLY_TEACHER_EPOCHS} epoch ({early.test_accuracy:.4f})"
    row = next(r for r in assistants if r["student"] == name)
    return f"{name} student ({row['params']:,} params, {row['test_accuracy']:.4f})"


if __name__ == "__main__":
    sys.exit(main())
