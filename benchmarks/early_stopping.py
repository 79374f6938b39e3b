"""Pareto-aware early stopping by setting: training saved against hypervolume kept.

The goal: early stopping saves >= 30 % of training compute while keeping >= 95 % of the
hypervolume. search_quality.py measures the dominance-only rule (a candidate is stopped only
when the front dominates it: min_gain 0, the default until 2026-11-30) and whole searches;
this benchmark measures the rule's settings
(``training.early_stopping_quantile`` and ``early_stopping_min_gain``) on the same
candidates with and without early stopping, and on whole searches, in four steps:

1. what-if (choosing the setting): --seeds TPE searches of --trials candidates trained with
   early stopping off (``tpe-<seed>-off``), each judged again trial by trial by the search's
   own stopper at every quantile x min_gain of the grid (``search_quality.stopping_what_if``):
   candidates stopped, epochs saved and hypervolume kept (exact for those candidates),
   training seconds saved (estimated from each stopped trial's seconds);
2. live (checking it on searches it was not chosen on): --live-seeds TPE searches with
   early stopping at --live-quantile and --live-min-gain, seeds after those of step 1, each
   replayed with early stopping off on the same candidates in the same order
   (``search_quality.replay_without_stopping``): training seconds and epochs measured in
   both, and the hypervolume kept;
3. whole searches on the live seeds (``arms``): the dominance-only rule and the live setting,
   each with ``early_stopping_feedback`` stopped and expected, against a whole search of
   the same seed without early stopping: what a user running one search gets;
4. confirmation: --confirm-seeds seeds after those, which chose nothing, at the live
   setting with --confirm-feedback, each against a whole search without early stopping.

--confirm-only runs step 4 alone, at the live setting and at the dominance-only rule, into
results/benchmarks/early_stopping_confirm.json and its own README table; --what-if-only
runs step 1 alone, into early_stopping_what_if.json: what measures the product's settings
again after a change to the stopper without repeating step 3, the longest.

Fidelity, budget, reference point (accuracy 0, the budget's latency and memory) and teacher
are search_quality.py's. Writes results/benchmarks/early_stopping.json and the README table.

    .venv/bin/python benchmarks/early_stopping.py [--seeds 6] [--live-seeds 6] [--confirm-seeds 6]
        [--runs DIR] [--what-if-only | --confirm-only [--confirm-also Q,G,FEEDBACK]
        [--without-default]] [--record NAME]
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
    RESULTS,
    goals_markdown,
    markdown_table,
    runs_folder,
    source_line,
    update_readme,
    write_result,
)
from benchmarks.search_quality import (  # noqa: E402
    BUDGET,
    DOMINANCE_ONLY,
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
MEASUREMENT = (
    "hypervolume of the trained, within-budget trials (accuracy on the validation split of "
    "the deployed ONNX file, latency measured on this host with ONNX Runtime, peak memory "
    "computed), scaled by the reference point; training seconds: the train phase of "
    "trials.csv, summed"
)


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


def live_config(
    results: Path, args, seed: int, quantile: float, min_gain: float, feedback: str = "stopped"
) -> dict:
    config = tpe_config(results, args, seed)
    config["name"] = f"tpe-{seed}-q{quantile:g}-g{min_gain:g}"
    if feedback != "stopped":
        config["name"] += f"-{feedback}"
    keep = getattr(args, "keep_contenders", False)
    if keep and min_gain > 0:
        config["name"] += "-kept"  # contenders spared min_gain
    config["training"] = {
        **config["training"],
        "early_stopping_quantile": quantile,
        "early_stopping_min_gain": min_gain,
        "early_stopping_feedback": feedback,
        "early_stopping_keep_contenders": keep,
    }
    return config


def arms(args) -> list[dict]:
    """The whole searches run beside the one without early stopping on each live seed: the
    dominance-only rule and the live setting, each telling the sampler a stopped candidate's
    accuracy when stopped and its expected final accuracy (``early_stopping_feedback``)."""
    dominance_only = (
        DOMINANCE_ONLY["early_stopping_quantile"],
        DOMINANCE_ONLY["early_stopping_min_gain"],
    )
    settings = [dominance_only, (args.live_quantile, args.live_min_gain)]
    return [
        {
            "label": arm_label(q, g, feedback, getattr(args, "keep_contenders", False)),
            "quantile": q,
            "min_gain": g,
            "feedback": feedback,
        }
        for q, g in dict.fromkeys(settings)
        for feedback in ("stopped", "expected")
    ]


def arm_label(quantile: float, min_gain: float, feedback: str, keep: bool = False) -> str:
    """A setting in words. early_stopping_keep_contenders came on 2026-11-30, briefly on by
    default: early_stopping_confirm_all.json's label says "contenders not kept", and
    early_stopping_confirm_exempt.json's, measured with them kept, does not say so."""
    label = f"quantile {quantile:g}, min_gain {min_gain:g}, feedback {feedback}"
    return f"{label}, contenders kept" if keep and min_gain > 0 else label


def whole_pair(on: pd.DataFrame, off: pd.DataFrame) -> dict:
    """A whole search against another of the same seed without early stopping (other
    candidates, so no same-candidate figures)."""
    pair = paired_stopping(on, off)
    keys = ("hypervolume", "training_seconds", "training_epochs", "best_accuracy")
    return {
        **{f"{key}_{side}": pair[f"{key}_{side}"] for key in keys for side in ("on", "off")},
        **{k: pair[k] for k in ("pruned", "training_saved", "epochs_saved", "hypervolume_kept")},
    }


def live(results: Path, args) -> list[dict]:
    """Per seed: a search at the live setting against its candidates replayed without
    stopping (same candidates), and each arm's whole search against a whole search of the
    same seed without early stopping (``whole``, by arm label)."""
    rows = []
    for seed in range(args.seeds, args.seeds + args.live_seeds):
        off = pd.read_csv(results / off_search(results, args, seed) / "trials.csv")
        whole = {}
        for arm in arms(args):
            config = live_config(
                results, args, seed, arm["quantile"], arm["min_gain"], arm["feedback"]
            )
            on, _ = search(config)
            whole[arm["label"]] = whole_pair(on, off)
        config = live_config(results, args, seed, args.live_quantile, args.live_min_gain)
        on = pd.read_csv(results / config["name"] / "trials.csv")
        _, replay = replay_without_stopping(results, args, seed, config["name"])
        row = {
            "seed": seed,
            "quantile": args.live_quantile,
            "min_gain": args.live_min_gain,
            **paired_stopping(on, replay),
            "whole": whole,
        }
        rows.append(row)
        print(
            f"live seed {seed}: {row['pruned']} stopped; same candidates: training "
            f"{row['training_saved']:.0%} saved, hypervolume {row['hypervolume_kept']:.1%} "
            "kept; whole searches against one without stopping: "
            + "; ".join(
                f"{label}: {w['training_saved']:.0%} saved, {w['hypervolume_kept']:.1%} kept"
                for label, w in whole.items()
            ),
            flush=True,
        )
    return rows


def confirm_seeds(args) -> range:
    first = args.seeds + args.live_seeds
    return range(first, first + args.confirm_seeds)


def confirm(
    results: Path, args, settings: list[tuple[float, float, str]] | None = None
) -> list[dict]:
    """Whole searches on --confirm-seeds seeds after the live ones, which chose nothing: each
    setting (quantile, min_gain, feedback; by default the live setting with
    --confirm-feedback) against a search of the same seed without early stopping."""
    if settings is None:
        settings = [(args.live_quantile, args.live_min_gain, args.confirm_feedback)]
    rows = []
    for seed in confirm_seeds(args):
        off = pd.read_csv(results / off_search(results, args, seed) / "trials.csv")
        for quantile, min_gain, feedback in settings:
            on, _ = search(live_config(results, args, seed, quantile, min_gain, feedback))
            label = arm_label(quantile, min_gain, feedback, getattr(args, "keep_contenders", False))
            rows.append({"seed": seed, "setting": label, **whole_pair(on, off)})
            print(
                f"confirm seed {seed}, {label}: training {rows[-1]['training_saved']:.0%} "
                f"saved, hypervolume {rows[-1]['hypervolume_kept']:.1%} kept",
                flush=True,
            )
    return rows


def _record_head(args, teacher: dict) -> dict:
    """What every record of this benchmark states first: fidelity, teacher, budget and the
    hypervolume's reference point."""
    return {
        "fidelity": {"train_subset": args.subset, "epochs": args.epochs, "trials": args.trials},
        "teacher": teacher,
        "budget": BUDGET,
        "reference_point": {"accuracy": 0.0, **BUDGET},
    }


def what_if_only(results: Path, args) -> tuple[dict, str]:
    """Step 1 alone: the record and its README text."""
    rows = what_if(results, args)
    teacher = json.loads((results / "tpe-0-off" / "run.json").read_text())["teacher"]
    summary = what_if_summary(rows)
    result = {
        **_record_head(args, teacher),
        "seeds": list(range(args.seeds)),
        "what_if": rows,
        "what_if_summary": summary,
    }
    markdown = (
        f"What-if ({args.seeds} searches without early stopping, seeds 0 to {args.seeds - 1}, "
        "each setting replayed on their candidates):\n\n" + what_if_table(summary)
    )
    return result, markdown


def parse_setting(text: str) -> tuple[float, float, str]:
    """``QUANTILE,MIN_GAIN,FEEDBACK`` (``--confirm-also``) as a setting."""
    try:
        quantile, min_gain, feedback = text.split(",")
        if feedback.strip() not in ("stopped", "expected"):
            raise ValueError
        return float(quantile), float(min_gain), feedback.strip()
    except ValueError:
        raise SystemExit(
            f"--confirm-also {text!r}: give QUANTILE,MIN_GAIN,FEEDBACK (stopped or "
            "expected), e.g. 0.75,0.01,expected"
        ) from None


def confirm_only(results: Path, args) -> tuple[dict, str]:
    """Step 4 alone, at the live setting and at the dominance-only rule: the record and its
    README text."""
    settings = list(
        dict.fromkeys(
            [
                (args.live_quantile, args.live_min_gain, args.confirm_feedback),
                *map(parse_setting, getattr(args, "confirm_also", None) or ()),
                tuple(DOMINANCE_ONLY.values()),
            ][: None if getattr(args, "with_default", True) else -1]
        )
    )
    rows = confirm(results, args, settings)
    seeds = confirm_seeds(args)
    teacher = json.loads((results / f"tpe-{seeds[0]}-off" / "run.json").read_text())["teacher"]
    frame = pd.DataFrame(rows)
    by_setting = {
        label: {
            "rows": group.drop(columns="setting").to_dict("records"),
            "summary": paired_means(group),
        }
        for label, group in frame.groupby("setting", sort=False)
    }
    what = f"training seconds saved >= {SAVED:.0%} with hypervolume kept >= {KEPT:.0%}"
    held = {
        f"{what}, whole searches at {label} (mean of {len(seeds)} seeds)": (
            part["summary"]["training_saved_mean"] >= SAVED
            and part["summary"]["hypervolume_kept_mean"] >= KEPT
        )
        for label, part in by_setting.items()
    }
    result = {
        **_record_head(args, teacher),
        "seeds": list(seeds),
        "settings": by_setting,
        "goals": held,
    }
    return result, confirm_readme(result)


def confirm_readme(record: dict) -> str:
    """A confirmation record's README text (its tables and goals), from its JSON alone."""
    return "".join(
        confirm_markdown(part["rows"], part["summary"], label)
        for label, part in record["settings"].items()
    ) + goals_markdown(record["goals"])


def readme_block(name: str, record: dict, path: Path, markdown: str) -> bool:
    """Write a --what-if-only / --confirm-only record's README block; False without markers."""
    fidelity = record["fidelity"]
    return update_readme(
        name,
        f"Fashion-MNIST, {fidelity['train_subset']} training images x {fidelity['epochs']} "
        f"epochs per candidate, {fidelity['trials']} candidates per search, TPE, budget as "
        f"above; KD from the cached teacher (test accuracy "
        f"{record['teacher']['test_accuracy']:.4f}); {record['machine']['cpu']}; "
        f"code {record.get('commit', 'unknown')}. {record['measurement']}. "
        f"{source_line(path, record)}\n\n" + markdown,
    )


def paired_means(frame: pd.DataFrame) -> dict:
    """Means over seeds of a paired comparison's columns (paired_stopping's names), the
    lowest hypervolume kept, and the training seconds of all seeds pooled."""
    return {
        "searches": len(frame),
        "training_saved_mean": float(frame["training_saved"].mean()),
        "training_saved_min": float(frame["training_saved"].min()),
        # All searches' seconds together: the share of the whole compute.
        "training_saved_pooled": float(
            1 - frame["training_seconds_on"].sum() / frame["training_seconds_off"].sum()
        ),
        "epochs_saved_mean": float(frame["epochs_saved"].mean()),
        "hypervolume_kept_mean": float(frame["hypervolume_kept"].mean()),
        "hypervolume_kept_min": float(frame["hypervolume_kept"].min()),
        "lower_in": int((frame["hypervolume_kept"] < 1).sum()),
        "stopped_mean": float(frame["pruned"].mean()),
        "hypervolume_on_mean": float(frame["hypervolume_on"].mean()),
        "hypervolume_off_mean": float(frame["hypervolume_off"].mean()),
        "training_seconds_on_mean": float(frame["training_seconds_on"].mean()),
        "training_seconds_off_mean": float(frame["training_seconds_off"].mean()),
        **(
            {
                "best_accuracy_on_mean": float(frame["best_accuracy_on"].mean()),
                "best_accuracy_off_mean": float(frame["best_accuracy_off"].mean()),
                "best_accuracy_lower_in": int(
                    (frame["best_accuracy_on"] < frame["best_accuracy_off"]).sum()
                ),
            }
            if "best_accuracy_on" in frame
            else {}
        ),
    }


def live_summary(rows: list[dict]) -> dict:
    """Over the live seeds: the live setting against its own candidates replayed, and under
    ``whole`` each arm against whole searches without early stopping."""
    frame = pd.DataFrame(rows)
    labels = list(rows[0]["whole"]) if rows and "whole" in rows[0] else []
    return {
        "searches": len(frame),
        "same_candidates": bool(frame["same_candidates"].all()),
        **paired_means(frame),
        "whole": {
            label: paired_means(pd.DataFrame([r["whole"][label] for r in rows])) for label in labels
        },
    }


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
            "training s: on / off",
            "saved",
            "hypervolume: on / off",
            "kept",
        ],
        [
            [
                r["seed"],
                f"{r['pruned']} of {r['trained']}",
                f"{r['training_seconds_on']:.0f} / {r['training_seconds_off']:.0f}",
                _pct(r["training_saved"]),
                f"{r['hypervolume_on']:.3f} / {r['hypervolume_off']:.3f}",
                f"{r['hypervolume_kept']:.1%}",
            ]
            for r in rows
        ],
    )


def whole_table(rows: list[dict], summary: dict) -> str:
    """One line per arm: its whole searches against those without early stopping."""
    first = next(iter(summary["whole"].values()))
    lines = [
        [
            "no early stopping",
            "0",
            f"{first['hypervolume_off_mean']:.3f}",
            " ".join(f"{next(iter(r['whole'].values()))['hypervolume_off']:.3f}" for r in rows),
            "",
            f"{first['training_seconds_off_mean']:.0f}",
            "",
        ]
    ]
    for label, w in summary["whole"].items():
        lines.append(
            [
                label,
                f"{w['stopped_mean']:.1f}",
                f"{w['hypervolume_on_mean']:.3f}",
                " ".join(f"{r['whole'][label]['hypervolume_on']:.3f}" for r in rows),
                f"{w['hypervolume_kept_mean']:.1%} / {w['hypervolume_kept_min']:.1%} / "
                f"{w['lower_in']} of {summary['searches']}",
                f"{w['training_seconds_on_mean']:.0f}",
                f"{_pct(w['training_saved_mean'])} / {_pct(w['training_saved_pooled'])}",
            ]
        )
    return markdown_table(
        [
            "whole searches",
            "stopped (mean)",
            "hypervolume (mean)",
            "per seed",
            "kept (mean / min / lower in)",
            "training s (mean)",
            "saved (mean / pooled)",
        ],
        lines,
    )


def goals(
    summary: dict, confirmed_label: str = "", confirmed: dict | None = None
) -> dict[str, bool]:
    """The goal on the same candidates, on whole searches of the live seeds per arm, and on
    the confirming seeds."""

    def met(shares: dict) -> bool:
        return shares["training_saved_mean"] >= SAVED and shares["hypervolume_kept_mean"] >= KEPT

    what = f"training seconds saved >= {SAVED:.0%} with hypervolume kept >= {KEPT:.0%}"
    n = summary["searches"]
    held = {f"{what}, same candidates (mean of {n} searches)": met(summary)}
    for label, shares in summary["whole"].items():
        held[f"{what}, whole searches at {label} (mean of {n} seeds)"] = met(shares)
    if confirmed is not None:
        count = confirmed["searches"]
        held[f"{what}, whole searches at {confirmed_label} (mean of {count} other seeds)"] = met(
            confirmed
        )
    return held


def confirm_markdown(rows: list[dict], summary: dict | None, label: str) -> str:
    """The confirming seeds' whole searches, one line each and the means; empty without."""
    if not rows or summary is None:
        return ""
    best = "best_accuracy_on" in rows[0]
    table = markdown_table(
        ["seed", "stopped", "training s: on / off", "saved", "hypervolume: on / off", "kept"]
        + (["best val accuracy within budget: on / off"] if best else []),
        [
            [
                r["seed"],
                r["pruned"],
                f"{r['training_seconds_on']:.0f} / {r['training_seconds_off']:.0f}",
                _pct(r["training_saved"]),
                f"{r['hypervolume_on']:.3f} / {r['hypervolume_off']:.3f}",
                f"{r['hypervolume_kept']:.1%}",
            ]
            + ([f"{r['best_accuracy_on']:.3f} / {r['best_accuracy_off']:.3f}"] if best else [])
            for r in rows
        ],
    )
    picked = (
        f" The most accurate model within budget (what the report recommends for it): "
        f"{summary['best_accuracy_on_mean']:.3f} against {summary['best_accuracy_off_mean']:.3f} "
        f"(means), lower in {summary['best_accuracy_lower_in']} of {summary['searches']}."
        if best
        else ""
    )
    return (
        f"Confirmation on seeds {rows[0]['seed']} to {rows[-1]['seed']}, which chose "
        f"nothing: whole searches at {label}, each against a whole search of the same seed "
        f"without early stopping: {_shares_line(summary)}; hypervolume "
        f"{summary['hypervolume_on_mean']:.3f} against {summary['hypervolume_off_mean']:.3f} "
        f"(means), lower in {summary['lower_in']} of {summary['searches']}.{picked}\n\n"
        + table
        + "\n\n"
    )


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
    parser.add_argument(
        "--confirm-seeds", type=int, default=6, help="whole searches on seeds after the live"
    )
    parser.add_argument("--confirm-feedback", default="expected")
    parser.add_argument(
        "--keep-contenders",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="the live and confirmed settings spare min_gain a candidate that could still "
        "become the most accurate model (early_stopping_keep_contenders)",
    )
    parser.add_argument("--out", default=None)
    parser.add_argument(
        "--runs",
        default=None,
        help="keep the searches' runs in this folder; run again with the same folder, "
        "finished searches are read back instead of repeated",
    )
    parser.add_argument(
        "--what-if-only",
        action="store_true",
        help="step 1 alone (the grid judged on searches without early stopping), into "
        "early_stopping_what_if.json",
    )
    parser.add_argument(
        "--confirm-only",
        action="store_true",
        help="step 4 alone, at the live setting and the dominance-only rule, into "
        "early_stopping_confirm.json",
    )
    parser.add_argument(
        "--record",
        default=None,
        help="with --what-if-only or --confirm-only, the record's name (its JSON under "
        "results/benchmarks/ and its README block) instead of the step's own, so that "
        "another set of seeds does not replace it",
    )
    parser.add_argument(
        "--readme-only",
        action="store_true",
        help="with --confirm-only --record NAME: write NAME's README block again from its "
        "JSON, searching nothing",
    )
    parser.add_argument(
        "--without-default",
        dest="with_default",
        action="store_false",
        help="with --confirm-only, leave the dominance-only rule out",
    )
    parser.add_argument(
        "--confirm-also",
        action="append",
        metavar="QUANTILE,MIN_GAIN,FEEDBACK",
        help="with --confirm-only, one more setting to confirm (repeatable)",
    )
    args = parser.parse_args()
    if args.what_if_only and args.confirm_only:
        parser.error("--what-if-only and --confirm-only: give one (run twice for both)")
    if not args.confirm_only and (args.confirm_also or not args.with_default):
        parser.error("--confirm-also and --without-default go with --confirm-only")
    if args.record and not (args.what_if_only or args.confirm_only):
        parser.error("--record goes with --what-if-only or --confirm-only")
    if args.readme_only and not (args.confirm_only and args.record):
        parser.error("--readme-only goes with --confirm-only --record NAME")
    if args.confirm_only and args.confirm_seeds < 1:
        parser.error("--confirm-only needs --confirm-seeds of 1 or more")
    started = time.perf_counter()
    parts = {
        "early_stopping_what_if": (
            args.what_if_only,
            what_if_only,
            "exact epochs and hypervolume for the recorded candidates, seconds estimated",
        ),
        "early_stopping_confirm": (args.confirm_only, confirm_only, "all measured"),
    }
    if args.readme_only:
        # The record as it was measured, its README block written again (for a block
        # added after the run): nothing is searched.
        path = RESULTS / f"{args.record}.json"
        record = json.loads(path.read_text())
        if not readme_block(args.record, record, path, confirm_readme(record)):
            raise SystemExit(f"README.md has no <!-- bench:{args.record} --> block")
        return 0
    for name, (chosen, step, how) in parts.items():
        if not chosen:
            continue
        name = args.record or name
        with runs_folder(args.runs, prefix="paretonas-stopping-") as results:
            result, markdown = step(results, args)
        result["measurement"] = f"{MEASUREMENT}; {how}"
        result["seconds"] = time.perf_counter() - started
        path = write_result(name, result, args.out)
        record = json.loads(path.read_text())
        if args.out is None and not readme_block(name, record, path, markdown):
            print(
                f"README.md has no <!-- bench:{name} --> block: the table was not written "
                "there (add the two markers and run again; finished searches are read back "
                "from --runs)",
                file=sys.stderr,
            )
        print(path)
        return 0
    with runs_folder(args.runs, prefix="paretonas-stopping-") as results:
        what_if_rows = what_if(results, args)
        live_rows = live(results, args)
        confirm_rows = confirm(results, args)
        teacher = json.loads((results / "tpe-0-off" / "run.json").read_text())["teacher"]
    summary = what_if_summary(what_if_rows)
    checked = live_summary(live_rows)
    confirmed = paired_means(pd.DataFrame(confirm_rows)) if confirm_rows else None
    confirmed_label = arm_label(
        args.live_quantile, args.live_min_gain, args.confirm_feedback, args.keep_contenders
    )
    held = goals(checked, confirmed_label, confirmed)
    result = {
        **_record_head(args, teacher),
        "measurement": (
            f"{MEASUREMENT}; what_if: exact epochs and hypervolume for the recorded "
            "candidates, seconds estimated; live: measured"
        ),
        "what_if": what_if_rows,
        "what_if_summary": summary,
        "live": live_rows,
        "live_summary": checked,
        "confirm": {"setting": confirmed_label, "rows": confirm_rows, "summary": confirmed},
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
            + f"\n\nLive (seeds {args.seeds} to {args.seeds + args.live_seeds - 1}). "
            f"Quantile {args.live_quantile:g}, min_gain {args.live_min_gain:g} against its "
            "own candidates trained again without early stopping (same candidates): "
            f"{_shares_line(checked)}.\n\n"
            + live_table(live_rows)
            + "\n\nWhole searches of the same seeds, each against the whole search without "
            "early stopping (kept and saved are per seed, then the mean; pooled: all seeds' "
            "training seconds together):\n\n"
            + whole_table(live_rows, checked)
            + "\n\n"
            + confirm_markdown(confirm_rows, confirmed, confirmed_label)
            + goals_markdown(held),
        )
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
