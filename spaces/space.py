"""The search space, declared once as data and rendered to a define-by-run ``suggest``.

Parameter names are stable (``num_stages``, ``s0_kind``, ``s0_width``, ``p0_weight_bits``,
...) because they are the columns of trials.csv and the keys of stored Optuna trials:
renaming one breaks resuming an existing study.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from spaces.candidate import (
    ACTIVATION_BITS,
    BLOCK_KINDS,
    WEIGHT_BITS,
    ArchSpec,
    Candidate,
    CompressionPolicy,
    StagePolicy,
    StageSpec,
)
from spaces.params import Choice, Int, SuggestsValues


@dataclass(frozen=True)
class SearchSpace:
    """Every dimension the search may vary. Stage dimensions are sampled per stage."""

    num_stages: Int = field(default_factory=lambda: Int(1, 3))
    stem_width: Choice = field(default_factory=lambda: Choice((8, 16)))
    stem_stride: Choice = field(default_factory=lambda: Choice((1,)))
    kind: Choice = field(default_factory=lambda: Choice(BLOCK_KINDS))
    depth: Int = field(default_factory=lambda: Int(1, 2))
    width: Choice = field(default_factory=lambda: Choice((16, 24, 32, 48)))
    kernel: Choice = field(default_factory=lambda: Choice((3, 5)))
    expansion: Choice = field(default_factory=lambda: Choice((2, 4)))
    groups: Choice = field(default_factory=lambda: Choice((2, 4)))
    stride: Choice = field(default_factory=lambda: Choice((1, 2)))
    prune_ratio: Choice = field(default_factory=lambda: Choice((0.0,)))
    weight_bits: Choice = field(default_factory=lambda: Choice((32,)))
    activation_bits: Choice = field(default_factory=lambda: Choice((32,)))
    sparsity: Choice = field(default_factory=lambda: Choice((0.0,)))
    rank_ratio: Choice = field(default_factory=lambda: Choice((1.0,)))
    factorize_kxk: Choice = field(default_factory=lambda: Choice((False,)))
    # Weight and activation widths drawn together ("w8a8", "w32a32") instead of apart: a
    # device runs some pairs alike (the host runs w8a32 as fp32), and drawn apart every
    # such pair is a trial that costs what fp32 costs and can only lose accuracy.
    precision: Choice | None = None

    def __post_init__(self) -> None:
        if self.precision is not None:
            names = dict.fromkeys(
                precision_name(*parse_precision(p)) for p in self.precision.values
            )
            weights, activations = precision_widths(names)
            object.__setattr__(self, "precision", Choice(tuple(names)))
            object.__setattr__(self, "weight_bits", Choice(weights))
            object.__setattr__(self, "activation_bits", Choice(activations))
        bad_kinds = [k for k in self.kind.values if k not in _known_kinds()]
        if bad_kinds:
            raise ValueError(f"unknown block kinds {bad_kinds}; known: {sorted(_known_kinds())}")
        bad_bits = [b for b in self.weight_bits.values if b not in WEIGHT_BITS]
        if bad_bits:
            raise ValueError(f"weight bits {bad_bits} are not among {list(WEIGHT_BITS)}")
        bad_bits = [b for b in self.activation_bits.values if b not in ACTIVATION_BITS]
        if bad_bits:
            raise ValueError(f"activation bits {bad_bits} are not among {list(ACTIVATION_BITS)}")
        if "gconv" in self.kind.values:
            # Any stage may follow any other, so every width must split into every group count.
            widths = set(self.width.values) | set(self.stem_width.values)
            for groups in self.groups.values:
                bad = sorted(w for w in widths if w % groups)
                if bad:
                    raise ValueError(
                        f"widths {bad} are not divisible by gconv groups {groups}; "
                        "use widths that are multiples of every group count"
                    )

    def suggest(self, trial: SuggestsValues) -> Candidate:
        """Ask ``trial`` for one candidate (Optuna define-by-run)."""
        num_stages = self.num_stages.suggest(trial, "num_stages")
        stages = []
        policies = []
        for i in range(num_stages):
            kind = self.kind.suggest(trial, f"s{i}_kind")
            expansion = 1
            groups = 1
            if kind in ("mbconv", "gconv"):
                expansion = self.expansion.suggest(trial, f"s{i}_expansion")
            if kind == "gconv":
                groups = self.groups.suggest(trial, f"s{i}_groups")
            stages.append(
                StageSpec(
                    kind=kind,
                    depth=self.depth.suggest(trial, f"s{i}_depth"),
                    width=self.width.suggest(trial, f"s{i}_width"),
                    kernel=self.kernel.suggest(trial, f"s{i}_kernel"),
                    expansion=expansion,
                    groups=groups,
                    stride=self.stride.suggest(trial, f"s{i}_stride"),
                )
            )
            # A user kind's channels are not pruned (spaces.channels): a ratio drawn for it
            # would change nothing but the genome, and train the same network twice.
            prunable = kind in BLOCK_KINDS
            policies.append(
                StagePolicy(
                    prune_ratio=self.prune_ratio.suggest(trial, f"p{i}_prune_ratio")
                    if prunable
                    else 0.0,
                    **self._bits(trial, i),
                    sparsity=self.sparsity.suggest(trial, f"p{i}_sparsity"),
                    **self._factorization(trial, i),
                )
            )
        arch = ArchSpec(
            stem_width=self.stem_width.suggest(trial, "stem_width"),
            stem_stride=self.stem_stride.suggest(trial, "stem_stride"),
            stages=tuple(stages),
        )
        return Candidate(arch, CompressionPolicy(tuple(policies)))

    def _bits(self, trial: SuggestsValues, stage: int) -> dict[str, int]:
        if self.precision is None:
            return {
                "weight_bits": self.weight_bits.suggest(trial, f"p{stage}_weight_bits"),
                "activation_bits": self.activation_bits.suggest(trial, f"p{stage}_activation_bits"),
            }
        weights, activations = parse_precision(self.precision.suggest(trial, f"p{stage}_precision"))
        return {"weight_bits": weights, "activation_bits": activations}

    def _factorization(self, trial: SuggestsValues, stage: int) -> dict[str, Any]:
        rank_ratio = self.rank_ratio.suggest(trial, f"p{stage}_rank_ratio")
        if rank_ratio >= 1.0:  # off: whether k x k would be factorized is moot
            return {"rank_ratio": rank_ratio}
        kxk = self.factorize_kxk.suggest(trial, f"p{stage}_factorize_kxk")
        return {"rank_ratio": rank_ratio, "factorize_kxk": bool(kxk)}

    def aligned(self, multiple: int) -> SearchSpace:
        """This space with its stem and stage widths rounded up to multiples of
        ``multiple`` (in order, repeats dropped; ``multiple`` 1 returns it unchanged).

        For a device whose kernels work on blocks of channels: there a 6-channel layer
        runs padded to 8 channels or on a slower path, so it costs at least what 8 does
        and only loses accuracy; the sampler should not spend trials on it.
        """
        if multiple < 1:
            raise ValueError(f"a channel multiple must be >= 1, got {multiple}")
        if multiple == 1:
            return self

        def up(choice: Choice) -> Choice:
            return Choice(tuple(dict.fromkeys(-(-w // multiple) * multiple for w in choice.values)))

        return replace(self, stem_width=up(self.stem_width), width=up(self.width))

    def describe(self) -> dict[str, list]:
        """The space as plain lists, for the saved config and the report."""
        return {
            f.name: list(getattr(self, f.name).values)
            for f in fields(self)
            if getattr(self, f.name) is not None
        }


_PRECISION = re.compile(r"w(\d+)a(\d+)")


def parse_precision(text: str) -> tuple[int, int]:
    """``"w8a8"`` -> (8, 8): a stage's weight and activation bit-widths, as genomes write them."""
    match = _PRECISION.fullmatch(str(text).strip().lower())
    if not match:
        raise ValueError(
            f"a precision is written w<weight bits>a<activation bits>, e.g. w8a8; got {text!r}"
        )
    weights, activations = int(match[1]), int(match[2])
    if weights not in WEIGHT_BITS or activations not in ACTIVATION_BITS:
        raise ValueError(
            f"precision {text!r}: weight bits must be among {list(WEIGHT_BITS)} and activation "
            f"bits among {list(ACTIVATION_BITS)}"
        )
    return weights, activations


def precision_name(weight_bits: int, activation_bits: int) -> str:
    return f"w{weight_bits}a{activation_bits}"


def precision_widths(precisions: Iterable[str]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The weight and the activation bit-widths that ``precisions`` use, each in order of
    first use: what weight_bits and activation_bits say of a space that draws pairs."""
    pairs = [parse_precision(p) for p in precisions]
    return tuple(dict.fromkeys(w for w, _ in pairs)), tuple(dict.fromkeys(a for _, a in pairs))


def _known_kinds() -> set[str]:
    from spaces.blocks import registered_blocks

    return set(BLOCK_KINDS) | set(registered_blocks())
