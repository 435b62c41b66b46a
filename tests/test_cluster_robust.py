"""Tests for lmmsim.inference.cluster_robust against clubSandwich, statsmodels and a dense computation."""

from __future__ import annotations

import importlib.util

import level_study
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from conftest import ROOT, Z

from lmmsim.analyses import ANALYSES
from lmmsim.inference.cluster_robust import cluster_robust

REFERENCE = ROOT / "tests" / "reference"


def _load_datasets():
    spec = importlib.util.spec_from_file_location("ri_datasets", REFERENCE / "ri_datasets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ri_datasets = _load_datasets()


def test_cr2_agrees_with_clubsandwich():
    ref = pd.read_csv(REFERENCE / "cr2_clubsandwich.csv")
    assert ref["dataset"].nunique() >= 50 and (ref.drop_duplicates("dataset")["J"] <= 4).sum() >= 5
    for k, rows in ref.groupby("dataset"):
        y, X, groups, _ = ri_datasets.dataset(int(k))
        assert ri_datasets.digest(y, X, groups) == rows["sha256"].iloc[0], f"dataset {k} differs from the reference"
        test = cluster_robust(y, X, groups, contrasts=ri_datasets.contrasts(X.shape[1]))
        assert np.allclose(test.estimate[0], rows["estimate"], rtol=1e-8, atol=1e-10)
        assert np.allclose(test.se[0], rows["se"], rtol=1e-8)
        assert np.allclose(test.df[0], rows["df"], rtol=1e-8)
        assert np.allclose(test.p_value[0], rows["p"], rtol=1e-6, atol=1e-12)


def _dense_cr2(y, X, groups, row):
    """CR2 variance and Bell–McCaffrey df with n x n matrices, as clubSandwich computes them."""
    n = len(y)
    M = np.linalg.inv(X.T @ X)
    IH = np.eye(n) - X @ M @ X.T
    e = IH @ y
    meat, columns = 0.0, []
    for j in np.unique(groups):
        rows = groups == j
        values, vectors = np.linalg.eigh(IH[np.ix_(rows, rows)])
        root = np.where(values > 1e-12, 1 / np.sqrt(np.clip(values, 1e-12, None)), 0.0)
        A = vectors @ np.diag(root) @ vectors.T
        score = X[rows].T @ A @ e[rows]
        meat = meat + np.outer(score, score)
        columns.append(IH[:, rows] @ A @ X[rows] @ M @ row)
    G = np.column_stack(columns)
    omega = G.T @ G
    return row @ M @ meat @ M @ row, np.trace(omega) ** 2 / (omega**2).sum()


@pytest.mark.parametrize("case", ["unbalanced", "cluster dummy"])
def test_cr2_equals_the_dense_computation(case):
    rng = np.random.default_rng(np.random.SeedSequence(3, spawn_key=(len(case),)))
    sizes = np.array([1, 2, 3, 5, 8, 13, 4, 6])
    groups = np.repeat(np.arange(len(sizes)), sizes)
    n = len(groups)
    columns = [np.ones(n), rng.permutation(np.arange(len(sizes)) % 2)[groups], rng.standard_normal(n)]
    if case == "cluster dummy":  # leverage 1 in cluster 4: the pseudo-inverse square root
        columns.append((groups == 4) + 0.0)
    X = np.column_stack(columns)
    y = rng.standard_normal(n) + rng.standard_normal(len(sizes))[groups]
    L = np.vstack([np.eye(X.shape[1]), np.r_[0.0, np.ones(X.shape[1] - 1)]])
    test = cluster_robust(y, X, groups, contrasts=L)
    for i, row in enumerate(L):
        var, df = _dense_cr2(y, X, groups, row)
        assert np.isclose(test.se[0, i] ** 2, var, rtol=1e-9)
        assert np.isclose(test.df[0, i], df, rtol=1e-9)


def test_cr1_is_statsmodels_cluster_se_with_j_minus_1_df():
    y, X, groups, _ = ri_datasets.dataset(4)
    test = cluster_robust(y, X, groups, type="CR1")
    result = sm.OLS(y, X).fit(cov_type="cluster", cov_kwds={"groups": groups})
    assert np.allclose(test.se[0], result.bse, rtol=1e-10)
    assert np.all(test.df == len(np.unique(groups)) - 1)


@pytest.mark.parametrize("kind", ["CR1", "CR2"])
@pytest.mark.parametrize("shared_x", [True, False])
def test_batch_equals_one_at_a_time(kind, shared_x):
    y, X, groups = level_study.simulate(reps=12, seed=5)
    if shared_x:
        X = X[0]
    batch = cluster_robust(y, X, groups, type=kind)
    for r in range(len(y)):
        one = cluster_robust(y[r], X if shared_x else X[r], groups, type=kind)
        for name in ("estimate", "se", "df", "p_value"):
            assert np.allclose(getattr(batch, name)[r], getattr(one, name)[0], rtol=1e-10)


def test_analysis_forms_agree(cluster_trial_batch):
    data, model, batch = cluster_trial_batch
    table = ANALYSES["ols_cr2"](data, model, ["treatment"])
    result = ANALYSES["ols_cr2"].fit_batch(batch, ["treatment"])
    assert list(table["status"]) == ["ok"]
    for name in ("estimate", "se", "ci_low", "ci_high", "df", "p_value"):
        assert np.isclose(table[name].iloc[0], getattr(result, name)[0, 0], rtol=1e-9)


def test_cr2_is_closer_to_the_nominal_level_than_cr1():
    rates = level_study.rejection_rates()
    se = level_study.mc_se()
    cr1 = abs(rates["ols_cluster (CR1, J - 1)"] - level_study.ALPHA)
    cr2 = abs(rates["ols_cr2 (CR2, Satterthwaite)"] - level_study.ALPHA)
    assert cr1 - cr2 > Z * np.sqrt(2) * se  # each rate has an MC SE of about se


def test_bad_input_names_the_parameter():
    y, X, groups, _ = ri_datasets.dataset(4)
    for kwargs, name in [({"type": "CR3"}, "type"), ({"contrasts": np.ones(9)}, "contrasts")]:
        with pytest.raises(ValueError, match=name):
            cluster_robust(y, X, groups, **kwargs)
    with pytest.raises(ValueError, match="groups"):
        cluster_robust(y, X, np.zeros(len(y)))
    with pytest.raises(ValueError, match="X"):
        cluster_robust(y, np.column_stack([X, X[:, 1]]), groups)
    with pytest.raises(ValueError, match="level"):
        cluster_robust(y, X, groups).ci(1.5)


@pytest.fixture(scope="module")
def cluster_trial_batch():
    return level_study.cluster_trial_example()


def test_monte_carlo_engine_runs_it_in_both_paths():
    from lmmsim import montecarlo, scenarios

    kw = dict(params={"n_clusters": 6, "cluster_size": 4}, analyses=["ols_cr2"], coefs=["treatment", "x"], reps=20,
              seed=5, progress=False)
    fast = montecarlo.run(scenarios.cluster_trial, **kw)
    general = montecarlo.run(scenarios.cluster_trial, fast=False, **kw)
    assert (fast["status"] == "ok").all() and (general["status"] == "ok").all()
    for column in ("estimate", "se", "df", "p_value"):
        assert np.allclose(fast[column], general[column], rtol=1e-8)
