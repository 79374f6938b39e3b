"""Dimensions of a search space, as value objects that know how to ask an Optuna trial.

``trial`` is anything with Optuna's ``suggest_int`` / ``suggest_float`` /
``suggest_categorical`` (an ``optuna.Trial``, or Ray Tune's define-by-run trial through
``OptunaSearch``), so this module needs no Optuna import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


class SuggestsValues(Protocol):
    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1) -> int: ...

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


@dataclass(frozen=True)
class Int:
    low: int
    high: int
    step: int = 1

    def __post_init__(self) -> None:
        if self.high < self.low:
            raise ValueError(f"Int range is empty: low={self.low} > high={self.high}")

    @property
    def values(self) -> tuple[int, ...]:
        return tuple(range(self.low, self.high + 1, self.step))

    def suggest(self, trial: SuggestsValues, name: str) -> int:
        if self.low == self.high:
            return self.low
        return trial.suggest_int(name, self.low, self.high, step=self.step)


@dataclass(frozen=True)
class Float:
    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        if self.high < self.low:
            raise ValueError(f"Float range is empty: low={self.low} > high={self.high}")

    def suggest(self, trial: SuggestsValues, name: str) -> float:
        if self.low == self.high:
            return self.low
        return trial.suggest_float(name, self.low, self.high, log=self.log)


@dataclass(frozen=True)
class Choice:
    options: tuple[Any, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", tuple(self.options))
        if not self.options:
            raise ValueError("Choice needs at least one option")

    @property
    def values(self) -> tuple[Any, ...]:
        return self.options

    def suggest(self, trial: SuggestsValues, name: str) -> Any:
        # A single option is a constant: asking the trial would only add noise to the study.
        if len(self.options) == 1:
            return self.options[0]
        return trial.suggest_categorical(name, self.options)


Dimension = Int | Float | Choice
