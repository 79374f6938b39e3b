from __future__ import annotations

import pytest

from evaluators.cost import estimate_cost
from spaces import ArchSpec, Candidate, CompressionPolicy, StagePolicy, StageSpec, build_model


def test_cost_params_equal_the_built_modules_for_sampled_candidates(sampled_candidates):
    for candidate in sampled_candidates(30):
        for shape in [(1, 28, 28), (3, 32, 32)]:
            cost = estimate_cost(candidate, shape, 10)
            model = build_model(candidate, shape[0], 10)
            assert cost.params == sum(p.numel() for p in model.parameters()), candidate.genome


def _one_conv_stage(weight_bits=32, activation_bits=32, sparsity=0.0):
    return Candidate(
        ArchSpec(4, (StageSpec("conv", 1, 8, 3),)),
        CompressionPolicy(
            (
                StagePolicy(
                    weight_bits=weight_bits, activation_bits=activation_bits, sparsity=sparsity
                ),
            )
        ),
    )


def test_cost_of_a_hand_counted_network():
    # stem: conv 1->4 3x3 on 8x8 (36 weights), BN 4 (8 params)
    # stage: conv 4->8 3x3 (288 weights), BN 8 (16 params); classifier 8->10 (80 + 10)
    cost = estimate_cost(_one_conv_stage(), (1, 8, 8), 10)
    assert cost.params == 36 + 8 + 288 + 16 + 80 + 10
    assert cost.macs == 64 * 4 * 9 + 64 * 8 * 4 * 9 + 80
    # weights at 32 bits + one 32-bit bias per output channel (batch norm folded)
    assert cost.weight_bytes == (36 + 288 + 80) * 4 + (4 + 8 + 10) * 4
    # largest input + output of a kernel: stage conv, 4x8x8 in + 8x8x8 out, float32
    assert cost.peak_activation_bytes == (4 * 64 + 8 * 64) * 4


def test_bit_widths_scale_stored_weights_and_activations():
    full = estimate_cost(_one_conv_stage(), (1, 8, 8), 10)
    int8 = estimate_cost(_one_conv_stage(8, 8), (1, 8, 8), 10)
    assert int8.weight_bytes == (36 + 288 + 80) * 1 + (4 + 8 + 10) * 4
    assert int8.peak_activation_bytes == full.peak_activation_bytes / 4
    assert int8.macs == full.macs and int8.params == full.params


def test_four_bit_weights_store_in_about_half_the_eight_bit_size():
    int8 = estimate_cost(_one_conv_stage(8, 8), (1, 8, 8), 10)
    int4 = estimate_cost(_one_conv_stage(4, 8), (1, 8, 8), 10)
    biases = (4 + 8 + 10) * 4  # 32-bit biases do not shrink
    assert int4.weight_bytes - biases == (int8.weight_bytes - biases) / 2
    assert 0.5 < int4.weight_bytes / int8.weight_bytes < 0.7


def test_sparsity_counts_only_non_zeros_plus_a_bitmap_index():
    sparse = estimate_cost(_one_conv_stage(8, 8, sparsity=0.5), (1, 8, 8), 10)
    weights = 36 + 288 + 80
    kept = 18 + 144 + 40
    assert sparse.weight_bytes == pytest.approx((kept * 8 + weights) / 8 + (4 + 8 + 10) * 4)
