"""Tests for lmmsim.fit.exact.block_criterion: the deviance against a dense computation, the gradient
against finite differences, and the pooled statistics against unpooled ones."""

from __future__ import annotations

import numpy as np
import pytest

from lmmsim.fit.exact.block_criterion import evaluate, sufficient_stats, theta_template


def dense_deviance(theta, y, X, Z, groups, terms, reml):
    """-2 log-likelihood (REML or ML, lme4's constants) from the dense n x n covariance."""
    template = theta_template(terms)
    lam = np.concatenate([theta, [0.0]])[template]
    n, p = X.shape
    V = np.eye(n)
    for g in np.unique(groups):
        idx = groups == g
        V[np.ix_(idx, idx)] += Z[idx] @ lam @ lam.T @ Z[idx].T
    Vi = np.linalg.inv(V)
    A = X.T @ Vi @ X
    beta = np.linalg.solve(A, X.T @ Vi @ y)
    r = y - X @ beta
    d = n - p if reml else n
    pwrss = r @ Vi @ r
    out = np.linalg.slogdet(V)[1] + d * (1 + np.log(2 * np.pi * pwrss / d))
    return out + (np.linalg.slogdet(A)[1] if reml else 0.0)


def dataset(rng, nested):
    if nested:  # 5 schools of 2-3 classrooms of unequal size: several classes of Z_j'Z_j
        school = np.repeat(np.arange(5), [9, 12, 7, 10, 8])
        inner = rng.integers(0, 3, len(school))
        columns = (inner[:, None] == np.arange(3)).astype(float)
        Z, terms = np.column_stack([np.ones(len(school)), columns]), [(1, 1), (1, 3)]
        groups = school
    else:
        groups = np.repeat(np.arange(6), 7)
        Z, terms = np.column_stack([np.ones(42), rng.standard_normal(42)]), [(2, 1)]
    X = np.column_stack([np.ones(len(groups)), rng.standard_normal(len(groups)), (groups % 2).astype(float)])
    y = rng.standard_normal((3, len(groups))) + 2.0 * rng.standard_normal(groups.max() + 1)[groups]
    return y, X, Z, groups, terms


@pytest.mark.parametrize("nested", [False, True])
@pytest.mark.parametrize("reml", [True, False])
def test_deviance_and_gradient(nested, reml):
    rng = np.random.default_rng(7)
    y, X, Z, groups, terms = dataset(rng, nested)
    n_theta = theta_template(terms).max() + 1
    theta = rng.uniform(0.2, 1.5, (3, n_theta))
    st = sufficient_stats(y, X, Z, np.unique(groups, return_inverse=True)[1].reshape(-1))
    crit = evaluate(st, theta, theta_template(terms), len(groups), reml)
    p = X.shape[1]
    d = len(groups) - p if reml else len(groups)
    deviance = crit.logdet + d * (1 + np.log(2 * np.pi * crit.pwrss / d))
    for r in range(3):
        assert deviance[r] == pytest.approx(dense_deviance(theta[r], y[r], X, Z, groups, terms, reml), rel=1e-10)
    h = 1e-6
    for i in range(n_theta):
        e = np.zeros(n_theta)
        e[i] = h
        up = evaluate(st, theta + e, theta_template(terms), len(groups), reml).f
        down = evaluate(st, theta - e, theta_template(terms), len(groups), reml).f
        np.testing.assert_allclose(crit.grad[:, i], (up - down) / (2 * h), rtol=1e-5, atol=1e-5)
