"""lmmsim.validate: the shared checks and their one-line messages."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lmmsim import Design, Factor, RandomEffect, scenarios, simulate
from lmmsim.validate import MAX_MAGNITUDE, check_count, check_finite, check_sd


@pytest.mark.parametrize("value", [1e101, -1e155, 1e308, 2 * MAX_MAGNITUDE])
def test_magnitudes_that_would_overflow_are_refused(value):
    with pytest.raises(ValueError, match=r"^beta: got .*, expected a number of magnitude at most 1e\+100"):
        check_finite("beta", value)
    with pytest.raises(ValueError, match=r"^sigma: got "):
        check_sd("sigma", abs(value))


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "3", None, True])
def test_non_numbers_are_refused(value):
    with pytest.raises(ValueError, match=r"expected a finite number"):
        check_finite("x", value)


def test_counts():
    assert check_count("n", 3.0) == 3
    for bad in (2.5, 0, -1, math.nan, "4"):
        with pytest.raises(ValueError, match=r"^n: got .*expected a whole number >= 1"):
            check_count("n", bad)


def test_the_largest_allowed_parameters_simulate_finite_data():
    design = Design(
        factors=(Factor("g", 5), Factor("t", 4, within="g", values=(0.0, 1.0, 2.0, MAX_MAGNITUDE))),
        formula="t",
        beta={"Intercept": MAX_MAGNITUDE, "t": -MAX_MAGNITUDE},
        random=(RandomEffect("g", {"Intercept": MAX_MAGNITUDE, "t": MAX_MAGNITUDE}),),
        sigma_e=MAX_MAGNITUDE,
    )
    data = simulate(design, seed=1).data
    assert np.isfinite(data["y"]).all()
    assert data["t"].max() == MAX_MAGNITUDE  # occasion values kept exactly, not cast to int
    assert all(math.isfinite(v) for v in simulate(scenarios.schools(sigma_e=MAX_MAGNITUDE), 1).truth.icc.values())


def test_a_design_too_large_for_memory_is_refused_before_allocating():
    design = scenarios.schools(n_schools=1_000_000_000)
    with pytest.raises(ValueError, match=r"^design: simulating 80,000,000,000 observations needs about .* TB "
                       r"of memory, more than the .* available; use fewer groups"):
        simulate(design, seed=1)


def test_memory_estimate_covers_what_simulating_takes():
    import tracemalloc

    design = scenarios.blood_pressure(n_patients=500)
    tracemalloc.start()
    simulate(design, seed=1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < design.memory_estimate()
