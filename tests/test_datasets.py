"""The vendored real data: shape, content and the published lme4 fit."""

import hashlib
from importlib import resources

import pytest

from lmmsim import ModelSpec, fit_lmm
from lmmsim.datasets import load_sleepstudy

SLEEP_SHA256 = "0a002bec8be2fa9d40dbbf3d5038e614d113a4fd5bf8813f6f4271c3d6294675"


@pytest.fixture(scope="module")
def sleep():
    return load_sleepstudy()


def test_sleepstudy_file_is_the_vendored_one():
    raw = resources.files("lmmsim").joinpath("data", "sleepstudy.csv").read_bytes()
    assert hashlib.sha256(raw).hexdigest() == SLEEP_SHA256


def test_sleepstudy_shape_and_columns(sleep):
    assert sleep.shape == (180, 3)
    assert list(sleep.columns) == ["Reaction", "Days", "Subject"]
    assert sleep["Reaction"].dtype == float
    assert sleep["Days"].dtype.kind == "i"
    assert sleep["Subject"].map(type).eq(str).all()
    assert sleep.notna().all().all()


def test_sleepstudy_subjects_and_days(sleep):
    subjects = sleep["Subject"].unique()
    assert len(subjects) == 18
    assert subjects[0] == "308" and subjects[-1] == "372"
    counts = sleep.groupby("Subject")["Days"].agg(["size", "min", "max", "nunique"])
    assert (counts["size"] == 10).all() and (counts["nunique"] == 10).all()
    assert (counts["min"] == 0).all() and (counts["max"] == 9).all()
    # Two spot values from the lme4 data set (first and last rows).
    assert sleep.iloc[0].tolist() == [249.56, 0, "308"]
    assert sleep.iloc[-1].tolist() == [364.1236, 9, "372"]
    assert round(sleep["Reaction"].mean(), 4) == 298.5079


def test_sleepstudy_reproduces_lme4_reml_fit(sleep):
    """lme4's REML fit of Reaction ~ Days + (Days | Subject) (Bates et al. 2015)."""
    model = ModelSpec("Reaction ~ Days", groups="Subject", re_formula="~Days")
    fit = fit_lmm(sleep, model, reml=True)
    assert fit.status.ok, fit.status
    est = fit.estimates["estimate"]
    assert round(est["Intercept"], 3) == 251.405
    assert round(est["Days"], 3) == 10.467
    assert round(est["sd(Days|Subject)"], 3) == 5.922
    assert round(est["cor(Intercept,Days|Subject)"], 3) == 0.066
    assert round(est["sd(residual)"], 3) == 25.592
    # The exact optimum is 24.7405: lme4 prints 24.740 or 24.741 depending on where
    # its optimizer stops, so allow either.
    assert abs(est["sd(Intercept|Subject)"] - 24.7405) < 0.001
    assert round(-2 * fit.loglik, 1) == 1743.6
    se = fit.estimates["se"]
    assert round(se["Intercept"], 3) == 6.825
    assert round(se["Days"], 3) == 1.546


def test_sleepstudy_random_intercept_fit(sleep):
    """lme4's Reaction ~ Days + (1 | Subject): SDs 37.12 and 30.99, SE(Days) 0.8042, REML criterion 1786.5."""
    model = ModelSpec("Reaction ~ Days", groups="Subject")
    fit = fit_lmm(sleep, model, reml=True)
    assert fit.status.ok, fit.status
    est = fit.estimates["estimate"]
    assert round(est["sd(Intercept|Subject)"], 2) == 37.12
    assert round(est["sd(residual)"], 2) == 30.99
    assert round(-2 * fit.loglik, 1) == 1786.5
    assert round(fit.estimates.loc["Days", "se"], 4) == 0.8042
