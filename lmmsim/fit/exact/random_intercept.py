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
derivatives.  It is evaluated on a log-spaced grid (plus ``gamma = 0``); every
sign change of its derivative brackets a local optimum, each is refined by a
safeguarded Newton iteration, and the best of these and of the boundary
``gamma = 0`` is kept, so the global optimum on ``[0, gamma_max]`` is found
even when the criterion is multimodal.

The log-likelihoods use the same constants as statsmodels ``MixedLM.llf``
(the REML one omits ``log|X'X| / 2``, as statsmodels and lme4 do).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.special import ndtr

__all__ = ["RandomInterceptFit", "fit_random_intercept"]

# Grid for gamma * mean group size: 1e-4 (indistinguishable from 0 at the
# grid's resolution) to 1e8 (group means 1e4 times less noisy than sigma_u),
# 2.5 points per decade so that distinct optima fall in distinct cells.
_GRID_DECADES = (-4.0, 8.0)
_GRID_POINTS = 31
_XTOL = 1e-10  # on log(gamma): relative precision of gamma, before the last Newton step
_MAXITER = 100
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
        The optimum is at ``gamma = 0``: ``sigma_u`` is exactly 0.
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
    blocks = []
    for start in range(0, len(y), _CHUNK):  # blocks small enough to stay in cache
        part = slice(start, start + _CHUNK)
        stats = _sufficient_stats(y[part], X if X.ndim == 2 else X[part], codes)
        _check_identifiable(stats, n_groups)
        gamma, converged = _optimise(stats, grid, n - p if reml else n, reml)
        blocks.append(_estimates(stats, gamma, converged, n, p, reml))
    fields = {name: np.concatenate([block[name] for block in blocks]) for name in blocks[0]}
    return RandomInterceptFit(**fields, reml=reml)


class _Stats(NamedTuple):
    """Sufficient statistics pooled by group size, replications on the LAST axis.

    ``K`` is the number of distinct group sizes.  The X-only arrays have a
    last axis of 1 when X is shared.  In the within-group arrays the axis
    before the last is a placeholder (length 1) for the grid axis.
    """

    size: np.ndarray  # (K, 1) group size n_k
    count: np.ndarray  # (K, 1) number of groups of that size
    w_xx: np.ndarray  # (p, p, 1, Rx) within-group X'X
    b_xx: np.ndarray  # (p, p, K, Rx) sum over groups of size n_k of s s' / n_k
    w_xy: np.ndarray  # (p, 1, R)
    b_xy: np.ndarray  # (p, K, R)  sum of s t / n_k
    w_yy: np.ndarray  # (1, R)
    b_yy: np.ndarray  # (K, R)  sum of t^2 / n_k

    def take(self, part) -> _Stats:
        """The statistics of the replications ``part`` (slice or index array)."""
        shared = self.w_xx.shape[-1] == 1
        return self._replace(
            **{
                name: getattr(self, name)[..., part]
                for name in self._fields[2:]
                if not (shared and name in ("w_xx", "b_xx"))
            }
        )


class _Criterion(NamedTuple):
    """Profiled criterion ``f = -2 loglik + const`` and what it is built from.

    Arrays have the grid axis and the replication axis last, ``(..., G, R)``.
    """

    f: np.ndarray
    f1: np.ndarray  # df / dgamma
    f2: np.ndarray | None  # d2f / dgamma2
    beta: np.ndarray  # (p, G, R) GLS estimate
    q: np.ndarray  # sigma_e^2-free residual quadratic form r'V0^-1 r
    a_inv: np.ndarray  # (p, p, G, R) inverse of X'V0^-1 X
    logdet: np.ndarray  # log|X'V0^-1 X|
    log_v: np.ndarray  # log|V0| = sum_j log(1 + n_j gamma)
    h: np.ndarray  # (p, G, R) so that dbeta / dgamma = -a_inv h


def _ksum(lam: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``sum_k lam[g, k, r] * s[..., k, r]``, shape (..., G, R)."""
    if lam.shape[-1] == 1:  # one gamma per grid point, shared by all replications
        return lam[..., 0] @ s
    return np.einsum("gkr,...kr->...gr", lam, s)


def _mv(m: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Matrix-vector products ``m[a, b, ...] v[b, ...]``, shape (p, G, R)."""
    if m.shape[-1] == 1 < v.shape[-1]:  # one matrix per grid point: batched matmul is ~6x faster
        return np.moveaxis(np.moveaxis(m[..., 0], -1, 0) @ np.moveaxis(v, 1, 0), 0, 1)
    return np.einsum("ab...,b...->a...", m, v)


def _dot(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inner products over the first axis."""
    return np.einsum("a...,a...->...", u, v)


def _inverse_logdet(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse, in place, and log-determinant of positive definite ``a[i, j, ...]``.

    Gauss-Jordan sweeps vectorised over the trailing axes: for the small
    ``p`` of a fixed-effects design this is far faster than batched LAPACK,
    and positive pivots make pivoting unnecessary.
    """
    logdet = 0.0
    for k in range(a.shape[0]):
        pivot = a[k, k].copy()
        logdet = logdet + np.log(pivot)
        col = a[:, k].copy()
        row = a[k] / pivot
        a -= col[:, None] * row[None, :]
        a[k] = row
        a[:, k] = -col / pivot
        a[k, k] = 1.0 / pivot
    return a, logdet


def _evaluate(st: _Stats, gamma: np.ndarray, d: int, reml: bool, second: bool = True) -> _Criterion:
    """The profiled criterion at ``gamma`` of shape (G, R) or (G, 1).

    ``d`` is the residual degrees of freedom (``n - p`` or ``n``); ``f2`` is
    None unless ``second``.
    """
    lam = 1.0 / (1.0 + st.size * gamma[:, None, :])  # (G, K, R)
    a = st.w_xx + _ksum(lam, st.b_xx)
    b = st.w_xy + _ksum(lam, st.b_xy)
    a_inv, logdet = _inverse_logdet(a)
    beta = _mv(a_inv, b)
    q = st.w_yy + _ksum(lam, st.b_yy) - _dot(b, beta)
    log_v = -(st.count * np.log(lam)).sum(1)

    # Derivatives of lambda, then of q by the envelope theorem (beta is
    # optimal); d beta / d gamma = -a_inv h enters the second derivative.
    lam1 = -st.size * lam**2
    a1, b1 = _ksum(lam1, st.b_xx), _ksum(lam1, st.b_xy)
    h = _mv(a1, beta) - b1
    q1 = _ksum(lam1, st.b_yy) - _dot(beta, b1 - h)
    f = log_v + d * np.log(q)
    f1 = (st.count * st.size * lam).sum(1) + d * q1 / q
    if reml:
        c1 = np.einsum("ab...,bc...->ac...", a_inv, a1)
        f = f + logdet
        f1 = f1 + np.einsum("aa...->...", c1)
    f2 = None
    if second:
        lam2 = -2.0 * st.size * lam * lam1
        a2 = _ksum(lam2, st.b_xx)
        q2 = (
            _ksum(lam2, st.b_yy)
            - _dot(beta, 2.0 * _ksum(lam2, st.b_xy) - _mv(a2, beta))
            - 2.0 * _dot(h, _mv(a_inv, h))
        )
        f2 = -(st.count * (st.size * lam) ** 2).sum(1) + d * (q2 / q - (q1 / q) ** 2)
        if reml:
            f2 = f2 + np.einsum("ab...,ba...->...", a_inv, a2) - np.einsum("ab...,ba...->...", c1, c1)
    return _Criterion(f, f1, f2, beta, q, a_inv, logdet, log_v, h)


def _newton(st: _Stats, lo, hi, f1_lo, f1_hi, shift: float, d: int, reml: bool):
    """Minimise ``f`` on brackets ``[lo, hi]`` with ``f1(lo) < 0 <= f1(hi)``.

    Works in ``xi = log(gamma + shift)``: log-like over many decades, where
    ``f`` is close to quadratic, yet finite at ``gamma = 0``.  Newton steps,
    replaced by bisection whenever they leave the (shrinking) bracket or the
    curvature is not positive; started where the linear interpolant of
    ``df/dxi`` vanishes.  Returns the minimiser, whether it converged, and
    ``f`` there.
    """
    lo, hi = np.log(lo + shift), np.log(hi + shift)
    slope_lo, slope_hi = np.exp(lo) * f1_lo, np.exp(hi) * f1_hi
    xi = lo + (hi - lo) * slope_lo / (slope_lo - slope_hi)
    for _ in range(_MAXITER):
        scale = np.exp(xi)  # d gamma / d xi
        crit = _evaluate(st, (scale - shift)[None], d, reml)
        f1, f2 = crit.f1[0], crit.f2[0]
        below = f1 < 0
        lo = np.where(below, xi, lo)
        hi = np.where(below, hi, xi)
        curvature = scale * f2 + f1  # (d2f / dxi2) / scale
        step = xi - f1 / curvature
        new = np.where((curvature > 0) & (step >= lo) & (step <= hi), step, 0.5 * (lo + hi))
        done = np.abs(new - xi) <= _XTOL
        xi = new
        if done.all():
            break
    return np.exp(xi) - shift, done, crit.f[0]


def _optimise(st: _Stats, grid: np.ndarray, d: int, reml: bool):
    """Global minimiser of ``f`` over ``[0, grid[-1]]`` for each replication."""
    crit = _evaluate(st, grid[:, None], d, reml, second=False)
    f, f1 = crit.f, crit.f1
    # gamma = 0 is a candidate when f increases from it; the grid's upper end
    # when f still decreases there (then the optimum lies beyond gamma_max).
    best_f = np.where(f1[0] >= 0, f[0], np.inf)
    at_top = (f1[-1] < 0) & (f[-1] < best_f)
    best_f = np.where(at_top, f[-1], best_f)
    gamma = np.where(at_top, grid[-1], 0.0)
    converged = ~at_top

    # Each sign change of f1 from - to + brackets a local minimum; refine
    # them all (usually one per replication) and keep the lowest.
    todo = (f1[:-1] < 0) & (f1[1:] >= 0)
    while todo.any():
        cols = np.flatnonzero(todo.any(0))
        i = todo[:, cols].argmax(0)
        todo[i, cols] = False
        sub = st if len(cols) == len(gamma) else st.take(cols)
        x, done, fx = _newton(sub, grid[i], grid[i + 1], f1[i, cols], f1[i + 1, cols], grid[1], d, reml)
        better = fx < best_f[cols]
        best_f[cols] = np.where(better, fx, best_f[cols])
        gamma[cols] = np.where(better, x, gamma[cols])
        converged[cols] = np.where(better, done, converged[cols])
    return gamma, converged & np.isfinite(best_f)


def _estimates(st: _Stats, gamma, converged, n: int, p: int, reml: bool) -> dict[str, np.ndarray]:
    """The array fields of :class:`RandomInterceptFit` at the optimum ``gamma``."""
    d = n - p if reml else n
    crit = _evaluate(st, gamma[None], d, reml)
    q, log_v, logdet = crit.q[0], crit.log_v[0], crit.logdet[0]
    a_inv = crit.a_inv[:, :, 0]
    sigma2 = q / d
    var = sigma2[:, None] * np.einsum("aar->ra", a_inv)
    # Inverting the observed information of (beta, gamma) adds the delta-method
    # term (dbeta/dgamma)^2 / (f2 / 2); statsmodels does this at gamma = 0 too.
    dbeta = _mv(a_inv, crit.h[:, 0]).T
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
        boundary=gamma == 0,
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
    for name, value in (("y", y), ("X", X)):
        if not np.isfinite(value).all():
            bad = np.size(value) - np.isfinite(value).sum()
            raise ValueError(f"{name}: got {bad} non-finite values, expected all finite")
    p = X.shape[-1]
    if not 0 < p < n:
        raise ValueError(f"X: got p = {p} columns for n = {n} observations, expected 1 <= p < n")
    rank = np.linalg.matrix_rank(X).min()
    if rank < p:
        raise ValueError(f"X: got rank {rank} with p = {p} columns, expected full column rank")
    _, codes, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    if len(sizes) < 2:
        raise ValueError(f"groups: got {len(sizes)} distinct group, expected at least 2")
    if sizes.max() < 2:
        raise ValueError(
            f"groups: got {len(sizes)} groups of one observation each, expected some group with 2 or "
            "more (otherwise sigma_u and sigma_e are not identifiable)"
        )
    return y, X, codes.reshape(n)


def _check_identifiable(st: _Stats, n_groups: int) -> None:
    """Raise if the group indicators lie in the span of X, which leaves no
    between-group information for sigma_u (the REML criterion is then flat)."""
    p = st.w_xx.shape[0]
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


def _sufficient_stats(y: np.ndarray, X: np.ndarray, codes: np.ndarray) -> _Stats:
    """Pool the per-group sums by group size (see :class:`_Stats` for the layout)."""
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes)
    if np.any(np.diff(codes) < 0):  # reduceat needs each group contiguous
        y, X, codes = y[:, order], X[..., order, :], codes[order]
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    # Group sums (R, J): reduceat is fast only when it adds up contiguous rows
    if y.strides[0] < y.strides[1]:
        t = np.add.reduceat(y.T, starts, axis=0).T
    else:
        t = np.add.reduceat(y, starts, axis=1)
    s = np.add.reduceat(X, starts, axis=-2)  # (J, p) or (R, J, p)
    x_within = X - np.take(s / sizes[:, None], codes, axis=-2)  # exact within-group part of X

    size, cls = np.unique(sizes, return_inverse=True)
    pool = (cls[:, None] == np.arange(len(size))) / sizes[:, None]  # (J, K): 1/n_j into its size class
    if X.ndim == 2:
        w_xx = (x_within.T @ x_within)[:, :, None, None]
        b_xx = np.einsum("ja,jb,jk->abk", s, s, pool)[..., None]
        w_xy = (x_within.T @ y.T)[:, None, :]
        b_xy = np.einsum("ja,jk->akj", s, pool) @ t.T
    else:
        w_xx = np.moveaxis(x_within.transpose(0, 2, 1) @ x_within, 0, -1)[:, :, None, :]
        b_xx = np.einsum("rja,rjb,jk->abkr", s, s, pool, optimize=True)
        w_xy = (y[:, None, :] @ x_within)[:, 0].T[:, None, :]
        b_xy = np.einsum("rj,rja,jk->akr", t, s, pool)
    b_yy = pool.T @ (t**2).T
    w_yy = (np.einsum("rn,rn->r", y, y) - b_yy.sum(0))[None, :]
    return _Stats(
        size=size[:, None].astype(float),
        count=np.bincount(cls)[:, None].astype(float),
        w_xx=w_xx,
        b_xx=b_xx,
        w_xy=w_xy,
        b_xy=b_xy,
        w_yy=w_yy,
        b_yy=b_yy,
    )
