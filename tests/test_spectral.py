"""The equal-group-size criterion (lmmsim.fit.exact.spectral) is the general one
(lmmsim.fit.exact.profile.evaluate) computed another way: same values and derivatives."""

from __future__ import annotations

import numpy as np
import pytest

from lmmsim.fit.exact import profile, spectral


def balanced(shared_x: bool, J: int = 9, m: int = 6, R: int = 5, columns=(0, 1, 2, 3)):
    """Random-intercept data with the intercept, a group-level column, a mixed one and a
    within-group one (X keeps ``columns`` of these)."""
    rng = np.random.default_rng(42)
    codes = np.repeat(np.arange(J), m)
    reps = 1 if shared_x else R
    level = np.repeat(rng.standard_normal((reps, J)), m, axis=1)
    X = np.stack([np.ones((reps, J * m)), level, level + rng.standard_normal((reps, J * m)),
                  rng.standard_normal((reps, J * m))], axis=-1)
    X = X[0] if shared_x else X
    y = (X @ [1.0, 0.5, -0.3, 0.2]) + rng.standard_normal((R, J))[:, codes] + rng.standard_normal((R, J * m))
    return y, X[..., list(columns)], codes


# Columns varying within groups: two (the eigenproblem), one (its closed form), none.
LAYOUTS = [(0, 1, 2, 3), (0, 1, 3), (3,), (0, 1)]


@pytest.mark.parametrize("columns", LAYOUTS)
@pytest.mark.parametrize("shared_x", [True, False])
@pytest.mark.parametrize("reml", [True, False])
def test_criterion_and_derivatives_agree_with_the_general_evaluation(shared_x, reml, columns):
    y, X, codes = balanced(shared_x, columns=columns)
    st = profile.sufficient_stats(y, X, codes)
    dof = len(codes) - X.shape[-1] if reml else len(codes)
    gamma = np.array([0.0, 1e-3, 0.1, 1.0, 30.0, 1e6])[:, None] * np.ones(y.shape[0])
    general = profile.evaluate(st, gamma, dof, reml)
    fast = spectral.evaluate(spectral.spectrum(st), gamma, dof, reml)
    np.testing.assert_allclose(fast.f, general.f, rtol=1e-10)  # X'V⁻¹X is ill-conditioned at large gamma
    scale = np.abs(general.f1) + 1.0 / (1.0 + gamma)  # f1 vanishes near the optimum: compare absolutely there
    assert np.all(np.abs(fast.f1 - general.f1) <= 1e-9 * scale)
    np.testing.assert_allclose(fast.f2, general.f2, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("columns", LAYOUTS)
def test_eigenvalues_lie_in_the_unit_interval_and_a_group_level_column_is_all_between(columns):
    y, X, codes = balanced(True, columns=columns)
    sp = spectral.spectrum(profile.sufficient_stats(y, X, codes))
    assert np.all((sp.d >= 0) & (sp.d <= 1))
    # the intercept and the group-level column span a purely between-group space
    assert np.sum(sp.d > 1 - 1e-12) + sp.between == len(set(columns) & {0, 1})


def test_unequal_groups_are_refused_with_a_clear_error():
    y, X, codes = balanced(True)
    codes = codes.copy()
    codes[-1] = 0  # group 0 now has one more observation
    st = profile.sufficient_stats(y, X, codes)
    with pytest.raises(ValueError, match="group sizes, expected 1"):
        spectral.spectrum(st)


@pytest.mark.parametrize("columns", LAYOUTS)
def test_the_fit_takes_the_same_optimum_through_either_criterion(columns):
    y, X, codes = balanced(False, columns=columns)
    st = profile.sufficient_stats(y, X, codes)
    grid = np.concatenate(([0.0], np.logspace(-4, 8, 31) * 9 / 54))
    dof = len(codes) - X.shape[-1]
    gamma, _ = profile.optimise(st, grid, dof, True)  # takes the spectral route: one group size
    general = profile.evaluate(st, gamma[None], dof, True)
    # the optimum of the general criterion too: zero slope (or the boundary with a rising slope)
    interior = gamma > 0
    assert np.all(np.abs(general.f1[0, interior]) * gamma[interior] < 1e-7)
    assert np.all(general.f1[0, ~interior] >= 0)
