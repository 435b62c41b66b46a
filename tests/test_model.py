"""ModelSpec, data preparation and the one-line error for formulas that do not fit the data."""

from __future__ import annotations

import patsy
import pytest

from lmmsim import ModelSpec, fit_lmm, fit_ols, scenarios, simulate
from lmmsim import analyses as an
from lmmsim import montecarlo as mc
from lmmsim.simulate import design_matrices

BAD = {
    "unknown column": (ModelSpec("y ~ dose", "cluster"), "'dose' is not defined"),
    "unknown random slope": (ModelSpec("y ~ x", "cluster", re_formula="~dose"), "'dose' is not defined"),
    "syntax": (ModelSpec("y ~ x +", "cluster"), "y ~ x +"),
}


@pytest.fixture(scope="module")
def data():
    return simulate(scenarios.cluster_trial(n_clusters=6, cluster_size=4), seed=1).data


def assert_one_line(err: pytest.ExceptionInfo, *words: str) -> None:
    message = str(err.value)
    assert "\n" not in message and message.startswith("model: "), message
    assert not isinstance(err.value, patsy.PatsyError)
    for word in words:
        assert word in message, message


@pytest.mark.parametrize("case", BAD)
def test_fit_lmm_formula_errors_are_one_line(case, data):
    model, words = BAD[case]
    with pytest.raises(ValueError) as err:
        fit_lmm(data, model)
    assert_one_line(err, words)


@pytest.mark.parametrize("case", ["unknown column", "syntax"])
def test_fit_ols_and_design_matrices_formula_errors_are_one_line(case, data):
    model, words = BAD[case]
    for call in (fit_ols, design_matrices):
        with pytest.raises(ValueError) as err:
            call(data, model)
        assert_one_line(err, words)


def test_an_analysis_records_the_one_line_error(data):
    table = an.ANALYSES["lmm_t"](data, BAD["unknown random slope"][0], coefs=["x"])
    assert list(table["status"]) == ["failed"]
    assert "'dose' is not defined" in table["message"].iloc[0] and "\n" not in table["message"].iloc[0]


@pytest.mark.parametrize("fast", [True, False])
def test_montecarlo_formula_errors_are_one_line_on_both_paths(fast):
    with pytest.raises(ValueError) as err:
        mc.run(scenarios.cluster_trial, model=ModelSpec("y ~ dose", "cluster"), reps=2, seed=1, fast=fast,
               progress=False)
    assert_one_line(err, "'dose' is not defined")


def test_outcome_and_fixed_parts():
    model = ModelSpec("bp ~ week * drug", "patient")
    assert (model.outcome, model.fixed) == ("bp", "week * drug")
