"""Hand-designed baselines, written as fixed candidates of our own space.

These are the "obvious alternatives" a user would otherwise ship: MobileNetV2 at width
0.35 and 0.5, a ShuffleNet (v1, groups 4) and a plain CNN. Expressing them as
``Candidate`` values (rather than importing torchvision models) means the search's own
pipeline judges them: the same builder, cost model, distillation recipe, export and latency
measurement as every searched candidate, so a comparison on the report is like for like.

All four are uncompressed (fp32 weights and activations, no pruning, no sparsity); a run
may adapt their bit-widths to what its device executes (``search.baselines``).

Adapted to small images (8x8 digits, 28x28 Fashion-MNIST): the ImageNet originals
downsample 32x, which would leave a 28x28 input well under 1x1 by the last stage. The
MobileNetV2 and ShuffleNet here downsample 8x in all (28x28 -> 4x4, never below 2x2; 8x8
-> 1x1), by keeping the stem at stride 1 and dropping the strides and stages that come
after the third downsampling; the plain CNN downsamples 4x (28x28 -> 7x7). What changes,
network by network, is in each builder's docstring.
"""

from __future__ import annotations

from spaces.build import get_candidate, register_model
from spaces.candidate import ArchSpec, Candidate, StageSpec

BASELINES: tuple[str, ...] = ("mobilenetv2_035", "mobilenetv2_050", "shufflenet_g4", "plain_cnn")

# MobileNetV2 (Sandler et al., 2018, table 2): (expansion t, width c, repeats n, stride s)
# of its seven bottleneck stages; the stem is a 3x3 conv of 32 channels at stride 2.
_MOBILENETV2 = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
# ShuffleNet v1 (Zhang et al., 2018, table 1) at groups 4: stage output widths and repeats;
# the stem is a 3x3 conv of 24 channels at stride 2, then a 3x3 max pool at stride 2.
_SHUFFLENET_G4 = ((272, 4), (544, 8), (1088, 4))


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a scaled width to a multiple of ``divisor`` (at least ``divisor``) without
    losing more than 10 %: torchvision's ``_make_divisible``, so width 0.35 and 0.5 give
    the widths of the published models."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def mobilenet_v2(width_mult: float, stages: int = 5) -> Candidate:
    """MobileNetV2 at ``width_mult``, its first ``stages`` bottleneck stages, for small images.

    - Widths: the paper's (16, 24, 32, 64, 96, ...) times ``width_mult``, rounded to
      multiples of 8 (at least 8); stem 32 x ``width_mult`` likewise. Expansion 6 (1 in the
      first stage) and 3x3 depthwise kernels, as published.
    - Strides: the stem runs at stride 1 (published: 2) and the last two stages (160, 320)
      are dropped, so the stride-2 stages 24, 32 and 64 downsample 8x in all.
    - Head: the published network ends in a 1x1 conv to 1280 channels, four times its last
      stage's 320; truncated after stage 96 it ends in a 1x1 conv to four times the last
      width (a ``conv`` stage with kernel 1), so the head keeps its proportion instead of
      holding most of the parameters.
    """
    specs = []
    for expansion, width, depth, stride in _MOBILENETV2[:stages]:
        specs.append(
            StageSpec(
                "mbconv",
                depth,
                make_divisible(width * width_mult),
                kernel=3,
                expansion=expansion,
                stride=stride,
            )
        )
    specs.append(StageSpec("conv", 1, 4 * specs[-1].width, kernel=1))
    return Candidate(ArchSpec(make_divisible(32 * width_mult), tuple(specs), stem_stride=1))


def shufflenet_v1(groups: int = 4, width_mult: float = 0.25) -> Candidate:
    """ShuffleNet v1 with ``groups`` = 4 at ``width_mult``, for small images.

    - Units: our ``gconv`` block (grouped 1x1, channel shuffle, 3x3 depthwise, grouped 1x1,
      residual when the shapes allow). Two differences from the paper, both forced by the
      space: its bottleneck is a quarter of the unit's output width, ours is at least the
      output width (expansion 1, the smallest the space has), so at the default 0.25x our
      units are as wide inside as the paper's 1x bottlenecks (72, 136, 272 against 68,
      136, 272) and a quarter as wide outside; and its stride-2 units concatenate an
      average-pooled shortcut, ours have no shortcut.
    - Widths: the paper's g=4 stages (272, 544, 1088) times ``width_mult``, rounded to
      multiples of 8 (so divisible by the 4 groups); the stem keeps the paper's 24 channels.
    - Repeats: the paper's 4, 8, 4.
    - Strides: the stem runs at stride 1 and the max pool is dropped (published: 2 and 2);
      the three stride-2 stages downsample 8x in all.
    """
    specs = tuple(
        StageSpec(
            "gconv",
            depth,
            make_divisible(width * width_mult, max(8, groups)),
            kernel=3,
            expansion=1,
            groups=groups,
            stride=2,
        )
        for width, depth in _SHUFFLENET_G4
    )
    return Candidate(ArchSpec(24, specs, stem_stride=1))


def plain_cnn() -> Candidate:
    """A plain CNN, the network most people start from: 3x3 conv 16, then two stages of two
    3x3 convs (32 and 64 channels, each stage downsampling 2x), average pool, linear. No
    depthwise, group or residual tricks: the reference the lightweight kinds must beat."""
    return Candidate(
        ArchSpec(
            16,
            (
                StageSpec("conv", 2, 32, kernel=3, stride=2),
                StageSpec("conv", 2, 64, kernel=3, stride=2),
            ),
        )
    )


@register_model
def mobilenetv2_035() -> Candidate:
    """MobileNetV2 at width 0.35 (see ``mobilenet_v2``)."""
    return mobilenet_v2(0.35)


@register_model
def mobilenetv2_050() -> Candidate:
    """MobileNetV2 at width 0.5 (see ``mobilenet_v2``)."""
    return mobilenet_v2(0.5)


@register_model
def shufflenet_g4() -> Candidate:
    """ShuffleNet v1, groups 4 (see ``shufflenet_v1``)."""
    return shufflenet_v1(groups=4, width_mult=0.25)


register_model(plain_cnn)


def baseline_candidates() -> dict[str, Candidate]:
    """The baselines by name, in the order the report lists them."""
    return {name: get_candidate(name) for name in BASELINES}
