"""A "converged" fit is a verified maximum (lmmsim.fit.verify, lmmsim.inference.deviance).

Datasets and lme4's θ and REML criterion come from the reference set (tests/reference).
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from lmmsim import fit_lmm
from lmmsim.fit import verify
from lmmsim.inference.deviance import deviance
from lmmsim.model import prepare

REFERENCE = ROOT / "tests" / "reference"
sys.path.insert(0, str(REFERENCE))
import make_datasets  # noqa: E402 - the reference set's own module

SPECS = {s["id"]: s for s in json.loads((REFERENCE / "specs.json").read_text())}
FITS = pd.read_csv(REFERENCE / "lme4" / "fits.csv").set_index("id")
THETA = pd.read_csv(REFERENCE / "lme4" / "theta.csv")
# One per design; uneven_clusters-27-06: L-BFGS-B from lme4's start stops at σ_u = 0,
# 0.05 log-likelihood units below the interior maximum.
ONE_EACH = ["schools-03-00", "blood_pressure-09-03", "plant_growth-15-00", "cluster_trial-26-05",
            "uneven_clusters-27-06", "crossed-31-04"]


def load(spec_id: str):
    spec = SPECS[spec_id]
    _, model = make_datasets.design_and_model(spec["design"], spec["params"])
    data = prepare(make_datasets.dataset(spec), model)
    return data, model, deviance(data, model)


def lme4_theta(spec_id: str, dev) -> np.ndarray:
    """lme4's θ in the order of dev.terms (lme4 orders its terms by their number of levels)."""
    rows = THETA[THETA["id"] == spec_id]
    group = rows["name"].str.split(".").str[0].str.split(":").str[-1]
    return np.concatenate([rows.loc[group == term.name, "theta"].to_numpy() for term in dev.terms])


@pytest.mark.parametrize("spec_id", ONE_EACH)
def test_deviance_is_lme4s(spec_id):
    _, _, dev = load(spec_id)
    theta = lme4_theta(spec_id, dev)
    assert dev(theta) == pytest.approx(FITS.loc[spec_id, "reml_crit"], abs=1e-6)
    assert dev.sigma(theta) == pytest.approx(FITS.loc[spec_id, "sigma"], rel=1e-6)


@pytest.mark.parametrize("spec_id", ONE_EACH)
def test_search_reaches_lme4s_minimum_and_verifies_it(spec_id):
    _, _, dev = load(spec_id)
    found = verify.check(dev, verify.minimise(dev, [verify.default_start(dev)]))
    assert found.ok, found.reason
    assert found.deviance <= FITS.loc[spec_id, "reml_crit"] + 1e-6


def test_check_rejects_points_that_are_not_minima():
    _, _, dev = load("plant_growth-15-00")
    theta = lme4_theta("plant_growth-15-00", dev)
    assert verify.check(dev, theta).ok
    moved = verify.check(dev, theta * 1.01)
    assert not moved.ok and "Newton step" in moved.reason
    # At a bound that is not a minimum (σ_u = 0 where the maximum is interior).
    _, _, dev = load("uneven_clusters-27-06")
    at_zero = verify.check(dev, np.zeros(1))
    assert not at_zero.ok and "bound" in at_zero.reason


def test_a_short_first_optimizer_is_named_with_its_shortfall():
    # statsmodels' L-BFGS reports convergence 17.5 log-likelihood units below the maximum.
    data, model, _ = load("cluster_trial-21-09")
    fit = fit_lmm(data, model)
    assert fit.status.ok and fit.status.message.startswith("converged (powell; lbfgs fell short by 17.")
    assert -2 * fit.loglik == pytest.approx(FITS.loc["cluster_trial-21-09", "reml_crit"], abs=1e-6)
    alone = fit_lmm(data, model, optimizers=("lbfgs",))
    assert alone.status.ok and alone.status.message.startswith("converged (profiled-deviance search; lbfgs fell short")
    assert alone.loglik == pytest.approx(fit.loglik, abs=1e-8)


def test_verdict_does_not_depend_on_the_unit_of_the_outcome():
    data, model, _ = load("plant_growth-15-00")
    scaled = data.assign(height=data["height"] * 1000.0)
    a, b = fit_lmm(data, model), fit_lmm(scaled, model)
    assert a.status.message == b.status.message
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-5, atol=1e-7)
