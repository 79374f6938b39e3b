"""Does the sampler matter more when the budget is tight? Samplers against random search
at two budgets.

search_quality.py compares the samplers at one budget, loose enough that the hand-designed
baselines fit (BUDGET: most candidates of the space meet it). A user fitting a model onto a
small device has a tight one, where most of the space is over budget. A candidate over
budget is rejected before training (its latency measured, its peak memory computed), so it
costs little (a median of 0.05 to 0.08 s measured here, against seconds for a trained one),
but it adds nothing to the front and it uses up one of the search's candidates. A sampler
that learns the budget (TPE, NSGA-II and GP read it as constraints) should waste fewer of
them than random search. This benchmark measures that: the same
samplers, seeds, fidelity, teacher and candidate count as search_quality.py, at BUDGET
("loose") and at BUDGET divided by --divisor on latency and memory ("tight", chosen before
any search ran), each tier's hypervolume scaled by that tier's reference point. Per unit of
compute rather than per candidate: at the tight budget, random searches given
--random-trials candidates, cut where TPE's search of the same seed ended (wall seconds).

Writes results/benchmarks/budget_tiers.json and the README table.

    .venv/bin/python benchmarks/budget_tiers.py [--trials 32] [--seeds 3] [--divisor 4]
        [--random-trials 64] [--runs DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from benchmarks.common import (  # noqa: E402
    goals_markdown,
    markdown_table,
    runs_folder,
    source_line,
    update_readme,
    write_result,
)
from benchmarks.search_quality import (  # noqa: E402
    BUDGET,
    SAMPLERS,
    _training_seconds,
    base_config,
    hypervolume,
    search,
    wall_clock,
)

# The goal: TPE or NSGA-II at >= 1.2x random search's hypervolume (mean of seeds).
GOAL_RATIO = 1.2


def tiers(divisor: float) -> dict[str, dict]:
    """The budgets compared, by name."""
    return {
        "tight": {name: value / divisor for name, value in BUDGET.items()},
        "loose": dict(BUDGET),
    }


def run_name(tier: str, sampler: str, seed: int) -> str:
    return f"{tier}-{sampler}-{seed}"


def search_row(
    tier: str, budget: dict, sampler: str, seed: int, trials: pd.DataFrame, seconds: float
) -> dict:
    """One search's figures: what it spent its candidates on and the hypervolume it reached
    (scaled by its tier's reference point)."""
    status = trials["status"]
    return {
        "tier": tier,
        "sampler": sampler,
        "seed": seed,
        "trials": len(trials),
        "over_budget": int((status == "infeasible").sum()),
        "trained": int(status.isin(["ok", "pruned"]).sum()),
        "stopped_early": int((status == "pruned").sum()),
        "failed": int((~status.isin(["ok", "pruned", "infeasible"])).sum()),
        "feasible_trained": int(((status == "ok") & trials["feasible"].astype(bool)).sum()),
        "hypervolume": hypervolume(trials, budget=budget),
        "seconds": seconds,
        "training_seconds": _training_seconds(trials),
        # What one candidate costs (seconds_total of trials.csv: its own phases, without
        # the sampler's time): a rejection is a cost estimate and one latency measurement.
        "seconds_per_rejected_median": _median_seconds(trials[status == "infeasible"]),
        "seconds_per_trained_median": _median_seconds(trials[status.isin(["ok", "pruned"])]),
    }


def _median_seconds(trials: pd.DataFrame) -> float | None:
    if trials.empty:
        return None
    return float(trials["seconds_total"].median())


def run_tiers(results: Path, args) -> tuple[list[dict], dict[str, float]]:
    """Every tier x sampler x seed (run, or read back from a kept --runs folder); the rows
    and, per tier, the hypervolume of all its searches' candidates together."""
    rows, union = [], {}
    for tier, budget in tiers(args.divisor).items():
        frames = []
        for sampler in args.samplers:
            for seed in range(args.seeds):
                name = run_name(tier, sampler, seed)
                config = base_config(
                    name,
                    results,
                    args,
                    sampler=sampler,
                    sampler_seed=seed,
                    trials=args.trials,
                    budget=budget,
                )
                trials, seconds = search(config)
                rows.append(search_row(tier, budget, sampler, seed, trials, seconds))
                frames.append(trials)
                print(
                    f"{name}: HV {rows[-1]['hypervolume']:.4f}, "
                    f"{rows[-1]['over_budget']} of {len(trials)} over budget, {seconds:.0f} s",
                    flush=True,
                )
        union[tier] = hypervolume(pd.concat(frames, ignore_index=True), budget=budget)
    return rows, union


def random_at_equal_wall(results: Path, args, rows: list[dict]) -> list[dict]:
    """Per unit of compute rather than per candidate: at the tight budget a random
    candidate is mostly rejected in about a second, so random search fits more candidates
    into the same time. Random searches given --random-trials candidates
    (``tight-random-n<N>-<seed>``), each cut where TPE's search of the same seed ended
    (wall seconds, first trial start to last end), compared by the hypervolume of that
    prefix."""
    budget = tiers(args.divisor)["tight"]
    tpe = {r["seed"]: r for r in rows if r["tier"] == "tight" and r["sampler"] == "tpe"}
    out = []
    for seed in sorted(tpe):
        name = f"tight-random-n{args.random_trials}-{seed}"
        config = base_config(
            name,
            results,
            args,
            sampler="random",
            sampler_seed=seed,
            trials=args.random_trials,
            budget=budget,
        )
        trials, _ = search(config)
        trials, wall = wall_clock(results, name, trials)
        prefix = trials[wall <= tpe[seed]["seconds"]]
        out.append(
            {
                "seed": seed,
                "candidates_given": args.random_trials,
                "tpe_seconds": tpe[seed]["seconds"],
                "tpe_hypervolume": tpe[seed]["hypervolume"],
                "candidates_at_equal_wall": len(prefix),
                "hypervolume_at_equal_wall": hypervolume(prefix, budget=budget),
                # False: the candidates ran out before TPE's time did (the prefix is all of
                # them, and understates what random search reaches in that time).
                "reached_equal_wall": bool(wall[-1] >= tpe[seed]["seconds"]),
                "hypervolume_all": hypervolume(trials, budget=budget),
                "seconds_all": float(wall[-1]),
            }
        )
        r = out[-1]
        print(
            f"{name}: at TPE's wall time {r['candidates_at_equal_wall']} candidates, HV "
            f"{r['hypervolume_at_equal_wall']:.4f} against TPE's {r['tpe_hypervolume']:.4f}",
            flush=True,
        )
    return out


def equal_wall_markdown(rows: list[dict]) -> str:
    if not rows:
        return ""
    frame = pd.DataFrame(rows)
    tpe, random = frame["tpe_hypervolume"].mean(), frame["hypervolume_at_equal_wall"].mean()
    return (
        f"Per unit of compute, tight budget: random search given {rows[0]['candidates_given']} "
        "candidates, cut where TPE's search of the same seed ended (wall seconds): "
        f"hypervolume {random:.4f} against TPE's {tpe:.4f} (means; TPE / random "
        f"{tpe / random:.3f}).\n\n"
        + markdown_table(
            [
                "seed",
                "TPE: wall s / hypervolume",
                "random in that time: candidates / hypervolume",
                "random, all candidates: wall s / hypervolume",
            ],
            [
                [
                    r["seed"],
                    f"{r['tpe_seconds']:.0f} / {r['tpe_hypervolume']:.4f}",
                    f"{r['candidates_at_equal_wall']}"
                    + ("" if r["reached_equal_wall"] else " (all; ran out)")
                    + f" / {r['hypervolume_at_equal_wall']:.4f}",
                    f"{r['seconds_all']:.0f} / {r['hypervolume_all']:.4f}",
                ]
                for r in rows
            ],
        )
        + "\n\n"
    )


def summary(rows: list[dict]) -> list[dict]:
    """Per tier and sampler: the hypervolume's mean, spread and ratio to random search's
    mean, and what the searches spent their candidates on (means)."""
    frame = pd.DataFrame(rows)
    out = (
        frame.groupby(["tier", "sampler"], sort=False)
        .agg(
            searches=("seed", "size"),
            mean=("hypervolume", "mean"),
            std=("hypervolume", "std"),
            min=("hypervolume", "min"),
            max=("hypervolume", "max"),
            over_budget_mean=("over_budget", "mean"),
            trained_mean=("trained", "mean"),
            feasible_trained_mean=("feasible_trained", "mean"),
            seconds_mean=("seconds", "mean"),
            training_seconds_mean=("training_seconds", "mean"),
            seconds_per_rejected_median=("seconds_per_rejected_median", "median"),
            seconds_per_trained_median=("seconds_per_trained_median", "median"),
        )
        .reset_index()
    )
    random = out[out["sampler"] == "random"].set_index("tier")["mean"]
    out["over_random"] = out["mean"] / out["tier"].map(random)
    return out.to_dict("records")


def goals(rows: list[dict]) -> dict[str, bool]:
    held = {}
    for tier in dict.fromkeys(r["tier"] for r in rows):
        best = max(
            (
                r["over_random"]
                for r in rows
                if r["tier"] == tier and r["sampler"] in ("tpe", "nsga2")
            ),
            default=0.0,
        )
        held[
            f"TPE or NSGA-II hypervolume >= {GOAL_RATIO}x random search's, {tier} budget "
            "(mean of seeds)"
        ] = bool(best >= GOAL_RATIO)
    return held


def tier_table(
    summary_rows: list[dict], union: dict[str, float], budgets: dict, trials: int
) -> str:
    lines = []
    for r in summary_rows:
        lines.append(
            [
                f"{r['tier']} ({budgets[r['tier']]['latency_ms']:g} ms, "
                f"{budgets[r['tier']]['peak_memory_kb']:g} KB)",
                r["sampler"],
                r["searches"],
                f"{r['mean']:.4f}",
                f"{r['std']:.4f}",
                f"{r['over_random']:.3f}",
                f"{r['over_budget_mean']:.1f}",
                f"{r['feasible_trained_mean']:.1f}",
                f"{r['seconds_mean']:.0f}",
            ]
        )
    random = {r["tier"]: r["mean"] for r in summary_rows if r["sampler"] == "random"}
    for tier, value in union.items():
        lines.append(
            [
                tier,
                "all searches' candidates together",
                "",
                f"{value:.4f}",
                "",
                f"{value / random[tier]:.3f}",
                "",
                "",
                "",
            ]
        )
    return markdown_table(
        [
            "budget",
            "sampler",
            "searches",
            "hypervolume (mean)",
            "std",
            "mean / random's",
            f"over budget (mean of {trials})",
            "trained within budget (mean)",
            "wall s (mean)",
        ],
        lines,
    )


def per_seed_table(rows: list[dict]) -> str:
    frame = pd.DataFrame(rows)
    lines = []
    for (tier, sampler), group in frame.groupby(["tier", "sampler"], sort=False):
        lines.append(
            [tier, sampler, " ".join(f"{v:.3f}" for v in group.sort_values("seed")["hypervolume"])]
        )
    return markdown_table(["budget", "sampler", "hypervolume per seed (0, 1, ...)"], lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--subset", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument(
        "--divisor", type=float, default=4.0, help="the tight budget: BUDGET divided by this"
    )
    parser.add_argument("--samplers", nargs="+", default=list(SAMPLERS))
    parser.add_argument(
        "--random-trials",
        type=int,
        default=64,
        help="random searches at the tight budget given this many candidates, compared "
        "with TPE at equal wall time (0: not run)",
    )
    parser.add_argument("--out", default=None)
    parser.add_argument(
        "--runs",
        default=None,
        help="keep the searches' runs in this folder; run again with the same folder, "
        "finished searches are read back instead of repeated",
    )
    args = parser.parse_args()
    if "random" not in args.samplers:
        parser.error("--samplers must include random: every ratio is to random search's")
    started = time.perf_counter()
    with runs_folder(args.runs, prefix="paretonas-tiers-") as results:
        rows, union = run_tiers(results, args)
        equal_wall = (
            random_at_equal_wall(results, args, rows)
            if args.random_trials and "tpe" in args.samplers
            else []
        )
        first = run_name(next(iter(tiers(args.divisor))), args.samplers[0], 0)
        teacher = json.loads((results / first / "run.json").read_text())["teacher"]
    budgets = tiers(args.divisor)
    table = summary(rows)
    held = goals(table)
    result = {
        "fidelity": {"train_subset": args.subset, "epochs": args.epochs, "trials": args.trials},
        "teacher": teacher,
        "budgets": budgets,
        "reference_points": {tier: {"accuracy": 0.0, **b} for tier, b in budgets.items()},
        "measurement": (
            "hypervolume of the trained, within-budget trials (accuracy on the validation "
            "split of the deployed ONNX file, latency measured on this host with ONNX "
            "Runtime, peak memory computed), each tier scaled to [0, 1] by its own "
            "reference point; over budget: candidates rejected before training"
        ),
        "searches": rows,
        "summary": table,
        "union_hypervolume": union,
        "random_at_equal_wall": equal_wall,
        "goals": held,
        "seconds": time.perf_counter() - started,
    }
    path = write_result("budget_tiers", result, args.out)
    record = json.loads(path.read_text())
    if args.out is None:
        update_readme(
            "budget_tiers",
            f"Fashion-MNIST, {args.subset} training images x {args.epochs} epochs per "
            f"candidate, {args.trials} candidates per search, {args.seeds} seeds per sampler "
            f"and budget; KD from the cached teacher (test accuracy "
            f"{teacher['test_accuracy']:.4f}); {record['machine']['cpu']}. "
            f"{result['measurement']}. {source_line(path, record)}\n\n"
            + tier_table(table, union, budgets, args.trials)
            + "\n\n"
            + per_seed_table(rows)
            + "\n\n"
            + equal_wall_markdown(equal_wall)
            + goals_markdown(held),
        )
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
