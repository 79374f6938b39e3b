"""The Ray Tune backend on a real local Ray: a two-node cluster on loopback, failures
reported with their reason, and a driver killed mid-trial then rerun."""

from __future__ import annotations

import json
import re
import subprocess

import pandas as pd
import pytest
from optuna.trial import TrialState

from search.config import parse_config
from search.runner import run_search
from search.storage import default_storage
from search.worker import finished
from tests.search.test_workers import (
    LONG_TRIALS,
    ROOT,
    TINY,
    _check_complete,
    _cli,
    _env,
    _interrupt_mid_trial,
    _kill_during_a_trial,
    _study,
    _write_config,
)

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_nodes():
    """A head and a worker node, one CPU each, as separate raylets on this machine."""
    from ray.cluster_utils import Cluster

    small = {"num_cpus": 1, "object_store_memory": 150 * 1024**2}
    cluster = Cluster(initialize_head=True, head_node_args=small)
    cluster.add_node(**small)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def _ray_config(tmp_path, name, address, **changes):
    data = json.loads(json.dumps(TINY))
    data.update(name=name, results_dir=str(tmp_path), **changes)
    data["execution"] = {
        **data["execution"],
        **changes.get("execution", {}),
        "backend": "ray",
        "ray": {"address": address, "concurrent": 2, "cpus_per_trial": 1},
    }
    return parse_config(data)


def test_trials_run_on_both_nodes_and_land_in_the_usual_files(two_nodes, tmp_path):
    config = _ray_config(tmp_path, "cluster", two_nodes.address)
    result = run_search(config, trials=4, progress=False)
    trials = pd.read_csv(result.run_dir / "trials.csv")
    assert len(trials) == 4 and set(trials["status"]) <= {"ok", "infeasible"}
    assert (trials["status"] == "ok").any()
    assert trials["genome"].notna().all() and trials["latency_ms"].notna().all()
    nodes = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
    assert set(trials["ray_node"]) == nodes and len(nodes) == 2
    for name in ("trials.parquet", "pareto.csv", "report.html", "run.json"):
        assert (result.run_dir / name).exists()
    assert json.loads((result.run_dir / "run.json").read_text())["backend"] == "ray"
    pareto = pd.read_csv(result.run_dir / "pareto.csv")
    for number in pareto["number"]:  # the front's models were saved by the Ray workers
        assert (result.run_dir / "models" / str(number) / "model.onnx").exists()

    # Rerun with a larger total: goes on from the 4 in the study.
    more = run_search(config, trials=6, progress=False)
    assert list(pd.read_csv(more.run_dir / "trials.csv")["number"]) == list(range(6))


def test_a_plugin_the_clusters_workers_cannot_import_is_one_line_before_any_trial(
    two_nodes, tmp_path, monkeypatch
):
    import sys

    from search.config import ConfigError
    from search.ray_backend import check_plugins_on_cluster

    # Imports on the driver; not in Ray's worker processes (as on a node without it).
    (tmp_path / "driver_only_plugin.py").write_text(
        "import sys\nif any('default_worker' in a for a in sys.argv):\n"
        "    raise RuntimeError('not on this node')\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # import_plugins puts tmp_path first
    try:
        parse_config({"plugins": ["driver_only_plugin"]})
        if not ray.is_initialized():
            ray.init(address=two_nodes.address)
        with pytest.raises(ConfigError, match=r"^on the Ray cluster's workers, plugins: "):
            check_plugins_on_cluster(["driver_only_plugin"])
        check_plugins_on_cluster([])  # nothing to import: nothing asked of the cluster
    finally:
        sys.modules.pop("driver_only_plugin", None)


def test_a_failing_candidate_is_recorded_with_its_reason(two_nodes, tmp_path):
    config = _ray_config(
        tmp_path, "timeouts", two_nodes.address, execution={"trial_timeout_s": 0.01}
    )
    result = run_search(config, trials=2, progress=False)
    trials = pd.read_csv(result.run_dir / "trials.csv")
    assert len(trials) == 2 and set(trials["status"]) == {"failed"}
    assert trials["reason"].str.contains("ran past its time limit").all()
    assert set(trials["state"]) == {"FAIL"}


def test_sigkill_of_the_ray_driver_mid_trial_then_rerun(tmp_path):
    config = _write_config(tmp_path, "raycrash", training=LONG_TRIALS)
    command = _cli(
        "search",
        "--config",
        str(config),
        "--trials",
        "3",
        "--backend",
        "ray",
        "--concurrent",
        "1",
        "--no-progress",
    )
    run_dir = tmp_path / "results" / "raycrash"
    url = default_storage(run_dir)
    interrupted = _kill_during_a_trial(command, url, "raycrash", group=True)
    assert len(interrupted) == 1
    experiment = run_dir / "ray" / "tune-1"
    from ray.tune import Tuner

    assert Tuner.can_restore(str(experiment))
    rerun = subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    # The interrupted experiment was restored (Tuner.restore), not started afresh.
    assert "restoring the interrupted Tune experiment tune-1" in rerun.stderr
    assert (experiment / ".paretonas-done").exists()
    _check_complete(url, "raycrash", 3, interrupted)
    # Tune's own console boxes stay off: the run prints its log lines, not Tune's tables.
    assert "Configuration for experiment" not in rerun.stdout + rerun.stderr
    assert "View detailed results" not in rerun.stdout + rerun.stderr
    # The run's own end line, as on the Optuna backend.
    assert "run raycrash: 3 finished trials" in rerun.stderr


def test_ctrl_c_stops_a_ray_search_at_once_and_a_rerun_finishes_it(tmp_path):
    # A relative results folder, as in the shipped configs: Tune runs each trial in a
    # working folder of its own, where the trials' model files once went.
    config = _write_config(tmp_path, "rayint", results_dir="results", training=LONG_TRIALS)
    command = _cli(
        "search", "--config", str(config), "--trials", "3", "--backend", "ray",
        "--concurrent", "1", "--no-progress",
    )  # fmt: skip
    run_dir = tmp_path / "results" / "rayint"
    url = default_storage(run_dir)
    # Not frozen: Ray's workers are in process groups of their own, and the driver records
    # nothing while stopped anyway.
    code, text = _interrupt_mid_trial(
        command, url, "rayint", tmp_path, cwd=tmp_path, after=1, freeze=False
    )
    assert code == 130, text[-3000:]
    assert "interrupted; completed trials are kept" in text
    # The driver queued the trials it was running again before it exited, and its tables
    # say so: none is left running until the rerun. (One Optuna was still creating, not
    # yet the driver's, may be; without parameters, it is failed once found unclaimed.)
    study = _study(url, "rayint")
    assert not [t.number for t in study.get_trials() if t.state == TrialState.RUNNING and t.params]
    interrupted = {
        t.number for t in study.get_trials() if t.state == TrialState.FAIL and not finished(t)
    }
    assert interrupted and all(study.trials[n].params for n in interrupted)
    listed = pd.read_csv(run_dir / "trials.csv")
    assert set(listed.loc[listed["status"] == "interrupted", "number"]) == interrupted
    assert listed.loc[listed["status"] == "running", "genome"].isna().all()

    rerun = subprocess.run(command, cwd=tmp_path, env=_env(), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    _check_complete(url, "rayint", 3, interrupted)
    # One line per trial, as the Optuna backend logs them.
    assert re.search(r"^trial \d+ (ok|infeasible|pruned|failed) ", rerun.stderr, re.M)
    trials = pd.read_csv(run_dir / "trials.csv")
    for artifacts in trials.loc[trials["status"] == "ok", "artifacts"]:
        assert (run_dir / artifacts / "model.onnx").is_file(), artifacts
    # The restored experiment proposed new candidates: it did not replay those its searcher
    # proposed after its last checkpoint (a repeat is marked and not trained again).
    done = [t for t in _study(url, "rayint").get_trials() if finished(t)]
    trained = [t.user_attrs["genome"] for t in done if "duplicate_of" not in t.user_attrs]
    assert len(trained) == len(set(trained)), trained
    # What Tune pickled holds no storage (whose URL may carry a password).
    for path in (run_dir / "ray").rglob("*.pkl"):
        assert b"study.db" not in path.read_bytes(), path


def test_the_driver_is_marked_on_a_trial_before_any_parameter_is_proposed():
    # A driver killed while the sampler proposes must leave a trial a rerun can tell is
    # dead (search.storage.retry_dead_local_trials reads the mark).
    import optuna

    from search.ray_backend import _DefineByRun
    from search.storage import WORKER, worker_identity

    class Killed(Exception):
        pass

    class DiesWhileProposing:
        def suggest(self, trial):
            raise Killed

    study = optuna.create_study()
    trial = study.ask()
    with pytest.raises(Killed):
        _DefineByRun(DiesWhileProposing())(trial)
    frozen = study.trials[0]
    assert frozen.params == {} and frozen.system_attrs[WORKER] == worker_identity()


def test_a_ray_trial_carries_the_front_and_curves_for_early_stopping():
    # Ray workers never open the study: the driver hands each trial what the Pareto-aware
    # stopper needs, read when the trial is proposed.
    import optuna

    from evaluators.budget import Budget
    from search.objective import current_front, finished_curves
    from search.ray_backend import STOPPING, _DefineByRun, _stopping_context

    objectives = ("accuracy", "latency_ms")
    budget = Budget(latency_ms=1.0)
    study = optuna.create_study(directions=["maximize", "minimize"])
    for accuracy, latency, curve in ((0.8, 0.5, [0.5, 0.8]), (0.6, 0.2, [0.4, 0.6])):
        metrics = {
            "status": "ok",
            "accuracy": accuracy,
            "latency_ms": latency,
            "peak_memory_kb": 10.0,
            "flash_kb": 5.0,
            "val_curve": curve,
        }
        study.add_trial(
            optuna.trial.create_trial(values=[accuracy, latency], user_attrs={"metrics": metrics})
        )
    space = parse_config({**TINY, "name": "x"}).search_space()

    trial = study.ask()
    constants = _DefineByRun(space, objectives, budget, early_stopping=True)(trial)
    params, front, curves = _stopping_context({**trial.params, **constants})
    assert params == trial.params and STOPPING not in params
    assert front == current_front(study, list(objectives), budget) and len(front) == 2
    assert curves == finished_curves(study) == [[0.5, 0.8], [0.4, 0.6]]

    # Early stopping off: nothing added, and a trial without the context gets none.
    assert _DefineByRun(space, objectives, budget, early_stopping=False)(study.ask()) is None
    assert _stopping_context({"x": 1}) == ({"x": 1}, [], [])


def test_no_address_means_a_new_local_ray_unless_ray_address_names_one(monkeypatch):
    # Ray's own default joins whatever cluster was last started on this machine; a run
    # configured without an address must start its own (this module's two-node cluster
    # once caught the crash test's search, whose trials then failed at once).
    from search.ray_backend import ray_address

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert ray_address(None) == "local"
    assert ray_address("auto") == "auto"
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert ray_address(None) == "10.0.0.1:6379"
    assert ray_address("ray://head:10001") == "ray://head:10001"


def test_an_address_nothing_answers_on_is_refused_at_once(monkeypatch):
    import importlib.util
    import socket
    import time

    from search.config import ConfigError
    from search.ray_backend import check_reachable

    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        check_reachable(f"127.0.0.1:{port}")  # something answers: no complaint
        # A Ray Client address needs Ray Client (grpc), said before any data is read.
        found = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
        with pytest.raises(ConfigError, match=r"needs Ray Client: install it with pip install"):
            check_reachable(f"ray://127.0.0.1:{port}")
        monkeypatch.setattr(importlib.util, "find_spec", lambda name: found("json"))
        check_reachable(f"ray://127.0.0.1:{port}")
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"cannot reach a Ray cluster at 127\.0\.0\.1:1 "):
        check_reachable("127.0.0.1:1")
    assert time.monotonic() - started < 10
    for left_to_ray in ("local", "auto", "http://127.0.0.1:8265"):
        check_reachable(left_to_ray)


def test_a_port_that_answers_but_not_as_rays_head_is_one_line_at_once():
    # ray.init on a web server's port retries for minutes, printing warnings.
    import http.server
    import socketserver
    import threading

    from search.config import ConfigError
    from search.ray_backend import check_reachable

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    class Http2(socketserver.BaseRequestHandler):
        # What a gRPC server (Ray's GCS) sends first: a SETTINGS frame.
        def handle(self):
            self.request.recv(64)
            self.request.sendall(b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64")

    for handler, refused in ((Quiet, True), (Http2, False)):
        with socketserver.TCPServer(("127.0.0.1", 0), handler) as server:
            threading.Thread(target=server.serve_forever, daemon=True).start()
            address = f"127.0.0.1:{server.server_address[1]}"
            try:
                if refused:
                    with pytest.raises(ConfigError, match="answers, but not as a Ray cluster"):
                        check_reachable(address)
                else:
                    check_reachable(address)
            finally:
                server.shutdown()


def test_a_cluster_that_refuses_the_driver_is_one_line_saying_what_to_do(monkeypatch):
    from search.config import ConfigError
    from search.ray_backend import join_cluster

    def refuse(**kwargs):
        try:
            raise RuntimeError("GCS said:\n InvalidAuthToken")
        except RuntimeError as cause:
            raise ConnectionError("Failed to connect to Ray cluster at X") from cause

    def no_token(**kwargs):
        raise ray.exceptions.AuthenticationError("no token found")

    monkeypatch.setattr(ray, "init", refuse)
    with pytest.raises(ConfigError) as error:
        join_cluster("127.0.0.1:6390")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("cannot join the Ray cluster at 127.0.0.1:6390 (Failed to")
    assert "InvalidAuthToken" in message and "RAY_AUTH_TOKEN" in message  # from the cause
    monkeypatch.setattr(ray, "init", no_token)
    with pytest.raises(ConfigError, match=r"no token found.*RAY_AUTH_TOKEN"):
        join_cluster("127.0.0.1:6390")


def test_a_candidate_the_study_has_results_for_is_handed_back_not_trained():
    import optuna

    from search.ray_backend import DUPLICATE, _DefineByRun, _stopping_context

    space = parse_config({**TINY, "name": "x"}).search_space()
    study = optuna.create_study(directions=["maximize", "minimize"])
    first = study.ask()
    candidate = space.suggest(first)
    metrics = {"status": "ok", "accuracy": 0.8, "latency_ms": 0.5}
    first.set_user_attr("genome", candidate.genome)
    first.set_user_attr("metrics", metrics)
    first.set_user_attr("artifacts", "checkpoints/0")
    study.tell(first, [0.8, 0.5])
    study.enqueue_trial(first.params)  # the sampler proposes the same candidate again
    again = study.ask()
    constants = _DefineByRun(space, ("accuracy", "latency_ms"))(again)
    assert study.trials[1].user_attrs["genome"] == candidate.genome  # known before the end
    handed = json.loads(constants[DUPLICATE])
    assert handed == {"number": 0, "metrics": metrics, "artifacts": "checkpoints/0"}
    params, _, _ = _stopping_context({**again.params, **constants})
    assert DUPLICATE not in params and params == first.params


def test_ray_pickles_of_the_searcher_hold_no_storage_and_a_restore_takes_the_live_sampler(
    tmp_path,
):
    import pickle

    import optuna

    from search.ray_backend import _LIVE, _DefineByRun, _Live, _StudySearcher
    from search.storage import open_storage

    config = parse_config({**TINY, "name": "pickled"})
    url = f"sqlite:///{tmp_path / 'SECRET-PLACE.db'}"
    storage = open_storage(url, heartbeats=False)
    sampler = optuna.samplers.RandomSampler(seed=3)
    _LIVE["pickled"] = _Live(storage, sampler)
    searcher = _StudySearcher(
        space=_DefineByRun(config.search_space(), tuple(config.objectives)),
        metric=list(config.objectives),
        mode=["max" if d == "maximize" else "min" for d in config.directions],
        sampler=sampler,
        study_name="pickled",
        storage=storage,
        budget=config.budget_value(),
        objectives=list(config.objectives),
    )
    assert searcher.suggest("t1")  # a trial in flight: its handle holds the study
    data = pickle.dumps(searcher)
    assert b"SECRET-PLACE" not in data
    state = tmp_path / "searcher-state.pkl"
    searcher.save(str(state))
    assert b"SECRET-PLACE" not in state.read_bytes()

    # A resumed driver: another sampler (the seed moves on with the study's trials).
    resumed = optuna.samplers.RandomSampler(seed=4)
    _LIVE["pickled"] = _Live(storage, resumed)
    restored = pickle.loads(data)
    restored.restore(str(state))
    assert restored._sampler is resumed and restored._ot_study.sampler is resumed
    assert restored._ot_trials == {}
    assert restored.suggest("t2")
    _LIVE.pop("pickled")
