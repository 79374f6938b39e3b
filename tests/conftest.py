from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture
def sampled_candidates():
    """Candidates drawn from the default space by a seeded random sampler."""
    import optuna

    from spaces import SearchSpace

    def draw(count: int, space: SearchSpace | None = None, seed: int = 0):
        space = space or SearchSpace()
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        out = []
        for _ in range(count):
            trial = study.ask()
            out.append(space.suggest(trial))
            study.tell(trial, 0.0)
        return out

    return draw


@pytest.fixture
def digits_context():
    """An evaluation context on sklearn's digits (random teacher logits, a lax latency
    budget, 200 training images, quick timing): ``digits_context(epochs, **settings)``."""
    import torch

    from evaluators.budget import Budget
    from evaluators.data import load_dataset
    from evaluators.distill import TrainConfig
    from evaluators.hardware import Host
    from evaluators.pipeline import EvaluationContext

    def make(epochs: int, **settings):
        digits = load_dataset("digits", seed=0)
        return EvaluationContext.create(
            digits,
            torch.randn(len(digits.train), 10),
            Budget(latency_ms=1000),
            Host(runs=5, warmup=1),
            TrainConfig(epochs=epochs, batch_size=64),
            200,
            progress=False,
            **settings,
        )

    return make


def pytest_collection_modifyitems(config, items):
    """Tests that use a PostgreSQL server carry the `postgres` marker (-m "not postgres")."""
    for item in items:
        if "postgres_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory):
    """SQLAlchemy URL of a PostgreSQL server on loopback, one for the session:
    postgresql+psycopg2://paretonas:PASSWORD@127.0.0.1:PORT/paretonas (see tests/postgres.py)."""
    from tests.postgres import start_postgres

    server = start_postgres(tmp_path_factory.mktemp("postgres"))
    try:
        yield server.url
    finally:
        server.stop()
