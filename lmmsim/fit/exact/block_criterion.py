"""The profiled deviance of a block-diagonal linear mixed model and its gradient.

Group ``j`` contributes ``Z_j b_j`` with ``b_j ~ N(0, sigma^2 Lambda Lambda')`` and
``Lambda`` lme4's relative covariance factor: lower-triangular blocks, one per term,
whose entries are the parameters ``theta`` (see :func:`theta_template`).  With
``M_j = Lambda' Z_j'Z_j Lambda + I`` and ``B_j = Lambda M_j^-1 Lambda'``, Woodbury
gives ``X'V0^-1 X = X'X - sum_j (Z_j'X_j)' B_j (Z_j'X_j)`` (likewise for ``y``) and
``log|V0| = sum_j log|M_j|``.  Groups with equal ``Z_j'Z_j`` share ``B_j``, so they
are pooled into sums of outer products of ``Z_j'X_j`` and ``Z_j'y_j``
(:func:`sufficient_stats`): a balanced design costs the same as one group, and the
cost of an evaluation does not grow with the number of groups.  ``beta`` and
``sigma^2`` are profiled out; :func:`evaluate` returns lme4's deviance (up to
constants) and its analytic gradient in ``theta``, for many replications at once.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np

from lmmsim.fit.exact.sweep import inverse_logdet  # one Gauss-Jordan sweep for both exact fitters

__all__ = ["Criterion", "Stats", "evaluate", "inverse_logdet", "lambda_matrix", "sufficient_stats", "theta_template"]


def theta_template(terms) -> np.ndarray:
    """Where each ``theta`` sits in ``Lambda``: a (q, q) int array, -1 for structural zeros.

    Parameters
    ----------
    terms : sequence of (k, m)
        Random-effect terms in the order of ``Z``'s columns: ``k`` correlated
        effects (a ``k x k`` lower-triangular factor), repeated for ``m``
        nested units that share it.  ``(1 + week | patient)`` is ``[(2, 1)]``;
        ``(1 | school) + (1 | school:classroom)`` with 4 classrooms per school
        is ``[(1, 1), (1, 4)]``.
    """
    terms = [(int(k), int(m)) for k, m in terms]
    if not terms or any(k < 1 or m < 1 for k, m in terms):
        raise ValueError(f"terms: got {terms}, expected a non-empty list of (k, m) with k, m >= 1")
    q = sum(k * m for k, m in terms)
    template = np.full((q, q), -1)
    col = first = 0
    for k, m in terms:
        rows, cols = np.tril_indices(k)
        order = np.lexsort((rows, cols))  # column by column, as lme4
        index = np.empty(len(rows), dtype=int)
        index[order] = first + np.arange(len(rows))
        for _ in range(m):
            template[col + rows, col + cols] = index
            col += k
        first += len(rows)
    return template


class Stats(NamedTuple):
    """Sufficient statistics pooled by class of equal ``Z_j'Z_j``; replications LAST.

    ``c = (a, b, k)`` flattens a (q, q) entry and a class, ``x = (i, l)`` a (p, p)
    entry.  ``t_xx`` and ``xtx`` have no replication axis when X is shared.
    """

    ztz: np.ndarray  # (q, q, K, 1)
    count: np.ndarray  # (K, 1) groups per class
    t_xx: np.ndarray  # (x, c) or (x, c, R): sum_j (Z_j'X_j)[a, i] (Z_j'X_j)[b, l]
    t_xy: np.ndarray  # (p, c, R): sum_j (Z_j'X_j)[a, i] (Z_j'y_j)[b]
    t_yy: np.ndarray  # (c, R): sum_j (Z_j'y_j)[a] (Z_j'y_j)[b]
    xtx: np.ndarray  # (p, p, 1) or (p, p, R)
    xty: np.ndarray  # (p, R)
    yty: np.ndarray  # (R,)

    @property
    def shared(self) -> bool:
        return self.t_xx.ndim == 2

    def take(self, part) -> Stats:
        """The statistics of the replications ``part`` (an index array)."""
        return self._replace(**{
            name: getattr(self, name)[..., part]
            for name in self._fields[2:]
            if not (self.shared and name in ("t_xx", "xtx"))
        })


class Criterion(NamedTuple):
    f: np.ndarray  # (R,) profiled deviance without constants
    grad: np.ndarray  # (R, n_theta)
    beta: np.ndarray  # (R, p)
    pwrss: np.ndarray  # (R,) r'V0^-1 r
    a_inv: np.ndarray  # (R, p, p)
    logdet: np.ndarray  # (R,) log|V0| + (log|X'V0^-1X| if REML)
    grad_pwrss: np.ndarray | None = None  # (R, n_theta) if asked for


def _mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Products ``a[i, j, ...] b[j, l, ...]`` of small matrices, broadcast over the trailing axes."""
    return (a[:, :, None] * b[None]).sum(1)


def lambda_matrix(theta: np.ndarray, template: np.ndarray) -> np.ndarray:
    """``Lambda`` (R, q, q) from ``theta`` (R, n_theta)."""
    padded = np.concatenate([theta, np.zeros((len(theta), 1))], axis=1)
    return padded[:, template]


def evaluate(st: Stats, theta: np.ndarray, template: np.ndarray, n: int, reml: bool,
             parts: bool = False) -> Criterion:
    """Profiled deviance and its gradient at ``theta`` (R, n_theta); with ``parts``
    also the gradient of ``pwrss`` alone (for the unprofiled deviance in ``sigma``)."""
    R, (p, q, K) = len(theta), (st.xty.shape[0], *st.ztz.shape[1:3])
    d = n - p if reml else n
    lam = np.concatenate([theta.T, np.zeros((1, R))])[template][:, :, None]  # (q, q, 1, R)
    lam_t = lam.transpose(1, 0, 2, 3)
    m = _mm(lam_t, _mm(st.ztz, lam))
    m[np.arange(q), np.arange(q)] += 1.0
    m_inv, logdet_m = inverse_logdet(m)
    b = _mm(_mm(lam, m_inv), lam_t)  # Lambda M^-1 Lambda', (q, q, K, R)
    bf = b.reshape(-1, R)
    xtx_b = st.t_xx @ bf if st.shared else np.einsum("xcr,cr->xr", st.t_xx, bf)  # einsum: no (x, c, R) temporary
    a = st.xtx - xtx_b.reshape(p, p, R)
    xvy = st.xty - np.einsum("pcr,cr->pr", st.t_xy, bf)
    yvy = st.yty - (st.t_yy * bf).sum(0)
    with np.errstate(invalid="ignore"):  # far trial points can lose A's definiteness to
        a_inv, logdet_a = inverse_logdet(a)  # rounding: f is then NaN and the step is halved
    beta = (a_inv * xvy).sum(1)
    pwrss = yvy - (xvy * beta).sum(0)
    logdet = (st.count * logdet_m).sum(0) + (logdet_a if reml else 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):  # pwrss <= 0: no residual variation
        f = logdet + d * np.log(pwrss)

    # df = tr(dD S): S sums Z_j'V0^-1 Z_j, minus (REML) Z_j'V0^-1 X A^-1 X'V0^-1 Z_j,
    # minus (d / pwrss) w_j w_j' with w_j = Z_j'V0^-1 r_j = C (Z_j'r_j), C = I - Z_j'Z_j B.
    zb = _mm(st.ztz, b)
    s = (st.count * (st.ztz - _mm(zb, st.ztz))).sum(2)
    tb = (beta[:, None] * st.t_xy).sum(0).reshape(q, q, K, R)
    bb = (beta[:, None] * beta[None]).reshape(-1, R)
    w = (st.t_yy + _times_xx(st, bb)).reshape(q, q, K, R) - tb - tb.transpose(1, 0, 2, 3)
    c = -zb
    c[np.arange(q), np.arange(q)] += 1.0
    grad_pwrss = None
    if parts:  # d pwrss / dD = -sum_j w_j w_j'
        cwc = _mm(_mm(c, w), c.transpose(1, 0, 2, 3)).sum(2)
        grad_pwrss = -2.0 * (_scatter(template) @ _mm(cwc, lam[:, :, 0]).reshape(-1, R)).T
    w *= d / pwrss
    if reml:
        w += _times_xx(st, a_inv.reshape(-1, R)).reshape(q, q, K, R)
    s -= _mm(_mm(c, w), c.transpose(1, 0, 2, 3)).sum(2)
    grad = 2.0 * _scatter(template) @ _mm(s, lam[:, :, 0]).reshape(-1, R)
    return Criterion(f, grad.T, beta.T, pwrss, np.moveaxis(a_inv, -1, 0), logdet, grad_pwrss)


def _times_xx(st: Stats, v: np.ndarray) -> np.ndarray:
    """``sum_x v[x, r] t_xx[x, c, r]``, shape (c, R)."""
    if st.shared:
        return st.t_xx.T @ v
    return np.einsum("xcr,xr->cr", st.t_xx, v)


@lru_cache(maxsize=8)
def _scatter_cached(key: bytes, shape: tuple[int, int]) -> np.ndarray:
    template = np.frombuffer(key, dtype=int).reshape(shape)
    flat = template.reshape(-1)
    return (flat[None, :] == np.arange(flat.max() + 1)[:, None]).astype(float)


def _scatter(template: np.ndarray) -> np.ndarray:
    """(n_theta, q*q) indicator of the entries of ``Lambda`` each ``theta`` fills."""
    return _scatter_cached(template.astype(int).tobytes(), template.shape)


def sufficient_stats(y: np.ndarray, X: np.ndarray, Z: np.ndarray, codes: np.ndarray) -> Stats:
    """Per-group cross products with ``Z``, pooled by class of equal ``Z_j'Z_j``."""
    import scipy.sparse  # imported here: importing lmmsim (and its CLI) stays quick

    n, q = Z.shape
    R, p, n_groups = len(y), X.shape[-1], codes.max() + 1
    # Sparse (J*q, n) block-diagonal Z': maps an (n, .) array to its group sums Z_j'(.)
    rows = (codes[:, None] * q + np.arange(q)).reshape(-1)
    expand = scipy.sparse.csr_matrix((Z.reshape(-1), (rows, np.repeat(np.arange(n), q))), shape=(n_groups * q, n))
    ztz = (expand @ Z).reshape(n_groups, q, q)
    classes, cls = np.unique(ztz.reshape(n_groups, -1), axis=0, return_inverse=True)
    pool = (cls.reshape(-1)[:, None] == np.arange(len(classes))).astype(float)  # (J, K)
    zy = (y @ expand.T).T.reshape(n_groups, q, R)  # y @ E' streams y's rows; E @ y.T would copy y
    if X.ndim == 2:
        zx = (expand @ X).reshape(n_groups, q, p)
        t_xx = _pooled("jai,jbl->ilabk", pool, zx, zx).reshape(p * p, -1)
        t_xy = _pooled("jai,jbr->iabkr", pool, zx, zy).reshape(p, -1, R)
        xtx, xty = (X.T @ X)[..., None], (y @ X).T
    else:
        # Column by column: transposing all of X to (n, p, R) costs more than the fit
        zx = np.stack([expand @ X[:, :, i].T for i in range(p)], axis=1).reshape(n_groups, q, p, R)
        t_xx = _pooled("jair,jblr->ilabkr", pool, zx, zx).reshape(p * p, -1, R)
        t_xy = _pooled("jair,jbr->iabkr", pool, zx, zy).reshape(p, -1, R)
        xtx = np.moveaxis(X.transpose(0, 2, 1) @ X, 0, -1)
        xty = (y[:, None, :] @ X)[:, 0].T
    return Stats(
        ztz=classes.reshape(-1, q, q).transpose(1, 2, 0)[..., None],
        count=pool.sum(0)[:, None],
        t_xx=t_xx,
        t_xy=t_xy,
        t_yy=_pooled("jar,jbr->abkr", pool, zy, zy).reshape(-1, R),
        xtx=xtx,
        xty=xty,
        yty=np.einsum("rn,rn->r", y, y),
    )


def _pooled(spec: str, pool: np.ndarray, *operands: np.ndarray) -> np.ndarray:
    """``einsum`` of ``spec`` (groups ``j`` in the inputs, classes ``k`` in the output) with
    each group summed into its class by ``pool`` (J, K); with one class, a plain sum over
    the groups, several times faster than the three-operand product."""
    inputs, out = spec.split("->")
    if pool.shape[1] == 1:
        return np.expand_dims(np.einsum(f"{inputs}->{out.replace('k', '')}", *operands), out.index("k"))
    return np.einsum(f"{inputs},jk->{out}", *operands, pool, optimize=True)
