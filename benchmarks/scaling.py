"""Does a second worker double the search's throughput, and what does a backend cost per trial?

1. Throughput: the same small search (digits, --epochs epochs on 1,200 images per
   candidate, fixed budget, teacher cached beforehand) run to --trials finished trials with
   one worker and with two concurrent workers of one torch thread each, for the Optuna
   backend (local worker processes on a journal file) and the Ray backend (a local Ray,
   one CPU per trial). Every configuration trains the same work: the same --trials
   candidates (drawn once at random from the space and queued in each run's study before
   it starts) with early stopping off, so that a speed-up is the workers' and not a
   sampler's choice of cheaper candidates. Trials per hour = finished trials / wall-clock
   seconds, of the whole command (start-up included: Ray's start, the workers' imports)
   and in steady state (from the first trial's start to the last one's end, as the study
   recorded them).
2. Overhead: --noop trials of an objective that returns at once, through each backend's own
   machinery: the Optuna worker loop on a SQLite study, and Ray Tune with the
   ``OptunaSearch`` on a study (one trial at a time). Seconds per trial = wall-clock / trials.

Trial length matters: a real search's trials last minutes, and each finished trial costs
its backend's driver a fixed amount of work (tables rewritten, Ray's bookkeeping) on the
same two cores; with short trials those fixed costs dominate and a second worker gains
less. The JSON records the median trial's length.

Writes results/benchmarks/scaling.json and the README table. Goals: 2 workers >= 1.6x one
worker; backend overhead < 1 s per trial.

    .venv/bin/python benchmarks/scaling.py [--trials 12] [--epochs 45] [--noop 30]
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

import optuna  # noqa: E402
import yaml  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from benchmarks.common import (  # noqa: E402
    goals_markdown,
    markdown_table,
    source_line,
    update_readme,
    write_result,
)
from search.config import parse_config  # noqa: E402

SEARCH = {
    "seed": 0,
    "dataset": {"name": "digits"},
    "teacher": {"widths": [8], "blocks": [1], "epochs": 1},
    # Early stopping off: whether a candidate is stopped depends on which trials finished
    # before it, which differs between one worker and two.
    "training": {"train_subset": 1200, "epochs": 5, "batch_size": 64, "early_stopping": False},
    "space": {"num_stages": [1, 2], "width": [8, 16], "stem_width": [8], "depth": [1, 1]},
    "compression": {"finetune_epochs": 0, "qat_epochs": 0},
    "device": {"runs": 5, "warmup": 1},
    "budget": {"latency_ms": 50},
}


def _config(results: Path, name: str, execution: dict, epochs: int) -> dict:
    return {
        **SEARCH,
        "training": {**SEARCH["training"], "epochs": epochs},
        "name": name,
        "results_dir": str(results),
        "execution": execution,
    }


def fixed_candidates(count: int, seed: int = 0) -> list[dict]:
    """``count`` different candidates of the search space, as Optuna parameters, drawn at
    random with ``seed``: the work every configuration is given."""
    space = parse_config(_config(Path("."), "draw", {}, 1)).search_space()
    draw = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    params: dict[str, dict] = {}
    for _ in range(100 * count):
        trial = draw.ask()
        genome = space.suggest(trial).genome
        params.setdefault(genome, trial.params)
        draw.tell(trial, 0.0)
        if len(params) == count:
            return list(params.values())
    raise SystemExit(f"the space holds fewer than {count} different candidates")


def genome_of(params: dict) -> str:
    """The candidate that Optuna parameters ``params`` stand for."""
    space = parse_config(_config(Path("."), "draw", {}, 1)).search_space()
    return space.suggest(optuna.trial.FixedTrial(params)).genome


def _search_seconds(
    results: Path,
    name: str,
    candidates: list[dict],
    execution: dict,
    epochs: int,
) -> tuple[float, int, float, float, float]:
    """(command seconds, finished trials, seconds from the first trial's start to the last
    one's end, median trial seconds, all trials' seconds summed)."""
    from search.storage import default_storage
    from search.study import open_study

    config = _config(results, name, execution, epochs)
    path = results / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    parsed = parse_config(config)
    run_dir = results / name
    run_dir.mkdir(parents=True, exist_ok=True)
    url = default_storage(run_dir, parsed.execution.workers)
    queue = open_study(name, url, parsed.directions, parsed.sampler, parsed.seed)
    for params in candidates:
        queue.enqueue_trial(params)
    trials = len(candidates)
    command = [
        sys.executable,
        "-m",
        "search.cli",
        "search",
        "--config",
        str(path),
        "--trials",
        str(trials),
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PARETONAS_THREADS": "1"}
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    from search.storage import default_storage, open_storage
    from search.worker import finished

    study = optuna.load_study(
        study_name=name, storage=open_storage(default_storage(results / name), heartbeats=False)
    )
    done = [t for t in study.get_trials() if finished(t)]
    trained = [t.user_attrs.get("genome") for t in done]
    queued = [genome_of(params) for params in candidates]
    if sorted(trained) != sorted(queued) or any(t.state != TrialState.COMPLETE for t in done):
        raise SystemExit(f"{name} did not train the {trials} queued candidates, each once")
    # Steady state: from the first trial's start to the last one's end, without start-up.
    span = max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)
    lengths = sorted((t.datetime_complete - t.datetime_start).total_seconds() for t in done)
    return seconds, len(done), span.total_seconds(), lengths[len(lengths) // 2], sum(lengths)


SETUPS = [
    ("optuna", 1, {"workers": 1, "threads_per_worker": 1}),
    ("optuna", 2, {"workers": 2, "threads_per_worker": 1}),
    ("ray", 1, {"backend": "ray", "ray": {"concurrent": 1, "cpus_per_trial": 1}}),
    ("ray", 2, {"backend": "ray", "ray": {"concurrent": 2, "cpus_per_trial": 1}}),
]


def throughput(trials: int, epochs: int, repeats: int) -> list[dict]:
    """One row per configuration and repeat. The repeats take turns (every configuration
    once, then again), so a machine that drifts over the benchmark drifts for all four."""
    rows = []
    candidates = fixed_candidates(trials)
    with tempfile.TemporaryDirectory(prefix="paretonas-scaling-") as tmp:
        results = Path(tmp)
        # Warm-up: the teacher is trained once and cached for every run below.
        _search_seconds(results, "warmup", candidates[:1], {"threads_per_worker": 1}, epochs)
        for repeat in range(repeats):
            for backend, workers, execution in SETUPS:
                name = f"{backend}-{workers}-{repeat}"
                seconds, done, span, median, busy = _search_seconds(
                    results, name, candidates, execution, epochs
                )
                rows.append(
                    {
                        "backend": backend,
                        "workers": workers,
                        "repeat": repeat,
                        "trials": done,
                        "seconds": seconds,
                        "trials_per_hour": 3600 * done / seconds,
                        "trial_span_seconds": span,
                        "median_trial_seconds": median,
                        "trial_seconds_total": busy,
                        # How much of the span the workers spent in trials: the rest is
                        # gaps between trials and a worker idle while the last one ends.
                        "busy_fraction": busy / (workers * span),
                        "steady_trials_per_hour": 3600 * done / span,
                    }
                )
                print(
                    f"{name}: {done} trials in {seconds:.1f} s ({span:.1f} s of trials)", flush=True
                )
    return with_speedups(rows)


def with_speedups(rows: list[dict]) -> list[dict]:
    """Each run's speed-up over the one-worker run of the same backend and repeat."""
    for row in rows:
        single = next(
            r
            for r in rows
            if (r["backend"], r["workers"], r["repeat"]) == (row["backend"], 1, row["repeat"])
        )
        row["speedup"] = row["trials_per_hour"] / single["trials_per_hour"]
        row["steady_speedup"] = row["steady_trials_per_hour"] / single["steady_trials_per_hour"]
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    """Per configuration: the median over repeats of each figure, and the range of the
    speed-ups (each repeat's two-worker run against the same repeat's one-worker run)."""
    summary = []
    for backend, workers, _ in SETUPS:
        runs = [r for r in rows if (r["backend"], r["workers"]) == (backend, workers)]
        row = {"backend": backend, "workers": workers, "repeats": len(runs)}
        for key in (
            "trials",
            "seconds",
            "trials_per_hour",
            "median_trial_seconds",
            "trial_seconds_total",
            "busy_fraction",
            "steady_trials_per_hour",
            "speedup",
            "steady_speedup",
        ):
            row[key] = statistics.median(r[key] for r in runs)
        for key in ("speedup", "steady_speedup"):
            row[f"{key}_range"] = [min(r[key] for r in runs), max(r[key] for r in runs)]
        summary.append(row)
    return summary


def _noop(trial: optuna.Trial) -> float:
    return trial.suggest_float("x", 0.0, 1.0)


def _define_noop(trial: optuna.Trial) -> None:
    trial.suggest_float("x", 0.0, 1.0)


def overhead(trials: int) -> list[dict]:
    from search.storage import open_storage
    from search.worker import work

    rows = []
    with tempfile.TemporaryDirectory(prefix="paretonas-noop-") as tmp:
        study = optuna.create_study(
            study_name="noop", storage=open_storage(f"sqlite:///{tmp}/noop.db")
        )
        start = time.perf_counter()
        work(study, _noop, trials)
        seconds = time.perf_counter() - start
        rows.append(
            {"backend": "optuna (worker loop, SQLite)", "trials": trials, "seconds": seconds}
        )

        import ray
        from ray import tune
        from ray.tune.search.optuna import OptunaSearch

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        start_ray = time.perf_counter()
        searcher = OptunaSearch(
            space=_define_noop,
            metric="value",
            mode="min",
            study_name="noop-ray",
            storage=open_storage(f"sqlite:///{tmp}/ray.db"),
        )

        def trainable(config: dict) -> None:
            tune.report({"value": config["x"]})

        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                num_samples=trials,
                max_concurrent_trials=1,
                reuse_actors=True,  # as search.ray_backend runs trials
            ),
            run_config=tune.RunConfig(storage_path=f"{tmp}/ray", name="noop", verbose=0),
        )
        tuner.fit()
        seconds = time.perf_counter() - start_ray
        ray.shutdown()
        rows.append(
            {
                "backend": "ray (Tune + OptunaSearch, 1 at a time)",
                "trials": trials,
                "seconds": seconds,
            }
        )
    for row in rows:
        row["seconds_per_trial"] = row["seconds"] / row["trials"]
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12, help="candidates per configuration")
    parser.add_argument("--epochs", type=int, default=45, help="training epochs per trial")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each configuration")
    parser.add_argument("--noop", type=int, default=30)
    parser.add_argument("--out", default=None, help="default results/benchmarks/scaling.json")
    args = parser.parse_args()
    started = time.perf_counter()
    noop = overhead(args.noop)
    runs = throughput(args.trials, args.epochs, args.repeats)
    scaling = summarise(runs)
    goals = {
        f"{backend}: 2 workers >= 1.6x one (steady state, median of repeats)": next(
            r["steady_speedup"] for r in scaling if r["backend"] == backend and r["workers"] == 2
        )
        >= 1.6
        for backend in ("optuna", "ray")
    }
    goals.update(
        {f"{r['backend']}: overhead < 1 s per trial": r["seconds_per_trial"] < 1.0 for r in noop}
    )
    result = {
        "search": {**SEARCH, "training": {**SEARCH["training"], "epochs": args.epochs}},
        "measurement": (
            f"measured: the same {args.trials} candidates trained by every configuration "
            f"({args.epochs} epochs, early stopping off), {args.repeats} times in turn; "
            "finished trials per hour of the whole `paretonas search` command (start-up "
            "included) and in steady state (first trial's start to last trial's end, from "
            "the study), medians over the repeats, speed-ups against the same repeat's one "
            "worker with their range; no-op trials timed in process"
        ),
        "throughput": scaling,
        "runs": runs,
        "overhead": noop,
        "goals": goals,
        "seconds": time.perf_counter() - started,
    }
    path = write_result("scaling", result, args.out)
    table = markdown_table(
        [
            "backend",
            "workers",
            "trials",
            "median trial s",
            "trial s (sum)",
            "workers busy",
            "command s",
            "trials / hour (command)",
            "trials / hour (steady)",
            "steady vs 1 worker (range)",
        ],
        [
            [
                r["backend"],
                r["workers"],
                f"{r['trials']:.0f}",
                f"{r['median_trial_seconds']:.1f}",
                f"{r['trial_seconds_total']:.1f}",
                f"{r['busy_fraction']:.0%}",
                f"{r['seconds']:.1f}",
                f"{r['trials_per_hour']:.0f}",
                f"{r['steady_trials_per_hour']:.0f}",
                f"{r['steady_speedup']:.2f}x"
                + (
                    f" ({r['steady_speedup_range'][0]:.2f}-{r['steady_speedup_range'][1]:.2f})"
                    if r["workers"] > 1
                    else ""
                ),
            ]
            for r in scaling
        ],
    )
    noop_table = markdown_table(
        ["backend", "no-op trials", "seconds per trial"],
        [[r["backend"], r["trials"], f"{r['seconds_per_trial']:.3f}"] for r in noop],
    )
    record = json.loads(path.read_text())
    if args.out is None:
        update_readme(
            "scaling",
            f"{record['machine']['cpu']} ({', '.join(record['machine']['simd']) or 'no AVX'}), "
            f"{record['machine']['cpus']} cores; "
            f"{result['measurement']}. {source_line(path, record)}\n\n{table}\n\n"
            f"{noop_table}\n\n{goals_markdown(goals)}",
        )
    print(json.dumps(goals, indent=2))
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
