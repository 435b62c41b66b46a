"""Batched, exact REML/ML fits of linear mixed models with block-diagonal random effects.

Every model whose random effects are nested in one top-level grouping factor:
correlated random intercepts and slopes (``(1 + week | patient)``), nested
intercepts (``(1 | school) + (1 | school:classroom)``), several slopes.  Many
replications sharing the design (``Z``, the grouping and usually ``X``) are
fitted at once with numpy; crossed designs are not block-diagonal and stay on
the general path.

Method
------
The profiled deviance and its analytic gradient in lme4's ``theta`` come from
:mod:`lmmsim.fit.exact.block_criterion` (pooled sufficient statistics, Woodbury).
``theta`` is optimised without bounds: ``D = Lambda Lambda'`` is unchanged when
a column of ``Lambda`` changes sign, so a zero diagonal (lme4's lower bound)
is a stationary point of the unbounded problem, reached by Newton steps like
any other.  Newton steps use a forward-difference Hessian of the analytic
gradient (made positive definite) and a backtracking line search; the columns
are then signed so that the diagonal is non-negative, as in lme4.  Each optimum
is verified: Newton decrement, eigenvalues of the Hessian, and a diagonal
``theta`` below ``1e-4`` (lme4's ``isSingular`` rule,
``lmmsim.fit.status.singular_mask``) marks a boundary (singular) fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lmmsim.fit.exact.block_criterion import (
    Stats,
    evaluate,
    inverse_logdet,
    lambda_matrix,
    sufficient_stats,
    theta_template,
)
from lmmsim.fit.exact.block_df import satterthwaite_df
from lmmsim.fit.exact.block_inputs import check_inputs, check_rank
from lmmsim.fit.status import singular_mask

__all__ = ["BlockFit", "deviance_at", "fit_block", "theta_template"]

# Newton decrement (the decrease of the deviance the local quadratic model predicts):
# iterations stop below _DECREMENT or when a step no longer lowers the deviance (the
# gradient's rounding errors, ~1e-8 relative, can keep the decrement above 1e-11);
# an optimum counts as verified below _DECREMENT_OK.
_DECREMENT = 1e-11
_DECREMENT_OK = 1e-8
_MAXITER = 60
_BACKTRACKS = 4  # step lengths 1/2 ... 1/16 tried together after a failed full Newton step
_STEP = 1e-5  # finite-difference step in theta for Hessians
_MAX_CELLS = 2**22  # y values per chunk: bounds memory, and amortises each call's fixed cost


@dataclass(frozen=True)
class BlockFit:
    """Estimates for ``R`` replications; every array has ``R`` as its first axis.

    Attributes
    ----------
    beta, se : ndarray, shape (R, p)
        Fixed effects and their standard errors from ``vcov``.
    vcov : ndarray, shape (R, p, p)
        ``sigma^2 (X'V0^-1 X)^-1`` at the estimate (lme4's ``vcov``).
    theta : ndarray, shape (R, n_theta)
        lme4's relative covariance factor, term by term, each term's lower
        triangle column by column; diagonal entries non-negative.
    sd : ndarray, shape (R, n_sd)
        SDs of the random effects, term by term (``k`` per term of size ``k``).
    corr : ndarray, shape (R, n_corr)
        Correlations within each term (lower triangle, column by column);
        NaN where an SD is 0.
    sigma_e : ndarray, shape (R,)
        Residual SD.
    criterion : ndarray, shape (R,)
        The minimised deviance (``-2`` REML or ML log-likelihood, lme4's
        ``REMLcrit``/``deviance``).
    converged : ndarray of bool, shape (R,)
        The optimum is a verified local maximum of the likelihood: gradient
        below tolerance and Hessian positive (semi-definite on the boundary).
    boundary : ndarray of bool, shape (R,)
        Singular fit: a diagonal entry of ``theta`` below ``1e-4``.
    grad_norm : ndarray, shape (R,)
        Largest absolute gradient of the criterion in ``theta`` at the estimate.
    min_eig : ndarray, shape (R,)
        Smallest eigenvalue of the Hessian of the criterion in ``theta``.
    n_iter : ndarray of int, shape (R,)
        Newton iterations taken.
    n_eval : int
        Evaluations of criterion and gradient, summed over replications.
    reml : bool
        REML (True) or ML (False).
    df : ndarray, shape (R, p), or None
        Satterthwaite degrees of freedom of each fixed effect (as lmerTest's
        ``summary``), when asked for; NaN where the Hessian is singular.
    """

    beta: np.ndarray
    se: np.ndarray
    vcov: np.ndarray
    theta: np.ndarray
    sd: np.ndarray
    corr: np.ndarray
    sigma_e: np.ndarray
    criterion: np.ndarray
    converged: np.ndarray
    boundary: np.ndarray
    grad_norm: np.ndarray
    min_eig: np.ndarray
    n_iter: np.ndarray
    n_eval: int
    reml: bool
    df: np.ndarray | None = None

    @property
    def llf(self) -> np.ndarray:
        """The maximised log-likelihood (REML or ML, as fitted), shape (R,)."""
        return -0.5 * self.criterion

    @property
    def status(self) -> np.ndarray:
        """One word per replication: ``"converged"`` (verified interior maximum),
        ``"boundary"`` (verified, singular) or ``"not converged"``, shape (R,)."""
        return np.where(~self.converged, "not converged", np.where(self.boundary, "boundary", "converged"))


def _hessian(st, theta, grad, template, n, reml):
    """Forward-difference Hessian (R, n_theta, n_theta) of the analytic gradient."""
    cols = []
    for i in range(theta.shape[1]):
        step = np.zeros(theta.shape[1])
        step[i] = _STEP
        cols.append((evaluate(st, theta + step, template, n, reml).grad - grad) / _STEP)
    h = np.stack(cols, axis=2)
    return 0.5 * (h + h.transpose(0, 2, 1))


def _newton_step(h: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """``-H+^-1 g`` with ``H+ = H`` where positive definite, else ``H`` with its
    eigenvalues replaced by their absolute values (floored), so that the step descends."""
    with np.errstate(invalid="ignore"):
        h_inv, logdet = inverse_logdet(h.transpose(1, 2, 0).copy())
    step = -(h_inv * grad.T).sum(1).T
    finite = np.isfinite(h).all((1, 2)) & np.isfinite(grad).all(1)
    step[~finite] = 0.0  # degenerate data (no residual variation): no step, reported not converged
    bad = ~np.isfinite(logdet) & finite  # a non-positive pivot: H is not positive definite
    if bad.any():
        vals, vecs = np.linalg.eigh(h[bad])
        vals = np.maximum(np.abs(vals), 1e-8 * np.maximum(np.abs(vals).max(1, keepdims=True), 1.0))
        coef = np.einsum("rba,rb->ra", vecs, grad[bad]) / vals
        step[bad] = -np.einsum("rab,rb->ra", vecs, coef)
    return step


def _optimise(st: Stats, template: np.ndarray, n: int, reml: bool):
    """Newton minimisation of the deviance from lme4's start; all replications at once."""
    R, n_theta = st.yty.shape[-1], template.max() + 1
    start = np.isin(np.arange(n_theta), np.diag(template)).astype(float)  # diagonal 1, off-diagonal 0
    theta = np.repeat(start[None], R, axis=0)
    n_iter = np.zeros(R, dtype=int)
    crit = evaluate(st, theta, template, n, reml)
    f, grad, n_eval = crit.f, crit.grad, R
    active = np.flatnonzero(np.isfinite(f) & np.isfinite(grad).all(1))  # else degenerate data
    for _ in range(_MAXITER):
        if not len(active):
            break
        sub = st if len(active) == R else st.take(active)
        th, g0, f0 = theta[active], grad[active], f[active]
        step = _newton_step(_hessian(sub, th, g0, template, n, reml), g0)
        n_eval += len(active) * n_theta
        slope = np.einsum("ra,ra->r", g0, step)
        alpha = _line_search(sub, th, f0, step, slope, template, n, reml, (theta, f, grad), active)
        n_eval += len(active) + _BACKTRACKS * np.count_nonzero(alpha < 1.0)
        n_iter[active] += 1
        # Stop where the Newton decrement is negligible or the step gained nothing.
        done = (-slope < _DECREMENT) | (alpha == 0.0) | (f[active] >= f0 - 1e-14 * np.abs(f0))
        active = active[~done]
    return theta, n_iter, n_eval


def _line_search(st, th, f0, step, slope, template, n, reml, state, active) -> np.ndarray:
    """Armijo backtracking; writes accepted points into ``state = (theta, f, grad)`` at
    ``active`` and returns the step lengths (0 where no step length was accepted).

    The full step is tried for all; where it fails, the halvings ``2^-1 ... 2^-B`` are
    evaluated together in one call (few replications need them, and each call has a
    fixed cost) and the longest acceptable one is taken; where none is, rarely, all the
    further halvings, down to the first below 1e-10, in one more call.
    """
    theta, f, grad = state
    c = evaluate(st, th + step, template, n, reml)
    ok = c.f <= f0 + 1e-4 * slope  # NaN fails
    theta[active[ok]], f[active[ok]], grad[active[ok]] = th[ok] + step[ok], c.f[ok], c.grad[ok]
    alpha = np.where(ok, 1.0, 0.0)
    # Where the full step fails although the predicted decrease is already below what
    # counts as verified, the deviance is at its rounding floor: stop there (alpha 0)
    # rather than search ever shorter steps for gains lost in rounding.
    retry = np.flatnonzero(~ok & (-slope >= _DECREMENT_OK))
    further = 0.5 ** np.arange(_BACKTRACKS + 1, 35)  # down to 2^-34, the first below 1e-10
    for lengths in (0.5 ** np.arange(1, _BACKTRACKS + 1), further):
        if not len(retry):
            break
        retry = _backtrack(st, th, f0, step, slope, template, n, reml, state, active, alpha, retry, lengths)
    return alpha


def _backtrack(st, th, f0, step, slope, template, n, reml, state, active, alpha, retry, lengths) -> np.ndarray:
    """Try the step ``lengths`` (decreasing) at once for the replications ``retry``; take
    the longest acceptable one (as halving one at a time would) and return those left."""
    theta, f, grad = state
    k = len(lengths)
    rows = np.repeat(retry, k)
    trial = th[rows] + np.tile(lengths, len(retry))[:, None] * step[rows]
    c = evaluate(st.take(rows), trial, template, n, reml)
    accept = (c.f <= f0[rows] + 1e-4 * np.tile(lengths, len(retry)) * slope[rows]).reshape(len(retry), -1)
    found = accept.any(1)
    pick = np.arange(len(retry)) * k + accept.argmax(1)  # longest acceptable step
    done, pick = retry[found], pick[found]
    theta[active[done]], f[active[done]], grad[active[done]] = trial[pick], c.f[pick], c.grad[pick]
    alpha[done] = lengths[accept[found].argmax(1)]
    return retry[~found]


def _canonical(theta: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Sign each column of ``Lambda`` so that its diagonal is non-negative (D is unchanged)."""
    sign = np.where(np.diagonal(lambda_matrix(theta, template), axis1=1, axis2=2) < 0, -1.0, 1.0)  # (R, q)
    out = theta.copy()
    rows, cols = np.nonzero(template >= 0)
    out[:, template[rows, cols]] = theta[:, template[rows, cols]] * sign[:, cols]
    return out


def _estimates(st, theta, template, terms, n, reml) -> dict:
    """The array fields of :class:`BlockFit` at the optimum ``theta``."""
    p = st.xty.shape[0]
    d = n - p if reml else n
    crit = evaluate(st, theta, template, n, reml)
    h = _hessian(st, theta, crit.grad, template, n, reml)
    min_eig = np.full(len(theta), np.nan)
    finite = np.isfinite(h).all((1, 2))
    min_eig[finite] = np.linalg.eigvalsh(h[finite])[:, 0]
    grad_norm = np.abs(crit.grad).max(1)
    theta = _canonical(theta, template)
    sigma2 = crit.pwrss / d
    lower = np.where(np.isin(np.arange(theta.shape[1]), np.diag(template)), 0.0, -np.inf)  # lme4's
    boundary = singular_mask(theta, lower).any(1)
    # Verified: the quadratic model predicts no decrease beyond _DECREMENT_OK, and the
    # Hessian is positive definite (semi-definite on the boundary, where D is singular).
    decrement = -np.einsum("ra,ra->r", crit.grad, _newton_step(h, crit.grad))
    scale = np.maximum(np.abs(h).max((1, 2)), 1.0)
    converged = (decrement < _DECREMENT_OK) & (min_eig > np.where(boundary, -1e-6, 1e-9) * scale)
    sd, corr = _sd_corr(theta, template, terms, np.sqrt(sigma2))
    vcov = sigma2[:, None, None] * crit.a_inv
    return dict(
        beta=crit.beta,
        se=np.sqrt(np.diagonal(vcov, axis1=1, axis2=2)),
        vcov=vcov,
        theta=theta,
        sd=sd,
        corr=corr,
        sigma_e=np.sqrt(sigma2),
        criterion=crit.logdet + d * (1.0 + np.log(2.0 * np.pi * sigma2)),
        converged=converged & (sigma2 > 0),
        boundary=boundary,
        grad_norm=grad_norm,
        min_eig=min_eig,
    )


def _sd_corr(theta, template, terms, sigma):
    """SDs and correlations of each term's random effects, (R, n_sd) and (R, n_corr)."""
    lam = lambda_matrix(theta, template)
    sds, corrs, col = [], [], 0
    for k, m in terms:
        block = lam[:, col:col + k, col:col + k]
        cov = block @ block.transpose(0, 2, 1) * (sigma**2)[:, None, None]
        sd = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
        sds.append(sd)
        rows, cols = np.tril_indices(k, -1)
        order = np.lexsort((rows, cols))
        rows, cols = rows[order], cols[order]
        with np.errstate(invalid="ignore", divide="ignore"):
            corrs.append(cov[:, rows, cols] / (sd[:, rows] * sd[:, cols]))
        col += k * m
    return np.concatenate(sds, axis=1), np.concatenate(corrs, axis=1)


def fit_block(y, X, Z, groups, terms, *, reml: bool = True, satterthwaite: bool = False) -> BlockFit:
    """Fit ``y = X beta + Z b + e`` with ``b`` block-diagonal by group, many replications at once.

    Parameters
    ----------
    y : array_like, shape (n,) or (R, n)
        Responses; each row is one replication.
    X : array_like, shape (n, p) or (R, n, p)
        Fixed-effects design, shared or one per replication; full column rank.
    Z : array_like, shape (n, q)
        Random-effects design of each observation within its group (shared by
        the replications), columns in the order of ``terms``: e.g.
        ``[1, week]`` for ``(1 + week | patient)``, or
        ``[1, nested_columns(school, classroom)]`` for nested intercepts
        (``lmmsim.fit.exact.block_layout.nested_columns``;
        :func:`lmmsim.fit.exact.block_layout.model_layout` builds ``Z``, ``groups`` and
        ``terms`` from data and a ModelSpec, ``block_layout`` from a Design).
    groups : array_like, shape (n,)
        Top-level group labels; the random effects of different groups are
        independent.  At least 2 groups.
    terms : sequence of (k, m)
        Structure of ``Lambda``, see ``theta_template``.
    reml : bool, default True
        Minimise the REML (True) or the ML (False) deviance.
    satterthwaite : bool, default False
        Also compute Satterthwaite df for the fixed effects (``2 n_theta``
        more evaluations per replication).

    Returns
    -------
    BlockFit
        Arrays with the replication axis first (``R = 1`` for 1-D ``y``).

    Raises
    ------
    ValueError
        For mismatched shapes, non-finite values, fewer than 2 groups,
        ``n <= p``, a rank-deficient ``X``, or ``terms`` that do not match
        ``Z``'s columns.

    Notes
    -----
    Replications are independent: each follows its own Newton path from
    lme4's start and stops on its own.  Batching changes only the rounding of
    BLAS products, so a replication fitted in a different batch can differ in
    the last digits (relative 1e-9 at most in the tests); the same batch gives
    the same bytes.  Batches of a few thousand replications amortise the fixed
    cost of each call.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> groups, week = np.repeat(np.arange(20), 6), np.tile(np.arange(6.0), 20)
    >>> X = Z = np.column_stack([np.ones(120), week])
    >>> b = rng.standard_normal((20, 2)) * [1.0, 0.3]
    >>> y = X @ [10.0, 1.0] + (Z * b[groups]).sum(1) + rng.standard_normal(120)
    >>> fit = fit_block(y, X, Z, groups, [(2, 1)])
    >>> fit.beta.shape, fit.sd.shape, fit.corr.shape
    ((1, 2), (1, 2), (1, 1))
    """
    y, X, Z, codes, terms = check_inputs(y, X, Z, groups, terms)
    template = theta_template(terms)
    n = y.shape[1]
    chunk = max(16, _MAX_CELLS // n)
    blocks, n_eval = [], 0
    for start in range(0, len(y), chunk):
        part = slice(start, start + chunk)
        st = sufficient_stats(y[part], X if X.ndim == 2 else X[part], Z, codes)
        check_rank(st.xtx)
        # A replication without residual variation gives NaNs; its status says so
        with np.errstate(divide="ignore", invalid="ignore"):
            theta, n_iter, evals = _optimise(st, template, n, reml)
            block = dict(_estimates(st, theta, template, terms, n, reml), n_iter=n_iter)
            if satterthwaite:
                block["df"] = satterthwaite_df(st, theta, template, n, reml)
        blocks.append(block)
        n_eval += evals
    fields = {name: np.concatenate([block[name] for block in blocks]) for name in blocks[0]}
    return BlockFit(**fields, n_eval=n_eval, reml=reml)


def deviance_at(theta, y, X, Z, groups, terms, *, reml: bool = True) -> np.ndarray:
    """The profiled deviance (REML or ML) at given ``theta`` (R, n_theta), shape (R,).

    For checking an optimum found elsewhere (e.g. lme4's) against the criterion
    :func:`fit_block` minimises; arguments as there.
    """
    y, X, Z, codes, terms = check_inputs(y, X, Z, groups, terms)
    template = theta_template(terms)
    theta = np.broadcast_to(np.asarray(theta, dtype=float), (len(y), template.max() + 1))
    n, p = y.shape[1], X.shape[-1]
    d = n - p if reml else n
    crit = evaluate(sufficient_stats(y, X, Z, codes), theta, template, n, reml)
    return crit.logdet + d * (1.0 + np.log(2.0 * np.pi * crit.pwrss / d))
