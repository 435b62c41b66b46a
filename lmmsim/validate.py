"""Checks shared by the public functions: each raises ``ValueError`` naming the
parameter, the value it got and what is allowed."""

from __future__ import annotations

import math
import numbers
import os

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
