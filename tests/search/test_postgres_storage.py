"""Optuna's RDBStorage on a real PostgreSQL server on loopback (tests/postgres.py)."""

from __future__ import annotations

import optuna
import pytest

from search.storage import safe_url

pytestmark = pytest.mark.postgres


def test_study_on_postgres_shared_by_two_handles(postgres_url):
    storage = optuna.storages.RDBStorage(postgres_url)
    optuna.create_study(study_name="smoke", storage=storage, directions=["minimize", "minimize"])

    first = optuna.load_study(study_name="smoke", storage=postgres_url)
    second = optuna.load_study(study_name="smoke", storage=storage)

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        x = trial.suggest_float("x", -1.0, 1.0)
        return x * x, (x - 1.0) ** 2

    first.optimize(objective, n_trials=2)
    second.optimize(objective, n_trials=1)

    for handle in (first, second):
        trials = handle.get_trials(states=[optuna.trial.TrialState.COMPLETE])
        assert len(trials) == 3
        assert all(len(t.values) == 2 for t in trials)
    assert len(second.best_trials) >= 1


def test_workers_opening_one_new_postgres_database_together_all_get_it(postgres_url):
    # Workers started together on an empty database all create Optuna's tables; the losers
    # of that race used to exit with a storage error (unique violation on pg_type).
    import psycopg2
    from sqlalchemy.engine import make_url

    from tests.search.test_storage import open_at_once

    server = make_url(postgres_url)
    for round_ in range(4):
        name = f"fresh_{round_}"
        connection = psycopg2.connect(
            host=server.host,
            port=server.port,
            user=server.username,
            password=server.password,
            dbname="postgres",
        )
        connection.autocommit = True  # CREATE DATABASE cannot run in a transaction
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        connection.close()
        url = server.set(database=name).render_as_string(hide_password=False)
        assert open_at_once(url) == ["ok"] * 3


def test_safe_url_hides_the_postgres_password(postgres_url):
    from sqlalchemy.engine import make_url

    password = make_url(postgres_url).password
    assert password
    shown = safe_url(postgres_url)
    assert password not in shown
    assert "127.0.0.1" in shown and "paretonas" in shown


@pytest.mark.slow
def test_two_workers_on_machines_sharing_a_postgres_study(postgres_url, tmp_path):
    """`paretonas search` and `paretonas worker` (as on a second machine: its own results
    folder) on one PostgreSQL study: every trial finished once, none lost, both worked."""
    import subprocess
    import time

    import yaml

    from search.results import SURPLUS
    from search.storage import WORKER, open_storage
    from search.worker import finished
    from tests.search.test_workers import ROOT, TINY, _cli, _env

    config = {**TINY, "name": "shared", "storage": postgres_url}
    # Trials long enough that the worker, which starts Python and prepares its own data and
    # teacher first, joins before the head has finished them all (at 1 epoch it once did not).
    config["training"] = {**TINY["training"], "epochs": 6}
    config["results_dir"] = str(tmp_path / "head")
    path = tmp_path / "shared.yaml"
    path.write_text(yaml.safe_dump(config))
    head = subprocess.Popen(
        _cli("search", "--config", str(path), "--trials", "6", "--no-progress"),
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    storage = open_storage(postgres_url)
    deadline = time.monotonic() + 120
    while "shared" not in [s.study_name for s in optuna.get_all_study_summaries(storage)]:
        assert time.monotonic() < deadline and head.poll() is None, "the search did not start"
        time.sleep(0.2)
    worker = subprocess.run(
        _cli(
            "worker",
            "--storage",
            postgres_url,
            "--study",
            "shared",
            "--results",
            str(tmp_path / "second"),
        ),
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    out, err = head.communicate(timeout=600)
    assert head.returncode == 0, err[-2000:]
    assert worker.returncode == 0, worker.stderr[-2000:]
    password = postgres_url.split(":")[2].split("@")[0]
    assert password not in err + out + worker.stderr + worker.stdout
    for name in ("config.yaml", "run.json", "report.html", "trials.csv"):
        assert password not in (tmp_path / "head" / "shared" / name).read_text()

    trials = optuna.load_study(study_name="shared", storage=storage).get_trials()
    done = [t for t in trials if finished(t)]
    assert len(done) == 6 and len({t.number for t in done}) == 6
    # Nothing lost, running or retried. Two workers may both ask for the last trial: the
    # later one steps aside before any work (search.worker._unless_surplus).
    rest = [t for t in trials if not finished(t)]
    assert all(t.user_attrs.get(SURPLUS) and not t.params for t in rest), rest
    assert len({t.system_attrs[WORKER] for t in done}) == 2  # both processes ran trials
    assert (tmp_path / "head" / "shared" / "trials.csv").exists()
    assert (tmp_path / "second" / "shared" / "trials.csv").exists()
    # The config kept in the study for workers has the password masked.
    study = optuna.load_study(study_name="shared", storage=storage)
    assert password not in str(study.user_attrs["config"])

    # A worker that comes after the run is done leaves at once, with no teacher to train.
    late = subprocess.run(
        _cli("worker", "--study", "shared", "--results", str(tmp_path / "third")),
        cwd=ROOT,
        env={**_env(), "PARETONAS_STORAGE": postgres_url},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert late.returncode == 0, late.stderr[-2000:]
    assert "already holds 6 of 6 finished trials" in late.stderr
    assert "teacher" not in late.stderr
