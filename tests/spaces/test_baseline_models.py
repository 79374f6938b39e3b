"""The hand-designed baselines: fixed candidates of our space that build at small sizes."""

from __future__ import annotations

import pytest
import torch

from spaces import BASELINES, Candidate, baseline_candidates, build_model, get_candidate
from spaces.baselines import make_divisible, mobilenet_v2


def _params(candidate: Candidate) -> int:
    return sum(p.numel() for p in build_model(candidate, 1, 10).parameters())


def test_four_registered_uncompressed_baselines():
    candidates = baseline_candidates()
    assert (
        list(candidates)
        == list(BASELINES)
        == [
            "mobilenetv2_035",
            "mobilenetv2_050",
            "shufflenet_g4",
            "plain_cnn",
        ]
    )
    for name, candidate in candidates.items():
        assert get_candidate(name) == candidate
        assert candidate.policy.is_uncompressed
        assert Candidate.from_json(candidate.to_json()) == candidate
    kinds = {name: {s.kind for s in c.arch.stages} for name, c in candidates.items()}
    assert kinds["mobilenetv2_035"] == kinds["mobilenetv2_050"] == {"mbconv", "conv"}
    assert kinds["shufflenet_g4"] == {"gconv"}
    assert all(s.groups == 4 for s in candidates["shufflenet_g4"].arch.stages)
    assert kinds["plain_cnn"] == {"conv"}


@pytest.mark.parametrize("name", BASELINES)
@pytest.mark.parametrize("size", [28, 8])
def test_each_baseline_builds_and_runs_on_small_images(name, size):
    model = build_model(get_candidate(name), 1, 10).eval()
    images = torch.randn(2, 1, size, size)
    with torch.no_grad():
        assert model(images).shape == (2, 10)
        features = model.stem(images)
        for stage in model.stages:
            features = stage(features)
        logits = model.classifier(torch.flatten(model.pool(features), 1))
    assert logits.shape == (2, 10)
    # 8x downsampling in all (4x for the plain CNN): never below 2x2 from 28x28.
    expected = {28: 7, 8: 2} if name == "plain_cnn" else {28: 4, 8: 1}
    assert features.shape[-1] == expected[size]


def test_parameter_counts_are_distinct_and_follow_the_width():
    params = {name: _params(c) for name, c in baseline_candidates().items()}
    assert len(set(params.values())) == len(params)
    assert params["mobilenetv2_035"] < params["mobilenetv2_050"]


def test_mobilenet_widths_are_the_published_ones():
    # torchvision's MobileNetV2 at width 0.35 and 0.5: the same rounding, the same widths.
    assert [make_divisible(c * 0.35) for c in (32, 16, 24, 32, 64, 96)] == [16, 8, 8, 16, 24, 32]
    assert [make_divisible(c * 0.5) for c in (32, 16, 24, 32, 64, 96)] == [16, 8, 16, 16, 32, 48]
    arch = mobilenet_v2(0.5).arch
    assert [s.expansion for s in arch.stages[:5]] == [1, 6, 6, 6, 6]
    assert [s.depth for s in arch.stages[:5]] == [1, 2, 3, 4, 3]
    assert arch.stages[-1].kind == "conv" and arch.stages[-1].kernel == 1
