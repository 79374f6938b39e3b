"""The Optuna study of a run: sampler, and resuming by name (storages: ``search.storage``)."""

from __future__ import annotations

import hashlib
import warnings

import optuna
from optuna.storages import BaseStorage

from search.storage import StorageError, open_storage, safe_url


def make_sampler(
    name: str, seed: int, completed: int, worker: str | None = None
) -> optuna.samplers.BaseSampler:
    """A seeded sampler. The seed moves on with the number of trials already in the study,
    so a resumed run proposes new candidates instead of replaying its first ones, and the
    same seed and history still give the same proposals.

    ``worker`` names one of several processes sharing the study (host and process id): it
    goes into the seed, since workers that open the study at the same moment see the same
    history and would otherwise propose, and train, the same candidates.
    """
    seed = seed + completed
    if worker is not None:
        digest = hashlib.sha256(f"{seed}|{worker}".encode()).digest()
        seed = int.from_bytes(digest[:4], "big")
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
        if name == "gp":
            # Gaussian-process Bayesian optimisation (log expected hypervolume improvement,
            # constraints from Trial.set_constraint); stage parameters a candidate lacks
            # are sampled independently, which is expected here, hence no warning.
            return optuna.samplers.GPSampler(
                seed=seed, n_startup_trials=5, warn_independent_sampling=False
            )
    raise ValueError(f"unknown sampler {name!r}")


def open_study(
    study_name: str,
    storage: str | BaseStorage,
    directions: list[str],
    sampler_name: str,
    seed: int,
    worker: str | None = None,
) -> optuna.Study:
    """Create the study or load it by name; ``storage`` is a URL or an opened storage;
    ``worker`` as for ``make_sampler``."""
    url = storage if isinstance(storage, str) else None
    if isinstance(storage, str):
        storage = open_storage(storage)
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
        completed = len(study.trials)
    except KeyError:
        completed = 0
    except Exception as error:
        where = safe_url(url) if url else type(storage).__name__
        raise StorageError(
            f"cannot open storage {where} ({type(error).__name__}: "
            f"{str(error).splitlines()[0][:200].split('@')[-1]}); check the storage URL and "
            "that the server runs"
        ) from None
    sampler = make_sampler(sampler_name, seed, completed, worker)
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        directions=directions,
        sampler=sampler,
        load_if_exists=True,
    )
    if [d.name.lower() for d in study.directions] != directions:
        raise StorageError(
            f"study {study_name!r} in {safe_url(url) if url else 'this storage'} optimises "
            "other objectives; use another run name"
        )
    return study
