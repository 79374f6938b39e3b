"""One point of the search space: an architecture and the compression policy applied to it.

These are frozen value objects: they cross module boundaries (sampler -> cost model ->
builder -> storage -> report), so they must be hashable, comparable and serialisable
without loss. Dicts appear only at the edges (``to_dict`` / ``from_dict``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

BLOCK_KINDS: tuple[str, ...] = ("mbconv", "dsconv", "gconv", "conv")
WEIGHT_BITS: tuple[int, ...] = (2, 4, 8, 16, 32)
ACTIVATION_BITS: tuple[int, ...] = (8, 16, 32)
KERNELS: tuple[int, ...] = (3, 5, 7)

# Short codes keep the genome string readable in plots and logs.
_KIND_CODES = {"mbconv": "mb", "dsconv": "ds", "gconv": "gc", "conv": "cv"}


@dataclass(frozen=True)
class StageSpec:
    """A stage: ``depth`` blocks of one kind; the first block applies ``stride``.

    ``expansion`` is the hidden-width multiplier of mbconv and gconv blocks (ignored by the
    others, and normalised to 1 there so that equal networks have equal specs); ``groups``
    is the group count of gconv's 1x1 convolutions (1 elsewhere).
    """

    kind: str
    depth: int
    width: int
    kernel: int = 3
    expansion: int = 1
    groups: int = 1
    stride: int = 1

    def __post_init__(self) -> None:
        if self.kind not in BLOCK_KINDS and not _is_registered_kind(self.kind):
            raise ValueError(unknown_kind(self.kind))
        if self.depth < 1:
            raise ValueError(f"stage depth must be >= 1, got {self.depth}")
        if self.width < 1:
            raise ValueError(f"stage width must be >= 1, got {self.width}")
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError(f"kernel must be an odd positive size, got {self.kernel}")
        if self.stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {self.stride}")
        if self.expansion < 1:
            raise ValueError(f"expansion must be >= 1, got {self.expansion}")
        if self.groups < 1:
            raise ValueError(f"groups must be >= 1, got {self.groups}")
        if self.kind == "gconv" and self.width % self.groups != 0:
            raise ValueError(f"gconv width {self.width} is not divisible by groups {self.groups}")
        if self.kind not in ("mbconv", "gconv"):
            object.__setattr__(self, "expansion", 1)
        if self.kind != "gconv":
            object.__setattr__(self, "groups", 1)

    @property
    def genome(self) -> str:
        code = _KIND_CODES.get(self.kind, self.kind)
        text = f"{code}{self.depth}x{self.width}k{self.kernel}"
        if self.kind in ("mbconv", "gconv"):
            text += f"e{self.expansion}"
        if self.kind == "gconv":
            text += f"g{self.groups}"
        return text + f"s{self.stride}"


@dataclass(frozen=True)
class ArchSpec:
    """A stem convolution, then stages, then global pooling and a linear classifier."""

    stem_width: int
    stages: tuple[StageSpec, ...]
    stem_stride: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))
        if not self.stages:
            raise ValueError("an architecture needs at least one stage")
        if self.stem_width < 1:
            raise ValueError(f"stem width must be >= 1, got {self.stem_width}")
        if self.stem_stride not in (1, 2):
            raise ValueError(f"stem stride must be 1 or 2, got {self.stem_stride}")
        in_width = self.stem_width
        for index, stage in enumerate(self.stages):
            if stage.kind == "gconv" and in_width % stage.groups != 0:
                raise ValueError(
                    f"stage {index}: gconv input width {in_width} is not divisible "
                    f"by groups {stage.groups}"
                )
            in_width = stage.width

    @property
    def genome(self) -> str:
        stem = f"c{self.stem_width}" + ("s2" if self.stem_stride == 2 else "")
        return ",".join([stem, *(stage.genome for stage in self.stages)])


@dataclass(frozen=True)
class StagePolicy:
    """How one stage is compressed: channel pruning ratio, bit-widths, low-rank factorization.

    ``sparsity`` is unstructured magnitude sparsity: it shrinks stored size only, never
    latency, and is kept separate from ``prune_ratio`` (whole channels) for that reason.

    ``rank_ratio`` < 1 replaces the stage's pointwise (1x1, ungrouped) convolutions, and for
    the last stage the classifier, by two thin layers of rank ``rank_ratio`` x full rank
    (truncated SVD, ``evaluators.factorize``); ``factorize_kxk`` does the same to its k x k
    ungrouped convolutions as a k x 1 then 1 x k pair. A layer is factorized only where
    that stores fewer weights than the layer itself.
    """

    prune_ratio: float = 0.0
    weight_bits: int = 32
    activation_bits: int = 32
    sparsity: float = 0.0
    rank_ratio: float = 1.0
    factorize_kxk: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.prune_ratio < 1.0:
            raise ValueError(f"prune ratio must be in [0, 1), got {self.prune_ratio}")
        if not 0.0 <= self.sparsity < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), got {self.sparsity}")
        if not 0.0 < self.rank_ratio <= 1.0:
            raise ValueError(f"rank ratio must be in (0, 1], got {self.rank_ratio}")
        if self.weight_bits not in WEIGHT_BITS:
            raise ValueError(f"weight bits must be one of {WEIGHT_BITS}, got {self.weight_bits}")
        if self.activation_bits not in ACTIVATION_BITS:
            raise ValueError(
                f"activation bits must be one of {ACTIVATION_BITS}, got {self.activation_bits}"
            )

    @property
    def genome(self) -> str:
        text = f"p{self.prune_ratio:g}w{self.weight_bits}a{self.activation_bits}"
        text += f"u{self.sparsity:g}" if self.sparsity else ""
        if self.rank_ratio < 1.0:
            text += f"r{self.rank_ratio:g}" + ("k" if self.factorize_kxk else "")
        return text

    @property
    def factorizes(self) -> bool:
        return self.rank_ratio < 1.0


@dataclass(frozen=True)
class CompressionPolicy:
    """One ``StagePolicy`` per stage. The stem follows stage 0, the classifier the last stage."""

    stages: tuple[StagePolicy, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))

    @classmethod
    def uncompressed(cls, num_stages: int) -> CompressionPolicy:
        return cls(tuple(StagePolicy() for _ in range(num_stages)))

    @property
    def is_uncompressed(self) -> bool:
        return all(stage == StagePolicy() for stage in self.stages)

    @property
    def quantized(self) -> bool:
        """Whether any stage's weights or activations are below 32 bits."""
        return any(s.weight_bits < 32 or s.activation_bits < 32 for s in self.stages)

    @property
    def sparse(self) -> bool:
        """Whether any stage has unstructured sparsity."""
        return any(s.sparsity > 0 for s in self.stages)

    @property
    def genome(self) -> str:
        return ",".join(stage.genome for stage in self.stages)


@dataclass(frozen=True)
class Candidate:
    """What the search proposes and what a user exports: architecture plus policy."""

    arch: ArchSpec
    policy: CompressionPolicy = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.policy is None:
            object.__setattr__(
                self, "policy", CompressionPolicy.uncompressed(len(self.arch.stages))
            )
        if len(self.policy.stages) != len(self.arch.stages):
            raise ValueError(
                f"policy has {len(self.policy.stages)} stage entries but the architecture "
                f"has {len(self.arch.stages)} stages"
            )

    @property
    def genome(self) -> str:
        """A short readable string, e.g. ``c16,mb2x24k3e4s1|p0w32a32``."""
        return f"{self.arch.genome}|{self.policy.genome}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Candidate:
        arch = data["arch"]
        return cls(
            arch=ArchSpec(
                stem_width=arch["stem_width"],
                stem_stride=arch.get("stem_stride", 1),
                stages=tuple(StageSpec(**stage) for stage in arch["stages"]),
            ),
            policy=CompressionPolicy(
                tuple(StagePolicy(**stage) for stage in data["policy"]["stages"])
            ),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Candidate:
        return cls.from_dict(json.loads(text))


def _is_registered_kind(kind: str) -> bool:
    # Imported lazily: the block registry imports torch, and value objects should not.
    from spaces.blocks import registered_blocks

    return kind in registered_blocks()


def unknown_kind(kind: str) -> str:
    """Why ``kind`` is refused, and where a kind of one's own comes from."""
    from spaces.blocks import registered_blocks

    return (
        f"unknown block kind {kind!r}; known: {', '.join(registered_blocks())} (a kind of "
        "your own is registered by a module the run's config lists under plugins)"
    )
