"""The analytic Hessian of lme4's profiled deviance d(θ) (:mod:`lmmsim.inference.deviance`).

Write the penalised least-squares problem of lme4 (Bates et al. 2015) for u and β jointly:
with Φ = diag(Λ, I_p), the cross-products S = [Z X]'[Z X], k = [Z X]'y and J = diag(I_q, 0),

    Ω(θ) = J + Φ'SΦ,   x = Ω⁻¹Φ'k = (û, β̂),   r² = y'y − k'Φx,

and log|Ω| = log|L|² + log|R_X'R_X|. So the REML criterion is log|Ω| + f log r² + const
(f = n − p) and the ML deviance log|M| + n log r² + const, M = I + Λ'Z'ZΛ the top-left
block of Ω. Λ = Σ_k θ_k E_k is linear in θ, so with F_k = diag(E_k, 0) and h_k = F_k'k,

    Ω_k = F_k'SΦ + Φ'SF_k,   Ω_kl = F_k'SF_l + F_l'SF_k,   x_l = Ω⁻¹ w_l,   w_l = h_l − Ω_l x,

    ∂_k log|W| = tr(W⁻¹W_k),   ∂_kl log|W| = tr(W⁻¹W_kl) − tr(W⁻¹W_l W⁻¹W_k)   (W = Ω or M),
    ∂_k r² = −2 h_k'x + x'Ω_k x,   ∂_kl r² = −2 w_k'Ω⁻¹w_l + x'Ω_kl x

(Jacobi's formula and the derivative of an inverse, twice; h_k does not depend on θ). The
deviance at (θ, σ), not profiled over σ, has the same parts: Satterthwaite's df use its
Hessian (:func:`at_sigma_hessian`). Dense: the cost is a few products of (q + p)-square
matrices per θ, about that of four gradients (``lmmsim.inference.deviance_gradient``).
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from lmmsim.inference.deviance import Deviance


def _logdet_derivatives(Winv: np.ndarray, W_k: list, FtS: list, entries: list) -> tuple[np.ndarray, np.ndarray]:
    """First and second derivatives of log|W| given W⁻¹, the W_k and the F_k'S (cut to W's size)."""
    P = [Winv @ Wk for Wk in W_k]
    first = np.array([np.trace(Pk) for Pk in P])
    second = np.empty((len(P), len(P)))
    for i in range(len(P)):
        Q = Winv @ FtS[i]  # tr(W⁻¹F_i'SF_j) = Σ over θ_j's entries (r, c) of (W⁻¹F_i'S)[c, r]
        for j in range(i, len(P)):
            rows, cols = entries[j]
            second[i, j] = second[j, i] = 2 * Q[cols, rows].sum() - np.sum(P[j] * P[i].T)
    return first, second


def _parts(dev: Deviance, theta: np.ndarray) -> dict:
    """log|W| (W = Ω for REML, M for ML) and r² with their first and second derivatives in θ."""
    theta = np.asarray(theta, dtype=float)
    q, p = dev.ZtZ.shape[0], dev.p
    S = np.block([[dev.ZtZ, dev.ZtX], [dev.ZtX.T, dev.XtX]])
    k_vec = np.concatenate([dev.Zty, dev.Xty])
    Phi = linalg.block_diag(dev.relative_factor(theta), np.eye(p))
    SPhi = S @ Phi
    Omega = Phi.T @ SPhi
    Omega[np.arange(q), np.arange(q)] += 1.0
    Oinv = linalg.cho_solve(linalg.cho_factor(Omega, lower=True), np.eye(q + p))
    x = Oinv @ (Phi.T @ k_vec)
    rows, cols, which = dev.lam_index
    entries = [(rows[which == k], cols[which == k]) for k in range(theta.size)]
    FtS, Om_k, h, Fx = [], [], [], []
    for r, c in entries:  # within one θ, each row and each column of Λ occurs at most once
        F_S = np.zeros_like(S)
        F_S[c] = S[r]
        K = F_S @ Phi
        FtS.append(F_S)
        Om_k.append(K + K.T)
        h.append(np.zeros(q + p))
        h[-1][c] = k_vec[r]
        Fx.append(np.zeros(q + p))
        Fx[-1][r] = x[c]
    w = np.array([hk - Ok @ x for hk, Ok in zip(h, Om_k)]).reshape(theta.size, q + p)
    Fx = np.array(Fx).reshape(theta.size, q + p)
    r2_k = np.array([-2 * hk @ x + x @ Ok @ x for hk, Ok in zip(h, Om_k)])
    r2_kl = -2 * w @ Oinv @ w.T + 2 * Fx @ S @ Fx.T
    if dev.reml:
        ld_k, ld_kl = _logdet_derivatives(Oinv, Om_k, FtS, entries)
    else:  # log|M|: the same on the top-left q × q blocks
        M = Omega[:q, :q]
        Minv = linalg.cho_solve(linalg.cho_factor(M, lower=True), np.eye(q))
        ld_k, ld_kl = _logdet_derivatives(Minv, [W[:q, :q] for W in Om_k], [F[:q, :q] for F in FtS], entries)
    r2 = dev.yty - k_vec @ Phi @ x
    return {"r2": r2, "r2_k": r2_k, "r2_kl": r2_kl, "ld_k": ld_k, "ld_kl": ld_kl}


def hessian(dev: Deviance, theta: np.ndarray) -> np.ndarray:
    """The Hessian of the profiled deviance d(θ) in θ.

    Parameters
    ----------
    dev : Deviance
        The model's profiled deviance (REML or ML).
    theta : numpy.ndarray
        The relative covariance factor's parameters, in ``dev.terms`` order.

    Returns
    -------
    numpy.ndarray
        ∂²d/∂θ∂θ', symmetric, one row and column per θ.
    """
    d = _parts(dev, theta)
    r2, r2_k = d["r2"], d["r2_k"]
    return d["ld_kl"] + dev.dof * (d["r2_kl"] / r2 - np.outer(r2_k, r2_k) / r2**2)


def at_sigma_hessian(dev: Deviance, phi: np.ndarray) -> np.ndarray:
    """The Hessian of ``dev.at_sigma(θ, σ)`` = log|W| + r²/σ² + n' log(2πσ²) in φ = (θ, σ)
    (n' = ``dev.dof``: n − p for REML, n for ML), the deviance not profiled over σ.

    Parameters
    ----------
    dev : Deviance
        The model's deviance (REML or ML).
    phi : numpy.ndarray
        θ followed by σ.

    Returns
    -------
    numpy.ndarray
        ∂²/∂φ∂φ', symmetric, one row and column per θ and a last one for σ.
    """
    phi = np.asarray(phi, dtype=float)
    theta, sigma = phi[:-1], phi[-1]
    d = _parts(dev, theta)
    H = np.empty((phi.size, phi.size))
    H[:-1, :-1] = d["ld_kl"] + d["r2_kl"] / sigma**2
    H[:-1, -1] = H[-1, :-1] = -2 * d["r2_k"] / sigma**3
    H[-1, -1] = 6 * d["r2"] / sigma**4 - 2 * dev.dof / sigma**2
    return H
