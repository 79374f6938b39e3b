"""How a value is written on the page: escaped for HTML, at its unit's precision, and as a
dash where there is none, so a missing number never reads as zero."""

from __future__ import annotations

import html
import math
from typing import Any


def esc(value: Any) -> str:
    """Free text as HTML, quotes included, so it is safe in an element and in an attribute."""
    return html.escape(str(value), quote=True)


def pct(value: Any) -> str:
    """A fraction as a percentage with one decimal (0.981 is 98.1%); a dash when missing."""
    number = to_number(value)
    return "\u2014" if number is None else f"{100 * number:.1f}%"


def pct_interval(value: Any, interval: tuple[float, float] | None) -> str:
    """An accuracy with its 95% interval given as bounds, ``97.5% (95% CI 91.3\u201399.3%)``:
    a Wilson interval is not symmetric, so a +- would misstate it (near 100% past 100%)."""
    if interval is None or to_number(value) is None:
        return pct(value)
    lower, upper = interval
    return f"{pct(value)} (95% CI {100 * lower:.1f}\u2013{100 * upper:.1f}%)"


def fixed(value: Any, digits: int) -> str:
    """A number with ``digits`` decimals and thousands separators; a dash when missing."""
    number = to_number(value)
    return "\u2014" if number is None else f"{number:,.{digits}f}"


def counted(
    number: int, noun: str, plural: str | None = None, verb: tuple[str, str] | None = None
) -> str:
    """``number`` with its noun, and a ``verb`` (singular, plural) after it, in the right
    number: "1 trial", "3 trials", "1 trial is", "3 trials are"."""
    text = f"{number:,} {noun if number == 1 else plural or noun + 's'}"
    return text if verb is None else f"{text} {verb[number != 1]}"


def integer(value: Any) -> str:
    """A number rounded to a whole one, with thousands separators; a dash when missing."""
    number = to_number(value)
    return "\u2014" if number is None else f"{round(number):,}"


def to_number(value: Any) -> float | None:
    """``value`` as a float, or None where it is missing, NaN or not a number (a CSV cell may
    be any of these)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number
