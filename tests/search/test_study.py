"""Contract shared by every sampler a config may name (``search.study.make_sampler``): it
proposes candidates of our define-by-run space (stage parameters exist only for the stages
a candidate has), reads the budget as constraints, and is reproducible from its seed."""

from typing import get_args

import optuna
import pytest

from search.config import RunConfig
from search.study import make_sampler
from spaces import SearchSpace

SAMPLERS = get_args(RunConfig.model_fields["sampler"].annotation)
# Past every sampler's start-up trials (5 for TPE and GP, a population of 10 for NSGA-II),
# so that the model-based proposals are exercised too.
TRIALS = 14
WIDTH_BUDGET = 120


def _search(name: str, seed: int = 0) -> optuna.Study:
    space = SearchSpace()
    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=make_sampler(name, seed, 0)
    )

    def objective(trial: optuna.Trial) -> list[float]:
        stages = space.suggest(trial).arch.stages
        cost = sum(stage.width * stage.depth for stage in stages)
        trial.set_user_attr("stages", len(stages))
        trial.set_constraint("width", cost - WIDTH_BUDGET)
        # As the objective does: a candidate over budget is never trained, accuracy 0.
        accuracy = 0.0 if cost > WIDTH_BUDGET else 1 - 1 / (1 + cost / 50)
        return [accuracy, float(cost)]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=TRIALS)
    return study


@pytest.mark.parametrize("name", SAMPLERS)
def test_every_sampler_proposes_candidates_of_the_space_under_constraints(name):
    study = _search(name)
    trials = study.trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * TRIALS
    for trial in trials:
        stages = trial.user_attrs["stages"]
        # Stage parameters only for the stages the candidate has.
        assert {int(p[1]) for p in trial.params if p[0] == "s" and p[1].isdigit()} == set(
            range(stages)
        )
        assert trial.constraints == {"width": pytest.approx(trial.values[1] - WIDTH_BUDGET)}
    assert len({tuple(sorted(t.params.items())) for t in trials}) > TRIALS // 2


@pytest.mark.parametrize("name", SAMPLERS)
def test_every_sampler_repeats_its_proposals_from_the_same_seed(name):
    first, second = _search(name, seed=3), _search(name, seed=3)
    assert [t.params for t in first.trials] == [t.params for t in second.trials]


@pytest.mark.parametrize("name", SAMPLERS)
def test_workers_opening_a_study_together_propose_different_candidates(name):
    from search.study import open_study

    # Both see the same history (none): without a seed of their own they proposed the same
    # candidates, and each was trained twice.
    storage = optuna.storages.InMemoryStorage()
    directions = ["maximize", "minimize"]
    studies = [
        open_study("shared", storage, directions, name, 0, worker)
        for worker in ("host-a:101", "host-b:101", None, None)
    ]
    space = SearchSpace()
    proposals = [space.suggest(study.ask()).genome for study in studies]
    assert proposals[0] != proposals[1]
    assert proposals[2] == proposals[3]  # one process alone stays reproducible from its seed
