"""Shared by the block_reml tests and benchmark: the reference cases as fitter inputs."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import patsy

sys.path.insert(0, str(Path(__file__).resolve().parent / "reference"))
from block_datasets import Case, cases  # noqa: E402

from lmmsim.fit.exact.block_layout import nested_columns  # noqa: E402

__all__ = ["Case", "cases", "fit_inputs", "lme4_names"]


def fit_inputs(case: Case):
    """``(y, X, Z, groups, terms)`` for :func:`lmmsim.fit.exact.block.fit_block`, and X's column names."""
    data = case.data
    X = patsy.dmatrix(case.fixed, data, return_type="dataframe")
    groups = data[case.groups].to_numpy()
    ones = np.ones((len(data), 1))
    if case.inner:
        inner = nested_columns(groups, data[case.inner].to_numpy())
        Z, terms = np.hstack([ones, inner]), [(1, 1), (1, inner.shape[1])]
    else:
        Z, terms = np.hstack([ones, data[[case.slope]].to_numpy(float)]), [(2, 1)]
    y = data[case.outcome].to_numpy(float)
    return (y, X.to_numpy(), Z, groups, terms), list(X.columns)


def lme4_names(case: Case, columns: list[str]) -> dict[str, list[str]]:
    """lme4's names of the fixed effects, SDs and correlations, in the fitter's order."""
    beta = ["(Intercept)" if c == "Intercept" else re.sub(r"\[T\.(.*?)\]", r"\1", c) for c in columns]
    g = case.groups
    if case.inner:
        return {
            "beta": beta,
            "sd": [f"{g}|(Intercept)|", f"{g}:{case.inner}|(Intercept)|"],
            "corr": [],
            "theta": [f"{g}.(Intercept)", f"{g}:{case.inner}.(Intercept)"],
        }
    return {
        "beta": beta,
        "sd": [f"{g}|(Intercept)|", f"{g}|{case.slope}|"],
        "corr": [f"{g}|(Intercept)|{case.slope}"],
        "theta": [f"{g}.(Intercept)", f"{g}.{case.slope}.(Intercept)", f"{g}.{case.slope}"],
    }
