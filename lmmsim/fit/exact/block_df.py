"""Satterthwaite degrees of freedom for the fixed effects of batched block-diagonal fits.

As lmerTest does it (Kuznetsova, Brockhoff and Christensen 2017): for a coefficient
``beta_j`` with variance ``v_j(phi) = sigma^2 [(X'V0^-1 X)^-1]_jj`` as a function of
the variance parameters ``phi = (theta, sigma)``,

    df_j = 2 v_j^2 / (g_j' Omega g_j),   Omega = 2 H^-1,

with ``g_j`` the gradient of ``v_j`` in ``phi`` and ``H`` the Hessian of the
(REML or ML) deviance in ``phi``, not profiled in ``sigma``:
``dev = logdet(theta) + d log(2 pi sigma^2) + pwrss(theta) / sigma^2``.  The
``sigma`` derivatives are analytic; the ``theta`` ones are central differences of
the analytic gradients of ``logdet`` and ``pwrss`` and of ``(X'V0^-1 X)^-1``.
"""

from __future__ import annotations

import numpy as np

from lmmsim.fit.exact.block_criterion import Stats, evaluate

__all__ = ["satterthwaite_df"]

_STEP = 1e-4  # central-difference step in theta (truncation error ~ step^2)


def satterthwaite_df(st: Stats, theta: np.ndarray, template: np.ndarray, n: int, reml: bool) -> np.ndarray:
    """Satterthwaite df of each fixed effect at the optimum ``theta`` (R, n_theta), shape (R, p).

    NaN where the Hessian of the deviance is singular (e.g. some boundary fits).
    """
    R, k = theta.shape
    p = st.xty.shape[0]
    d = n - p if reml else n
    at = evaluate(st, theta, template, n, reml, parts=True)
    sigma2 = at.pwrss / d
    hess = np.zeros((R, k + 1, k + 1))
    jac = np.zeros((R, p, k + 1))
    for i in range(k):
        e = np.zeros(k)
        e[i] = _STEP
        up = evaluate(st, theta + e, template, n, reml, parts=True)
        down = evaluate(st, theta - e, template, n, reml, parts=True)
        # grad f = grad logdet + d grad pwrss / pwrss (f profiled in sigma)
        d_logdet = (up.grad - d * up.grad_pwrss / up.pwrss[:, None]
                    - down.grad + d * down.grad_pwrss / down.pwrss[:, None]) / (2 * _STEP)
        d_pwrss = (up.grad_pwrss - down.grad_pwrss) / (2 * _STEP)
        hess[:, :k, i] = d_logdet + d_pwrss / sigma2[:, None]
        jac[:, :, i] = sigma2[:, None] * np.diagonal(up.a_inv - down.a_inv, axis1=1, axis2=2) / (2 * _STEP)
    hess[:, :k, :k] = 0.5 * (hess[:, :k, :k] + hess[:, :k, :k].transpose(0, 2, 1))
    sigma = np.sqrt(sigma2)
    hess[:, :k, k] = hess[:, k, :k] = -2.0 * at.grad_pwrss / sigma[:, None] ** 3
    hess[:, k, k] = -2.0 * d / sigma2 + 6.0 * at.pwrss / sigma2**2
    var = sigma2[:, None] * np.diagonal(at.a_inv, axis1=1, axis2=2)
    jac[:, :, k] = 2.0 * var / sigma[:, None]
    out = np.full((R, p), np.nan)
    ok = np.isfinite(hess).all((1, 2)) & np.isfinite(jac).all((1, 2))
    ok[ok] = np.linalg.cond(hess[ok]) < 1e12
    omega = 2.0 * np.linalg.inv(hess[ok])
    out[ok] = 2.0 * var[ok] ** 2 / np.einsum("rja,rab,rjb->rj", jac[ok], omega, jac[ok])
    return out
