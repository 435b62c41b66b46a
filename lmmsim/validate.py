"""Checks shared by the public functions: each raises ``ValueError`` naming the
parameter, the value it got and what is allowed."""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass
from typing import Any

# Parameters are squared (variances) and multiplied by covariates and summed when data are
# simulated; beyond this magnitude float64 overflows to inf in those steps.
MAX_MAGNITUDE = 1e100


def check_finite(name: str, value) -> float:
    """Return ``value`` as a float, or raise if it is not a finite real number of
    magnitude at most ``MAX_MAGNITUDE``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}: got {value!r}, expected a finite number")
    if not math.isfinite(value):
        raise ValueError(f"{name}: got {value!r}, expected a finite number")
    if abs(value) > MAX_MAGNITUDE:
        raise ValueError(
            f"{name}: got {value!r}, expected a number of magnitude at most {MAX_MAGNITUDE:g} "
            "(larger values overflow when the data are simulated)"
        )
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


def available_memory() -> int:
    """Bytes of memory available to a new allocation (Linux: MemAvailable; else total RAM)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - no sysconf
        return 2**63


def check_memory(what: str, nbytes: float) -> None:
    """Refuse, before allocating, work whose estimated memory exceeds what is available."""
    available = available_memory()
    if nbytes > available:
        raise ValueError(
            f"{what} needs about {_size(nbytes)} of memory, more than the {_size(available)} "
            "available; use fewer groups or observations per group"
        )


def _size(nbytes: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB", "PB"):
        if nbytes < 1000 or unit == "PB":
            return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    raise AssertionError  # pragma: no cover
