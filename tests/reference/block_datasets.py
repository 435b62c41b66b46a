"""The datasets of the lme4 reference for ``lmmsim.fit.exact.block``, regenerated from seeds.

Each dataset is simulated from an lmmsim scenario with an explicit seed (or taken
from ``lmmsim.datasets.load_sleepstudy``, whole or a seeded subset of subjects), so
that nothing but this file and the package is needed to rebuild it.  Its sha256 (of
the CSV bytes written by :func:`to_csv`) is recorded next to lme4's estimates, and
the tests recompute it: data drift fails loudly instead of comparing different data.

Run from the repository root to write the datasets and a manifest for the R script::

    .venv/bin/python tests/reference/block_datasets.py OUTDIR
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from lmmsim import scenarios, simulate
from lmmsim.datasets import load_sleepstudy


class Case(NamedTuple):
    name: str
    data: pd.DataFrame
    outcome: str
    fixed: str  # right-hand side of the fixed effects, patsy and R alike
    groups: str  # top-level grouping factor
    slope: str | None  # random slope (correlated with the intercept), or None
    inner: str | None  # nested factor with its own random intercept, or None

    @property
    def lme4(self) -> str:
        if self.inner:
            return f"{self.outcome} ~ {self.fixed} + (1 | {self.groups}) + (1 | {self.groups}:{self.inner})"
        return f"{self.outcome} ~ {self.fixed} + (1 + {self.slope} | {self.groups})"


# (scenario, parameters, seeds): defaults, and variants that push fits to the boundary
PLAN = [
    ("blood_pressure", {}, range(1, 31)),
    ("blood_pressure", {"sigma_u1": 0.05}, range(101, 111)),
    ("blood_pressure", {"rho": -0.97}, range(201, 211)),
    ("blood_pressure", {"n_patients": 8, "n_weeks": 4}, range(301, 311)),
    ("plant_growth", {}, range(1, 21)),
    ("schools", {}, range(1, 16)),
    ("schools", {"sigma_classroom": 0.5}, range(101, 111)),
    ("schools", {"n_schools": 6, "n_classrooms": 3, "n_students": 5, "sigma_school": 1.0}, range(201, 211)),
]
MODELS = {
    "blood_pressure": ("bp", "week * drug", "patient", "week", None),
    "plant_growth": ("height", "week * treatment", "plot", "week", None),
    "schools": ("score", "method + ses", "school", None, "classroom"),
}


def cases() -> list[Case]:
    """All reference datasets, in a fixed order."""
    out = []
    for scenario, params, seeds in PLAN:
        label = "_".join(f"{k}={v}" for k, v in params.items()) or "defaults"
        for seed in seeds:
            data = simulate(scenarios.get(scenario)(**params), seed).data
            out.append(Case(f"{scenario}_{label}_seed{seed}", data, *MODELS[scenario]))
    sleep = load_sleepstudy()
    out.append(Case("sleepstudy", sleep, "Reaction", "Days", "Subject", "Days", None))
    subjects = sleep["Subject"].unique()
    for seed in range(1, 11):
        keep = np.random.default_rng(seed).choice(subjects, size=10, replace=False)
        part = sleep[sleep["Subject"].isin(keep)].reset_index(drop=True)
        out.append(Case(f"sleepstudy_10subjects_seed{seed}", part, "Reaction", "Days", "Subject", "Days", None))
    return out


def to_csv(data: pd.DataFrame) -> bytes:
    """The dataset as CSV bytes, floats in full precision (what R reads and what is hashed)."""
    return data.to_csv(index=False, float_format="%.17g", lineterminator="\n").encode()


def sha256(data: pd.DataFrame) -> str:
    return hashlib.sha256(to_csv(data)).hexdigest()


def write(outdir: str, datasets: list[tuple[str, str, pd.DataFrame]]) -> None:
    """Each (name, lme4 formula, data) as ``name.csv`` in ``outdir``, with ``manifest.csv``
    listing names, formulas and hashes (what the R scripts read)."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, formula, data in datasets:
        (out / f"{name}.csv").write_bytes(to_csv(data))
        rows.append({"name": name, "formula": formula, "sha256": sha256(data)})
    pd.DataFrame(rows).to_csv(out / "manifest.csv", index=False)


def main(outdir: str) -> None:
    write(outdir, [(case.name, case.lme4, case.data) for case in cases()])


if __name__ == "__main__":
    main(sys.argv[1])
