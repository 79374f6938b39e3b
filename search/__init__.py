"""WHERE candidates come from and where results go: config, objective, study, results, CLI."""

from __future__ import annotations

from search.config import ConfigError, RunConfig, load_config, parse_config
from search.objective import Objective
from search.pareto import hypervolume, knee_point, pareto_mask

__all__ = [
    "ConfigError",
    "Objective",
    "RunConfig",
    "hypervolume",
    "knee_point",
    "load_config",
    "pareto_mask",
    "parse_config",
]
