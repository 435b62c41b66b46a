"""lmmsim.inference.deviance_gradient: the analytic gradient of lme4's profiled deviance
and of Cov(β̂).

Checked against central differences of the deviance itself (Richardson-extrapolated, error
far below the tolerances) on crossed models with correlated slopes (the lmer reference
set) and nested and crossed variance components (the lme4 reference set), REML and ML, at
lme4's start, at random interior points and next to the bounds θ_diag = 0.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, differences

from lmmsim.fit.bars import matrices
from lmmsim.inference import deviance_gradient
from lmmsim.inference.deviance import Deviance, deviance
from lmmsim.model import ModelSpec, prepare

REFERENCE = ROOT / "tests" / "reference"
sys.path.insert(0, str(REFERENCE))
import lmer_datasets  # noqa: E402 - the reference sets' own modules
import make_datasets  # noqa: E402

SPECS = {s["id"]: s for s in json.loads((REFERENCE / "specs.json").read_text())}
LMER = {case.name: case for case in lmer_datasets.cases()}
PASTES = ModelSpec("strength ~ 1", groups="batch", vc_formula={"cask": "0 + C(cask)"})
MODELS = ["sum_seed1", "sum_itemslopes_seed21", "plant_growth-15-00", "crossed-31-04", "pastes"]


def model_deviance(name: str, reml: bool) -> Deviance:
    """Crossed with correlated slopes (lmer set), nested (plant_growth, pastes), crossed
    variance components (crossed)."""
    if name in LMER:
        return matrices(LMER[name].data, LMER[name].formula).deviance(reml)
    if name == "pastes":
        return deviance(pd.read_csv(REFERENCE / "pastes.csv"), PASTES, reml=reml)
    _, model = make_datasets.design_and_model(SPECS[name]["design"], SPECS[name]["params"])
    return deviance(prepare(make_datasets.dataset(SPECS[name]), model), model, reml=reml)


def points(dev: Deviance) -> dict[str, np.ndarray]:
    """lme4's start, two random interior points, and points with diagonal θ's near 0."""
    rng = np.random.default_rng(2015)
    diagonal = dev.lower == 0
    interior = [np.where(diagonal, rng.uniform(0.2, 2.0, diagonal.size), rng.normal(0, 0.5, diagonal.size))
                for _ in range(2)]
    return {"start": np.where(diagonal, 1.0, 0.0), "interior 1": interior[0], "interior 2": interior[1],
            "one diagonal at 1e-5": np.where(np.arange(diagonal.size) == np.flatnonzero(diagonal)[-1],
                                             1e-5, interior[0]),
            "all diagonals at 1e-3": np.where(diagonal, 1e-3, interior[1])}


@pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
@pytest.mark.parametrize("name", MODELS)
def test_gradient_matches_differences_of_the_deviance(name, reml):
    dev = model_deviance(name, reml)
    for where, theta in points(dev).items():
        value, grad = deviance_gradient.value_and_gradient(dev, theta)
        assert value == dev(theta), where  # the same arithmetic as the deviance itself
        numeric = differences(dev, theta, rel=1e-3)
        assert np.abs(grad - numeric).max() < 1e-6 * max(np.abs(numeric).max(), 1.0), (where, grad, numeric)


@pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
@pytest.mark.parametrize("name", MODELS)
def test_vcov_jacobian_matches_differences(name, reml):
    dev = model_deviance(name, reml)
    for where, theta in points(dev).items():
        sigma = dev.sigma(theta)
        analytic = deviance_gradient.vcov_jacobian(dev, theta, sigma)
        # small steps: next to θ_diag = 0, Cov(β̂) bends on the scale of θ_diag itself
        numeric = differences(lambda v: dev.vcov(v[:-1], v[-1]), np.append(theta, sigma), rel=1e-4)
        for i, (a, b) in enumerate(zip(analytic, numeric)):
            assert np.abs(a - b).max() < 1e-5 * np.abs(b).max(), (where, i, a, b)


def test_gradient_is_nan_where_the_deviance_is():
    """y fitted exactly by the group means: r² vanishes at a large θ and d is NaN."""
    data = pd.DataFrame({"y": [1.0, 1.0, 2.0, 2.0], "g": ["a", "a", "b", "b"]})
    dev = matrices(data, "y ~ 1 + (1 | g)").deviance(True)
    value, grad = deviance_gradient.value_and_gradient(dev, np.array([1e8]))
    assert np.isnan(dev(np.array([1e8]))) and np.isnan(value) and np.isnan(grad).all()
