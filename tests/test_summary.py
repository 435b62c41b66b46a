"""Performance measures and their Monte Carlo SEs against hand-computed values."""

import math

import numpy as np
import pandas as pd
import pytest

from lmmsim import summary
from lmmsim.summary import Performance, format_summary, summarise

# Four replications with truth 2 (plus one failed fit, which must be left out):
# estimates 1, 2, 3, 6; SEs 1, 1, 2, 2; p-values 0.01, 0.04, 0.05, 0.2.
# By hand: mean 3, deviations -2, -1, 0, 3, so S^2 = (4 + 1 + 0 + 9) / 3 = 14/3.
S = math.sqrt(14 / 3)
# squared errors 1, 0, 1, 16: MSE = 4.5; sum of (sq - MSE)^2 = 12.25 + 20.25 + 12.25 + 132.25 = 177
RMSE = math.sqrt(4.5)
RMSE_MCSE = math.sqrt(177 / (4 * 3)) / (2 * RMSE)
# SE^2 = 1, 1, 4, 4: mean 2.5, sample variance (4 * 1.5^2) / 3 = 3
MODSE = math.sqrt(2.5)
MODSE_MCSE = math.sqrt(3 / (4 * 4 * 2.5))
REL = MODSE / S - 1
REL_MCSE = (MODSE / S) * math.sqrt(3 / (4 * 4 * 2.5**2) + 1 / (2 * 3))


@pytest.fixture
def table():
    return pd.DataFrame(
        {
            "n_clusters": 10,
            "cell": 0,
            "rep": [0, 1, 2, 3, 4],
            "analysis": "lmm_t",
            "parameter": "treatment",
            "truth": 2.0,
            "estimate": [1.0, 2.0, 3.0, 6.0, np.nan],
            "se": [1.0, 1.0, 2.0, 2.0, np.nan],
            # intervals: [0,3] covers, [2.5,4] misses, [1,5] covers, [5,7] misses
            "ci_low": [0.0, 2.5, 1.0, 5.0, np.nan],
            "ci_high": [3.0, 4.0, 5.0, 7.0, np.nan],
            "statistic": np.nan,
            "df": 8.0,
            "p_value": [0.01, 0.04, 0.05, 0.2, np.nan],
            "status": ["ok", "ok", "boundary", "ok", "failed"],
            "message": ["", "", "boundary", "", "failed: boom"],
        }
    )


def test_measures_match_hand_computed_values(table):
    row = summarise(table).iloc[0]
    assert row["n_clusters"] == 10 and row["analysis"] == "lmm_t" and row["parameter"] == "treatment"
    assert (row["n"], row["n_failed"], row["n_boundary"], row["n_not_converged"]) == (4, 1, 1, 0)
    expected = {
        "mean": 3.0,
        "bias": 1.0, "bias_mcse": S / 2,
        "emp_se": S, "emp_se_mcse": S / math.sqrt(6),
        "rmse": RMSE, "rmse_mcse": RMSE_MCSE,
        "model_se": MODSE, "model_se_mcse": MODSE_MCSE,
        "rel_se_error": REL, "rel_se_error_mcse": REL_MCSE,
        "coverage": 0.5, "coverage_mcse": math.sqrt(0.5 * 0.5 / 4),
        "rejection": 0.75, "rejection_mcse": math.sqrt(0.75 * 0.25 / 4),
    }
    for name, value in expected.items():
        assert row[name] == pytest.approx(value, rel=1e-12), name


def test_single_measure_functions():
    assert summary.bias([1, 2, 3, 6], 2) == Performance(pytest.approx(1.0), pytest.approx(S / 2), 4)
    assert summary.rejection([0.01, 0.5, np.nan], alpha=0.05).n == 2
    assert summary.coverage([0, 1], [2, 3], truth=1.5).value == 1.0
    assert math.isnan(summary.bias([1.0], 0).value)  # one replication has no spread
    assert math.isnan(summary.coverage([0], [1], truth=np.nan).value)  # no truth, no coverage


def test_groups_follow_first_appearance(table):
    other = table.assign(analysis="ols", estimate=table["estimate"] + 1)
    both = pd.concat([other, table], ignore_index=True)
    out = summarise(both)
    assert list(out["analysis"]) == ["ols", "lmm_t"]
    assert out["bias"].tolist() == pytest.approx([2.0, 1.0])


def test_format_and_errors(table):
    text = format_summary(summarise(table), measures=("bias", "rejection"), digits=2)
    assert text.loc[0, "rejection"] == "0.75 (0.22)"
    assert list(text.columns) == ["n_clusters", "analysis", "parameter", "n", "truth", "bias", "rejection"]
    with pytest.raises(ValueError, match="alpha"):
        summarise(table, alpha=1.5)
    with pytest.raises(ValueError, match="columns"):
        summarise(table.drop(columns="se"))
    with pytest.raises(ValueError, match="measures"):
        format_summary(summarise(table), measures=("power",))
