"""Satterthwaite degrees of freedom for fixed effects and contrasts Lβ, as in lmerTest.

For a contrast c = Lβ with estimated variance v(φ) = L Cov(β̂; φ) L', where φ = (θ, σ)
are the variance parameters, Satterthwaite's approximation treats v(φ̂) as a scaled χ²
with

    df = 2 v² / (∇v' A ∇v),   A = 2 H⁻¹,

H the Hessian of the deviance (−2 log-likelihood, REML or ML, not profiled over σ) at the
estimate and ∇v the gradient of v with respect to φ (Kuznetsova et al. 2017, lmerTest).
H and ∇v are analytic (:mod:`lmmsim.inference.deviance_hessian`,
:mod:`lmmsim.inference.deviance_gradient`), where lmerTest takes both numerically from
lme4's deviance.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from lmmsim.inference.deviance import Deviance
from lmmsim.inference.deviance_gradient import vcov_jacobian
from lmmsim.inference.deviance_hessian import at_sigma_hessian


def contrasts(dev: Deviance, theta: np.ndarray, L: np.ndarray) -> pd.DataFrame:
    """Estimate, SE, Satterthwaite df, t and two-sided p for each row of L.

    Parameters
    ----------
    dev : Deviance
        The model's deviance.
    theta : numpy.ndarray
        The estimate of θ (lme4's parameterisation).
    L : numpy.ndarray
        Contrast matrix, one row per contrast, one column per fixed effect.

    Returns
    -------
    pandas.DataFrame
        Columns ``estimate``, ``se``, ``df``, ``t``, ``p_value``.
    """
    L = np.atleast_2d(np.asarray(L, dtype=float))
    if L.shape[1] != dev.p:
        raise ValueError(f"L: got {L.shape[1]} columns, expected one per fixed effect ({dev.p})")
    sigma = dev.sigma(theta)
    phi = np.append(np.asarray(theta, dtype=float), sigma)
    A = 2 * np.linalg.pinv(at_sigma_hessian(dev, phi))
    jac = vcov_jacobian(dev, theta, sigma)
    beta = dev.solve(theta)["beta"]
    V = dev.vcov(theta, sigma)
    rows = []
    for ell in L:
        var = ell @ V @ ell
        grad = np.array([ell @ J @ ell for J in jac])
        df = 2 * var**2 / (grad @ A @ grad)
        estimate = ell @ beta
        t = estimate / np.sqrt(var)
        rows.append((estimate, np.sqrt(var), df, t, 2 * stats.t.sf(abs(t), df)))
    return pd.DataFrame(rows, columns=["estimate", "se", "df", "t", "p_value"])


def satterthwaite(fit: Any, L: np.ndarray | pd.DataFrame | None = None) -> pd.DataFrame:
    """Satterthwaite t tests of the fixed effects (default) or of contrasts Lβ.

    Parameters
    ----------
    fit : Fit
        From :func:`lmmsim.fit_lmm` (REML or ML).
    L : array-like or DataFrame, optional
        Contrasts, one row each, one column per fixed effect (a DataFrame's columns are
        matched to the fixed effects by name, missing ones taken as 0); default: the
        identity, one test per fixed effect.

    Returns
    -------
    pandas.DataFrame
        Columns ``estimate``, ``se``, ``df``, ``t``, ``p_value``; indexed by fixed effect,
        or by the rows of ``L``.
    """
    dev, theta = getattr(fit, "deviance", None), getattr(fit, "theta", None)
    if dev is None or theta is None:
        got = getattr(fit, "method", type(fit).__name__)
        raise ValueError(f"fit: got a {got} fit, expected a mixed-model fit from fit_lmm")
    names = list(dev.fixed_names)
    if L is None:
        return contrasts(dev, theta, np.eye(dev.p)).set_axis(pd.Index(names, name="parameter"))
    if isinstance(L, pd.DataFrame):
        unknown = sorted(set(L.columns) - set(names))
        if unknown:
            raise ValueError(f"L: columns {unknown} are not fixed effects; expected some of {names}")
        return contrasts(dev, theta, L.reindex(columns=names).fillna(0.0).to_numpy()).set_axis(L.index)
    return contrasts(dev, theta, np.asarray(L, dtype=float))
