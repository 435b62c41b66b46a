"""Cluster-level columns: the fast reductions give the definition's answer (range within
every cluster at most the tolerance), also for columns that vary by about the tolerance."""

from __future__ import annotations

import numpy as np

from lmmsim.inference.df import _TOL, cluster_level


def general(X, groups):
    """The definition, cluster by cluster."""
    ranges = [np.ptp(X[..., groups == j, :], axis=-2) for j in np.unique(groups)]
    return np.max(ranges, axis=0) <= _TOL * (1.0 + np.abs(X).max(axis=-2))


def test_cluster_level_agrees_with_the_definition():
    rng = np.random.default_rng(0)
    J, m, R = 12, 7, 300
    groups = np.repeat(np.arange(J), m)
    level = np.repeat(rng.standard_normal((R, J)), m, axis=1)
    noisy = [level * 0.1 + s * rng.standard_normal((R, J * m)) * (rng.random((R, 1)) < 0.5)
             for s in (1e-14, 5e-11, 1e-10, 2e-10, 1e-9)]
    X = np.stack([np.ones((R, J * m)), 1e3 * level, *noisy, rng.standard_normal((R, J * m))], axis=-1)
    expected = general(X, groups)
    assert 0 < expected[:, 3:7].mean() < 1  # the noisy columns straddle the tolerance
    np.testing.assert_array_equal(cluster_level(X, groups), expected)
    np.testing.assert_array_equal(cluster_level(np.ascontiguousarray(X[0]), groups), expected[0])
    shuffled = rng.permutation(J * m)  # clusters not in row order: the general computation
    np.testing.assert_array_equal(cluster_level(X[:, shuffled], groups[shuffled]), general(X[:, shuffled],
                                                                                            groups[shuffled]))
    unequal = np.sort(rng.integers(0, J, J * m))  # clusters of unequal sizes: reduceat
    np.testing.assert_array_equal(cluster_level(X, unequal), general(X, unequal))
