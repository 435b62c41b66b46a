"""The analytic gradient of lme4's profiled deviance d(θ) (:mod:`lmmsim.inference.deviance`).

Λ(θ) = Σ_k θ_k E_k, where E_k has ones where ``lam_index`` puts θ_k. With A = Z'Z,
M = Λ'AΛ + I = LL', û = M⁻¹Λ'Z'(y − Xβ̂), the residual e = y − Xβ̂ − ZΛû and
G = Z'V⁻¹X = Z'X − AΛM⁻¹Λ'Z'X (V = I + ZΛΛ'Z'), the three parts of

    d(θ) = log|M| + log|R_X'R_X| + f (1 + log(2π r² / f))

(f = n − p for REML, n for ML, where log|R_X'R_X| is absent) have the derivatives

    ∂ log|M| / ∂θ_k          =  2 tr(M⁻¹Λ'A E_k)             = 2 Σ_{E_k} (AΛM⁻¹)_rc
    ∂ r² / ∂θ_k              = −2 (Z'e)' E_k û               = −2 Σ_{E_k} (Z'e)_r û_c
    ∂ log|R_X'R_X| / ∂θ_k    = −2 tr((R_X'R_X)⁻¹G'E_kΛ'G)    = −2 Σ_{E_k} (G(R_X'R_X)⁻¹G'Λ)_rc

where Σ_{E_k} runs over the positions (r, c) of θ_k in Λ. The first is Jacobi's formula;
the second the envelope theorem (r² is the minimum over β and u of ‖y − Xβ − ZΛu‖² + ‖u‖²,
so only Λ's explicit appearance counts); the third Jacobi's formula for
R_X'R_X = X'V⁻¹X with ∂V = Z(E_kΛ' + ΛE_k')Z' (Bates et al. 2015 give d; the derivatives
are standard matrix calculus, e.g. Magnus & Neudecker). Everything is computed from the
cross-products the deviance holds, at the cost of one more inverse of M. The same
G gives the derivatives of Cov(β̂) = σ²(R_X'R_X)⁻¹, which Satterthwaite's df need
(:func:`vcov_jacobian`); the Hessian is in :mod:`lmmsim.inference.deviance_hessian`.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from lmmsim.inference.deviance import Deviance


def _parts(dev: Deviance, theta: np.ndarray) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    """``dev.solve(θ)`` and the gradients of log|M|, r² and log|R_X'R_X| (module docstring)."""
    s = dev.solve(theta)
    L, lam, beta = s["L"], s["lam"], s["beta"]
    AL = s["LtA"].T  # Z'ZΛ (Z'Z is symmetric)
    u = linalg.solve_triangular(L, s["cu"] - s["CX"] @ beta, lower=True, trans="T", check_finite=False)
    Ze = dev.Zty - dev.ZtX @ beta - AL @ u  # Z'e
    Linv = linalg.solve_triangular(L, np.eye(L.shape[0]), lower=True, check_finite=False)
    Minv = Linv.T @ Linv
    rows, cols, which = dev.lam_index

    def summed(per_entry: np.ndarray) -> np.ndarray:  # one term per nonzero of Λ, summed per θ
        return np.bincount(which, weights=per_entry, minlength=theta.size)

    d_ldL2 = summed(2 * np.einsum("ij,ij->i", AL[rows], Minv[cols]))
    d_r2 = summed(-2 * Ze[rows] * u[cols])
    if not dev.reml:  # the ML deviance has no log|R_X'R_X|
        return s, d_ldL2, d_r2, np.zeros(theta.size)
    G = _zvx(dev, s)
    GR = np.linalg.solve(s["RXtRX"], G.T).T  # G(R_X'R_X)⁻¹, R_X'R_X symmetric
    d_ldRX = summed(-2 * np.einsum("ij,ij->i", GR[rows], (lam.T @ G)[cols]))
    return s, d_ldL2, d_r2, d_ldRX


def _zvx(dev: Deviance, s: dict) -> np.ndarray:
    """G = Z'V⁻¹X = Z'X − AΛM⁻¹Λ'Z'X from the pieces of ``dev.solve``."""
    B = linalg.solve_triangular(s["L"], s["CX"], lower=True, trans="T", check_finite=False)  # M⁻¹Λ'Z'X
    return dev.ZtX - s["LtA"].T @ B


def value_and_gradient(dev: Deviance, theta: np.ndarray) -> tuple[float, np.ndarray]:
    """d(θ), exactly as ``dev(theta)`` computes it, and its gradient ∂d/∂θ.

    Parameters
    ----------
    dev : Deviance
        The model's profiled deviance (REML or ML).
    theta : numpy.ndarray
        The relative covariance factor's parameters, in ``dev.terms`` order.

    Returns
    -------
    tuple of float and numpy.ndarray
        d(θ) and its gradient (NaN, and a NaN gradient, where y is fitted exactly).
    """
    theta = np.asarray(theta, dtype=float)
    s, d_ldL2, d_r2, d_ldRX = _parts(dev, theta)
    value = dev.criterion(s)
    if not np.isfinite(value):
        return value, np.full(theta.shape, np.nan)
    return value, d_ldL2 + d_ldRX + dev.dof / s["r2"] * d_r2


def vcov_jacobian(dev: Deviance, theta: np.ndarray, sigma: float) -> list[np.ndarray]:
    """The derivatives of ``dev.vcov(θ, σ)`` = σ²(R_X'R_X)⁻¹ in φ = (θ, σ): with
    R_X'R_X = X'V⁻¹X and S_k = G'E_kΛ'G,

        ∂/∂θ_k = σ² (R_X'R_X)⁻¹ (S_k + S_k') (R_X'R_X)⁻¹,   ∂/∂σ = 2σ (R_X'R_X)⁻¹.

    Parameters
    ----------
    dev : Deviance
        The model's deviance (REML or ML).
    theta : numpy.ndarray
        The relative covariance factor's parameters, in ``dev.terms`` order.
    sigma : float
        The residual SD.

    Returns
    -------
    list of numpy.ndarray
        One p × p matrix per θ, then one for σ.
    """
    theta = np.asarray(theta, dtype=float)
    s = dev.solve(theta)
    G = _zvx(dev, s)
    Rinv = np.linalg.inv(s["RXtRX"])
    rows, cols, which = dev.lam_index
    S = np.zeros((theta.size, dev.p, dev.p))
    np.add.at(S, which, np.einsum("ei,ej->eij", G[rows], (s["lam"].T @ G)[cols]))
    return [*(sigma**2 * Rinv @ (S + S.transpose(0, 2, 1)) @ Rinv), 2 * sigma * Rinv]


def gradient(dev: Deviance, theta: np.ndarray) -> np.ndarray:
    """∂d/∂θ at θ (see :func:`value_and_gradient`)."""
    return value_and_gradient(dev, theta)[1]
