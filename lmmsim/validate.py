"""Checks shared by the public functions: each raises ``ValueError`` naming the
parameter, the value it got and what is allowed."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any


def check_finite(name: str, value) -> float:
    """Return ``value`` as a float, or raise if it is not a finite real number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}: got {value!r}, expected a finite number")
    if not math.isfinite(value):
        raise ValueError(f"{name}: got {value!r}, expected a finite number")
    return float(value)


def check_sd(name: str, value) -> float:
    """A standard deviation: finite and >= 0."""
    value = check_finite(name, value)
    if value < 0:
        raise ValueError(f"{name}: got {value!r}, a standard deviation must be >= 0")
    return value


def check_count(name: str, value, minimum: int = 1) -> int:
    """A whole number >= ``minimum`` (floats such as 2.5 are rejected, 3.0 is not)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}: got {value!r}, expected a whole number >= {minimum}")
    if not (math.isfinite(value) and float(value).is_integer()):
        raise ValueError(f"{name}: got {value!r}, expected a whole number >= {minimum}")
    if value < minimum:
        raise ValueError(f"{name}: got {int(value)}, expected a whole number >= {minimum}")
    return int(value)


def check_name(name: str, value) -> str:
    """A non-empty column name made of letters, digits and underscores."""
    if not isinstance(value, str) or not value.isidentifier():
        raise ValueError(f"{name}: got {value!r}, expected a name of letters, digits and underscores")
    return value


KINDS = ("count", "sd", "correlation", "proportion", "real")
"""The kinds of scenario parameters."""


@dataclass(frozen=True)
class Kind:
    """What values a parameter takes (scenarios declare one for each parameter).

    Attributes
    ----------
    name : str
        One of ``KINDS``: ``count`` (a whole number >= ``minimum``), ``sd`` (a
        standard deviation, >= 0), ``correlation`` (in [-1, 1]), ``proportion`` (a
        probability in [0, 1)) or ``real`` (any finite number).
    minimum : int, optional
        Smallest allowed count.
    """

    name: str
    minimum: int | None = None

    def __post_init__(self) -> None:
        if self.name not in KINDS:
            raise ValueError(f"kind: got {self.name!r}, expected one of {list(KINDS)}")
        if (self.name == "count") != (self.minimum is not None):
            raise ValueError(f"minimum: got {self.minimum!r}; a count needs one, other kinds take none")

    def check(self, name: str, value: Any) -> int | float:
        """``value`` as the parameter's type; ``ValueError`` naming ``name`` if not allowed."""
        if self.name == "count":
            return check_count(name, value, minimum=self.minimum)
        if self.name == "sd":
            return check_sd(name, value)
        value = check_finite(name, value)
        if self.name == "correlation" and not -1 <= value <= 1:
            raise ValueError(f"{name}: got {value}, a correlation must lie in [-1, 1]")
        if self.name == "proportion" and not 0 <= value < 1:
            raise ValueError(f"{name}: got {value}, expected a probability in [0, 1)")
        return value


def count(minimum: int) -> Kind:
    """A count parameter of at least ``minimum``."""
    return Kind("count", minimum)


SD, CORRELATION, PROPORTION, REAL = Kind("sd"), Kind("correlation"), Kind("proportion"), Kind("real")
