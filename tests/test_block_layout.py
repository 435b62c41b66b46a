"""Tests for lmmsim.fit.exact.block_layout: designs to fit_block inputs, and crossed designs refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import patsy
import pytest
from conftest import crossed_design

from lmmsim import scenarios, simulate
from lmmsim.fit.exact.block import fit_block
from lmmsim.fit.exact.block_layout import block_layout, block_reason


def test_random_slopes_are_one_correlated_term():
    design = scenarios.blood_pressure(n_patients=6, n_weeks=4)
    data = simulate(design, 1).data
    layout = block_layout(design, data)
    assert layout.terms == ((2, 1),) and layout.factors == ("patient",)
    np.testing.assert_array_equal(layout.Z, np.column_stack([np.ones(len(data)), data["week"]]))


def test_nested_intercepts_fit_as_lme4_does():
    design = scenarios.schools()
    data = simulate(design, 1).data  # the reference dataset schools_defaults_seed1
    layout = block_layout(design, data)
    assert layout.terms == ((1, 1), (1, 4)) and layout.factors == ("school", "classroom")
    assert layout.Z.shape == (len(data), 5) and (layout.Z[:, 1:].sum(1) == 1).all()
    X = patsy.dmatrix(design.formula, data)
    fit = fit_block(data["score"], X, layout.Z, layout.groups, layout.terms)
    table = pd.read_csv(Path(__file__).parent / "reference" / "block_lme4.csv")
    ref = table[(table["dataset"] == "schools_defaults_seed1") & (table["method"] == "REML")]
    assert fit.criterion[0] == pytest.approx(ref[ref["quantity"] == "criterion"]["value"].astype(float).item(), abs=1e-6)


def test_crossed_designs_are_refused_with_a_reason():
    design = crossed_design()
    assert "crossed" in block_reason(design)
    assert block_reason(scenarios.schools()) is None
    with pytest.raises(ValueError, match="design: .*crossed"):
        block_layout(design, simulate(design, 3).data)
