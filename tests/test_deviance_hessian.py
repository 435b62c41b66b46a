"""lmmsim.inference.deviance_hessian: the analytic Hessian of lme4's profiled deviance and
of the deviance at (θ, σ), against differences of the analytic gradient (itself tested
against differences of the deviance in test_deviance_gradient.py) and against second
differences of the deviance, on the models and points of that test."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import differences
from test_deviance_gradient import MODELS, model_deviance, points

from lmmsim.inference import deviance_gradient
from lmmsim.inference.deviance_hessian import at_sigma_hessian, hessian


@pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
@pytest.mark.parametrize("name", MODELS)
def test_hessian_matches_differences_of_the_gradient(name, reml):
    dev = model_deviance(name, reml)
    for where, theta in points(dev).items():
        H = hessian(dev, theta)
        numeric = differences(lambda t: deviance_gradient.gradient(dev, t), theta)
        assert np.allclose(H, H.T, rtol=0, atol=1e-9 * np.abs(H).max()), where
        assert np.abs(H - numeric).max() < 1e-6 * np.abs(numeric).max(), (where, H, numeric)


@pytest.mark.parametrize("reml", [True, False], ids=["REML", "ML"])
@pytest.mark.parametrize("name", MODELS)
def test_at_sigma_hessian_matches_second_differences_of_the_deviance(name, reml):
    dev = model_deviance(name, reml)
    for where, theta in points(dev).items():
        phi = np.append(theta, 0.8 * dev.sigma(theta))  # off σ̂(θ), as a general point
        H = at_sigma_hessian(dev, phi)

        def first(v: np.ndarray) -> np.ndarray:
            return differences(lambda u: dev.at_sigma(u[:-1], u[-1]), v, rel=1e-3)

        numeric = differences(first, phi, rel=1e-3)
        # second differences carry rounding error near 1e-7 of the largest curvature
        assert np.abs(H - numeric).max() < 1e-5 * np.abs(numeric).max(), (where, H, numeric)


def test_profiled_and_at_sigma_hessians_agree_at_sigma_hat():
    """At σ = σ̂(θ), profiling σ out removes the σ direction: H_θθ − h h'/H_σσ (the Schur
    complement) is the profiled deviance's Hessian (the two differ by a constant in θ)."""
    dev = model_deviance("sum_seed1", True)
    theta = points(dev)["interior 1"]
    H = at_sigma_hessian(dev, np.append(theta, dev.sigma(theta)))
    schur = H[:-1, :-1] - np.outer(H[:-1, -1], H[-1, :-1]) / H[-1, -1]
    assert np.allclose(schur, hessian(dev, theta), rtol=1e-9, atol=0)
