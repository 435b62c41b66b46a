"""Tests for lmmsim.reml against statsmodels MixedLM and a dense-matrix reference."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats
from statsmodels.regression.mixed_linear_model import MixedLMParams

from lmmsim.fit.exact import RandomInterceptFit, fit_random_intercept
from lmmsim.fit.exact.profile import _level_sums, column_rank, sufficient_stats

SEED = 20241124


def rng_for(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(SEED, spawn_key=key))


def make_dataset(rng, *, n_groups=(4, 16), sigma_u=None):
    """A random design (balanced or not, 1-4 columns, some constant within
    groups) and one response; about one dataset in five has sigma_u = 0."""
    J = int(rng.integers(*n_groups))
    if rng.random() < 0.4:
        sizes = np.full(J, rng.integers(2, 8))
    else:
        sizes = rng.integers(1, 10, J)
        sizes[0] = max(sizes[0], 2)
    groups = np.repeat(np.arange(J), sizes)
    n = len(groups)
    columns = [np.ones(n)]
    n_between = 1  # the intercept
    for _ in range(rng.integers(0, 4)):
        if rng.random() < 0.5 and n_between < J - 1:  # keep sigma_u identifiable
            columns.append((rng.random(J) < 0.5)[groups] + 0.0 if rng.random() < 0.5 else rng.standard_normal(J)[groups])
            n_between += 1
        else:
            columns.append(rng.standard_normal(n))
    X = np.column_stack(columns)
    if np.linalg.matrix_rank(X) < X.shape[1] or n <= X.shape[1] + 1:
        return make_dataset(rng, n_groups=n_groups, sigma_u=sigma_u)
    sigma_e = 10 ** rng.uniform(-1, 1)
    if sigma_u is None:
        sigma_u = sigma_e * rng.choice([0.0, 0.02, 0.3, 1.0, 3.0])
    beta = rng.normal(0, 2, X.shape[1])
    y = X @ beta + sigma_u * rng.standard_normal(J)[groups] + sigma_e * rng.standard_normal(n)
    if rng.random() < 0.3:  # unsorted groups must work too
        order = rng.permutation(n)
        y, X, groups = y[order], X[order], groups[order]
    return y, X, groups


def statsmodels_fit(y, X, groups, reml):
    """statsmodels' fit with the highest finite llf over several optimizers
    (each of them alone sometimes stops early, returns llf = inf or fails)."""
    model = sm.MixedLM(y, X, groups=groups)
    best = None
    for method in ("lbfgs", "bfgs", "powell"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                res = model.fit(reml=reml, method=method)
            except (np.linalg.LinAlgError, ValueError):
                continue
        if np.isfinite(res.llf) and (best is None or res.llf > best.llf):
            best = res
    return model, best


def sm_params(fit: RandomInterceptFit, r: int = 0) -> MixedLMParams:
    return MixedLMParams.from_components(fe_params=fit.beta[r], cov_re=np.array([[fit.gamma[r]]]))


def dense_reference(y, X, groups, gamma, reml):
    """Profiled log-likelihood, GLS beta, sigma_e^2 and X'V0^-1 X at ``gamma``,
    straight from the n x n covariance matrix."""
    n, p = X.shape
    Z = (groups[:, None] == np.unique(groups)).astype(float)
    V0 = np.eye(n) + gamma * Z @ Z.T
    V0_inv = np.linalg.inv(V0)
    A = X.T @ V0_inv @ X
    beta = np.linalg.solve(A, X.T @ V0_inv @ y)
    r = y - X @ beta
    d = n - p if reml else n
    sigma2 = r @ V0_inv @ r / d
    loglik = -0.5 * (d * np.log(2 * np.pi * sigma2) + np.linalg.slogdet(V0)[1] + d)
    if reml:
        loglik -= 0.5 * np.linalg.slogdet(A)[1]
    return loglik, beta, sigma2, A


def loglik_at(y, X, groups, beta, sigma2, gamma):
    """Unprofiled ML and REML log-likelihoods at given parameters (dense)."""
    n, p = X.shape
    Z = (groups[:, None] == np.unique(groups)).astype(float)
    V = sigma2 * (np.eye(n) + gamma * Z @ Z.T)
    V_inv = np.linalg.inv(V)
    r = y - X @ beta
    ml = -0.5 * (n * np.log(2 * np.pi) + np.linalg.slogdet(V)[1] + r @ V_inv @ r)
    reml = ml + 0.5 * (p * np.log(2 * np.pi) - np.linalg.slogdet(X.T @ V_inv @ X)[1])
    return ml, reml


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.filterwarnings("ignore:invalid value encountered in sqrt:RuntimeWarning")  # statsmodels' bse_fe
def test_agrees_with_statsmodels(reml):
    rng = rng_for(1, int(reml))
    n_data, n_same = 60, 0
    for _ in range(n_data):
        y, X, groups = make_dataset(rng)
        fit = fit_random_intercept(y, X, groups, reml=reml)
        model, ref = statsmodels_fit(y, X, groups, reml)
        assert fit.converged[0]
        sigma_u, sigma_e = np.sqrt(ref.cov_re[0, 0]), np.sqrt(ref.scale)
        same = (
            np.allclose(fit.beta[0], ref.fe_params, rtol=1e-6, atol=1e-6 * fit.se[0])
            and np.isclose(fit.sigma_u[0], sigma_u, rtol=1e-4, atol=1e-4 * sigma_e)
            and np.isclose(fit.sigma_e[0], sigma_e, rtol=1e-4)
        )
        n_same += same
        # Where the estimates differ, ours must be the better optimum.
        assert same or fit.llf[0] >= ref.llf - 1e-8
        if same:
            np.testing.assert_allclose(fit.se_observed[0], ref.bse_fe, rtol=1e-3)
            np.testing.assert_allclose(fit.llf[0], ref.llf, rtol=1e-9, atol=1e-7)
        if not fit.boundary[0]:  # statsmodels' loglike is infinite at gamma = 0
            # Same constants as statsmodels' llf, and the same observed
            # information, both evaluated at our estimate.
            np.testing.assert_allclose(model.loglike(sm_params(fit), profile_fe=False), fit.llf[0], rtol=1e-10, atol=1e-9)
            hess, _ = model.hessian(sm_params(fit))
            bse = np.sqrt(np.diag(np.linalg.inv(-hess))[: X.shape[1]])
            np.testing.assert_allclose(fit.se_observed[0], bse, rtol=1e-7)
    assert n_same >= 0.8 * n_data


def profile_on_grid(y, X, groups, reml):
    n_bar = len(y) / len(np.unique(groups))
    grid = np.concatenate(([0.0], np.logspace(-3, 4, 200) / n_bar))
    return grid, np.array([dense_reference(y, X, groups, g, reml)[0] for g in grid])


@pytest.mark.parametrize("reml", [True, False])
def test_matches_dense_reference(reml):
    rng = rng_for(2, int(reml))
    for _ in range(40):
        y, X, groups = make_dataset(rng, n_groups=(3, 9))
        fit = fit_random_intercept(y, X, groups, reml=reml)
        gamma, sigma2 = fit.gamma[0], fit.sigma_e[0] ** 2
        loglik, beta, ref_sigma2, A = dense_reference(y, X, groups, gamma, reml)
        np.testing.assert_allclose(fit.llf[0], loglik, rtol=1e-10, atol=1e-9)
        np.testing.assert_allclose(fit.beta[0], beta, rtol=1e-8, atol=1e-10 * np.abs(beta).max())
        np.testing.assert_allclose(sigma2, ref_sigma2, rtol=1e-10)
        np.testing.assert_allclose(fit.se[0], np.sqrt(sigma2 * np.diag(np.linalg.inv(A))), rtol=1e-8)
        ml, rl = loglik_at(y, X, groups, fit.beta[0], sigma2, gamma)
        np.testing.assert_allclose([fit.loglik_ml[0], fit.loglik_reml[0]], [ml, rl], rtol=1e-10, atol=1e-9)
        _, profile = profile_on_grid(y, X, groups, reml)
        assert fit.llf[0] >= profile.max() - 1e-9


# Datasets (spawn keys for make_dataset) whose criterion has two local maxima.
@pytest.mark.parametrize(
    "reml, key", [(True, k) for k in (791, 2077, 2237, 2347)] + [(False, k) for k in (94, 103, 501, 643, 803, 861)]
)
def test_bimodal_criterion_global_optimum(reml, key):
    y, X, groups = make_dataset(rng_for(9, key), n_groups=(3, 6))
    grid, profile = profile_on_grid(y, X, groups, reml)
    peaks = (profile[0] > profile[1]) + np.sum((profile[1:-1] > profile[:-2]) & (profile[1:-1] > profile[2:]))
    assert peaks >= 2
    fit = fit_random_intercept(y, X, groups, reml=reml)
    assert fit.converged[0]
    assert fit.llf[0] >= profile.max() - 1e-9
    best = grid[profile.argmax()]
    assert grid[max(profile.argmax() - 1, 0)] <= fit.gamma[0] <= grid[profile.argmax() + 1], best


def test_boundary_when_sigma_u_is_zero():
    rng = rng_for(3)
    groups = np.repeat(np.arange(10), 5)
    X = np.column_stack([np.ones(50), rng.standard_normal(50)])
    y = X @ [1.0, 0.5] + rng.standard_normal((60, 50))
    fit = fit_random_intercept(y, X, groups)
    at_zero = fit.boundary
    assert 0.25 <= at_zero.mean() < 1
    assert np.all(fit.sigma_u[at_zero] == 0) and np.all(fit.gamma[at_zero] == 0)
    assert np.all(fit.sigma_u[~at_zero] > 0)
    for r in np.flatnonzero(at_zero)[:12]:
        _, ref = statsmodels_fit(y[r], X, groups, reml=True)
        assert ref.cov_re[0, 0] < 1e-4 * ref.scale
        assert fit.llf[r] >= ref.llf - 1e-8
        np.testing.assert_allclose(fit.beta[r], ref.fe_params, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(fit.se_observed[r], ref.bse_fe, rtol=1e-3)
    # At gamma = 0 the fit is ordinary least squares.
    ols = np.linalg.lstsq(X, y[at_zero].T, rcond=None)[0].T
    np.testing.assert_allclose(fit.beta[at_zero], ols, rtol=1e-10, atol=1e-12)


def test_batched_equals_one_at_a_time():
    rng = rng_for(4)
    groups = np.repeat(np.array(["b", "a", "c", "e", "d", "f"]), [3, 5, 2, 6, 4, 4])
    n = len(groups)
    X = np.column_stack([np.ones(n), rng.standard_normal(n)])
    y = X @ [2.0, -1.0] + rng.standard_normal(6)[np.unique(groups, return_inverse=True)[1]] + rng.standard_normal((2500, n))
    batch = fit_random_intercept(y, X, groups)  # more than one chunk
    X_each = np.broadcast_to(X, (2500, n, 2)) * rng.uniform(0.5, 2, (2500, 1, 1))
    per_rep = fit_random_intercept(y, X_each, groups)
    for r in (0, 1, 2047, 2048, 2499):
        one = fit_random_intercept(y[r], X, groups)
        for name in ("beta", "se", "se_observed", "sigma_u", "sigma_e", "loglik_reml", "loglik_ml"):
            np.testing.assert_allclose(getattr(batch, name)[r], getattr(one, name)[0], rtol=1e-9, atol=1e-12)
        scaled = fit_random_intercept(y[r], X_each[r], groups)
        np.testing.assert_allclose(per_rep.beta[r], scaled.beta[0], rtol=1e-9)
        np.testing.assert_allclose(per_rep.sigma_u[r], scaled.sigma_u[0], rtol=1e-9, atol=1e-12)
    # Rescaling X only rescales beta.
    np.testing.assert_allclose(per_rep.sigma_u, batch.sigma_u, rtol=1e-7, atol=1e-10)


def test_shapes_and_wald():
    rng = rng_for(5)
    groups = np.repeat(np.arange(8), 4)
    X = np.column_stack([np.ones(32), rng.standard_normal(32), rng.standard_normal(32)])
    fit = fit_random_intercept(X @ [1, 0, 2] + rng.standard_normal(32), X, groups, reml=False)
    assert fit.beta.shape == fit.se.shape == (1, 3)
    assert fit.sigma_u.shape == fit.boundary.shape == fit.converged.shape == (1,)
    assert not fit.reml and fit.llf is fit.loglik_ml
    z = fit.wald_z()
    np.testing.assert_allclose(z, fit.beta / fit.se)
    np.testing.assert_allclose(fit.wald_p(), 2 * stats.norm.sf(np.abs(z)))
    np.testing.assert_allclose(fit.wald_z([1.0, 0.0, 2.0]), (fit.beta - [1, 0, 2]) / fit.se)
    with pytest.raises(AttributeError):
        fit.beta = None


GROUPS = np.repeat(np.arange(4), 3)
X_OK = np.column_stack([np.ones(12), np.arange(12.0)])
Y_OK = np.sin(np.arange(12.0))


@pytest.mark.parametrize(
    "y, X, groups, message",
    [
        (np.zeros((2, 2, 12)), X_OK, GROUPS, r"y: got shape \(2, 2, 12\)"),
        (Y_OK, X_OK[:10], GROUPS, r"X: got shape \(10, 2\)"),
        (np.tile(Y_OK, (3, 1)), np.stack([X_OK] * 2), GROUPS, r"X: got shape \(2, 12, 2\).*\(R, n\) = \(3, 12\)"),
        (Y_OK, X_OK, GROUPS[:-1], r"groups: got shape \(11,\)"),
        (np.where(np.arange(12) == 3, np.nan, Y_OK), X_OK, GROUPS, "y: got 1 non-finite"),
        (Y_OK, np.where(X_OK == 5.0, np.inf, X_OK), GROUPS, "X: got 1 non-finite"),
        (np.tile(Y_OK, (2, 1)), np.stack([X_OK, np.where(X_OK == 5.0, -np.inf, X_OK)]), GROUPS,
         "X: got 1 non-finite"),
        (np.where(np.arange(12) == 3, np.inf, Y_OK), X_OK, np.zeros(12), "y: got 1 non-finite"),  # named first
        (Y_OK, X_OK, np.zeros(12), "groups: got 1 distinct group"),
        (Y_OK, X_OK, np.arange(12), "groups: got 12 groups of one observation"),
        (Y_OK[:3], np.eye(3), GROUPS[:3] * 0 + [0, 0, 1], r"X: got p = 3 columns for n = 3"),
        (Y_OK, np.column_stack([X_OK, 2 * X_OK[:, 1]]), GROUPS, "X: got rank 2 with p = 3"),
        (Y_OK, np.column_stack([X_OK[:, 0], GROUPS == 1, GROUPS == 2, GROUPS == 3]), GROUPS, r"X: got 4 group-level columns .* for 4 groups"),
    ],
)
def test_bad_input_raises(y, X, groups, message):
    with pytest.raises(ValueError, match=message):
        fit_random_intercept(y, X, groups)


@pytest.mark.parametrize("scale", [1.0, 1e-3, 1e-6, 1e-9, 0.0])
def test_column_rank_is_numpys_matrix_rank_also_near_collinearity(scale):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((4, 30, 3))
    X[1, :, 2] = X[1, :, 1] + scale * rng.standard_normal(30)  # one replication (nearly) collinear
    assert column_rank(X) == np.linalg.matrix_rank(X).min()
    assert column_rank(X[1]) == np.linalg.matrix_rank(X[1])


@pytest.mark.parametrize("sizes", [[6, 6, 6], [4, 6, 8]])
@pytest.mark.parametrize("position", [0, 1, 5, 6, 17])  # a group's first, inside, last; the next one's first; the end
def test_a_column_is_group_level_only_if_every_value_of_every_group_is_the_same(sizes, position):
    sizes = np.array(sizes)
    column = np.repeat([[1.0, 1.0, 2.0], [3.0, 3.0, 3.0]], sizes, axis=1)  # (R, n): equal values across a boundary too
    np.testing.assert_array_equal(_level_sums(column, sizes), [[1.0, 1.0, 2.0], [3.0, 3.0, 3.0]] * sizes)
    for row in range(2):
        changed = column.copy()
        changed[row, position] = np.nextafter(changed[row, position], 10.0)
        assert _level_sums(changed, sizes) is None


@pytest.mark.parametrize("shared_x", [True, False])
@pytest.mark.parametrize("sizes", [[5, 5, 5, 5], [3, 5, 6, 7]])
def test_within_statistics_are_those_of_the_centred_columns(shared_x, sizes):
    rng = np.random.default_rng(8)
    codes = np.repeat(np.arange(len(sizes)), sizes)
    R, n = 3, len(codes)
    level = rng.standard_normal((1 if shared_x else R, len(sizes)))[:, codes]
    X = np.stack([np.ones_like(level), level, rng.standard_normal(level.shape)], axis=-1)
    X = X[0] if shared_x else X
    y = rng.standard_normal((R, n))
    st = sufficient_stats(y, X, codes)
    columns = np.moveaxis(np.broadcast_to(X, (R, n, 3)), -1, 0)  # (3, R, n)
    centred = np.array([[x - (np.bincount(codes, weights=x) / sizes)[codes] for x in column] for column in columns])
    w_xx = np.einsum("arn,brn->abr", centred, centred)
    np.testing.assert_allclose(st.w_xx[:, :, 0], w_xx[..., :1] if shared_x else w_xx, atol=1e-12)
    np.testing.assert_allclose(st.w_xy[:, 0], np.einsum("arn,rn->ar", centred, y), atol=1e-12)
    assert np.all(st.w_xx[:2, :, 0] == 0) and np.all(st.w_xy[:2] == 0)  # group-level columns: exactly zero
