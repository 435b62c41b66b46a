"""Satterthwaite degrees of freedom for the random-intercept model, in closed form.

For a contrast ``l'β`` of the fixed effects of ``y = Xβ + u[group] + ε`` fitted by
:func:`lmmsim.fit.exact.fit_random_intercept`, this computes the t test that lmerTest
(Kuznetsova, Brockhoff & Christensen 2017, *J. Stat. Softw.* 82(13)) reports for an
``lmer`` fit, for many replications at once and without numerical differentiation.

How the degrees of freedom are computed
---------------------------------------
lmerTest works in lme4's variance parameters ``φ = (θ, σ)`` with ``θ = σ_u / σ``.
With ``v(φ) = l' C(φ) l`` the variance of ``l'β̂`` (``C = σ² (X'V₀⁻¹X)⁻¹``, lme4's
``vcov``), ``g = ∂v/∂φ`` and ``H`` the Hessian of the deviance ``D(φ)`` (−2 times the
REML or ML log-likelihood with β profiled out) at the estimate,

    df = 2 v² / (g' A g),    A = 2 H⁺,

where ``H⁺`` is the pseudo-inverse that keeps the eigenvalues of ``H`` above 1e-8, as
lmerTest's ``as_lmerModLT`` does. lmerTest differentiates numerically; here every
derivative is analytic. Write ``γ = θ²``, ``s = σ²``, ``λ_j = 1 / (1 + n_j γ)``,
``s_j = X_j'1`` and ``e_j`` the sum of the GLS residuals of group ``j``. Then

    M     = X'V₀⁻¹X = X'X − Σ_j (1 − λ_j) s_j s_j' / n_j,
    M_γ   = −Σ_j λ_j² s_j s_j',       M_γγ = 2 Σ_j n_j λ_j³ s_j s_j',
    q_γ   = −Σ_j λ_j² e_j²,           q_γγ = 2 Σ_j n_j λ_j³ e_j² − 2 h'M⁻¹h,
    h     = −Σ_j λ_j² e_j s_j         (q = r'V₀⁻¹r profiled over β: envelope theorem),

and with ``d = n − p`` (REML) or ``n`` (ML) and ``D = log|V₀| [+ log|M|] + d log s + q/s``:

    D_γ  = Σ_j n_j λ_j [+ tr(M⁻¹M_γ)] + q_γ / s,
    D_γγ = −Σ_j n_j² λ_j² [+ tr(M⁻¹M_γγ) − tr(M⁻¹M_γ M⁻¹M_γ)] + q_γγ / s,
    D_γs = −q_γ / s²,   D_ss = d / s²   (at ``s = q / d``),
    v_γ  = −s l'M⁻¹M_γM⁻¹l,   v_s = v / s.

The chain rule to ``(θ, σ)`` gives ``H_θθ = 2 D_γ + 4γ D_γγ``, ``H_θσ = 4θσ D_γs``,
``H_σσ = 4 s D_ss``, ``g = (2θ v_γ, 2σ v_s)``.

Parameterisation
----------------
At an interior optimum the df do not depend on the parameterisation: for any smooth
reparameterisation ``φ = φ(ψ)`` with Jacobian ``J``, the gradient of ``v`` becomes
``J'g`` and, because the gradient of ``D`` is zero there, the Hessian becomes ``J'HJ``
(the term with second derivatives of ``φ`` is multiplied by ``∂D/∂φ = 0``), so
``g'H⁻¹g`` is unchanged (the usual invariance of the delta method at a stationary
point). Working in ``(σ_u², σ²)`` or ``(γ, σ²)`` therefore gives the same df as
lmerTest's ``(θ, σ)``; the test suite checks this numerically. At the boundary
the gradient is not zero and the choice matters; lmerTest's ``(θ, σ)`` is used
throughout so that the boundary is treated as lmerTest treats it.

Singular fits
-------------
At ``σ̂_u = 0`` (``θ = 0``) the deviance is even in ``θ``, so ``g_θ = 0`` and
``H_θσ = 0``: the variance of the random intercept drops out and ``df = d``, i.e.
``n − p`` for REML (``n`` for ML) for every contrast, as lmerTest reports (it warns
that a Hessian eigenvalue is close to zero when ``H_θθ = 2 D_γ`` is below 1e-8; the
df are the same). This is far above the between-within df of a cluster-level effect:
the singular fit treats the observations as independent. Conversely, an interior fit
with a tiny ``σ̂_u`` keeps the ``γ`` direction (``g_θ² / H_θθ → v_γ² / D_γγ``) as
long as ``H_θθ`` stays above 1e-8, so the df jump at the boundary; both are what
lmerTest computes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from lmmsim.fit.exact import RandomInterceptFit

__all__ = ["SatterthwaiteTest", "satterthwaite_ri"]

EIGEN_TOL = 1e-8
"""Eigenvalues of the deviance Hessian at or below this are dropped (lmerTest's ``tol``)."""


@dataclass(frozen=True)
class SatterthwaiteTest:
    """t tests of ``m`` contrasts in ``R`` replications; every array has shape (R, m).

    Attributes
    ----------
    estimate : ndarray
        ``l'β̂`` for each contrast ``l``.
    se : ndarray
        ``sqrt(l' C l)`` with ``C = σ̂² (X'V̂₀⁻¹X)⁻¹`` (lme4's ``vcov``).
    df : ndarray
        Satterthwaite denominator degrees of freedom.
    statistic : ndarray
        ``estimate / se``.
    p_value : ndarray
        Two-sided p-value of ``statistic`` against t(df).
    """

    estimate: np.ndarray
    se: np.ndarray
    df: np.ndarray
    statistic: np.ndarray
    p_value: np.ndarray

    def ci(self, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper limits of the t(df) confidence interval at ``level``."""
        if not 0 < level < 1:
            raise ValueError(f"level: got {level!r}, expected a confidence level in (0, 1)")
        half = stats.t.ppf(0.5 + level / 2, self.df) * self.se
        return self.estimate - half, self.estimate + half


def satterthwaite_ri(y, X, groups, fit: RandomInterceptFit, contrasts=None) -> SatterthwaiteTest:
    """Satterthwaite t tests of fixed-effect contrasts, as lmerTest, for R replications.

    Parameters
    ----------
    y : array_like, shape (n,) or (R, n)
        The responses that ``fit`` was fitted to.
    X : array_like, shape (n, p) or (R, n, p)
        Their fixed-effects design.
    groups : array_like, shape (n,)
        Their group labels.
    fit : RandomInterceptFit
        ``fit_random_intercept(y, X, groups, reml=...)``; REML and ML fits both work.
    contrasts : array_like, shape (p,) or (m, p), optional
        Each row a contrast ``l`` (a separate one-degree-of-freedom test of ``l'β = 0``).
        Default: the identity, i.e. every fixed effect.

    Returns
    -------
    SatterthwaiteTest
        Arrays of shape (R, m).

    Raises
    ------
    ValueError
        If the shapes of ``y``, ``X``, ``groups``, ``fit`` and ``contrasts`` do not agree.

    Notes
    -----
    Non-converged fits get numbers too (computed at the point reached), as lmerTest
    does; their status is the fit's ``converged``. See the module docstring for the
    formulas and for singular fits (``df = n − p``).

    Examples
    --------
    >>> import numpy as np
    >>> from lmmsim.fit.exact import fit_random_intercept
    >>> rng = np.random.default_rng(1)
    >>> groups = np.repeat(np.arange(8), [3, 4, 5, 6, 7, 8, 9, 10])
    >>> X = np.column_stack([np.ones(52), (groups % 2).astype(float)])
    >>> y = rng.standard_normal((100, 8))[:, groups] + rng.standard_normal((100, 52))
    >>> fit = fit_random_intercept(y, X, groups)
    >>> test = satterthwaite_ri(y, X, groups, fit, contrasts=[0.0, 1.0])
    >>> test.df.shape
    (100, 1)
    """
    y, X, onehot = _check_inputs(y, X, groups, fit)
    L = _check_contrasts(contrasts, X.shape[-1])
    n, p = X.shape[-2:]
    d = n - p if fit.reml else n
    parts = _derivatives(y, X, onehot, fit)
    minv, m1 = parts["minv"], parts["m1"]
    s = fit.sigma_e**2
    a = L @ minv  # (R, m, p): rows l'M⁻¹
    v_s = np.einsum("rmp,mp->rm", a, L)  # l'M⁻¹l
    v = s[:, None] * v_s
    v_gamma = -s[:, None] * np.einsum("rmp,rpq,rmq->rm", a, m1, a)

    theta, sigma = np.sqrt(fit.gamma), fit.sigma_e
    hessian = np.empty((len(s), 2, 2))
    hessian[:, 0, 0] = 2.0 * parts["d_gamma"] + 4.0 * fit.gamma * parts["d_gamma2"]
    hessian[:, 0, 1] = hessian[:, 1, 0] = 4.0 * theta * sigma * parts["d_gamma_s"]
    hessian[:, 1, 1] = 4.0 * d / s  # 4 s D_ss at s = q / d
    grad = np.stack([2.0 * theta[:, None] * v_gamma, 2.0 * sigma[:, None] * v_s], axis=-1)  # (R, m, 2)
    df = v**2 / _pinv_quadratic(hessian, grad)

    estimate = fit.beta @ L.T
    se = np.sqrt(v)
    statistic = estimate / se
    p_value = 2.0 * stats.t.sf(np.abs(statistic), df)
    return SatterthwaiteTest(estimate, se, df, statistic, p_value)


def _derivatives(y, X, onehot, fit: RandomInterceptFit) -> dict[str, np.ndarray]:
    """``M⁻¹``, ``M_γ`` and the derivatives of the deviance in ``(γ, s)`` (module docstring)."""
    sizes = onehot.sum(0)  # (J,)
    t = y @ onehot  # (R, J) group sums of y
    sums = onehot.T @ X  # (J, p) or (R, J, p): s_j
    outer = sums[..., :, None] * sums[..., None, :]  # s_j s_j'
    gamma, s = fit.gamma[:, None], fit.sigma_e**2
    lam = 1.0 / (1.0 + sizes * gamma)  # (R, J)

    xtx = np.swapaxes(X, -1, -2) @ X
    m = xtx - _weighted(outer, (1.0 - lam) / sizes)
    m1 = -_weighted(outer, lam**2)
    m2 = _weighted(outer, 2.0 * sizes * lam**3)
    minv = np.linalg.inv(m)
    e = t - (sums @ fit.beta.T).T if sums.ndim == 2 else t - np.einsum("rjp,rp->rj", sums, fit.beta)
    h = -(np.einsum("rj,jp->rp", lam**2 * e, sums) if sums.ndim == 2 else np.einsum("rj,rjp->rp", lam**2 * e, sums))
    q1 = -(lam**2 * e**2).sum(1)
    q2 = 2.0 * (sizes * lam**3 * e**2).sum(1) - 2.0 * np.einsum("rp,rpq,rq->r", h, minv, h)

    d_gamma = (sizes * lam).sum(1) + q1 / s
    d_gamma2 = -(sizes**2 * lam**2).sum(1) + q2 / s
    if fit.reml:  # the log|M| term of the restricted likelihood
        c1 = minv @ m1
        d_gamma = d_gamma + np.trace(c1, axis1=1, axis2=2)
        d_gamma2 = d_gamma2 + np.einsum("rab,rba->r", minv, m2) - np.einsum("rab,rba->r", c1, c1)
    return dict(minv=minv, m1=m1, d_gamma=d_gamma, d_gamma2=d_gamma2, d_gamma_s=-q1 / s**2)


def _weighted(outer: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``Σ_j w[r, j] outer[(r,) j]``, shape (R, p, p)."""
    if outer.ndim == 3:
        return np.einsum("rj,jab->rab", w, outer)
    return np.einsum("rj,rjab->rab", w, outer)


def _pinv_quadratic(hessian: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """``g' H⁺ g`` for (R, 2, 2) Hessians and (R, m, 2) gradients, where ``H⁺`` keeps
    only eigenvalues above ``EIGEN_TOL`` (lmerTest's Moore-Penrose inverse)."""
    values, vectors = np.linalg.eigh(hessian)
    keep = values > EIGEN_TOL
    inverse = np.where(keep, 1.0 / np.where(keep, values, 1.0), 0.0)  # (R, 2)
    coords = np.einsum("rmk,rkc->rmc", grad, vectors)  # g in the eigenbasis
    return np.einsum("rmc,rc->rm", coords**2, inverse)


def _check_inputs(y, X, groups, fit) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``y`` (R, n), ``X`` (n, p) or (R, n, p) and the group indicator matrix (n, J)."""
    if not isinstance(fit, RandomInterceptFit):
        raise ValueError(f"fit: got {type(fit).__name__}, expected a RandomInterceptFit from fit_random_intercept")
    y = np.atleast_2d(np.asarray(y, dtype=float))
    X = np.asarray(X, dtype=float)
    groups = np.asarray(groups)
    R, p = fit.beta.shape
    if y.ndim != 2 or y.shape[0] != R:
        raise ValueError(f"y: got shape {y.shape}, expected ({R}, n) to match the {R} replications of fit")
    n = y.shape[1]
    if X.shape[-2:] != (n, p) or X.ndim not in (2, 3) or (X.ndim == 3 and X.shape[0] != R):
        raise ValueError(f"X: got shape {X.shape}, expected ({n}, {p}) or ({R}, {n}, {p}) to match y and fit")
    if groups.shape != (n,):
        raise ValueError(f"groups: got shape {groups.shape}, expected ({n},), one label per observation")
    codes = np.unique(groups, return_inverse=True)[1].reshape(n)
    onehot = np.zeros((n, codes.max() + 1))
    onehot[np.arange(n), codes] = 1.0
    return y, X, onehot


def _check_contrasts(contrasts, p: int) -> np.ndarray:
    """The contrasts as an (m, p) float array."""
    if contrasts is None:
        return np.eye(p)
    L = np.atleast_2d(np.asarray(contrasts, dtype=float))
    if L.ndim != 2 or L.shape[1] != p or L.shape[0] == 0:
        raise ValueError(f"contrasts: got shape {np.shape(contrasts)}, expected ({p},) or (m, {p})")
    if not np.isfinite(L).all() or np.any(np.abs(L).sum(1) == 0):
        raise ValueError("contrasts: got a non-finite or all-zero row, expected finite nonzero contrasts")
    return L

