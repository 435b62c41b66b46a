"""Tests for lmmsim.fit.exact.block against lme4 (stored reference), statsmodels MixedLM and itself."""

from __future__ import annotations

import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from block_cases import cases, fit_inputs, lme4_names
from block_datasets import sha256

from lmmsim.fit.exact.block import BlockFit, deviance_at, fit_block, theta_template
from lmmsim.fit.exact.block_layout import nested_columns

REFERENCE = Path(__file__).parent / "reference" / "block_lme4.csv"
CASES = {case.name: case for case in cases()}


@lru_cache(maxsize=1)
def reference() -> pd.DataFrame:
    table = pd.read_csv(REFERENCE, keep_default_na=False)
    table["value"] = pd.to_numeric(table["value"], errors="coerce")  # lme4's NA correlations
    return table


def lme4(name: str, method: str) -> pd.Series:
    table = reference()
    rows = table[(table["dataset"] == name) & (table["method"] == method)]
    return rows.set_index(["quantity", "term"])["value"]


def test_reference_covers_every_dataset_with_matching_data():
    table = reference()
    assert len(CASES) >= 100
    assert sorted(table["dataset"].unique()) == sorted(CASES)
    recorded = table.groupby("dataset")["sha256"].first()
    drifted = [name for name, case in CASES.items() if sha256(case.data) != recorded[name]]
    assert not drifted, f"datasets no longer match the lme4 reference (regenerate it): {drifted}"


@pytest.mark.parametrize("method", ["REML", "ML"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_lme4(name, method):
    case = CASES[name]
    args, columns = fit_inputs(case)
    names = lme4_names(case, columns)
    ref = lme4(name, method)
    fit = fit_block(*args, reml=method == "REML")
    assert fit.converged[0]
    assert fit.boundary[0] == bool(ref[("singular", "")])
    lme4_crit = ref[("criterion", "")]
    if fit.criterion[0] < lme4_crit - 1e-6:
        # lme4 stopped at a worse point (seen only with its intercept SD stuck at the
        # bound 0): the criterion is the same function, our optimum is lower.
        theta = [ref[("theta", t)] for t in names["theta"]]
        assert deviance_at(theta, *args, reml=method == "REML")[0] == pytest.approx(lme4_crit, abs=1e-6)
        assert fit.boundary[0]
        return
    assert fit.criterion[0] == pytest.approx(lme4_crit, abs=1e-6)
    beta = np.array([ref[("beta", t)] for t in names["beta"]])
    se = np.array([ref[("se", t)] for t in names["beta"]])
    # Relative to |beta|, or to its SE where beta is near 0 (relative error is meaningless at 0)
    np.testing.assert_array_less(np.abs(fit.beta[0] - beta), 1e-5 * np.maximum(np.abs(beta), se))
    np.testing.assert_allclose(fit.se[0], se, rtol=1e-5)
    sigma = ref[("sd", "Residual|NA|")]
    assert fit.sigma_e[0] == pytest.approx(sigma, rel=1e-5)
    sd = np.array([ref[("sd", t)] for t in names["sd"]])
    # An SD at the boundary is 0 in lme4 (its bound) and below 1e-4 sigma here
    np.testing.assert_array_less(np.abs(fit.sd[0] - sd), np.maximum(1e-5 * sd, 1e-4 * sigma))
    for got, term in zip(fit.corr[0], names["corr"]):
        if not fit.boundary[0]:
            assert got == pytest.approx(ref[("corr", term)], abs=1e-5)


def statsmodels_fit(case, reml):
    """statsmodels MixedLM on the same data: best llf over two optimizers."""
    data = case.data
    if case.inner:
        model = smf.mixedlm(f"{case.outcome} ~ {case.fixed}", data, groups=case.groups, re_formula="1",
                            vc_formula={case.inner: f"0 + C({case.inner})"})
    else:
        model = smf.mixedlm(f"{case.outcome} ~ {case.fixed}", data, groups=case.groups,
                            re_formula=f"~{case.slope}")
    best = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for method in ("lbfgs", "powell"):
            result = model.fit(reml=reml, method=method)
            if best is None or result.llf > best.llf:
                best = result
    return best


# Interior fits (REML and ML) of each kind, where statsmodels' optimizer can reach the optimum
SM_CASES = [
    "blood_pressure_defaults_seed1",
    "blood_pressure_defaults_seed2",
    "plant_growth_defaults_seed1",
    "plant_growth_defaults_seed4",
    "schools_defaults_seed1",
    "schools_defaults_seed2",
    "sleepstudy",
    "sleepstudy_10subjects_seed1",
]


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("name", SM_CASES)
def test_matches_statsmodels_on_interior_fits(name, reml):
    case = CASES[name]
    args, _ = fit_inputs(case)
    fit = fit_block(*args, reml=reml)
    assert fit.converged[0] and not fit.boundary[0]
    result = statsmodels_fit(case, reml)
    # statsmodels' llf has the same constants; its optimizer is less precise than ours
    assert fit.llf[0] >= result.llf - 1e-6
    assert fit.llf[0] == pytest.approx(result.llf, abs=1e-3)
    np.testing.assert_allclose(fit.beta[0], result.fe_params.to_numpy(), rtol=1e-3, atol=1e-3 * fit.se[0].max())
    assert fit.sigma_e[0] == pytest.approx(np.sqrt(result.scale), rel=1e-3)


def simulate_slopes(rng, R, J=30, m=6):
    groups, week = np.repeat(np.arange(J), m), np.tile(np.arange(m, dtype=float), J)
    X = np.column_stack([np.ones(J * m), week, (np.arange(J) % 2)[groups]])
    Z = X[:, :2]
    b = rng.standard_normal((R, J, 2)) * [2.0, 0.5]
    y = X @ [1.0, 0.5, 0.2] + (Z * b[:, groups]).sum(-1) + rng.standard_normal((R, J * m))
    return y, X, Z, groups


def test_batch_equals_one_at_a_time_and_per_replication_X():
    y, X, Z, groups = simulate_slopes(np.random.default_rng(3), 12)
    batch = fit_block(y, X, Z, groups, [(2, 1)])
    per_rep = fit_block(y, np.repeat(X[None], len(y), 0), Z, groups, [(2, 1)])
    for r in (0, 5, 11):
        one = fit_block(y[r], X, Z, groups, [(2, 1)])
        # Same optimum, up to where each stopped (decrement < 1e-9): far below the SEs
        np.testing.assert_allclose(one.beta[0], batch.beta[r], rtol=0, atol=1e-5 * batch.se[r].min())
        np.testing.assert_allclose(one.criterion[0], batch.criterion[r], rtol=0, atol=1e-8)
    np.testing.assert_allclose(per_rep.criterion, batch.criterion, rtol=0, atol=1e-8)
    np.testing.assert_allclose(per_rep.sd, batch.sd, rtol=1e-5)


def test_result_shapes_and_verified_status():
    y, X, Z, groups = simulate_slopes(np.random.default_rng(4), 7)
    fit = fit_block(y, X, Z, groups, [(2, 1)])
    assert isinstance(fit, BlockFit)
    assert fit.beta.shape == fit.se.shape == (7, 3) and fit.vcov.shape == (7, 3, 3)
    assert fit.theta.shape == (7, 3) and fit.sd.shape == (7, 2) and fit.corr.shape == (7, 1)
    assert fit.converged.all() and (fit.min_eig > 0).all() and (fit.grad_norm < 1e-3).all()
    assert (fit.theta[:, [0, 2]] >= 0).all()  # lme4's sign convention
    np.testing.assert_allclose(fit.llf, -fit.criterion / 2)
    assert (fit.status == "converged").all()


def test_zero_slope_variance_is_a_boundary_fit():
    rng = np.random.default_rng(5)
    y, X, Z, groups = simulate_slopes(rng, 1)
    y = X @ [1.0, 0.5, 0.2] + rng.standard_normal(len(groups))  # no random effects at all
    fit = fit_block(y, X, Z, groups, [(2, 1)])
    assert fit.boundary[0] and fit.converged[0]
    assert fit.status[0] == "boundary"


def test_theta_template_and_nested_columns():
    np.testing.assert_array_equal(theta_template([(2, 1)]), [[0, -1], [1, 2]])
    np.testing.assert_array_equal(theta_template([(1, 1), (1, 2)]), [[0, -1, -1], [-1, 1, -1], [-1, -1, 1]])
    columns = nested_columns(["a", "a", "a", "b", "b"], ["x", "y", "x", "z", "z"])
    np.testing.assert_array_equal(columns, [[1, 0], [0, 1], [1, 0], [1, 0], [1, 0]])


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(y=np.ones((2, 3, 4))), "y: got shape"),
        (dict(X=np.ones((5, 2))), "X: got shape"),
        (dict(Z=np.ones((180, 3))), "terms: got"),
        (dict(groups=np.zeros(180)), "groups: got 1 distinct"),
        (dict(terms=[(0, 1)]), "terms: got"),
        (dict(X=np.ones((180, 2))), "X: got a rank-deficient design"),
        (dict(y=np.full(180, np.nan)), "y: got 180 non-finite"),
    ],
)
def test_bad_input_raises_naming_the_parameter(change, match):
    y, X, Z, groups = simulate_slopes(np.random.default_rng(6), 1)
    args = dict(y=y[0], X=X, Z=Z, groups=groups, terms=[(2, 1)]) | change
    with pytest.raises(ValueError, match=match):
        fit_block(**args)


@lru_cache(maxsize=1)
def lmertest() -> pd.DataFrame:
    return pd.read_csv(Path(__file__).parent / "reference" / "block_lmertest.csv")


@pytest.mark.parametrize("method", ["REML", "ML"])
def test_satterthwaite_df_matches_lmertest(method):
    table = lmertest()
    compared = 0
    for name, case in CASES.items():
        rows = table[(table["dataset"] == name) & (table["method"] == method)]
        assert rows["sha256"].iloc[0] == sha256(case.data)
        args, columns = fit_inputs(case)
        fit = fit_block(*args, reml=method == "REML", satterthwaite=True)
        if fit.boundary[0] or rows["singular"].iloc[0]:
            continue  # on the boundary the df depend on how each program treats theta = 0
        ref = rows.set_index("term")["df"]
        expected = np.array([ref[t] for t in lme4_names(case, columns)["beta"]])
        np.testing.assert_allclose(fit.df[0], expected, rtol=1e-4, err_msg=name)
        compared += 1
    assert compared >= 80


def test_an_unfinished_optimisation_is_reported_not_converged(monkeypatch):
    import lmmsim.fit.exact.block as block_reml

    monkeypatch.setattr(block_reml, "_MAXITER", 1)  # one Newton step from lme4's start
    y, X, Z, groups = simulate_slopes(np.random.default_rng(8), 5)
    fit = fit_block(y, X, Z, groups, [(2, 1)])
    assert not fit.converged.any()
    assert (fit.status == "not converged").all()


def test_data_without_residual_variation_is_not_converged_and_spares_the_others():
    y, X, Z, groups = simulate_slopes(np.random.default_rng(9), 3)
    y[1] = X @ [1.0, 2.0, 3.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = fit_block(y, X, Z, groups, [(2, 1)], satterthwaite=True)
    assert list(fit.status) == ["converged", "not converged", "converged"]
    alone = fit_block(y[[0, 2]], X, Z, groups, [(2, 1)])
    np.testing.assert_allclose(fit.criterion[[0, 2]], alone.criterion, rtol=0, atol=1e-8)
