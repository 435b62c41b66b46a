"""The profiled REML/ML criterion of the random-intercept model and its global optimum.

Used by :func:`lmmsim.fit.exact.random_intercept.fit_random_intercept`; the method is
described there. Every array keeps the replications on its last axis.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from lmmsim.fit.exact import spectral
from lmmsim.fit.exact.sweep import inverse_logdet

_XTOL = 1e-10  # on log(gamma): relative precision of gamma, before the last Newton step
_MAXITER = 100


def column_rank(X: np.ndarray, xtx: np.ndarray | None = None) -> int:
    """``numpy.linalg.matrix_rank(X).min()`` for X of shape (n, p) or (R, n, p), with an SVD
    only for the replications whose X'X leaves doubt. The eigenvalues of X'X lie between
    ``1 / trace((X'X)^-1)`` and ``trace(X'X)``; where the first exceeds 1e-8 of the second, X
    has full column rank by matrix_rank's tolerance (~1e-13 of the largest singular value)
    with a margin of orders of magnitude. The inverse comes from Gauss-Jordan sweeps over all
    replications at once (batched LAPACK costs ~0.5 us per matrix); a pivot that is not
    positive leaves doubt. ``xtx``: X'X, shape (p, p) or (R, p, p), when it is at hand."""
    X3 = X if X.ndim == 3 else X[None]
    xtx = np.swapaxes(X3, -1, -2) @ X3 if xtx is None else xtx.reshape(-1, *xtx.shape[-2:])
    a = np.moveaxis(xtx, 0, -1).copy()  # (p, p, R)
    trace = np.einsum("aar->r", a)
    with np.errstate(all="ignore"):  # a singular X'X: infinite or NaN pivots, which leave doubt
        inverse, logdet = inverse_logdet(a)
        inverse_trace = np.einsum("aar->r", inverse)
        clear = np.isfinite(logdet) & (inverse_trace > 0) & (trace * inverse_trace < 1e8)
    return X.shape[-1] if clear.all() else int(np.linalg.matrix_rank(X3[~clear]).min())


class Stats(NamedTuple):
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

    def take(self, part) -> Stats:
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


def matvec(m: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Matrix-vector products ``m[a, b, ...] v[b, ...]``, shape (p, G, R)."""
    if m.shape[-1] == 1 < v.shape[-1]:  # one matrix per grid point: batched matmul is ~6x faster
        return np.moveaxis(np.moveaxis(m[..., 0], -1, 0) @ np.moveaxis(v, 1, 0), 0, 1)
    return np.einsum("ab...,b...->a...", m, v)


def _dot(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inner products over the first axis."""
    return np.einsum("a...,a...->...", u, v)


def evaluate(st: Stats, gamma: np.ndarray, d: int, reml: bool, second: bool = True) -> _Criterion:
    """The profiled criterion at ``gamma`` of shape (G, R) or (G, 1).

    ``d`` is the residual degrees of freedom (``n - p`` or ``n``); ``f2`` is
    None unless ``second``.
    """
    lam = 1.0 / (1.0 + st.size * gamma[:, None, :])  # (G, K, R)
    a = st.w_xx + _ksum(lam, st.b_xx)
    b = st.w_xy + _ksum(lam, st.b_xy)
    a_inv, logdet = inverse_logdet(a)
    beta = matvec(a_inv, b)
    q = st.w_yy + _ksum(lam, st.b_yy) - _dot(b, beta)
    log_v = -(st.count * np.log(lam)).sum(1)

    # Derivatives of lambda, then of q by the envelope theorem (beta is
    # optimal); d beta / d gamma = -a_inv h enters the second derivative.
    lam1 = -st.size * lam**2
    a1, b1 = _ksum(lam1, st.b_xx), _ksum(lam1, st.b_xy)
    h = matvec(a1, beta) - b1
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
            - _dot(beta, 2.0 * _ksum(lam2, st.b_xy) - matvec(a2, beta))
            - 2.0 * _dot(h, matvec(a_inv, h))
        )
        f2 = -(st.count * (st.size * lam) ** 2).sum(1) + d * (q2 / q - (q1 / q) ** 2)
        if reml:
            f2 = f2 + np.einsum("ab...,ba...->...", a_inv, a2) - np.einsum("ab...,ba...->...", c1, c1)
    return _Criterion(f, f1, f2, beta, q, a_inv, logdet, log_v, h)


def _newton(st, criterion, lo, hi, f1_lo, f1_hi, shift: float, d: int, reml: bool):
    """Minimise ``f`` on brackets ``[lo, hi]`` with ``f1(lo) < 0 <= f1(hi)``.

    Works in ``xi = log(gamma + shift)``: log-like over many decades, where
    ``f`` is close to quadratic, yet finite at ``gamma = 0``.  Newton steps,
    replaced by bisection whenever they leave the (shrinking) bracket or the
    curvature is not positive; started where the linear interpolant of
    ``df/dxi`` vanishes.  Returns the minimiser, whether it converged, and
    ``f`` there. ``criterion`` is :func:`evaluate` for ``st`` a :class:`Stats`, or
    :func:`lmmsim.fit.exact.spectral.evaluate` for a ``Spectrum``.
    """
    lo, hi = np.log(lo + shift), np.log(hi + shift)
    slope_lo, slope_hi = np.exp(lo) * f1_lo, np.exp(hi) * f1_hi
    xi = lo + (hi - lo) * slope_lo / (slope_lo - slope_hi)
    for _ in range(_MAXITER):
        scale = np.exp(xi)  # d gamma / d xi
        crit = criterion(st, (scale - shift)[None], d, reml)
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


def optimise(st: Stats, grid: np.ndarray, d: int, reml: bool):
    """Global minimiser of ``f`` over ``[0, grid[-1]]`` for each replication."""
    criterion = evaluate
    if st.size.shape[0] == 1:  # one group size: the search costs O(p) per point (see spectral)
        st, criterion = spectral.spectrum(st), spectral.evaluate
    crit = criterion(st, grid[:, None], d, reml, second=False)
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
        x, done, fx = _newton(sub, criterion, grid[i], grid[i + 1], f1[i, cols], f1[i + 1, cols], grid[1],
                              d, reml)
        better = fx < best_f[cols]
        best_f[cols] = np.where(better, fx, best_f[cols])
        gamma[cols] = np.where(better, x, gamma[cols])
        converged[cols] = np.where(better, done, converged[cols])
    return gamma, converged & np.isfinite(best_f)



def sufficient_stats(y: np.ndarray, X: np.ndarray, codes: np.ndarray) -> Stats:
    """Pool the per-group sums by group size (see :class:`Stats` for the layout)."""
    sizes = np.bincount(codes)
    if np.any(np.diff(codes) < 0):  # the group sums below need each group contiguous
        order = np.argsort(codes, kind="stable")
        y, X, codes = y[:, order], X[..., order, :], codes[order]
    # Observations on the last axis, X's columns first: X is built column by column
    # (``simulate.columns``), so this view is contiguous and every sum runs along memory.
    xt = np.moveaxis(X, -1, 0)  # (p, n) or (p, R, n)
    # Columns constant within every group (the intercept, a cluster-level treatment) have
    # no within part and their sums come from one value per group: only the others are
    # summed, centred and multiplied, which is most of the cost of the statistics.
    level = [_level_sums(column, sizes) for column in xt]
    vary = [a for a, sums in enumerate(level) if sums is None]
    s = np.stack([_group_sums(column, sizes) if sums is None else sums for column, sums in zip(xt, level)])
    t = _group_sums(y, sizes)  # s: (p, [R,] J), t: (R, J)
    w_xx, w_xy = _within_products(xt, s, y, sizes, codes, vary)

    size, cls = np.unique(sizes, return_inverse=True)
    pool = (cls[:, None] == np.arange(len(size))) / sizes[:, None]  # (J, K): 1/n_j into its size class
    if X.ndim == 2:
        b_xx = np.einsum("aj,bj,jk->abk", s, s, pool)[..., None]
        b_xy = np.einsum("aj,jk->akj", s, pool) @ t.T
    elif len(size) == 1:  # one group size (balanced): no pooling matrix to multiply
        b_xx = (_gram(s) * pool[0, 0])[:, :, None, :]
        b_xy = (np.array([_sum_products(column, t) for column in s]) * pool[0, 0])[:, None, :]
    else:
        b_xx = np.einsum("arj,brj,jk->abkr", s, s, pool, optimize=True)
        b_xy = np.einsum("rj,arj,jk->akr", t, s, pool)
    b_yy = pool.T @ (t**2).T
    w_yy = (_sum_products(y, y) - b_yy.sum(0))[None, :]
    return Stats(
        size=size[:, None].astype(float),
        count=np.bincount(cls)[:, None].astype(float),
        w_xx=w_xx,
        b_xx=b_xx,
        w_xy=w_xy,
        b_xy=b_xy,
        w_yy=w_yy,
        b_yy=b_yy,
    )


def _within_products(xt, s, y, sizes, codes, vary) -> tuple[np.ndarray, np.ndarray]:
    """Within-group X'X, shape (p, p, 1, Rx), and X'y, shape (p, 1, R), from X's columns ``xt``
    and their group sums ``s``: zero but in the rows and columns ``vary`` (the columns that
    are not constant within groups)."""
    p, R = len(xt), len(y)
    w_xx = np.zeros((p, p, 1, 1 if xt.ndim == 2 else R))
    w_xy = np.zeros((p, 1, R))
    centred = {a: _within(xt[a], s[a], sizes, codes) for a in vary}
    for i, a in enumerate(vary):
        w_xy[a, 0] = _sum_products(centred[a], y)
        for b in vary[i:]:
            w_xx[a, b, 0] = w_xx[b, a, 0] = _sum_products(centred[a], centred[b])
    return w_xx, w_xy


def _level_sums(column: np.ndarray, sizes: np.ndarray) -> np.ndarray | None:
    """The group sums of ``column``, shape (n,) or (R, n) with groups of ``sizes`` consecutive,
    if it is the same within every group of every replication (then each is the group's size
    times its first value), else None."""
    ends = np.cumsum(sizes)

    def same(part: np.ndarray) -> bool:
        # Count the equal neighbours along the flat array, less those that straddle two groups
        # (or replications): all within-group pairs are equal if that leaves one per pair.
        # Comparing with each group's first value by broadcasting costs ~3x more (numpy
        # loops over the groups).
        flat = part.reshape(-1)
        equal = flat[1:] == flat[:-1]
        if (sizes == sizes[0]).all():
            straddle = equal[sizes[0] - 1 :: sizes[0]]
        else:
            straddle = equal[(np.arange(len(part))[:, None] * part.shape[1] + ends - 1).ravel()[:-1]]
        return np.count_nonzero(equal) - np.count_nonzero(straddle) == equal.size - straddle.size

    rows = column.reshape(-1, column.shape[-1])
    # the first replication alone turns most varying columns away
    return column[..., ends - sizes] * sizes if same(rows[:1]) and same(rows) else None


def _sum_products(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``sum(u * v)`` over the last axis, broadcasting the others: as a stack of
    row-times-column products, which BLAS does ~2x faster than einsum."""
    return (u[..., None, :] @ v[..., :, None])[..., 0, 0]


def _gram(a: np.ndarray) -> np.ndarray:
    """``sum(a[i] * a[j])`` over the last axis for every pair, shape (len(a), len(a), ...):
    one product per pair ``i <= j`` is much faster than one einsum over all (whose cost is
    per element)."""
    out = np.empty((len(a), len(a), *a.shape[1:-1]))
    for i in range(len(a)):
        for j in range(i, len(a)):
            out[i, j] = out[j, i] = _sum_products(a[i], a[j])
    return out


def _group_sums(a: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Sums over consecutive runs of ``sizes`` along the last axis of ``a``."""
    if (sizes == sizes[0]).all():  # equal groups: products with ones (BLAS), ~6x faster than .sum(-1)
        return a.reshape(*a.shape[:-1], len(sizes), sizes[0]) @ np.ones(sizes[0])
    return np.add.reduceat(a, np.concatenate(([0], np.cumsum(sizes)[:-1])), axis=-1)


def _within(a: np.ndarray, sums: np.ndarray, sizes: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``a`` minus its group means (groups along the last axis, consecutive): the exact
    within-group part, without the cancellation of X'X minus its between-group part."""
    means = sums / sizes
    if (sizes == sizes[0]).all():
        shape = (*a.shape[:-1], len(sizes), sizes[0])
        return (a.reshape(shape) - means[..., None]).reshape(a.shape)
    return a - np.take(means, codes, axis=-1)
