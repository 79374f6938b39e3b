"""Pareto-aware early stopping by setting: training saved against hypervolume kept.

The goal: early stopping saves >= 30 % of training compute while keeping >= 95 % of the
hypervolume. search_quality.py measures the default rule (a candidate is stopped only when
the front dominates it) and whole searches; this benchmark measures the rule's settings
(``training.early_stopping_quantile`` and ``early_stopping_min_gain``) on the same
candidates with and without early stopping, in two steps:

1. what-if (choosing the setting): --seeds TPE searches of --trials candidates trained with
   early stopping off (``tpe-<seed>-off``), each judged again trial by trial by the search's
   own stopper at every quantile x min_gain of the grid (``search_quality.stopping_what_if``):
   candidates stopped, epochs saved and hypervolume kept (exact for those candidates),
   training seconds saved (estimated from each stopped trial's seconds);
2. live (checking it on searches it was not chosen on): --live-seeds TPE searches with
   early stopping at --live-quantile and --live-min-gain, seeds after those of step 1, each
   replayed with early stopping off on the same candidates in the same order
   (``search_quality.replay_without_stopping``): training seconds and epochs measured in
   both, and the hypervolume kept.

Fidelity, budget, reference point (accuracy 0, the budget's latency and memory) and teacher
are search_quality.py's. Writes results/benchmarks/early_stopping.json and the README table.

    .venv/bin/python benchmarks/early_stopping.py [--seeds 6] [--live-seeds 6] [--runs DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from benchmarks.common import (  # noqa: E402
    goals_markdown,
    markdown_table,
    source_line,
    update_readme,
    write_result,
)
from benchmarks.search_quality import (  # noqa: E402
    BUDGET,
    paired_stopping,
    replay_metrics,
    replay_without_stopping,
    search,
    stopping_what_if,
    tpe_config,
)

QUANTILES = (1.0, 0.75, 0.5)
MIN_GAINS = (0.0, 0.002, 0.005, 0.01, 0.02, 0.05)
SAVED, KEPT = 0.30, 0.95


def off_search(results: Path, args, seed: int) -> str:
    """A TPE search with early stopping off (run, or read back from a kept --runs folder)."""
    config = tpe_config(results, args, seed)
    config["name"] = f"tpe-{seed}-off"
    config["training"] = {**config["training"], "early_stopping": False}
    search(config)
    return config["name"]


def what_if(results: Path, args) -> list[dict]:
    """Every setting of the grid, judged on each search without early stopping."""
    rows = []
    for seed in range(args.seeds):
        name = off_search(results, args, seed)
        metrics = replay_metrics(results / name, name)
        for quantile in QUANTILES:
            for min_gain in MIN_GAINS:
                rows.append(
                    {"seed": seed, **stopping_what_if(metrics, quantile, args.epochs, min_gain)}
                )
        print(f"what-if seed {seed}: {len(metrics)} candidates", flush=True)
    return rows


def what_if_summary(rows: list[dict]) -> list[dict]:
    frame = pd.DataFrame(rows)
    summary = (
        frame.groupby(["quantile", "min_gain"], sort=False)
        .agg(
            searches=("seed", "size"),
            stopped_mean=("stopped", "mean"),
            epochs_saved_mean=("epochs_saved", "mean"),
            training_seconds_saved_estimated_mean=("training_seconds_saved_estimated", "mean"),
            hypervolume_kept_mean=("hypervolume_kept", "mean"),
            hypervolume_kept_min=("hypervolume_kept", "min"),
        )
        .reset_index()
    )
    return summary.to_dict("records")


def live_config(results: Path, args, seed: int, quantile: float, min_gain: float) -> dict:
    config = tpe_config(results, args, seed)
    config["name"] = f"tpe-{seed}-q{quantile:g}-g{min_gain:g}"
    config["training"] = {
        **config["training"],
        "early_stopping_quantile": quantile,
        "early_stopping_min_gain": min_gain,
    }
    return config


def live(results: Path, args) -> list[dict]:
    """Per seed, a search at the chosen setting against (a) its candidates replayed without
    stopping, (b) a whole search of the same seed without early stopping and (c) one at
    the default rule (quantile 1, min_gain 0)."""
    rows = []
    for seed in range(args.seeds, args.seeds + args.live_seeds):
        off_name = off_search(results, args, seed)
        config = live_config(results, args, seed, args.live_quantile, args.live_min_gain)
        search(config)
        default, _ = search(live_config(results, args, seed, 1.0, 0.0))
        versus_default = paired_stopping(
            pd.read_csv(results / config["name"] / "trials.csv"), default
        )
        on = pd.read_csv(results / config["name"] / "trials.csv")
        _, replay = replay_without_stopping(results, args, seed, config["name"])
        off = pd.read_csv(results / off_name / "trials.csv")
        whole = paired_stopping(on, off)
        row = {
            "seed": seed,
            "quantile": args.live_quantile,
            "min_gain": args.live_min_gain,
            **paired_stopping(on, replay),
            "whole": {
                "hypervolume_off": whole["hypervolume_off"],
                "training_seconds_off": whole["training_seconds_off"],
                "training_epochs_off": whole["training_epochs_off"],
                "training_saved": whole["training_saved"],
                "epochs_saved": whole["epochs_saved"],
                "hypervolume_kept": whole["hypervolume_kept"],
            },
            "default": {
                "hypervolume": versus_default["hypervolume_off"],
                "training_seconds": versus_default["training_seconds_off"],
                "training_epochs": versus_default["training_epochs_off"],
                "training_saved": versus_default["training_saved"],
                "hypervolume_kept": versus_default["hypervolume_kept"],
            },
        }
        rows.append(row)
        print(
            f"live seed {seed}: {row['pruned']} stopped; same candidates: training "
            f"{row['training_saved']:.0%} saved, hypervolume {row['hypervolume_kept']:.1%} "
            f"kept; against a whole search without stopping: training "
            f"{whole['training_saved']:.0%} saved, hypervolume {whole['hypervolume_kept']:.1%}",
            flush=True,
        )
    return rows


def live_summary(rows: list[dict]) -> dict:
    """Means (and the lowest hypervolume kept) over the live seeds, for the same candidates
    and, under ``whole``, against whole searches without early stopping."""

    def shares(frame: pd.DataFrame, on: pd.Series, off: pd.Series) -> dict:
        return {
            "training_saved_mean": float(frame["training_saved"].mean()),
            "training_saved_min": float(frame["training_saved"].min()),
            # All searches' seconds together: the share of the whole compute.
            "training_saved_pooled": float(1 - on.sum() / off.sum()),
            "epochs_saved_mean": float(frame["epochs_saved"].mean()),
            "hypervolume_kept_mean": float(frame["hypervolume_kept"].mean()),
            "hypervolume_kept_min": float(frame["hypervolume_kept"].min()),
        }

    frame = pd.DataFrame(rows)
    summary = {
        "searches": len(frame),
        "stopped_mean": float(frame["pruned"].mean()),
        "same_candidates": bool(frame["same_candidates"].all()),
        **shares(frame, frame["training_seconds_on"], frame["training_seconds_off"]),
    }
    if "whole" in frame:
        whole = pd.DataFrame(list(frame["whole"]))
        summary["whole"] = {
            **shares(whole, frame["training_seconds_on"], whole["training_seconds_off"]),
            "hypervolume_on_mean": float(frame["hypervolume_on"].mean()),
            "hypervolume_off_mean": float(whole["hypervolume_off"].mean()),
        }
    if "default" in frame:
        default = pd.DataFrame(list(frame["default"]))
        summary["default"] = {
            "hypervolume_mean": float(default["hypervolume"].mean()),
            "training_seconds_mean": float(default["training_seconds"].mean()),
            "training_saved_mean": float(default["training_saved"].mean()),
            "hypervolume_kept_mean": float(default["hypervolume_kept"].mean()),
            "hypervolume_kept_min": float(default["hypervolume_kept"].min()),
            "lower_in": int((default["hypervolume_kept"] < 1).sum()),
        }
    return summary


def _pct(value: float) -> str:
    return f"{value:.0%}"


def what_if_table(summary: list[dict]) -> str:
    return markdown_table(
        [
            "quantile",
            "min_gain",
            "searches",
            "stopped (mean)",
            "epochs saved",
            "training s saved (est.)",
            "hypervolume kept (mean / min)",
        ],
        [
            [
                f"{r['quantile']:g}",
                f"{r['min_gain']:g}",
                r["searches"],
                f"{r['stopped_mean']:.1f}",
                _pct(r["epochs_saved_mean"]),
                _pct(r["training_seconds_saved_estimated_mean"]),
                f"{r['hypervolume_kept_mean']:.1%} / {r['hypervolume_kept_min']:.1%}",
            ]
            for r in summary
        ],
    )


def live_table(rows: list[dict]) -> str:
    return markdown_table(
        [
            "seed",
            "stopped",
            "training s: on / same candidates off / whole search off",
            "saved (same / whole)",
            "hypervolume: on / same off / whole off",
            "kept (same / whole)",
            "default rule: hypervolume / training s",
        ],
        [
            [
                r["seed"],
                f"{r['pruned']} of {r['trained']}",
                f"{r['training_seconds_on']:.0f} / {r['training_seconds_off']:.0f} / "
                f"{r['whole']['training_seconds_off']:.0f}",
                f"{_pct(r['training_saved'])} / {_pct(r['whole']['training_saved'])}",
                f"{r['hypervolume_on']:.3f} / {r['hypervolume_off']:.3f} / "
                f"{r['whole']['hypervolume_off']:.3f}",
                f"{r['hypervolume_kept']:.1%} / {r['whole']['hypervolume_kept']:.1%}",
                f"{r['default']['hypervolume']:.3f} / {r['default']['training_seconds']:.0f}",
            ]
            for r in rows
        ],
    )


def goals(summary: dict) -> dict[str, bool]:
    """The goal on the same candidates, and on whole searches of the same seeds."""

    def met(shares: dict) -> bool:
        return shares["training_saved_mean"] >= SAVED and shares["hypervolume_kept_mean"] >= KEPT

    what = f"training seconds saved >= {SAVED:.0%} with hypervolume kept >= {KEPT:.0%}"
    n = summary["searches"]
    return {
        f"{what}, same candidates (mean of {n} searches)": met(summary),
        f"{what}, whole searches (mean of {n} seeds)": met(summary["whole"]),
    }


def _shares_line(shares: dict) -> str:
    return (
        f"training saved {_pct(shares['training_saved_mean'])} (mean; all seconds pooled "
        f"{_pct(shares['training_saved_pooled'])}), hypervolume kept "
        f"{shares['hypervolume_kept_mean']:.1%} (mean; lowest "
        f"{shares['hypervolume_kept_min']:.1%})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--subset", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=6, help="what-if searches (seeds 0..)")
    parser.add_argument("--live-seeds", type=int, default=6, help="live searches, seeds after")
    parser.add_argument("--live-quantile", type=float, default=1.0)
    parser.add_argument("--live-min-gain", type=float, default=0.01)
    parser.add_argument("--out", default=None)
    parser.add_argument(
        "--runs",
        default=None,
        help="keep the searches' runs in this folder; run again with the same folder, "
        "finished searches are read back instead of repeated",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="paretonas-stopping-") as tmp:
        results = Path(args.runs or tmp)
        results.mkdir(parents=True, exist_ok=True)
        if not (results / "teachers").exists():  # the checkout's cached teacher
            os.symlink(ROOT / "results" / "teachers", results / "teachers")
        what_if_rows = what_if(results, args)
        live_rows = live(results, args)
        teacher = json.loads((results / "tpe-0-off" / "run.json").read_text())["teacher"]
    summary = what_if_summary(what_if_rows)
    checked = live_summary(live_rows)
    held = goals(checked)
    result = {
        "fidelity": {"train_subset": args.subset, "epochs": args.epochs, "trials": args.trials},
        "teacher": teacher,
        "budget": BUDGET,
        "reference_point": {"accuracy": 0.0, **BUDGET},
        "measurement": (
            "hypervolume of the trained, within-budget trials (accuracy on the validation "
            "split of the deployed ONNX file, latency measured on this host with ONNX "
            "Runtime, peak memory computed), scaled by the reference point; training "
            "seconds: the train phase of trials.csv, summed; what_if: exact epochs and "
            "hypervolume for the recorded candidates, seconds estimated; live: measured"
        ),
        "what_if": what_if_rows,
        "what_if_summary": summary,
        "live": live_rows,
        "live_summary": checked,
        "goals": held,
        "seconds": time.perf_counter() - started,
    }
    path = write_result("early_stopping", result, args.out)
    record = json.loads(path.read_text())
    if args.out is None:
        update_readme(
            "early_stopping",
            f"Fashion-MNIST, {args.subset} training images x {args.epochs} epochs per "
            f"candidate, {args.trials} candidates per search, TPE, budget latency <= "
            f"{BUDGET['latency_ms']} ms and peak memory <= {BUDGET['peak_memory_kb']:g} KB; "
            f"KD from the cached teacher (test accuracy {teacher['test_accuracy']:.4f}); "
            f"{record['machine']['cpu']}. {result['measurement']}. "
            f"{source_line(path, record)}\n\n"
            f"What-if ({args.seeds} searches without early stopping, seeds 0 to "
            f"{args.seeds - 1}, each setting replayed on their candidates):\n\n"
            + what_if_table(summary)
            + f"\n\nLive (quantile {args.live_quantile:g}, min_gain {args.live_min_gain:g}; "
            f"seeds {args.seeds} to {args.seeds + args.live_seeds - 1}): each search against "
            "its own candidates trained again without early stopping (same candidates): "
            f"{_shares_line(checked)}; against a whole search of the same seed without "
            f"early stopping (whole): {_shares_line(checked['whole'])}; against a whole "
            "search of the same seed at the default rule (quantile 1, min_gain 0): training "
            f"saved {_pct(checked['default']['training_saved_mean'])} (mean), hypervolume "
            f"kept {checked['default']['hypervolume_kept_mean']:.1%} (mean; lower in "
            f"{checked['default']['lower_in']} of {checked['searches']}).\n\n"
            + live_table(live_rows)
            + "\n\n"
            + goals_markdown(held),
        )
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
