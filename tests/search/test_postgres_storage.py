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


def test_safe_url_hides_the_postgres_password(postgres_url):
    from sqlalchemy.engine import make_url

    password = make_url(postgres_url).password
    assert password
    shown = safe_url(postgres_url)
    assert password not in shown
    assert "127.0.0.1" in shown and "paretonas" in shown
