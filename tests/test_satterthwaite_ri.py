"""Tests for lmmsim.inference.satterthwaite_ri against lmerTest and a numerical reference."""

from __future__ import annotations

import dataclasses
import importlib.util

import level_study
import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from lmmsim.analyses import ANALYSES
from lmmsim.fit.exact import fit_random_intercept
from lmmsim.inference.satterthwaite_ri import satterthwaite_ri

REFERENCE = ROOT / "tests" / "reference"


def _load_datasets():
    spec = importlib.util.spec_from_file_location("ri_datasets", REFERENCE / "ri_datasets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ri_datasets = _load_datasets()


@pytest.fixture(scope="module")
def comparison() -> pd.DataFrame:
    """lmerTest's rows (committed output of ri_satterthwaite.R) next to ours."""
    ref = pd.read_csv(REFERENCE / "ri_satterthwaite.csv")
    ours = []
    for k, rows in ref.groupby("dataset", sort=True):
        y, X, groups, reml = ri_datasets.dataset(int(k))
        assert ri_datasets.digest(y, X, groups) == rows["sha256"].iloc[0], f"dataset {k} differs from the reference"
        fit = fit_random_intercept(y, X, groups, reml=reml)
        assert fit.converged[0] and fit.reml == bool(rows["reml"].iloc[0])
        test = satterthwaite_ri(y, X, groups, fit, ri_datasets.contrasts(X.shape[1]))
        assert len(rows) == test.df.shape[1]
        ours.append(pd.DataFrame({"our_df": test.df[0], "our_p": test.p_value[0], "our_se": test.se[0],
                                  "our_boundary": fit.boundary[0]}, index=rows.index))
    return ref.join(pd.concat(ours))


def test_reference_covers_what_it_should(comparison):
    per_dataset = comparison.drop_duplicates("dataset")
    assert len(per_dataset) >= 50
    assert per_dataset["singular"].sum() >= 5
    assert (per_dataset["J"] <= 4).sum() >= 5  # few clusters
    assert (per_dataset["reml"] == 0).sum() >= 5  # ML fits too
    assert set(comparison["term"]) >= {"Intercept", "x1", "x2", "contrast"}


def test_df_and_p_agree_with_lmertest(comparison):
    assert np.allclose(comparison["our_se"], comparison["se"], rtol=1e-4)
    assert np.allclose(comparison["our_df"], comparison["df"], rtol=1e-3, atol=0)
    assert np.allclose(comparison["our_p"], comparison["p"], rtol=0, atol=1e-4)


def test_singular_fits_get_residual_df(comparison):
    singular = comparison[comparison["singular"]]
    assert singular["our_boundary"].all()
    n_p = singular["n"] - np.where(singular["reml"] == 1, singular.groupby("dataset")["term"].transform("count") - 1, 0)
    assert np.allclose(singular["our_df"], n_p, rtol=1e-8)


def _dense_deviance(y, X, groups, var_u, var_e):
    """REML deviance (up to a constant) at (σ_u², σ²), β profiled out, from n x n matrices."""
    Z = (groups[:, None] == np.unique(groups)).astype(float)
    V = var_e * np.eye(len(y)) + var_u * Z @ Z.T
    V_inv = np.linalg.inv(V)
    A = X.T @ V_inv @ X
    r = y - X @ np.linalg.solve(A, X.T @ V_inv @ y)
    return np.linalg.slogdet(V)[1] + np.linalg.slogdet(A)[1] + r @ V_inv @ r, np.linalg.inv(A)


def test_df_do_not_depend_on_the_parameterisation():
    """Satterthwaite in (σ_u², σ²), by finite differences, equals the closed form in (θ, σ)."""
    y, X, groups, _ = ri_datasets.dataset(1)
    fit = fit_random_intercept(y, X, groups)
    point = np.array([fit.sigma_u[0] ** 2, fit.sigma_e[0] ** 2])
    steps = 1e-4 * point

    def deviance(x):
        return _dense_deviance(y, X, groups, *x)[0]

    def vcov(x):
        return _dense_deviance(y, X, groups, *x)[1]

    hessian = np.empty((2, 2))
    for a in range(2):
        for b in range(2):
            ea, eb = np.eye(2)[a] * steps[a], np.eye(2)[b] * steps[b]
            hessian[a, b] = (deviance(point + ea + eb) - deviance(point + ea - eb) - deviance(point - ea + eb)
                             + deviance(point - ea - eb)) / (4 * steps[a] * steps[b])
    L = ri_datasets.contrasts(X.shape[1])
    jac = [(vcov(point + np.eye(2)[a] * steps[a]) - vcov(point - np.eye(2)[a] * steps[a])) / (2 * steps[a])
           for a in range(2)]
    v = np.einsum("mp,pq,mq->m", L, vcov(point), L)
    g = np.stack([np.einsum("mp,pq,mq->m", L, j, L) for j in jac], axis=1)
    expected = v**2 / np.einsum("ma,ab,mb->m", g, np.linalg.inv(hessian), g)
    assert np.allclose(satterthwaite_ri(y, X, groups, fit, L).df[0], expected, rtol=1e-4)


@pytest.mark.parametrize("shared_x", [True, False])
def test_batch_equals_one_at_a_time(shared_x):
    rng = np.random.default_rng(np.random.SeedSequence(8, spawn_key=(int(shared_x),)))
    sizes = np.array([2, 3, 5, 8, 13, 4, 1, 6])
    groups = np.repeat(np.arange(len(sizes)), sizes)
    n, R = len(groups), 40
    treat = np.stack([rng.permutation(np.arange(len(sizes)) % 2)[groups] for _ in range(R)])
    X = np.stack([np.ones((R, n)), treat, rng.standard_normal((R, n))], axis=-1)
    if shared_x:
        X = X[0]
    sigma_u = rng.choice([0.0, 0.5, 2.0], R)
    y = rng.standard_normal((R, n)) + (sigma_u[:, None] * rng.standard_normal((R, len(sizes))))[:, groups]
    fit = fit_random_intercept(y, X, groups)
    batch = satterthwaite_ri(y, X, groups, fit, [0.0, 1.0, -1.0])
    assert fit.boundary.any() and not fit.boundary.all()
    for r in range(R):
        Xr = X if shared_x else X[r]
        one = satterthwaite_ri(y[r], Xr, groups, fit_random_intercept(y[r], Xr, groups), [0.0, 1.0, -1.0])
        assert np.allclose(batch.df[r], one.df[0], rtol=1e-6)
        assert np.allclose(batch.p_value[r], one.p_value[0], rtol=1e-6, atol=1e-12)


def test_confidence_interval_is_t_with_satterthwaite_df():
    y, X, groups, _ = ri_datasets.dataset(2)
    test = satterthwaite_ri(y, X, groups, fit_random_intercept(y, X, groups))
    low, high = test.ci(0.95)
    from scipy import stats

    assert np.allclose(high - test.estimate, stats.t.ppf(0.975, test.df) * test.se)
    assert np.allclose(test.estimate - low, high - test.estimate)


def test_bad_input_names_the_parameter():
    y, X, groups, _ = ri_datasets.dataset(2)
    fit = fit_random_intercept(y, X, groups)
    with pytest.raises(ValueError, match="contrasts"):
        satterthwaite_ri(y, X, groups, fit, np.ones(X.shape[1] + 1))
    with pytest.raises(ValueError, match="contrasts"):
        satterthwaite_ri(y, X, groups, fit, np.zeros(X.shape[1]))
    with pytest.raises(ValueError, match="X"):
        satterthwaite_ri(y, X[:, :-1], groups, fit)
    with pytest.raises(ValueError, match="groups"):
        satterthwaite_ri(y, X, groups[1:], fit)
    with pytest.raises(ValueError, match="fit"):
        satterthwaite_ri(y, X, groups, object())
    with pytest.raises(ValueError, match="level"):
        satterthwaite_ri(y, X, groups, fit).ci(95)


def test_analysis_forms_agree():
    data, model, batch = level_study.cluster_trial_example()
    analysis = ANALYSES["lmm_satterthwaite"]
    table = analysis(data, model, ["treatment", "x"])
    result = analysis.fit_batch(batch, ["treatment", "x"])
    assert list(table["status"]) == list(result.status) * 2
    for name in ("estimate", "se", "ci_low", "ci_high", "df", "p_value"):
        assert np.allclose(table[name], getattr(result, name)[0], rtol=1e-8)
    assert list(analysis(data, model, ["nope"])["status"]) == ["failed"]
    # A random slope is a block-diagonal model: the exact block fitter gives its df (it is
    # compared with lmerTest in tests/test_block_reml.py).
    slope = analysis(data, dataclasses.replace(model, re_formula="1 + x"), ["x"])
    assert slope["status"].iloc[0] != "failed" and np.isfinite(slope["df"].iloc[0])


def test_satterthwaite_holds_its_level_with_ten_unequal_clusters():
    rates = level_study.rejection_rates()
    assert abs(rates["lmm_satterthwaite"] - level_study.ALPHA) < 2 * level_study.mc_se()


def test_monte_carlo_engine_runs_it_in_both_paths():
    from lmmsim import montecarlo, scenarios

    kw = dict(params={"n_clusters": 6, "cluster_size": 4}, analyses=["lmm_satterthwaite"], coefs=["treatment", "x"], reps=20,
              seed=5, progress=False)
    fast = montecarlo.run(scenarios.cluster_trial, **kw)
    general = montecarlo.run(scenarios.cluster_trial, fast=False, **kw)
    assert set(fast["status"]) <= {"ok", "boundary"} and (fast["status"] == general["status"]).all()
    for column in ("estimate", "se", "df", "p_value"):
        assert np.allclose(fast[column], general[column], rtol=1e-6)
