"""Does a second worker double the search's throughput, and what does a backend cost per trial?

1. Throughput: the same small search (digits, --epochs epochs on 1,200 images per
   candidate, fixed budget, teacher cached beforehand) run to --trials finished trials with one worker and
   with two concurrent workers of one torch thread each, for the Optuna backend (local
   worker processes on a journal file) and the Ray backend (a local Ray, one CPU per
   trial). Trials per hour = finished trials / wall-clock seconds, of the whole command
   (start-up included: Ray's start, the workers' imports) and in steady state (from the
   first trial's start to the last one's end, as the study recorded them).
2. Overhead: --noop trials of an objective that returns at once, through each backend's own
   machinery: the Optuna worker loop on a SQLite study, and Ray Tune with the
   ``OptunaSearch`` on a study (one trial at a time). Seconds per trial = wall-clock / trials.

Trial length matters: a real search's trials last minutes, and each finished trial costs
its backend's driver a fixed amount of work (tables rewritten, Ray's bookkeeping) on the
same two cores. --epochs 15 gives trials of several seconds (the JSON records the median);
at 2-second trials the fixed costs dominate and Ray's second trial gains less.

Writes results/benchmarks/scaling.json and the README table. Goals: 2 workers >= 1.6x one
worker; backend overhead < 1 s per trial.

    .venv/bin/python benchmarks/scaling.py [--trials 10] [--epochs 15] [--noop 30]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import optuna  # noqa: E402
import yaml  # noqa: E402

from benchmarks.common import (  # noqa: E402
    goals_markdown,
    markdown_table,
    source_line,
    update_readme,
    write_result,
)

SEARCH = {
    "seed": 0,
    "dataset": {"name": "digits"},
    "teacher": {"widths": [8], "blocks": [1], "epochs": 1},
    "training": {"train_subset": 1200, "epochs": 5, "batch_size": 64},
    "space": {"num_stages": [1, 2], "width": [8, 16], "stem_width": [8], "depth": [1, 1]},
    "compression": {"finetune_epochs": 0, "qat_epochs": 0},
    "device": {"runs": 5, "warmup": 1},
    "budget": {"latency_ms": 50},
}


def _search_seconds(
    results: Path, name: str, trials: int, execution: dict, extra: list[str], epochs: int
) -> tuple[float, int, float, float]:
    config = {
        **SEARCH,
        "training": {**SEARCH["training"], "epochs": epochs},
        "name": name,
        "results_dir": str(results),
        "execution": execution,
    }
    path = results / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
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
        *extra,
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
    # Steady state: from the first trial's start to the last one's end, without start-up.
    span = max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)
    lengths = sorted((t.datetime_complete - t.datetime_start).total_seconds() for t in done)
    return seconds, len(done), span.total_seconds(), lengths[len(lengths) // 2]


def throughput(trials: int, epochs: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="paretonas-scaling-") as tmp:
        results = Path(tmp)
        # Warm-up: the teacher is trained once and cached for every run below.
        _search_seconds(results, "warmup", 1, {"threads_per_worker": 1}, [], epochs)
        setups = [
            ("optuna", 1, {"workers": 1, "threads_per_worker": 1}, []),
            ("optuna", 2, {"workers": 2, "threads_per_worker": 1}, []),
            ("ray", 1, {"backend": "ray", "ray": {"concurrent": 1, "cpus_per_trial": 1}}, []),
            ("ray", 2, {"backend": "ray", "ray": {"concurrent": 2, "cpus_per_trial": 1}}, []),
        ]
        for backend, workers, execution, extra in setups:
            name = f"{backend}-{workers}"
            seconds, done, span, median = _search_seconds(
                results, name, trials, execution, extra, epochs
            )
            rows.append(
                {
                    "backend": backend,
                    "workers": workers,
                    "trials": done,
                    "seconds": seconds,
                    "trials_per_hour": 3600 * done / seconds,
                    "trial_span_seconds": span,
                    "median_trial_seconds": median,
                    "steady_trials_per_hour": 3600 * done / span,
                }
            )
            print(f"{name}: {done} trials in {seconds:.1f} s ({span:.1f} s of trials)", flush=True)
    for row in rows:
        single = next(r for r in rows if r["backend"] == row["backend"] and r["workers"] == 1)
        row["speedup"] = row["trials_per_hour"] / single["trials_per_hour"]
        row["steady_speedup"] = row["steady_trials_per_hour"] / single["steady_trials_per_hour"]
    return rows


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
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=15, help="training epochs per trial")
    parser.add_argument("--noop", type=int, default=30)
    parser.add_argument("--out", default=None, help="default results/benchmarks/scaling.json")
    args = parser.parse_args()
    started = time.perf_counter()
    noop = overhead(args.noop)
    scaling = throughput(args.trials, args.epochs)
    goals = {
        f"{backend}: 2 workers >= 1.6x one (steady state)": next(
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
            "measured: finished trials per hour of the whole `paretonas search` command "
            "(start-up included) and in steady state (first trial's start to last trial's "
            "end, from the study); no-op trials timed in process"
        ),
        "throughput": scaling,
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
            "command s",
            "trials / hour (command)",
            "trials / hour (steady)",
            "steady vs 1 worker",
        ],
        [
            [
                r["backend"],
                r["workers"],
                r["trials"],
                f"{r['median_trial_seconds']:.1f}",
                f"{r['seconds']:.1f}",
                f"{r['trials_per_hour']:.0f}",
                f"{r['steady_trials_per_hour']:.0f}",
                f"{r['steady_speedup']:.2f}x",
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
            f"{record['machine']['cpu']}, {record['machine']['cpus']} cores; "
            f"{result['measurement']}. {source_line(path, record)}\n\n{table}\n\n"
            f"{noop_table}\n\n{goals_markdown(goals)}",
        )
    print(json.dumps(goals, indent=2))
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
