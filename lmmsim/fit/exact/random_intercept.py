"""Batched, exact REML/ML fits of the random-intercept linear mixed model.

The model is ``y = X beta + Z u + e`` with one grouping factor,
``u_j ~ N(0, sigma_u^2)`` and ``e ~ N(0, sigma_e^2)``.  Many replications that
share the grouping (and usually ``X``) are fitted at once with numpy.

Method
------
Write ``gamma = sigma_u^2 / sigma_e^2`` and ``lambda_j = 1 / (1 + n_j gamma)``
(the shrinkage factor of group ``j``).  Splitting every cross product into a
within-group and a between-group part,

    X'V^-1 X = (W_xx + sum_j lambda_j s_j s_j' / n_j) / sigma_e^2,

and likewise for ``X'V^-1 y`` and ``y'V^-1 y`` (``s_j = X_j'1``, ``t_j = 1'y_j``),
so the per-group sums are sufficient statistics.  Groups of equal size share
``lambda``, so they are pooled first: a balanced design costs the same as a
single group.  ``beta`` and ``sigma_e^2`` are profiled out exactly, leaving a
one-dimensional criterion in ``gamma`` with analytic first and second
derivatives (with groups of one size, computed in the joint eigenbasis of the
within- and between-group cross products: ``lmmsim.fit.exact.spectral``).
It is evaluated on a log-spaced grid (plus ``gamma = 0``); every
sign change of its derivative brackets a local optimum, each is refined by a
safeguarded Newton iteration, and the best of these and of the boundary
``gamma = 0`` is kept, so the global optimum on ``[0, gamma_max]`` is found
even when the criterion is multimodal.

The log-likelihoods use the same constants as statsmodels ``MixedLM.llf``
(the REML one omits ``log|X'X| / 2``, as statsmodels and lme4 do).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lmmsim.fit.exact.profile import Stats, column_rank, evaluate, matvec, optimise, sufficient_stats
from lmmsim.fit.status import singular_mask

__all__ = ["RandomInterceptFit", "fit_random_intercept"]

# Grid for gamma * mean group size: 1e-4 (indistinguishable from 0 at the
# grid's resolution) to 1e8 (group means 1e4 times less noisy than sigma_u),
# 2.5 points per decade so that distinct optima fall in distinct cells.
_GRID_DECADES = (-4.0, 8.0)
_GRID_POINTS = 31
_CHUNK = 2048  # replications per block


@dataclass(frozen=True)
class RandomInterceptFit:
    """Estimates for ``R`` replications; every array has ``R`` as its first axis.

    Attributes
    ----------
    beta : ndarray, shape (R, p)
        Fixed effects (GLS at the estimated variance ratio).
    se : ndarray, shape (R, p)
        Standard errors from ``sigma_e^2 (X' V0^-1 X)^-1`` at the estimate,
        i.e. with the variance components treated as known (lme4's ``vcov``).
    se_observed : ndarray, shape (R, p)
        Standard errors from the observed information of ``(beta, gamma)``,
        as statsmodels' ``bse_fe``: they add the uncertainty of ``gamma``
        through the beta-gamma cross term.  Like statsmodels, this is also
        done at the boundary, where the information need not be positive
        definite: there ``se_observed`` may be below ``se``, or NaN.
    sigma_u, sigma_e : ndarray, shape (R,)
        Standard deviations of the random intercept and of the residual.
    gamma : ndarray, shape (R,)
        Variance ratio ``sigma_u^2 / sigma_e^2``.
    loglik_reml, loglik_ml : ndarray, shape (R,)
        REML and ML log-likelihoods, both evaluated at this fit's estimates.
        The one matching ``reml`` is the maximised criterion and equals
        statsmodels' ``llf`` for the same fit.
    boundary : ndarray of bool, shape (R,)
        Singular fit by lme4's ``isSingular`` rule: ``sqrt(gamma) = sigma_u / sigma_e``
        below 1e-4 (an optimum on the boundary is put at ``gamma = 0``, ``sigma_u`` exactly 0).
    converged : ndarray of bool, shape (R,)
        The optimum was located to full precision inside ``[0, gamma_max]``.
    reml : bool
        Whether the REML (True) or the ML criterion was maximised.
    """

    beta: np.ndarray
    se: np.ndarray
    se_observed: np.ndarray
    sigma_u: np.ndarray
    sigma_e: np.ndarray
    gamma: np.ndarray
    loglik_reml: np.ndarray
    loglik_ml: np.ndarray
    boundary: np.ndarray
    converged: np.ndarray
    reml: bool

    @property
    def llf(self) -> np.ndarray:
        """The maximised log-likelihood (REML or ML, as fitted), shape (R,)."""
        return self.loglik_reml if self.reml else self.loglik_ml

    def wald_z(self, null: float | np.ndarray = 0.0) -> np.ndarray:
        """Wald statistics ``(beta - null) / se``, shape (R, p).

        ``null`` broadcasts against ``beta`` (a scalar, or one value per
        coefficient).
        """
        return (self.beta - null) / self.se

    def wald_p(self, null: float | np.ndarray = 0.0) -> np.ndarray:
        """Two-sided normal p-values of :meth:`wald_z`, shape (R, p)."""
        from scipy.special import ndtr  # imported here: importing lmmsim (and its CLI) stays quick

        return 2.0 * ndtr(-np.abs(self.wald_z(null)))


def fit_random_intercept(y, X, groups, *, reml: bool = True) -> RandomInterceptFit:
    """Fit ``y = X beta + u[group] + e`` by exact REML or ML, many replications at once.

    Parameters
    ----------
    y : array_like, shape (n,) or (R, n)
        Responses; each row is one replication.
    X : array_like, shape (n, p) or (R, n, p)
        Fixed-effects design, shared by all replications or one per
        replication.  Must have full column rank and ``p < n``.
    groups : array_like, shape (n,)
        Group labels (any sortable values), shared by all replications.
        At least 2 groups and at least one group with 2 or more observations.
    reml : bool, default True
        Maximise the restricted (True) or the full (False) likelihood.

    Returns
    -------
    RandomInterceptFit
        Arrays with the replication axis first, also when ``y`` is 1-D
        (then ``R = 1``).

    Raises
    ------
    ValueError
        For mismatched shapes, non-finite values, fewer than 2 groups,
        only singleton groups, ``n <= p``, a rank-deficient ``X``, or an
        ``X`` whose group-level columns absorb all the groups (then
        ``sigma_u`` is not identifiable).

    Notes
    -----
    ``gamma`` is searched on ``[0, gamma_max]`` with ``gamma_max = 1e8`` over
    the mean group size; an optimum beyond it is reported at ``gamma_max``
    with ``converged = False``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> groups = np.repeat(np.arange(10), 5)
    >>> X = np.column_stack([np.ones(50), rng.standard_normal(50)])
    >>> y = X @ [1.0, 0.5] + rng.standard_normal(10)[groups] + rng.standard_normal(50)
    >>> fit = fit_random_intercept(y, X, groups)
    >>> fit.beta.shape, fit.sigma_u.shape
    ((1, 2), (1,))
    """
    y, X, codes = _check_inputs(y, X, groups)
    n, p = X.shape[-2:]
    n_groups = codes.max() + 1
    grid = np.concatenate(([0.0], np.logspace(*_GRID_DECADES, _GRID_POINTS) * n_groups / n))
    parts = [slice(start, start + _CHUNK) for start in range(0, len(y), _CHUNK)]  # blocks of bounded memory
    with np.errstate(invalid="ignore"):  # inf - inf from infinite values in y or X, refused just below
        stats = [sufficient_stats(y[part], X if X.ndim == 2 else X[part], codes) for part in parts]
    # A non-finite value in y or X makes its group's sum, hence the statistics, non-finite:
    # only then is every value looked at, which spares a pass over the data.
    if not all(np.isfinite(array).all() for st in stats for array in st[2:]):
        _check_finite(y, X)
    blocks = []
    for part, st in zip(parts, stats):
        _check_rank(st, X if X.ndim == 2 else X[part])
        _check_identifiable(st, n_groups)
        gamma, converged = optimise(st, grid, n - p if reml else n, reml)
        blocks.append(_estimates(st, gamma, converged, n, p, reml))
    fields = {name: np.concatenate([block[name] for block in blocks]) for name in blocks[0]}
    return RandomInterceptFit(**fields, reml=reml)


def _estimates(st: Stats, gamma, converged, n: int, p: int, reml: bool) -> dict[str, np.ndarray]:
    """The array fields of :class:`RandomInterceptFit` at the optimum ``gamma``."""
    d = n - p if reml else n
    crit = evaluate(st, gamma[None], d, reml)
    q, log_v, logdet = crit.q[0], crit.log_v[0], crit.logdet[0]
    a_inv = crit.a_inv[:, :, 0]
    sigma2 = q / d
    var = sigma2[:, None] * np.einsum("aar->ra", a_inv)
    # Inverting the observed information of (beta, gamma) adds the delta-method
    # term (dbeta/dgamma)^2 / (f2 / 2); statsmodels does this at gamma = 0 too.
    dbeta = matvec(a_inv, crit.h[:, 0]).T
    with np.errstate(invalid="ignore"):
        se_observed = np.sqrt(var + 2.0 * dbeta**2 / crit.f2[0][:, None])
    log2pi = np.log(2.0 * np.pi)
    return dict(
        beta=crit.beta[:, 0].T,
        se=np.sqrt(var),
        se_observed=se_observed,
        sigma_u=np.sqrt(gamma * sigma2),
        sigma_e=np.sqrt(sigma2),
        gamma=gamma,
        loglik_reml=-0.5 * ((n - p) * (log2pi + np.log(sigma2)) + log_v + logdet + q / sigma2),
        loglik_ml=-0.5 * (n * (log2pi + np.log(sigma2)) + log_v + q / sigma2),
        boundary=singular_mask(np.sqrt(gamma), 0.0),  # lme4's rule: θ = sqrt(gamma) below 1e-4
        converged=converged & (sigma2 > 0),  # no residual variation: degenerate data
    )


def _check_inputs(y, X, groups) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated float arrays ``y`` (R, n) and ``X`` (n, p) or (R, n, p), and group codes (n,)."""
    y = np.asarray(y, dtype=float)
    X = np.asarray(X, dtype=float)
    groups = np.asarray(groups)
    if y.ndim not in (1, 2):
        raise ValueError(f"y: got shape {y.shape}, expected (n,) or (R, n)")
    y = np.atleast_2d(y)
    R, n = y.shape
    if X.ndim not in (2, 3) or X.shape[-2] != n or (X.ndim == 3 and X.shape[0] != R):
        raise ValueError(f"X: got shape {X.shape}, expected (n, p) or (R, n, p) with (R, n) = {(R, n)} from y")
    if groups.shape != (n,):
        raise ValueError(f"groups: got shape {groups.shape}, expected ({n},), one label per observation")
    p = X.shape[-1]
    try:
        if not 0 < p < n:
            raise ValueError(f"X: got p = {p} columns for n = {n} observations, expected 1 <= p < n")
        _, codes, sizes = np.unique(groups, return_inverse=True, return_counts=True)
        if len(sizes) < 2:
            raise ValueError(f"groups: got {len(sizes)} distinct group, expected at least 2")
        if sizes.max() < 2:
            raise ValueError(
                f"groups: got {len(sizes)} groups of one observation each, expected some group with 2 "
                "or more (otherwise sigma_u and sigma_e are not identifiable)"
            )
    except Exception:
        _check_finite(y, X)  # non-finite values are named first (otherwise checked through the statistics)
        raise
    return y, X, codes.reshape(n)


def _check_finite(y: np.ndarray, X: np.ndarray) -> None:
    """Raise if ``y`` or ``X`` has a non-finite value."""
    for name, value in (("y", y), ("X", X)):
        if not np.isfinite(value).all():
            bad = np.size(value) - np.isfinite(value).sum()
            raise ValueError(f"{name}: got {bad} non-finite values, expected all finite")


def _check_rank(st: Stats, X: np.ndarray) -> None:
    """Raise unless X has full column rank (X'X from the statistics: within plus between)."""
    p = st.w_xx.shape[0]
    xtx = np.moveaxis((st.w_xx + st.b_xx.sum(2, keepdims=True))[:, :, 0], -1, 0)  # (Rx, p, p)
    rank = column_rank(X, xtx)
    if rank < p:
        raise ValueError(f"X: got rank {rank} with p = {p} columns, expected full column rank")


def _check_identifiable(st: Stats, n_groups: int) -> None:
    """Raise if the group indicators lie in the span of X, which leaves no
    between-group information for sigma_u (the REML criterion is then flat)."""
    p = st.w_xx.shape[0]
    if n_groups > p:  # then n_groups + within_rank > p whatever the rank: nothing to compute
        return
    xtx_diag = np.einsum("aa...->a...", st.w_xx + st.b_xx.sum(2, keepdims=True))
    scale = 1.0 / np.sqrt(xtx_diag)
    within = np.moveaxis((st.w_xx * scale[:, None] * scale[None, :])[:, :, 0], -1, 0)
    within_rank = np.linalg.matrix_rank(within, tol=1e-9).min()
    if n_groups + within_rank <= p:
        raise ValueError(
            f"X: got {p - within_rank} group-level columns (constant within groups) for {n_groups} "
            "groups, which leaves no between-group information: sigma_u is not identifiable; expected "
            "fewer group-level columns, intercept included, than groups"
        )
