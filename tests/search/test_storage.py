"""Opening storages: passwords never shown in logs, reports and errors, wherever they sit
in the URL; processes that open one new database together all get it."""

from __future__ import annotations

import multiprocessing

import pytest

from search.storage import StorageError, open_storage, safe_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://bob:pw1234@db.host/nas", "postgresql://bob:***@db.host/nas"),
        (
            "postgresql+psycopg2://bob@127.0.0.1:5432/nas?password=S3cretPW",
            "postgresql+psycopg2://bob@127.0.0.1:5432/nas?password=***",
        ),
        (
            "postgresql://bob@h/nas?sslmode=require&sslpassword=abc%40def",
            "postgresql://bob@h/nas?sslmode=require&sslpassword=***",
        ),
        ("sqlite:///results/r/study.db", "sqlite:///results/r/study.db"),
        ("sqlite:////data/a@b:c/study.db", "sqlite:////data/a@b:c/study.db"),
        # Unescaped '@' and ':' in the password: all of it is hidden, up to the host.
        (
            "postgresql+psycopg2://bob:Sup3r@S3cret@127.0.0.1:1/db",
            "postgresql+psycopg2://bob:***@127.0.0.1:1/db",
        ),
        ("mysql://bob:a:b/c@db.host:3306/nas", "mysql://bob:***@db.host:3306/nas"),
        ("postgresql://bob:pa?ss@host/db", "postgresql://bob:***@host/db"),
        ("postgresql://bob:pa?x=1@host", "postgresql://bob:***@host"),
        ("postgresql://bob:pw1234@[::1]:5432/nas", "postgresql://bob:***@[::1]:5432/nas"),
        ("postgresql://bob@db.host/nas", "postgresql://bob@db.host/nas"),
    ],
)
def test_safe_url_masks_the_password_before_the_host_and_in_the_query(url, shown):
    assert safe_url(url) == shown


def test_a_refused_storage_never_quotes_its_query_password():
    # Nothing listens on port 1: the driver's own message must not carry the password.
    url = "postgresql+psycopg2://bob@127.0.0.1:1/nas?password=S3cretPW&connect_timeout=2"
    with pytest.raises(StorageError) as error:
        open_storage(url)
    assert "S3cretPW" not in str(error.value)
    assert "password=***" in str(error.value)


@pytest.mark.parametrize("kind", ["sqlite:///{}/nosuch.db", "{}/nosuch.journal"])
def test_a_worker_given_a_missing_study_file_creates_nothing(tmp_path, capsys, kind):
    from search.cli import main

    url = kind.format(tmp_path)
    assert main(["worker", "--storage", url, "--study", "r"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no study storage at" in err and "\n" not in err
    assert list(tmp_path.iterdir()) == []


def _open(url: str, barrier, outcomes) -> None:
    barrier.wait()  # all processes create the new database's tables at the same moment
    try:
        open_storage(url)
        outcomes.put("ok")
    except Exception as error:
        outcomes.put(f"{type(error).__name__}: {error}")


def open_at_once(url: str, processes: int = 3) -> list[str]:
    """What each of ``processes`` processes got from ``open_storage(url)``, all started on
    one barrier: "ok" or the error."""
    context = multiprocessing.get_context("fork")  # inherits the imports: no start-up gap
    barrier, outcomes = context.Barrier(processes), context.Queue()
    workers = [
        context.Process(target=_open, args=(url, barrier, outcomes)) for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    results = [outcomes.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join()
    return results


def test_processes_opening_one_new_sqlite_study_together_all_get_it(tmp_path):
    # Optuna's RDBStorage checks for each table, then creates it: of two processes doing so
    # at once on a new file, one used to fail ("table studies already exists").
    for round_ in range(6):
        url = f"sqlite:///{tmp_path}/study-{round_}.db"
        assert open_at_once(url) == ["ok"] * 3


def test_a_storage_password_stays_off_command_lines_and_out_of_the_study(monkeypatch):
    import optuna

    import search.runner as runner
    from search.config import parse_config

    url = "postgresql://bob:pw1234@db.host/nas"
    config = parse_config({"name": "r", "storage": url})
    started = []

    class Started:
        def __init__(self, command, env, **kwargs):
            started.append((command, env))

        returncode = 0

        def poll(self):
            return 0

    monkeypatch.setattr(runner.subprocess, "Popen", Started)
    runner._run_local_workers(config, url, 2)
    assert len(started) == 2
    for command, env in started:
        # Every user of the machine can read a command line (ps); not its environment.
        assert not any("pw1234" in part for part in command)
        assert env[runner.STORAGE_VARIABLE] == url

    study = optuna.create_study()
    runner.record_config(study, config)
    assert study.user_attrs[runner.CONFIG]["storage"] == "postgresql://bob:***@db.host/nas"


def test_a_worker_without_a_storage_says_how_to_give_one(monkeypatch, capsys):
    from search.cli import main
    from search.runner import STORAGE_VARIABLE

    monkeypatch.delenv(STORAGE_VARIABLE, raising=False)
    assert main(["worker", "--study", "r"]) == 2
    assert f"--storage URL, or the URL in {STORAGE_VARIABLE}" in capsys.readouterr().err


def test_a_ctrl_c_during_a_journal_write_lands_after_it(tmp_path, monkeypatch):
    import os
    import signal

    from optuna.storages.journal import JournalFileBackend

    from search.storage import _SignalSafeJournalFile

    written = []

    def slow_append(self, logs):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the file lock is held
        written.append(logs)

    monkeypatch.setattr(JournalFileBackend, "append_logs", slow_append)
    backend = _SignalSafeJournalFile(str(tmp_path / "s.journal"))
    with pytest.raises(KeyboardInterrupt):
        backend.append_logs([{"op": 1}])
    assert written == [[{"op": 1}]]  # the write finished; the interrupt came after it
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_sigterm_inside_a_journal_write_waits_for_its_end(tmp_path, monkeypatch):
    # The CLI takes SIGTERM the Ctrl-C way (a batch scheduler's stop, or a local worker's
    # own when its search is gone): it must not cut a write in half either.
    import os
    import signal

    from optuna.storages.journal import JournalFileBackend

    from search.cli import Terminated, _stop_on_sigterm
    from search.storage import _SignalSafeJournalFile

    written = []

    def slow_append(self, logs):
        os.kill(os.getpid(), signal.SIGTERM)
        written.append(logs)

    monkeypatch.setattr(JournalFileBackend, "append_logs", slow_append)
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        backend = _SignalSafeJournalFile(str(tmp_path / "t.journal"))
        with pytest.raises(Terminated):
            backend.append_logs([{"op": 1}])
        assert written == [[{"op": 1}]]
    finally:
        signal.signal(signal.SIGTERM, previous)
