from __future__ import annotations

import pytest

from spaces import ArchSpec, Candidate, StageSpec, build, get_candidate, register_model


@pytest.fixture(autouse=True)
def models(monkeypatch):
    monkeypatch.setattr(build, "_MODELS", dict(build._MODELS))


def test_a_user_model_may_not_take_a_baselines_name():
    baseline = get_candidate("plain_cnn")

    def plain_cnn() -> Candidate:  # the user's own, not the hand-designed baseline
        return Candidate(ArchSpec(8, (StageSpec("conv", 1, 8, 3),)))

    with pytest.raises(ValueError) as err:
        register_model(plain_cnn)
    assert "\n" not in str(err.value)
    assert "'plain_cnn' is already registered by spaces.baselines.plain_cnn" in str(err.value)
    assert get_candidate("plain_cnn") == baseline


def test_the_same_function_may_be_registered_again():
    def favourite() -> Candidate:
        return Candidate(ArchSpec(8, (StageSpec("dsconv", 1, 16, 3),)))

    assert register_model(favourite) is favourite
    assert register_model(favourite) is favourite
    assert get_candidate("favourite") == favourite()
