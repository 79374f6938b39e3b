from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from evaluators.memory import (
    BIAS_BYTES,
    LAYER_METADATA_BYTES,
    SCALE_BYTES,
    activation_schedule,
    candidate_activation_bits,
    flash_bytes,
)
from spaces import (
    ArchSpec,
    Candidate,
    CompressionPolicy,
    StagePolicy,
    StageSpec,
    build_model,
    get_candidate,
    plan_channels,
    register_block,
)

KINDS = {
    "conv": StageSpec("conv", 2, 16, 3),
    "dsconv": StageSpec("dsconv", 2, 16, 3),
    "mbconv": StageSpec("mbconv", 2, 16, 3, expansion=3),
    "gconv": StageSpec("gconv", 2, 16, 3, expansion=2, groups=4),
}


def _chain() -> nn.Module:
    with torch.device("meta"):
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(16, 10),
        ).eval()


class _Residual(nn.Module):
    """x -> 1x1 conv 8->32 -> ReLU -> 1x1 conv 32->8 -> + x."""

    def __init__(self) -> None:
        super().__init__()
        self.expand = nn.Conv2d(8, 32, 1)
        self.relu = nn.ReLU()
        self.project = nn.Conv2d(32, 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.project(self.relu(self.expand(x)))


def test_a_chain_peaks_at_a_hand_counted_step():
    schedule = activation_schedule(_chain(), (3, 16, 16))
    # Elements, float32 (4 bytes). input 3x16x16 = 768. conv 0: 768 in + 8x16x16 = 2048
    # out. ReLU fuses (no tensor). conv 2 (stride 2): 2048 in + 16x8x8 = 1024 out, the
    # input is dead. BN and ReLU fold. pool 5: 1024 + 16. Flatten is a view. linear 7: 16+10.
    assert schedule.steps == (
        ("input", 768 * 4),
        ("0", (768 + 2048) * 4),
        ("2", (2048 + 1024) * 4),
        ("5", (1024 + 16) * 4),
        ("7", (16 + 10) * 4),
    )
    assert schedule.peak_bytes == 12288 and schedule.peak_step == "2"


def test_a_residual_input_stays_live_across_the_block():
    with torch.device("meta"):
        block = _Residual()
    schedule = activation_schedule(block, (8, 8, 8))
    # Elements: x = 8x8x8 = 512, hidden = 32x8x8 = 2048. input 512 | expand: x + 2048 |
    # project: x (kept for the add) + 2048 + 512 | add: x + 512 + 512 (separate output).
    assert schedule.steps == (
        ("input", 512 * 4),
        ("expand", (512 + 2048) * 4),
        ("project", (512 + 2048 + 512) * 4),
        ("add", (512 + 512 + 512) * 4),
    )
    assert schedule.peak_bytes == 3072 * 4 and schedule.peak_step == "project"
    # The old rule, the largest input + output of one kernel: 512 + 2048 for either conv.
    assert schedule.peak_bytes > (512 + 2048) * 4


def test_an_activation_whose_input_is_read_later_gets_its_own_buffer():
    class Branch(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 1)
            self.relu = nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            return self.relu(y) + y

    with torch.device("meta"):
        branch = Branch()
    # 4x4x4 = 64 elements each. input 64 | conv 64 + 64 | relu: y (read by the add) + 64 |
    # add: y + relu + 64.
    schedule = activation_schedule(branch, (4, 4, 4), activation_bits_of=8)
    assert [live for _, live in schedule.steps] == [64, 128, 128, 192]


def test_activation_bits_scale_the_peak():
    full = activation_schedule(_chain(), (3, 16, 16), activation_bits_of=32)
    int8 = activation_schedule(_chain(), (3, 16, 16), activation_bits_of=8)
    assert int8.peak_bytes == full.peak_bytes / 4
    assert [live * 4 for _, live in int8.steps] == [live for _, live in full.steps]


def test_activation_bits_follow_the_stage_of_each_module():
    stages = (
        StagePolicy(activation_bits=8),
        StagePolicy(activation_bits=16),
        StagePolicy(activation_bits=32),
    )
    candidate = Candidate(
        ArchSpec(8, (KINDS["conv"], KINDS["mbconv"], KINDS["dsconv"])), CompressionPolicy(stages)
    )
    bits_of = candidate_activation_bits(candidate)
    assert bits_of("") == bits_of("stem.0") == 8  # the input counts at stage 0's bits
    assert bits_of("stages.1.0.body.0.0") == bits_of("stages.1.1") == 16
    assert bits_of("pool") == bits_of("classifier") == 32


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_block_kind_is_scheduled(kind):
    candidate = Candidate(ArchSpec(16, (KINDS[kind],)))
    model = build_model(candidate, 3, 10, device="meta").eval()
    schedule = activation_schedule(model, (3, 16, 16))
    steps = dict(schedule.steps)
    convs = [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert set(convs) <= set(steps)
    # Both blocks keep 16 channels at stride 1: mbconv and gconv add their input.
    adds = [step for step in steps if step.endswith(":add")]
    assert len(adds) == (2 if kind in ("mbconv", "gconv") else 0)
    if kind == "gconv":
        assert "stages.0.0.body.1:index_select" in steps
    # Float32 16x16 maps: no step holds less than its largest conv's input + output.
    hidden = {"mbconv": 48, "gconv": 32}.get(kind, 16)
    assert schedule.peak_bytes >= 2 * hidden * 16 * 16 * 4


def test_the_schedule_covers_registered_and_sampled_candidates(sampled_candidates):
    candidates = [get_candidate("tiny_mixed"), get_candidate("tiny_dsconv")]
    for candidate in candidates + sampled_candidates(12):
        for plan in (None, plan_channels(candidate)):
            model = build_model(candidate, 1, 10, device="meta", plan=plan).eval()
            schedule = activation_schedule(model, (1, 28, 28), candidate_activation_bits(candidate))
            assert schedule.steps[0][0] == "input" and schedule.steps[-1][0] == "classifier"
            assert schedule.peak_bytes == max(live for _, live in schedule.steps) > 0


def test_a_user_block_that_does_not_trace_is_refused_not_costed_whole():
    @register_block("shape_branch_test")
    class ShapeBranch(nn.Module):
        def __init__(self, in_channels, out_channels, stride, stage):
            super().__init__()
            self.conv = nn.Conv2d(in_channels, out_channels, 1, stride)

        def forward(self, x):
            # Python control flow on a shape: symbolic tracing cannot follow it.
            return self.conv(x) if x.shape[-1] > 1 else x

    try:
        candidate = Candidate(ArchSpec(4, (StageSpec("shape_branch_test", 1, 8),)))
        model = build_model(candidate, 1, 10, device="meta")
        # Kept whole, its inner tensors would not count: a peak met on paper only.
        with pytest.raises(ValueError, match=r"does not trace with torch\.fx.*check_block"):
            activation_schedule(model, (1, 8, 8))
    finally:
        from spaces import blocks

        blocks._BLOCKS.pop("shape_branch_test")


def _flash(weight_bits: int, sparsity: float = 0.0) -> int:
    # stem conv 1->5 3x3 (45 weights), stage conv 5->6 3x3 (270), classifier 6->10 (60)
    candidate = Candidate(
        ArchSpec(5, (StageSpec("conv", 1, 6, 3),)),
        CompressionPolicy((StagePolicy(weight_bits=weight_bits, sparsity=sparsity),)),
    )
    return flash_bytes(build_model(candidate, 1, 10, device="meta"), candidate)


OUTPUTS = 5 + 6 + 10  # output channels of the three layers
FIXED = OUTPUTS * BIAS_BYTES + 3 * LAYER_METADATA_BYTES


def test_flash_packs_weights_at_their_bits():
    assert _flash(32) == (45 + 270 + 60) * 4 + FIXED  # float: no scales
    quantized = FIXED + OUTPUTS * SCALE_BYTES
    int8, int4 = _flash(8) - quantized, _flash(4) - quantized
    assert int8 == 45 + 270 + 60
    # Half of 8-bit's bytes, each layer rounded up to whole bytes (22.5 -> 23); with even
    # counts exactly half (tests/evaluators/test_cost.py).
    assert int4 == 23 + 135 + 30
    # 2 bits: each layer packs to whole bytes: ceil(11.25) + ceil(67.5) + 15
    assert _flash(2) - quantized == 12 + 68 + 15


def test_flash_of_sparse_weights_is_non_zeros_plus_a_bitmap():
    # kept = count - round(count * 0.5): 45 - 22 = 23 (round half to even), 135, 30
    values = 23 + 135 + 30
    bitmaps = math.ceil(45 / 8) + math.ceil(270 / 8) + math.ceil(60 / 8)
    assert _flash(8, 0.5) == values + bitmaps + FIXED + OUTPUTS * SCALE_BYTES
