"""The analyses: per-dataset and batch forms agree, df and failures, and their
operating characteristics by simulation."""

import numpy as np
import pandas as pd
import pytest

from lmmsim import ModelSpec, scenarios, simulate
from lmmsim import analyses as an
from lmmsim import montecarlo as mc
from lmmsim.summary import rejection

MODEL = scenarios.cluster_trial.model
COEFS = ("treatment", "x")
NUMBERS = ["estimate", "se", "ci_low", "ci_high", "statistic", "df", "p_value"]


@pytest.fixture(scope="module")
def sims():
    design = scenarios.cluster_trial(n_clusters=12, cluster_size=8, beta1=0.5)
    return [simulate(design, seed) for seed in range(4)]


@pytest.fixture(scope="module")
def batch(sims):
    mats = [an.design_matrices(s.data, MODEL) for s in sims]
    return an.Batch(
        np.array([m[0] for m in mats]),
        np.array([m[1].to_numpy() for m in mats]),
        mats[0][2],
        tuple(mats[0][1].columns),
        MODEL.groups,
    )


@pytest.mark.parametrize("name", list(an.ANALYSES))
def test_batch_form_equals_per_dataset_form(name, sims, batch):
    analysis = an.ANALYSES[name]
    result = analysis.fit_batch(batch, COEFS)
    for r, sim in enumerate(sims):
        one = analysis(sim.data, MODEL, COEFS)
        # a parameter the analysis cannot estimate (cluster_means: x) is a failed row here;
        # in a run the engine adds it to the batch's rows too (see below)
        estimable = one["parameter"].isin(result.parameters)
        assert (one.loc[~estimable, "status"] == "failed").all()
        one = one[estimable].reset_index(drop=True)
        assert list(one["parameter"]) == list(result.parameters)
        assert set(one["status"]) <= {"ok", "boundary"}
        assert result.status[r] == one["status"].iloc[0]
        # OLS variants are exact; mixed models agree to statsmodels' optimizer tolerance.
        # (an SD on the boundary is exactly 0 in the exact fitter, about 1e-4 in statsmodels)
        tol = 1e-9 if name.startswith(("ols", "cluster")) else 2e-4
        atol = 1e-3 if name.startswith("sd_") else tol
        columns = NUMBERS
        if one["status"].iloc[0] == "boundary" and name in ("lmm_wald", "lrt"):
            # at sd = 0 the batch form uses the model-based SE (statsmodels' observed
            # information is not defined there); the LR statistic still agrees
            columns = ["estimate", "df"] + (["statistic", "p_value"] if name == "lrt" else [])
        for column in columns:
            np.testing.assert_allclose(getattr(result, column)[r], one[column], rtol=tol, atol=atol, err_msg=column)


def test_between_within_df_and_cluster_means(sims):
    data = sims[0].data  # 12 clusters of 8: treatment is cluster level, x is not
    t = an.ANALYSES["lmm_t"](data, MODEL)
    assert t.set_index("parameter")["df"].to_dict() == {"treatment": 12 - 2, "x": 96 - 12 - 1}
    means = an.ANALYSES["cluster_means"](data, MODEL, COEFS)
    assert list(means["status"]) == ["ok", "failed"]  # x varies within clusters: no estimate
    assert means["df"].iloc[0] == 12 - 2
    ols = an.ANALYSES["ols"](data, MODEL)
    assert ols["df"].iloc[0] == 96 - 3
    assert np.isnan(an.ANALYSES["lmm_wald"](data, MODEL)["df"]).all()  # z test


def test_denominator_df_counts_random_slope_families():
    sim = simulate(scenarios.blood_pressure(n_patients=20, n_weeks=4), seed=1)
    _, X, groups = an.design_matrices(sim.data, scenarios.blood_pressure.model)
    Z = np.column_stack([np.ones(len(X)), X["week"]])
    # intercept family {Intercept, drug}, slope family {week, week:drug}: J - 2 each
    assert an.denominator_df(X.to_numpy(), groups, Z).tolist() == [18.0] * 4
    # a random intercept only: drug is between (J - 2), week and week:drug within (N - J - 2)
    assert an.denominator_df(X.to_numpy(), groups).tolist() == [18.0, 80 - 20 - 2, 18.0, 80 - 20 - 2]
    between = an.cluster_level(X.to_numpy(), groups)
    assert an.between_within_df(between, 80, 20).tolist() == an.denominator_df(X.to_numpy(), groups).tolist()
    # many designs at once: row r is the df of X[r]
    other = X.to_numpy().copy()
    other[0, 1] += 0.5  # week is no longer the slope's column times a per-patient value: it leaves its family
    stacked = an.denominator_df(np.stack([X.to_numpy(), other]), groups, Z)
    np.testing.assert_array_equal(stacked[0], an.denominator_df(X.to_numpy(), groups, Z))
    np.testing.assert_array_equal(stacked[1], an.denominator_df(other, groups, Z))
    assert stacked[1].tolist() == [18.0, 80 - 20 * 2 - 1, 18.0, 19.0]


def test_failures_are_rows_not_exceptions(sims):
    data = sims[0].data.drop(columns="x")
    out = an.ANALYSES["lmm_t"](data, MODEL, COEFS)
    assert list(out["status"]) == ["failed", "failed"]
    assert out["message"].str.startswith("failed:").all()
    assert out[NUMBERS].isna().all().all()


def test_lrt_vc_needs_a_random_intercept_model():
    with pytest.raises(ValueError, match="random-intercept"):
        an.ANALYSES["lrt_vc"](pd.DataFrame(), scenarios.plant_growth.model)
    assert an.is_random_intercept(ModelSpec("y ~ x", "g", re_formula="~1"))
    assert not an.is_random_intercept(scenarios.schools.model)


def test_general_models_go_through_statsmodels():
    sim = simulate(scenarios.plant_growth(), seed=3)
    model = scenarios.plant_growth.model
    out = an.ANALYSES["lmm_t"](sim.data, model, ["week:treatment[T.FertA]"])
    assert out["status"].iloc[0] in ("ok", "boundary")
    assert abs(out["estimate"].iloc[0] - 0.8) < 4 * out["se"].iloc[0]


def test_get():
    assert [a.name for a in an.get("ols, lmm_t")] == ["ols", "lmm_t"]
    with pytest.raises(ValueError, match="expected one of"):
        an.get(["ols", "anova"])
    with pytest.raises(ValueError, match="twice"):
        an.get("ols,ols")


@pytest.fixture(scope="module")
def null_run():
    # No treatment effect; ICC 0.1 in clusters of 20, so the design effect is 2.9.
    return mc.run(scenarios.cluster_trial, reps=2000, seed=11, analyses="ols,lmm_t,cluster_means", coefs=["treatment"],
                  progress=False)


def test_naive_ols_rejects_too_often_under_clustering(null_run):
    r = rejection(null_run.query("analysis == 'ols'")["p_value"])
    assert r.value > 0.05 + 4 * r.mcse


@pytest.mark.parametrize("name", ["lmm_t", "cluster_means"])
def test_cluster_level_t_tests_hold_their_level(null_run, name):
    p = null_run.query("analysis == @name")["p_value"]
    r = rejection(p)
    mcse = np.sqrt(0.05 * 0.95 / r.n)
    assert abs(r.value - 0.05) < 4 * mcse


def _rows(table):
    return list(zip(table["parameter"], table["status"]))


def test_every_requested_parameter_has_a_row(sims):
    """cluster_means cannot estimate x (it varies within clusters): a failed row says so, in
    the API, in both paths of a Monte Carlo run, and nothing vanishes."""
    table = an.ANALYSES["cluster_means"](sims[0].data, MODEL, COEFS)
    assert _rows(table) == [("treatment", "ok"), ("x", "failed")]
    assert "cluster_means gives no estimate of x" in table["message"].iloc[1]
    for fast in (True, False):
        results = mc.run(scenarios.cluster_trial, params={"n_clusters": 6, "cluster_size": 4}, reps=3, seed=1,
                         analyses="cluster_means,ols", coefs=["x"], chunk_size=2, fast=fast, progress=False)
        assert list(zip(results["rep"], results["analysis"], results["status"])) == [
            (r, a, "failed" if a == "cluster_means" else "ok") for r in range(3) for a in ("cluster_means", "ols")]
        assert results.query("analysis == 'cluster_means'")["message"].str.contains("no estimate of x").all()


def test_complete_adds_the_missing_rows_in_order():
    from lmmsim.analyses.base import complete, frame

    table = frame(["b"], estimate=1.0)
    out = complete(table, ["a", "b", "c"], "mine")
    assert _rows(out) == [("a", "failed"), ("b", "ok"), ("c", "failed")]
    assert out["estimate"].iloc[1] == 1.0 and out["estimate"].iloc[[0, 2]].isna().all()
    assert complete(table, ["b"], "mine") is table


@pytest.mark.parametrize("scenario, params, named", [
    (scenarios.blood_pressure, {"sigma_u1": 0.0}, {"sd(week|patient)", "cor(Intercept,week|patient)"}),
    (scenarios.schools, {"sigma_classroom": 0.0}, {"sd(Intercept|classroom)"}),
    (scenarios.schools, {"sigma_school": 0.0}, {"sd(Intercept|school)"}),
])
def test_a_singular_block_fit_names_its_variance_parameters(scenario, params, named):
    table = mc.run(scenario, reps=60, seed=3, analyses="sd_reml", params=params, progress=False)
    boundary = table.loc[table["status"] == "boundary", "message"]
    assert len(boundary) > 0
    prefix = "boundary (singular fit): "
    assert boundary.str.startswith(prefix).all()
    assert set(boundary.str.removeprefix(prefix)) <= named, set(boundary)
