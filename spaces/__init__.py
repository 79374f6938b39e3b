"""WHAT may be proposed: candidates, the search space, blocks and the model builder.

This package depends on neither ``evaluators`` nor ``search``.
"""

from __future__ import annotations

from spaces.baselines import BASELINES, baseline_candidates
from spaces.blocks import create_block, register_block, registered_blocks
from spaces.build import (
    CandidateNet,
    build_model,
    create_model,
    get_candidate,
    list_models,
    register_model,
    stage_of_parameter,
)
from spaces.candidate import (
    ACTIVATION_BITS,
    BLOCK_KINDS,
    KERNELS,
    WEIGHT_BITS,
    ArchSpec,
    Candidate,
    CompressionPolicy,
    StagePolicy,
    StageSpec,
)
from spaces.channels import ChannelPlan, StageChannels, plan_channels
from spaces.params import Choice, Float, Int
from spaces.space import SearchSpace

__all__ = [
    "ACTIVATION_BITS",
    "BASELINES",
    "BLOCK_KINDS",
    "KERNELS",
    "WEIGHT_BITS",
    "ArchSpec",
    "Candidate",
    "CandidateNet",
    "ChannelPlan",
    "Choice",
    "CompressionPolicy",
    "Float",
    "Int",
    "SearchSpace",
    "StageChannels",
    "StagePolicy",
    "StageSpec",
    "baseline_candidates",
    "build_model",
    "create_block",
    "create_model",
    "get_candidate",
    "list_models",
    "plan_channels",
    "register_block",
    "register_model",
    "registered_blocks",
    "stage_of_parameter",
]
