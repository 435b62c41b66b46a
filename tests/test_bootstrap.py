"""Tests for lmmsim.inference.bootstrap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import Z

from lmmsim import fit_lmm, scenarios, simulate
from lmmsim.inference import bootstrap
from lmmsim.inference.bootstrap import bootstrap_random_intercept, parametric_bootstrap

TRIAL = scenarios.cluster_trial


def trial_data(sigma_u: float = 1.0, seed: int = 2) -> pd.DataFrame:
    return simulate(TRIAL(n_clusters=8, cluster_size=5, sigma_u=sigma_u), seed=seed).data


def test_same_seed_same_interval():
    data = trial_data()
    first = parametric_bootstrap(data, TRIAL.model, B=200, seed=11)
    again = parametric_bootstrap(data, TRIAL.model, B=200, seed=np.random.SeedSequence(11))
    other = parametric_bootstrap(data, TRIAL.model, B=200, seed=12)
    pd.testing.assert_frame_equal(first.table, again.table)
    assert not first.table[["ci_low", "ci_high"]].equals(other.table[["ci_low", "ci_high"]])
    assert list(first.table.index) == ["Intercept", "treatment", "x", "sd(Intercept|cluster)", "sd(residual)"]
    assert (first.table["ci_low"] <= first.table["estimate"]).all()
    assert (first.table["estimate"] <= first.table["ci_high"]).all()


def test_bootstrap_spread_of_beta_matches_its_standard_error():
    """With the variances known, the spread of β* is the model-based SE; B = 200 samples
    estimate an SD to about 1/sqrt(2B) = 5 % relative."""
    from lmmsim.fit.exact import fit_random_intercept

    rng = np.random.default_rng(np.random.SeedSequence(4))
    groups = np.repeat(np.arange(12), 6)
    X = np.column_stack([np.ones(72), rng.standard_normal(72)])
    y = X @ [1.0, 0.5] + 2.0 * rng.standard_normal(12)[groups] + rng.standard_normal(72)
    result = bootstrap_random_intercept(y, X, groups, B=200, seed=5)
    spread = result.replicates[["x0", "x1"]].std().to_numpy()
    se = fit_random_intercept(y, X, groups).se[0]
    assert np.all(np.abs(spread / se - 1) < Z / np.sqrt(2 * 200))


def test_sd_interval_reaches_zero():
    """At σ_u = 0 a good share of refits is singular, so the lower limit is exactly 0."""
    result = parametric_bootstrap(trial_data(sigma_u=0.0), TRIAL.model, B=200, seed=3)
    assert (result.replicates["sd(Intercept|cluster)"] == 0).mean() > 0.025
    assert result.table.loc["sd(Intercept|cluster)", "ci_low"] == 0


def test_statsmodels_path_is_reproducible():
    data = trial_data()
    runs = [bootstrap._bootstrap_statsmodels(data, TRIAL.model, 10, 7, 0.9, True) for _ in range(2)]
    pd.testing.assert_frame_equal(runs[0].table, runs[1].table)
    fit = fit_lmm(data, TRIAL.model)
    assert list(runs[0].table.index) == list(fit.estimates.index)
    assert np.allclose(runs[0].table["estimate"], fit.estimates["estimate"])


def test_draws_from_a_random_slope_fit_have_its_covariance():
    """Within one plot, Cov(y*) = Z G Z' + σ²I: checked on 4000 draws, to Z Monte Carlo SEs."""
    data = simulate(scenarios.plant_growth(n_plots=6, n_weeks=4), seed=3).data
    result = fit_lmm(data, scenarios.plant_growth.model).result
    rng = np.random.default_rng(9)
    draws = np.array([bootstrap._draw(result, rng) for _ in range(4000)])
    model = result.model
    rows = model.row_indices[model.group_labels[0]]
    Zj = model.exog_re_li[0]
    expected = Zj @ np.asarray(result.cov_re) @ Zj.T + result.scale * np.eye(len(rows))
    sample = np.cov(draws[:, rows], rowvar=False)
    # Var of a sample covariance of normals: (s_ik^2 + s_ii s_kk) / (N - 1)
    se = np.sqrt((expected**2 + np.outer(np.diag(expected), np.diag(expected))) / (len(draws) - 1))
    assert np.all(np.abs(sample - expected) < Z * se)
    se_mean = draws.std(axis=0) / np.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(0) - model.exog @ result.fe_params) < Z * se_mean)


@pytest.mark.parametrize(
    "kwargs, name",
    [({"B": 5}, "B"), ({"seed": -1}, "seed"), ({"seed": 1.5}, "seed"), ({"level": 95}, "level")],
)
def test_bad_input_names_the_parameter(kwargs, name):
    arguments = {"B": 20, "seed": 1, **kwargs}
    with pytest.raises(ValueError, match=name):
        parametric_bootstrap(trial_data(), TRIAL.model, **arguments)
