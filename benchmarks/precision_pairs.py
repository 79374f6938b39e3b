"""Each stage's weight and activation widths drawn together or apart: which search does
better per candidate?

On the host (ONNX Runtime: int8 or fp32 kernels) a stage with 8-bit weights and 32-bit
activations, or the reverse, runs, and is costed, as fp32. Drawn apart from weight_bits
[8, 32] x activation_bits [8, 32], half of a stage's precision draws are such pairs; drawn
together (``space.precisions: [w8a8, w32a32]``, the shipped host configs) none are. This
benchmark runs TPE searches of --trials candidates in search_quality.py's compression space
(per-stage pruning and precision) both ways, --seeds sampler seeds each (the same seeds
both ways), at search_quality.py's fidelity, budget, teacher and reference point, and
compares the hypervolume each reaches after the same number of candidates, the share of
searched stages that ran int8, and the training seconds spent.

Writes results/benchmarks/precision_pairs.json and the README table.

    .venv/bin/python benchmarks/precision_pairs.py [--trials 32] [--seeds 4] [--runs DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from benchmarks.common import (  # noqa: E402
    markdown_table,
    runs_folder,
    source_line,
    update_readme,
    write_result,
)
from benchmarks.search_quality import (  # noqa: E402
    BUDGET,
    COMPRESSION_SPACE,
    TEACHER,
    _training_seconds,
    base_config,
    hypervolume,
    search,
)

# The two ways of drawing a stage's precision, over the same four pairs.
SPACES = {
    "apart": {k: COMPRESSION_SPACE[k] for k in ("weight_bits", "activation_bits")},
    "together": {"precisions": ["w8a8", "w32a32"]},
}
MEASUREMENT = (
    "hypervolume of the trained, within-budget trials (accuracy on the validation split of "
    "the deployed ONNX file, latency measured on this host with ONNX Runtime, peak memory "
    "computed), scaled by the reference point (accuracy 0, the budget's latency and peak "
    "memory); int8 stages: the share of the trained trials' stages that ONNX Runtime ran "
    "in int8 (trials.csv executed); training seconds: the train, fine-tune and QAT phases "
    "of trials.csv, summed"
)


def config(results: Path, args, way: str, seed: int) -> dict:
    name = f"tpe-{way}-{seed}"
    settings = base_config(
        name, results, args, sampler="tpe", sampler_seed=seed, trials=args.trials
    )
    settings["space"] = {
        **settings["space"],
        "prune_ratio": COMPRESSION_SPACE["prune_ratio"],
        **SPACES[way],
    }
    return settings


def stage_shares(trials: pd.DataFrame) -> dict:
    """Of the stages of the trials that trained: the share run int8, and the share whose
    policy mixed 8 and 32 bits (which the host runs as fp32)."""
    trained = trials[trials["status"] == "ok"]
    executed = [how for text in trained["executed"].dropna() for how in str(text).split(", ")]
    policies = [
        part for genome in trained["genome"].dropna() for part in genome.split("|")[1].split(",")
    ]
    mixed = [p for p in policies if p.endswith(("w8a32", "w32a8"))]
    return {
        "stages": len(executed),
        "int8_share": sum("int8" in how.split(" (")[0] for how in executed) / max(len(executed), 1),
        "mixed_share": len(mixed) / max(len(policies), 1),
    }


def measure(results: Path, args) -> list[dict]:
    rows = []
    for seed in range(args.seeds):
        for way in SPACES:
            trials, seconds = search(config(results, args, way, seed))
            rows.append(
                {
                    "way": way,
                    "seed": seed,
                    "trials": len(trials),
                    "hypervolume": hypervolume(trials),
                    "feasible_trained": int(
                        ((trials["status"] == "ok") & trials["feasible"].astype(bool)).sum()
                    ),
                    "training_seconds": _training_seconds(trials),
                    "seconds": seconds,
                    **stage_shares(trials),
                }
            )
            print(f"{way} seed {seed}: HV {rows[-1]['hypervolume']:.4f}", flush=True)
    return rows


def summarise(rows: list[dict]) -> dict:
    frame = pd.DataFrame(rows)
    means = frame.groupby("way")[
        ["hypervolume", "training_seconds", "int8_share", "mixed_share"]
    ].mean()
    paired = frame.pivot(index="seed", columns="way", values="hypervolume")
    return {
        "mean": means.to_dict(orient="index"),
        "together_over_apart": float(
            means.loc["together", "hypervolume"] / means.loc["apart", "hypervolume"]
        ),
        "seeds_together_higher": int((paired["together"] > paired["apart"]).sum()),
        "seeds": len(paired),
    }


def markdown(rows: list[dict], summary: dict, record: dict, path: Path) -> str:
    table = markdown_table(
        [
            "seed",
            "drawn",
            "hypervolume",
            "trained within budget",
            "int8 stages",
            "mixed stages",
            "training s",
        ],
        [
            [
                r["seed"],
                r["way"],
                f"{r['hypervolume']:.4f}",
                r["feasible_trained"],
                f"{100 * r['int8_share']:.0f}%",
                f"{100 * r['mixed_share']:.0f}%",
                f"{r['training_seconds']:.0f}",
            ]
            for r in rows
        ],
    )
    mean = summary["mean"]
    text = (
        f"Fashion-MNIST, {record['fidelity']['train_subset']} training images x "
        f"{record['fidelity']['epochs']} epochs per candidate, {record['fidelity']['trials']} "
        f"candidates per TPE search, budget latency <= {BUDGET['latency_ms']} ms and peak "
        f"memory <= {BUDGET['peak_memory_kb']:g} KB, per-stage prune ratio "
        f"{COMPRESSION_SPACE['prune_ratio']}; {record['machine']['cpu']}; code "
        f"{record['commit']}. Measured: {MEASUREMENT}.\n\n{table}\n\n"
        f"Mean hypervolume: together {mean['together']['hypervolume']:.4f}, apart "
        f"{mean['apart']['hypervolume']:.4f} (together / apart "
        f"{summary['together_over_apart']:.3f}); together higher in "
        f"{summary['seeds_together_higher']} of {summary['seeds']} seeds. Int8 stages: "
        f"{100 * mean['together']['int8_share']:.0f}% together, "
        f"{100 * mean['apart']['int8_share']:.0f}% apart (mean share). " + source_line(path, record)
    )
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--subset", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--runs", default=None, help="keep the searches here (resumable)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    with runs_folder(args.runs, "paretonas-precisions-") as results:
        rows = measure(results, args)
    summary = summarise(rows)
    result = {
        "fidelity": {"train_subset": args.subset, "epochs": args.epochs, "trials": args.trials},
        "teacher": TEACHER,
        "budget": BUDGET,
        "spaces": SPACES,
        "measurement": MEASUREMENT,
        "searches": rows,
        "summary": summary,
    }
    path = write_result("precision_pairs", result, args.out)
    import json

    record = json.loads(path.read_text())
    if not update_readme("precision_pairs", markdown(rows, summary, record, path)):
        print("README has no <!-- bench:precision_pairs --> block; figures are in", path)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
