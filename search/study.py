"""The Optuna study of a run: sampler, storage, and resuming by name."""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna


class StorageError(Exception):
    """A storage that cannot be opened; the message hides any password in the URL."""


def safe_url(url: str) -> str:
    """The URL with its password masked, for logs and reports."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1] if "@" in url else url


def default_storage(run_dir: Path) -> str:
    return f"sqlite:///{(run_dir / 'study.db').resolve()}"


def make_sampler(name: str, seed: int, completed: int) -> optuna.samplers.BaseSampler:
    """A seeded sampler. The seed moves on with the number of trials already in the study,
    so a resumed run proposes new candidates instead of replaying its first ones, and the
    same seed and history still give the same proposals."""
    seed = seed + completed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "tpe":
            return optuna.samplers.TPESampler(
                seed=seed, n_startup_trials=5, multivariate=True, group=True
            )
        if name == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed, population_size=10)
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"unknown sampler {name!r}")


def open_study(
    study_name: str, storage: str, directions: list[str], sampler_name: str, seed: int
) -> optuna.Study:
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
        completed = len(study.trials)
    except KeyError:
        completed = 0
    except Exception as error:
        raise StorageError(
            f"cannot open storage {safe_url(storage)} ({type(error).__name__}: "
            f"{str(error).splitlines()[0][:200]}); check the storage URL and that the server runs"
        ) from None
    sampler = make_sampler(sampler_name, seed, completed)
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        directions=directions,
        sampler=sampler,
        load_if_exists=True,
    )
    if [d.name.lower() for d in study.directions] != directions:
        raise StorageError(
            f"study {study_name!r} in {safe_url(storage)} optimises other objectives; "
            "use another run name"
        )
    return study
