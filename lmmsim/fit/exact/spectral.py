"""The profiled REML/ML criterion of the random-intercept model when all groups have one size.

With groups of one size ``m``, every group shares ``lambda = 1 / (1 + m gamma)`` and

    X'V0^-1 X = W + lambda B,    X'V0^-1 y = w + lambda c,    y'V0^-1 y = w_yy + lambda b_yy,

(``W``, ``w``, ``w_yy`` within groups; ``B``, ``c``, ``b_yy`` between them).  ``W`` and ``B``
are diagonalised together through ``T = W + B = X'X = L L'`` and the eigenvalues
``0 <= d_i <= 1`` of ``L^-1 B L^-T = U D U'``: then ``W + lambda B = L U E U' L'`` with
``E = diag(1 - (1 - lambda) d)``.  After one small eigenproblem per replication, the
criterion and its derivatives at any ``gamma`` cost O(p) instead of a p x p inversion --
the reduction EMMA (Kang et al. 2008) makes for one variance ratio, applied to the pooled
sums.  Columns constant within groups (the intercept, a cluster-level treatment) add
directions with ``d = 1`` exactly, where ``e = lambda`` and only the length of ``c``
matters: when at most one column varies within groups these are kept as a count and one
squared length, and the rest comes in closed form without an eigenproblem.  Used by
:func:`lmmsim.fit.exact.profile.optimise` for the search; the estimates at the optimum come
from :func:`lmmsim.fit.exact.profile.evaluate`.  Replications are on the last axis, as there.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from lmmsim.fit.exact.sweep import inverse_logdet


class Spectrum(NamedTuple):
    """The pooled sums of :class:`~lmmsim.fit.exact.profile.Stats` in the joint eigenbasis:
    ``k`` directions listed one by one, and a space of ``between`` directions with ``d = 1``."""

    size: float  # the common group size m
    count: float  # the number of groups J
    between: int  # directions with d = 1 not listed in d (columns constant within groups)
    d: np.ndarray  # (k, Rx) eigenvalues of L^-1 B L^-T
    w_hat: np.ndarray  # (k, R) U' L^-1 w
    c_hat: np.ndarray  # (k, R) U' L^-1 c
    c_between: np.ndarray  # (R,) squared length of U' L^-1 c in the other directions (w has none)
    logdet_t: np.ndarray  # (Rx,) log|X'X|
    w_yy: np.ndarray  # (R,)
    b_yy: np.ndarray  # (R,)

    def take(self, part) -> Spectrum:
        """The replications ``part`` (slice or index array)."""
        shared = self.d.shape[-1] == 1
        return self._replace(
            **{name: getattr(self, name)[..., part] for name in self._fields[3:]
               if not (shared and name in ("d", "logdet_t"))}
        )


class Criterion(NamedTuple):
    """``f = -2 loglik + const`` and its first two derivatives in gamma, shape (G, R)."""

    f: np.ndarray
    f1: np.ndarray
    f2: np.ndarray | None


def spectrum(st) -> Spectrum:
    """The :class:`Spectrum` of statistics ``st`` pooled into one group size."""
    if st.size.shape[0] != 1:
        raise ValueError(f"st: got {st.size.shape[0]} group sizes, expected 1 (groups of one size)")
    W, B = st.w_xx[:, :, 0], st.b_xx[:, :, 0]  # (p, p, Rx)
    w, c = st.w_xy[:, 0], st.b_xy[:, 0]  # (p, R)
    within = np.flatnonzero((W != 0).any(axis=(1, 2)))  # columns not constant within groups
    if len(within) <= 1:
        d, w_hat, c_hat, c_between, logdet_t = _one_within_column(W, B, w, c, within)
    else:
        d, w_hat, c_hat, logdet_t = _eigenbasis(W, B, w, c)
        c_between = np.zeros(w.shape[1])
    return Spectrum(
        size=float(st.size[0, 0]),
        count=float(st.count[0, 0]),
        between=len(w) - len(d),
        # contiguous: the search runs ~3x slower on transposed views
        d=np.ascontiguousarray(np.clip(d, 0.0, 1.0)),  # rounding can step just outside [0, 1]
        w_hat=np.ascontiguousarray(w_hat),
        c_hat=np.ascontiguousarray(c_hat),
        c_between=c_between,
        logdet_t=logdet_t,
        w_yy=st.w_yy[0],
        b_yy=st.b_yy[0],
    )


def _eigenbasis(W, B, w, c):
    """``d``, ``w_hat``, ``c_hat`` and ``log|T|`` through one small eigenproblem per replication."""
    W, B = np.moveaxis(W, -1, 0), np.moveaxis(B, -1, 0)  # (Rx, p, p)
    L = np.linalg.cholesky(W + B)
    L_inv = np.linalg.inv(L)
    d, U = np.linalg.eigh(L_inv @ B @ np.swapaxes(L_inv, -1, -2))
    P = np.swapaxes(U, -1, -2) @ L_inv  # (Rx, p, p): coordinates in the eigenbasis
    w_hat, c_hat = (P @ w.T[..., None])[..., 0].T, (P @ c.T[..., None])[..., 0].T
    return d.T, w_hat, c_hat, 2.0 * np.log(np.diagonal(L, axis1=-2, axis2=-1)).sum(-1)


def _one_within_column(W, B, w, c, within):
    """As :func:`_eigenbasis` in closed form when at most one column ``v`` varies within groups
    (e.g. a covariate beside the intercept and a cluster-level treatment), also returning the
    squared length of ``c`` in the directions with ``d = 1``.

    Then ``W = W_vv e_v e_v'`` has rank one: the one eigenvalue below 1 is
    ``d = 1 - W_vv (T^-1)_vv`` with direction ``T^-1 e_v / sqrt((T^-1)_vv)``; the others are
    1, with ``w`` (which lies in the span of ``W``) orthogonal to them.
    """
    t_inv, logdet_t = inverse_logdet(W + B)
    t_c = (t_inv * c[None]).sum(1)  # T^-1 c, (p, R)
    c_between = (c * t_c).sum(0)  # c'T^-1 c: the squared length of c in the basis
    if not len(within):
        empty = np.zeros((0, w.shape[1]))
        return np.zeros((0, t_inv.shape[-1])), empty, empty, c_between, logdet_t
    v = within[0]
    root = np.sqrt(t_inv[v, v])
    c_hat = t_c[v] / root
    c_between = np.maximum(c_between - c_hat**2, 0.0)
    return (1.0 - W[v, v] * t_inv[v, v])[None], (root * w[v])[None], c_hat[None], c_between, logdet_t


def evaluate(sp: Spectrum, gamma: np.ndarray, dof: int, reml: bool, second: bool = True) -> Criterion:
    """The criterion at ``gamma`` of shape (G, R) or (G, 1); ``dof`` is ``n - p`` (REML) or ``n``."""
    lam = 1.0 / (1.0 + sp.size * gamma)  # (G, R)
    d = sp.d[:, None, :]  # (k, 1, Rx)
    e = 1.0 - (1.0 - lam) * d  # (k, G, R): eigenvalues of X'V0^-1 X in the basis
    n_hat = sp.w_hat[:, None, :] + lam * sp.c_hat[:, None, :]
    beta = n_hat / e
    # The directions with d = 1 have e = lambda and beta = c_hat: they add lambda c_hat^2 to
    # X'V0^-1 y's quadratic form, hence -lambda c_between to q.
    b_yy = sp.b_yy - sp.c_between
    q = sp.w_yy + lam * b_yy - (n_hat * beta).sum(0)
    # Derivatives in lambda (g1, g2), then by the chain rule in gamma.
    q1 = b_yy - (beta * (2.0 * sp.c_hat[:, None, :] - beta * d)).sum(0)
    f = -sp.count * np.log(lam) + dof * np.log(q)
    g1 = -sp.count / lam + dof * q1 / q
    if reml:
        f = f + sp.logdet_t + np.log(e).sum(0) + sp.between * np.log(lam)
        g1 = g1 + (d / e).sum(0) + sp.between / lam
    lam1 = -sp.size * lam**2  # d lambda / d gamma
    f2 = None
    if second:
        q2 = -2.0 * ((sp.c_hat[:, None, :] - beta * d) ** 2 / e).sum(0)
        g2 = sp.count / lam**2 + dof * (q2 / q - (q1 / q) ** 2)
        if reml:
            g2 = g2 - ((d / e) ** 2).sum(0) - sp.between / lam**2
        f2 = g2 * lam1**2 + g1 * (-2.0 * sp.size * lam * lam1)  # lambda'' = -2 m lambda lambda'
    return Criterion(f, g1 * lam1, f2)
