"""A device budget: upper bounds on latency, peak activation memory and stored weights."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Budget:
    """``None`` means unconstrained. Constraint value = cost - bound (<= 0 is within budget)."""

    latency_ms: float | None = None
    peak_memory_kb: float | None = None
    flash_kb: float | None = None

    def __post_init__(self) -> None:
        for name, bound in asdict(self).items():
            if bound is not None and bound <= 0:
                raise ValueError(f"budget {name} must be positive, got {bound}")

    def constraints(
        self, *, latency_ms: float, peak_memory_kb: float, flash_kb: float
    ) -> dict[str, float]:
        costs = {"latency_ms": latency_ms, "peak_memory_kb": peak_memory_kb, "flash_kb": flash_kb}
        return {
            name: costs[name] - bound for name, bound in asdict(self).items() if bound is not None
        }

    @staticmethod
    def violated(constraints: dict[str, float]) -> list[str]:
        return [name for name, value in constraints.items() if value > 0]
