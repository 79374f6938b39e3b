"""``paretonas``: the command line.

A user mistake (config, dataset, storage, teacher checkpoint) is one line on stderr and
exit code 2, never a traceback; what was already computed stays in results/<run>/.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from evaluators.data import DatasetError
from evaluators.devices import DeviceError
from evaluators.predictor import CalibrationError
from evaluators.teacher import TeacherError
from search.config import ConfigError, RunConfig, load_config, parse_config
from search.results import all_failed, budget_unmet
from search.storage import LOCAL_WORKER_VARIABLE, StorageError
from search.worker import WorkersFailed

USER_ERRORS = (
    WorkersFailed,
    CalibrationError,
    ConfigError,
    DatasetError,
    DeviceError,
    StorageError,
    TeacherError,
)


PLUGINS_HELP = (
    "your modules that register devices (the plugins: of a run's config), for a device "
    "that no file defines"
)

# Exit code of a search that finished but whose every candidate was over the budget.
NOTHING_FITS = 3
# Exit code of a search that finished but whose every trial failed.
ALL_FAILED = 4


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="paretonas",
        description="Search small CNNs that fit a device budget; report the Pareto front.",
        epilog="Start with: paretonas search --config configs/quickstart.yaml --name r. "
        "Exit codes: 0 done, 2 a mistake in the input (one line says which), 3 the search "
        "finished but no candidate met the budget, 4 it finished but every trial failed (its "
        "log says why), 130 interrupted (Ctrl-C) and 143 stopped "
        "(SIGTERM, as a batch scheduler stops a job): run it again to resume.",
    )
    parser.add_argument("--version", action="version", version=f"paretonas {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    search = commands.add_parser(
        "search",
        help="run (or resume) a search",
        description="Run a search from a config (ready ones in configs/), or resume it: the "
        "same command again goes on until the run holds --trials finished trials. Writes "
        "results/<name>/: report.html, summary.json, pareto.csv, trials.csv, models/. "
        "Exit code 2: a mistake in the config, dataset, teacher, device or storage; 3: no "
        "candidate met the budget (the files are written all the same).",
    )
    search.add_argument("--config", required=True, help="run config (YAML)")
    search.add_argument(
        "--name", help="run name: results go to <results_dir>/<name>/ (default: the config's name)"
    )
    search.add_argument(
        "--trials",
        type=int,
        help="finished trials the run should hold; a rerun goes on to this total "
        "(default: the config's trials)",
    )
    search.add_argument("--results", help="results folder (default: the config's results_dir)")
    search.add_argument("--no-progress", action="store_true", help="no progress bars")
    search.add_argument("--backend", choices=("optuna", "ray"), help="default: the config's")
    search.add_argument(
        "--workers", type=int, help="local worker processes on one study (optuna backend)"
    )
    search.add_argument("--address", help="ray: cluster address, auto or HOST:PORT")
    search.add_argument("--concurrent", type=int, help="ray: trials running at once")
    search.add_argument("--cpus-per-trial", type=float, help="ray: CPUs one trial reserves")
    search.add_argument("--gpus-per-trial", type=float, help="ray: GPUs one trial reserves")

    worker = commands.add_parser(
        "worker",
        help="join a running search's study as one more worker (any machine)",
        description="Join a study that `paretonas search` created, as one more worker: the "
        "config comes from the storage; the dataset and teacher are prepared here.",
    )
    worker.add_argument(
        "--storage",
        help="the study's storage URL (default: $PARETONAS_STORAGE, which keeps a password "
        "off the command line that other users of the machine can see)",
    )
    worker.add_argument("--study", required=True, help="the study (run) name")
    worker.add_argument("--results", help="results folder here (default: the run's)")
    progress = worker.add_mutually_exclusive_group()
    # On by default, as for search: a worker on a cluster node is read through its log, and
    # a silent one cannot be told from a stuck one.
    progress.add_argument(
        "--no-progress", action="store_true", help="no progress bars or progress lines"
    )
    progress.add_argument("--progress", action="store_true", help=argparse.SUPPRESS)
    worker.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait up to this long for `paretonas search` to create the study (for workers "
        "started together with it; default: not at all)",
    )

    report = commands.add_parser(
        "report",
        help="render a run's report.html and summary.json, or one overlay report of several runs",
        description="Render report.html and summary.json from a run's files alone (no "
        "Optuna needed), or, given several runs, one page that overlays their fronts.",
    )
    report.add_argument(
        "run_dirs", nargs="+", metavar="RUN", help="run folder(s), e.g. results/demo"
    )
    report.add_argument(
        "--out",
        help="HTML file to write (default: RUN/report.html for one run, "
        "FIRST_RUN/report-compare.html for several)",
    )

    baselines = commands.add_parser(
        "baselines",
        help="evaluate hand-designed networks (MobileNetV2, ShuffleNet, plain CNN) into a run",
        description="Train and measure hand-designed networks with the run's own recipe, "
        "so the report shows them beside the front; they never count as the run's trials.",
    )
    baselines.add_argument("--config", required=True, help="the run's config (YAML)")
    baselines.add_argument("--name", help="run name (default: the config's name)")
    baselines.add_argument("--results", help="results folder (default: the config's)")
    baselines.add_argument("--only", nargs="+", metavar="NAME", help="some of them (default: all)")
    baselines.add_argument("--no-progress", action="store_true", help="no progress bars")

    export = commands.add_parser(
        "export",
        help="write a model's deployable ONNX file and manifest (default: the one recommended "
        "for the configured budget)",
        description="Copy a model's measured model.onnx (batch 1; int8 where its policy "
        "says; beside it model.s8s8.onnx, the same in signed int8 for microcontroller "
        "runtimes), model.pt, candidate.json and channels.json to a folder, with manifest.json: "
        "its metrics and how each was measured, its input and preprocessing, its output and "
        "class names. Prints the folder.",
    )
    export.add_argument("run_dir", help="a run folder, e.g. results/demo")
    chosen = export.add_mutually_exclusive_group()
    chosen.add_argument("--trial", type=int, help="trial number (see pareto.csv)")
    chosen.add_argument(
        "--tier",
        default=None,
        help="the model summary.json recommends for this budget tier, e.g. tighter or looser "
        "(default: configured budget); knee for the report's knee point",
    )
    export.add_argument("--out", help="output folder (default: RUN_DIR/export/TRIAL)")

    probe = commands.add_parser(
        "probe",
        help="write latency probes + a runner for a device this machine cannot reach",
        description="Write a probe kit: ONNX probes and run_probes.py, to time on the device; "
        "then give its measurements.csv to `paretonas calibrate`.",
    )
    probe.add_argument("--device", required=True, help="device name or device YAML path")
    probe.add_argument("--out", required=True, help="folder to write the probe kit to")
    probe.add_argument(
        "--config",
        help="a run config for this device: probes at its dataset's input size, from its space",
    )

    calibrate = commands.add_parser(
        "calibrate",
        help="fit a device's latency predictor",
        description="Fit a device's latency predictor: on this host by timing probes here, "
        "on another device from the measurements.csv its probe kit wrote.",
    )
    calibrate.add_argument("--device", required=True, help="device name or device YAML path")
    calibrate.add_argument(
        "--measurements", help="measurements.csv from run_probes.py (devices other than host)"
    )
    calibrate.add_argument("--kit", help="the probe kit folder (default: the CSV's folder)")
    calibrate.add_argument("--results", default="results", help="results folder")
    calibrate.add_argument(
        "--budget-seconds", type=float, default=900, help="host: time to spend measuring"
    )
    calibrate.add_argument("--threads", type=int, default=1, help="host: ONNX Runtime threads")
    calibrate.add_argument("--plugins", nargs="+", default=[], help=PLUGINS_HELP)

    devices = commands.add_parser(
        "devices",
        help="list device profiles, what they execute, and their latency source",
        description="List the device profiles: the built-in ones and those in the folder "
        "PARETONAS_DEVICES names (one YAML file per device, its name the file's stem; copy "
        "a built-in one from evaluators/device_profiles/ to start). A config's device: may "
        "also be a YAML file's path.",
    )
    devices.add_argument("--results", default="results", help="results folder (predictors)")
    devices.add_argument("--plugins", nargs="+", default=[], help=PLUGINS_HELP)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.command in ("search", "worker", "baselines"):
        # A batch scheduler stops a job with SIGTERM: the same path as Ctrl-C, so the trial
        # running is queued again and the tables say so, instead of an exit without a word.
        signal.signal(signal.SIGTERM, _stop_on_sigterm)
    logging.getLogger("optuna").setLevel(logging.WARNING)
    try:
        if args.command == "search":
            return _search(args)
        if args.command == "baselines":
            return _baselines(args)
        if args.command == "worker":
            return _worker(args)
        if args.command == "export":
            return _export(args)
        if args.command == "probe":
            return _probe(args)
        if args.command == "calibrate":
            return _calibrate(args)
        if args.command == "devices":
            return _devices(args)
        return _report(args)
    except USER_ERRORS as error:
        print(f"paretonas: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        terminated = isinstance(stop, Terminated)
        if not os.environ.get(LOCAL_WORKER_VARIABLE):  # the search that started it says it
            print(
                f"paretonas: {'stopped (SIGTERM)' if terminated else 'interrupted'}; completed "
                "trials are kept: run the same command to resume",
                file=sys.stderr,
            )
        return 143 if terminated else 130


class Terminated(KeyboardInterrupt):
    """SIGTERM, taken through the Ctrl-C path (``KeyboardInterrupt``) so that what stops
    a run on Ctrl-C stops it the same way."""


def _stop_on_sigterm(signum: int, frame: object) -> None:
    # Once: a second SIGTERM while the first is being handled must not cut it short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated


def _search(args: argparse.Namespace) -> int:
    from search.runner import run_search

    if args.trials is not None and args.trials < 1:
        raise ConfigError(f"--trials: must be at least 1 (got {args.trials})")
    config = load_config(args.config, name=args.name, results_dir=args.results)
    config = _with_execution(config, args)
    result = run_search(config, trials=args.trials, progress=not args.no_progress)
    print(result.run_dir / "report.html")
    # The run itself warned why; a script or CI job learns it from the exit code.
    if all_failed(result.trials):
        return ALL_FAILED
    return NOTHING_FITS if budget_unmet(result.trials, config.budget.model_dump()) else 0


def _with_execution(config: RunConfig, args: argparse.Namespace) -> RunConfig:
    """The config with the command line's execution settings, validated like the file's."""
    execution = config.execution.model_dump()
    for key in ("backend", "workers"):
        if getattr(args, key) is not None:
            execution[key] = getattr(args, key)
    for key in ("address", "concurrent", "cpus_per_trial", "gpus_per_trial"):
        if getattr(args, key) is not None:
            execution["ray"][key] = getattr(args, key)
    # Only what the file set, so that the settings it left to their defaults stay known as
    # such (a refused resume says which to write).
    settings = config.model_dump(mode="json", exclude_unset=True)
    return parse_config({**settings, "execution": execution}, "command line")


def _baselines(args: argparse.Namespace) -> int:
    from search.baselines import run_baselines

    config = load_config(args.config, name=args.name, results_dir=args.results)
    result = run_baselines(config, args.only, progress=not args.no_progress)
    print(result.run_dir / "report.html")
    return 0


def _worker(args: argparse.Namespace) -> int:
    from search.runner import STORAGE_VARIABLE, run_worker

    storage = args.storage or os.environ.get(STORAGE_VARIABLE)
    if not storage:
        raise ConfigError(
            f"give the study's storage: --storage URL, or the URL in {STORAGE_VARIABLE}"
        )
    if args.wait < 0:
        raise ConfigError(f"--wait must be 0 or more seconds, got {args.wait:g}")
    parent = os.environ.get(LOCAL_WORKER_VARIABLE, "")
    if parent.isdigit() and int(parent) > 1:
        from search.worker import stop_when_orphaned

        if os.getppid() != int(parent):
            print(
                "paretonas: the search that started this worker is gone; not starting",
                file=sys.stderr,
            )
            return 0
        stop_when_orphaned(int(parent))
    result = run_worker(storage, args.study, args.results, not args.no_progress, args.wait)
    report = result.run_dir / "report.html"
    if report.exists():  # not when the run was done before this worker could help
        print(report)
    return 0


def _export(args: argparse.Namespace) -> int:
    from search.export import export_trial, recommended_trial
    from search.summary import CONFIGURED

    trial, why = args.trial, None
    if trial is None:
        trial, why = recommended_trial(args.run_dir, args.tier or CONFIGURED)
        logging.getLogger(__name__).info("trial %d: %s", trial, why)
    print(export_trial(args.run_dir, trial, _folder(args.out), why=why))
    return 0


def _probe(args: argparse.Namespace) -> int:
    import json

    from search.calibrate import probe

    out = probe(args.device, _folder(args.out), config=args.config)
    needed = json.loads((out / "kit.json").read_text())["min_layer_probes"]
    print(
        f"{out}: copy it to the device and time its probes there, at least its first "
        f"{needed} layer probes, the more the better (README.txt says how)",
        file=sys.stderr,
    )
    print(out)
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from evaluators.devices import get_device
    from search.calibrate import calibrate

    if args.budget_seconds <= 0:
        raise ConfigError(f"--budget-seconds: must be positive (got {args.budget_seconds:g})")
    _import_plugins(args.plugins)
    predictor, out = calibrate(
        args.device,
        measurements=args.measurements,
        kit=args.kit,
        results=args.results,
        budget_seconds=args.budget_seconds,
        threads=args.threads,
    )
    # A fitted predictor replaces the roofline for every later search: say so, and how back.
    source = get_device(args.device).latency.source
    use = {
        "measured": "searches record its prediction beside each measured latency",
        "roofline": f"searches with results_dir {args.results} predict latency with it, "
        "not with the device's roofline (delete the folder to go back to the roofline)",
    }.get(source, f"searches with results_dir {args.results} predict latency with it")
    print(f"{predictor.source}; cached in {out}: {use}", file=sys.stderr)
    print(out)
    return 0


def _devices(args: argparse.Namespace) -> int:
    from evaluators.devices import describe_devices

    _import_plugins(args.plugins)
    print(describe_devices(args.results))
    # A predictor serves the searches whose results_dir is where it was calibrated into.
    print(
        f"fitted predictors looked for under {Path(args.results) / 'devices'}/<device>/"
        "predictor (--results, the runs' results_dir)",
        file=sys.stderr,
    )
    return 0


def _import_plugins(names: list[str]) -> None:
    from search.plugins import import_plugins

    try:
        import_plugins(names)
    except ValueError as error:
        raise ConfigError(f"--{error}") from None


def _report(args: argparse.Namespace) -> int:
    from search.report import write_comparison, write_report

    run_dirs = [Path(run_dir) for run_dir in args.run_dirs]
    for run_dir in run_dirs:
        missing = [
            n for n in ("run.json", "trials.csv", "pareto.csv") if not (run_dir / n).is_file()
        ]
        if missing:
            raise ConfigError(
                f"{run_dir} is not a run folder (missing {', '.join(missing)}); "
                "pass a folder written by 'paretonas search'"
            )
    out = args.out
    if out is not None and Path(out).is_dir():
        raise ConfigError(
            f"--out {out} is a folder; give the report's file name, e.g. {out}/report.html"
        )
    if len(run_dirs) == 1:
        print(write_report(run_dirs[0], out))
    else:
        print(write_comparison(run_dirs, out))
    return 0


def _folder(out: str | None) -> str | None:
    """``--out`` for a command that writes a folder: refused if it names a file."""
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder (it is created if missing)")
    return out


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("paretonas")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


if __name__ == "__main__":
    sys.exit(main())
