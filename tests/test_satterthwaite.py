"""Satterthwaite degrees of freedom (lmmsim.inference.satterthwaite).

The comparison with lmerTest on 300 datasets is in test_reference.py; here, the cases
with a known answer and the handling of bad input.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lmmsim import Design, Factor, Indicator, ModelSpec, RandomEffect, fit_lmm, fit_ols, simulate

TRIAL = ModelSpec("y ~ treatment", groups="cluster", lme4="y ~ treatment + (1 | cluster)")


def balanced_trial(n_clusters: int) -> Design:
    return Design(
        factors=(Factor("cluster", n_clusters), Factor("member", 6, within="cluster")),
        covariates=(Indicator("treatment", share=0.5, level="cluster"),),
        formula="treatment",
        beta={"Intercept": 1.0, "treatment": 0.5},
        random=(RandomEffect("cluster", {"Intercept": 2.0}),),
        sigma_e=1.0,
    )


@pytest.mark.parametrize("n_clusters", [6, 10])
def test_balanced_cluster_level_effect_has_j_minus_2_df(n_clusters):
    # With equal clusters and an interior estimate, the t statistic of a cluster-level
    # effect is exactly that of the two-sample t test on cluster means: df = J − 2.
    fit = fit_lmm(simulate(balanced_trial(n_clusters), seed=3).data, TRIAL)
    assert fit.status.ok, fit.status
    table = fit.satterthwaite()
    assert list(table.columns) == ["estimate", "se", "df", "t", "p_value"]
    assert table.loc["treatment", "df"] == pytest.approx(n_clusters - 2, rel=1e-4)
    means = simulate(balanced_trial(n_clusters), seed=3).data.groupby("cluster", observed=True)[["y", "treatment"]].mean()
    treated, control = means.loc[means.treatment == 1, "y"], means.loc[means.treatment == 0, "y"]
    assert table.loc["treatment", "estimate"] == pytest.approx(treated.mean() - control.mean())


def test_contrasts_by_matrix_and_by_name_agree():
    fit = fit_lmm(simulate(balanced_trial(8), seed=4).data, TRIAL)
    fixed = fit.satterthwaite()
    by_matrix = fit.satterthwaite(np.array([[0.0, 1.0], [1.0, 1.0]]))
    by_name = fit.satterthwaite(pd.DataFrame({"treatment": [1.0, 1.0], "Intercept": [0.0, 1.0]}, index=["effect", "treated mean"]))
    pd.testing.assert_series_equal(by_matrix.iloc[0], fixed.loc["treatment"], check_names=False)
    np.testing.assert_allclose(by_name.to_numpy(), by_matrix.to_numpy())
    assert list(by_name.index) == ["effect", "treated mean"]


def test_bad_input_is_refused():
    data = simulate(balanced_trial(8), seed=4).data
    fit = fit_lmm(data, TRIAL)
    with pytest.raises(ValueError, match="L: got 3 columns"):
        fit.satterthwaite(np.ones((1, 3)))
    with pytest.raises(ValueError, match=r"L: columns \['dose'\]"):
        fit.satterthwaite(pd.DataFrame({"dose": [1.0]}))
    with pytest.raises(ValueError, match="fit: got a OLS fit"):
        fit_ols(data, TRIAL).satterthwaite()
