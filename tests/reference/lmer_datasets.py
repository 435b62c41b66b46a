"""The datasets of the lme4 reference for ``lmmsim.fit.lmer``: subjects crossed with items,
by-subject (and some by-item) random slopes for a within-subject, within-item condition.

Each dataset is simulated from the design below with an explicit seed; its sha256 (of the
CSV bytes of ``block_datasets.to_csv``) is recorded next to lme4's estimates and the tests
recompute it. Run from the repository root to write the datasets and a manifest for
``lmer_lme4.R``::

    .venv/bin/python tests/reference/lmer_datasets.py OUTDIR
"""

from __future__ import annotations

import sys
from typing import NamedTuple

import pandas as pd
from block_datasets import write

from lmmsim import Design, Factor, Indicator, RandomEffect, simulate

MAXIMAL = "rt ~ cond + (1 + cond | subject) + (1 | item)"
BOTH = "rt ~ cond + (1 + cond | subject) + (1 + cond | item)"
# (label, coding, subjects, items, by-subject slope SD, by-item slope SD, formula, seeds)
PLAN = [
    ("sum", (-0.5, 0.5), 24, 12, 40.0, 0.0, MAXIMAL, range(1, 7)),
    ("treatment", (0, 1), 20, 16, 50.0, 0.0, MAXIMAL, range(11, 15)),
    ("sum_itemslopes", (-0.5, 0.5), 30, 16, 40.0, 30.0, BOTH, range(21, 25)),
    ("sum_noslope", (-0.5, 0.5), 24, 10, 0.0, 0.0, MAXIMAL, range(31, 33)),
]


class Case(NamedTuple):
    name: str
    data: pd.DataFrame
    formula: str


def design(coding, n_subjects: int, n_items: int, sd_slope: float, sd_item_slope: float) -> Design:
    """Reaction times: subjects × items, the condition assigned per trial."""
    item = {"Intercept": 40.0} | ({"cond": sd_item_slope} if sd_item_slope else {})
    return Design(
        factors=(Factor("subject", n_subjects), Factor("item", n_items)),
        covariates=(Indicator("cond", values=coding),),
        formula="cond",
        beta={"Intercept": 600.0, "cond": 20.0},
        random=(
            RandomEffect("subject", {"Intercept": 60.0, "cond": sd_slope}, corr=0.3),
            RandomEffect("item", item, corr=-0.2 if sd_item_slope else None),
        ),
        sigma_e=100.0,
        outcome="rt",
    )


def cases() -> list[Case]:
    """All reference datasets, in a fixed order."""
    out = []
    for label, coding, S, T, sd_slope, sd_item_slope, formula, seeds in PLAN:
        for seed in seeds:
            data = simulate(design(coding, S, T, sd_slope, sd_item_slope), seed).data
            out.append(Case(f"{label}_seed{seed}", data, formula))
    return out


def main(outdir: str) -> None:
    write(outdir, [(case.name, case.formula, case.data) for case in cases()])


if __name__ == "__main__":
    main(sys.argv[1])
