"""The datasets of the lme4 reference for the singular-fit rule (``lmmsim.fit.status``):
random intercepts and slopes whose fits lie on, near or clearly off the boundary.

lme4's ``isSingular()`` calls a fit singular when a diagonal element of θ (the relative
Cholesky factor) is below 1e-4; for ``(1 + week | patient)`` the slope's element is
sd(week)/σ_ε · √(1 − ρ²), so a fit can be singular with a slope SD of several per cent of
σ_ε and a correlation of −0.9999, or interior with a slope SD of 0.1 % of σ_ε. The set
covers each case: clearly interior fits; a slope SD estimated as 0; correlations of ±1
with slope SDs from 0.1 % to 30 % of σ_ε; small slope SDs that stay interior; an
intercept SD of 0. Datasets come from ``lmmsim.simulate`` with explicit seeds; the seeds
were picked from a scan of seeds 1-200 of each design (fitted with
``lmmsim.fit.exact.block``) for the case they stand for, and lme4's verdict, not ours, is
what the reference records. Their sha256 (of the CSV bytes of ``block_datasets.to_csv``)
is stored next to lme4's estimates and the tests recompute it.

Run from the repository root to write the datasets and a manifest for ``singular_lme4.R``::

    .venv/bin/python tests/reference/singular_datasets.py OUTDIR
"""

from __future__ import annotations

import sys
from typing import NamedTuple

import pandas as pd
from block_datasets import write

from lmmsim import Design, Factor, RandomEffect, scenarios, simulate


class Case(NamedTuple):
    name: str
    data: pd.DataFrame
    formula: str  # lme4's
    groups: str
    slope: str


def sleep_like(sd_days: float = 5.9, rho: float = 0.07, n_subjects: int = 18) -> Design:
    """Reaction times of subjects over 10 days, with lme4's sleepstudy estimates as truth."""
    return Design(
        factors=(Factor("Subject", n_subjects), Factor("Days", 10, within="Subject", values=range(10))),
        formula="Days",
        beta={"Intercept": 251.4, "Days": 10.5},
        random=(RandomEffect("Subject", {"Intercept": 24.7, "Days": sd_days}, corr=rho),),
        sigma_e=25.6,
        outcome="Reaction",
    )


BP = ("bp ~ week * drug + (1 + week | patient)", "patient", "week")
SLEEP = ("Reaction ~ Days + (1 + Days | Subject)", "Subject", "Days")
bp = scenarios.get("blood_pressure")
# (label, design, model, seeds): what each group stands for is in its label; the notes say
# what lmmsim.fit.exact.block found for these seeds in the scan (θ_slope is θ's slope
# diagonal, sd_slope is relative to σ_ε).
PLAN = [
    ("interior_bp", bp(), BP, (1, 2)),
    ("interior_sleep", sleep_like(), SLEEP, (1, 2)),
    # no slope variance: sd_slope 6e-5 to 7e-4 and a correlation of ±1
    ("slope0_bp", bp(sigma_u1=0.0), BP, (64, 76, 8)),
    # correlation ±1 with small slope SDs (0.05 % to 0.2 % of σ_ε)
    ("cor1_bp", bp(sigma_u1=0.1, rho=-0.99), BP, (129, 14)),
    ("cor1_sleep", sleep_like(sd_days=0.5), SLEEP, (74, 118, 143)),
    # correlation ±1 with larger slope SDs (0.2 % to 13 % of σ_ε)
    ("cor1_bp", bp(sigma_u1=0.1, rho=-0.99), BP, (187,)),
    ("cor1_sleep10", sleep_like(sd_days=1.5, rho=0.99, n_subjects=10), SLEEP, (91, 141)),
    # θ_slope left between 3e-6 and 3e-5 by Newton steps near the bound; small intercept SDs
    ("near_bp", bp(sigma_u0=0.5, n_patients=20), BP, (187, 134, 40)),
    # small slope SDs inside the parameter space: θ_slope 3e-3 to 7e-3
    ("small_bp", bp(sigma_u1=0.0), BP, (28, 89)),
    ("small_bprho", bp(sigma_u1=0.1, rho=-0.99), BP, (89,)),
    ("small_sleep", sleep_like(sd_days=0.5), SLEEP, (119, 76)),
    # intercept SD near or at 0 (θ_intercept 1e-3 to 3e-3; the block fitter did not converge on 4 of 5)
    ("int0_bp", bp(sigma_u0=0.5, n_patients=20), BP, (4, 90)),
    ("int0_bp20", bp(sigma_u0=0.0, n_patients=20), BP, (83, 187, 21)),
]


def cases() -> list[Case]:
    """All reference datasets, in a fixed order."""
    out = []
    for label, design, (formula, groups, slope), seeds in PLAN:
        for seed in seeds:
            out.append(Case(f"{label}_seed{seed}", simulate(design, seed).data, formula, groups, slope))
    return out


def main(outdir: str) -> None:
    write(outdir, [(case.name, case.formula, case.data) for case in cases()])


if __name__ == "__main__":
    main(sys.argv[1])
