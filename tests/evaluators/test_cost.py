from __future__ import annotations

from evaluators.cost import estimate_cost
from evaluators.devices import get_device
from evaluators.memory import BIAS_BYTES, LAYER_METADATA_BYTES, SCALE_BYTES
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


# Fixed flash per conv / linear layer (evaluators.memory): a 32-bit bias per output
# channel and a metadata allowance; a quantized layer adds an fp32 scale per output channel.
OUTPUTS = 4 + 8 + 10  # output channels of stem, stage conv and classifier
BIASES = OUTPUTS * BIAS_BYTES
METADATA = 3 * LAYER_METADATA_BYTES
SCALES = OUTPUTS * SCALE_BYTES


def test_cost_of_a_hand_counted_network():
    # stem: conv 1->4 3x3 on 8x8 (36 weights), BN 4 (8 params)
    # stage: conv 4->8 3x3 (288 weights), BN 8 (16 params); classifier 8->10 (80 + 10)
    cost = estimate_cost(_one_conv_stage(), (1, 8, 8), 10)
    assert cost.params == 36 + 8 + 288 + 16 + 80 + 10
    assert cost.macs == 64 * 4 * 9 + 64 * 8 * 4 * 9 + 80
    # weights at 32 bits (no scales) + 32-bit biases (batch norm folded) + metadata
    assert cost.weight_bytes == (36 + 288 + 80) * 4 + BIASES + METADATA
    # live tensors, float32: input 64 | stem conv 64 + 256 | stage conv 256 + 512 (the
    # input is dead by then) | pool 512 + 8 | linear 8 + 10: the stage conv peaks
    assert cost.peak_activation_bytes == (4 * 64 + 8 * 64) * 4


def test_bit_widths_scale_stored_weights_and_activations():
    full = estimate_cost(_one_conv_stage(), (1, 8, 8), 10)
    int8 = estimate_cost(_one_conv_stage(8, 8), (1, 8, 8), 10)
    assert int8.weight_bytes == (36 + 288 + 80) * 1 + BIASES + SCALES + METADATA
    assert int8.peak_activation_bytes == full.peak_activation_bytes / 4
    assert int8.macs == full.macs and int8.params == full.params


def test_on_a_device_a_stage_is_costed_at_the_widths_its_kernels_hold():
    host = get_device("host")  # runs int8 (w <= 8 with a8) and fp32, nothing between
    full = estimate_cost(_one_conv_stage(), (1, 8, 8), 10, device=host)
    # w32a8 runs fp32 kernels on fp32 tensors; w8a32's file holds fp32 weights.
    for mixed in (_one_conv_stage(32, 8), _one_conv_stage(8, 32)):
        assert estimate_cost(mixed, (1, 8, 8), 10, device=host) == full
        assert estimate_cost(mixed, (1, 8, 8), 10) != full  # at the policy's own widths
    int8 = estimate_cost(_one_conv_stage(8, 8), (1, 8, 8), 10, device=host)
    assert int8 == estimate_cost(_one_conv_stage(8, 8), (1, 8, 8), 10)
    # 4-bit weights beside int8 kernels stay packed at 4 bits.
    int4 = estimate_cost(_one_conv_stage(4, 8), (1, 8, 8), 10, device=host)
    assert int4.weight_bytes < int8.weight_bytes
    assert int4.peak_activation_bytes == int8.peak_activation_bytes
    # Fewer weight bits never cost more flash: in fp32 kernels every width is stored fp32.
    for activations in host.activation_bits:
        flash = [
            estimate_cost(_one_conv_stage(w, activations), (1, 8, 8), 10, device=host).weight_bytes
            for w in sorted(host.weight_bits)
        ]
        assert flash == sorted(flash), (activations, flash)
    # A bit-serial device runs each operand at its own width.
    serial = host.model_copy(
        update={"latency": host.latency.model_copy(update={"scaling": "bit_serial"})}
    )
    assert estimate_cost(_one_conv_stage(32, 8), (1, 8, 8), 10, device=serial) != full


def test_four_bit_weights_store_in_half_the_eight_bit_weight_bytes():
    int8 = estimate_cost(_one_conv_stage(8, 8), (1, 8, 8), 10)
    int4 = estimate_cost(_one_conv_stage(4, 8), (1, 8, 8), 10)
    fixed = BIASES + SCALES + METADATA  # none of these shrink with the weight bits
    assert int4.weight_bytes == (36 + 288 + 80) // 2 + fixed
    assert int4.weight_bytes - fixed == (int8.weight_bytes - fixed) / 2


def test_sparsity_counts_only_non_zeros_plus_a_bitmap_index():
    sparse = estimate_cost(_one_conv_stage(8, 8, sparsity=0.5), (1, 8, 8), 10)
    # per layer: half the weights kept at 8 bits + ceil(count / 8) bytes of bitmap
    values = 18 + 144 + 40
    bitmaps = 5 + 36 + 10  # ceil(36 / 8), 288 / 8, 80 / 8
    assert sparse.weight_bytes == values + bitmaps + BIASES + SCALES + METADATA


def test_peak_counts_the_residual_input_across_the_block():
    # stem conv 1->8 on 8x8, then one mbconv with a residual: expand 8->16, depthwise 16,
    # project 16->8, add. Live elements: input 64 | stem 64 + 512 | expand 512 + 1024 |
    # depthwise 512 (block input, kept for the add) + 1024 + 1024 | project 512 + 1024 +
    # 512 | add 512 * 3 | pool 512 + 8 | classifier 8 + 10. Peak: the depthwise conv.
    candidate = Candidate(ArchSpec(8, (StageSpec("mbconv", 1, 8, 3, expansion=2),)))
    cost = estimate_cost(candidate, (1, 8, 8), 10)
    assert cost.peak_activation_bytes == (512 + 1024 + 1024) * 4
    # The old rule (largest input + output of one kernel) saw 2 x 1024 elements only.
    assert cost.peak_activation_bytes > (1024 + 1024) * 4
