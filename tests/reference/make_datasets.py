"""The reference datasets: a list of (design, parameters, seed) specs and their data.

Run ``python tests/reference/make_datasets.py`` to write ``specs.json`` (committed) and
the datasets as CSV in ``tests/reference/data/`` (not committed: regenerated from the
specs), then ``Rscript tests/reference/lme4_reference.R`` to refit them with lme4 and
lmerTest. Every spec records the sha256 of its dataset's canonical CSV
(:func:`canonical_csv`), so a test fails loudly if ``lmmsim.simulate`` ever produces
different data from the same spec.

The set covers every scenario at default and varied parameters, unbalanced designs
(dropout in blood_pressure; clusters of unequal size through dropout of members), few
groups (5-8), near-singular fits (a small random-effect SD) and crossed designs.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lmmsim import Design, Dropout, Factor, Indicator, ModelSpec, Normal, RandomEffect, scenarios, simulate

HERE = Path(__file__).resolve().parent
SPECS = HERE / "specs.json"
DATA = HERE / "data"


def crossed(n_subjects: int = 20, n_items: int = 10, sigma_subject: float = 50.0,
            sigma_item: float = 30.0, sigma_e: float = 80.0) -> Design:
    """Subjects crossed with items; condition assigned to half the items."""
    return Design(
        factors=(Factor("subject", n_subjects), Factor("item", n_items)),
        covariates=(Indicator("condition", level="item"),),
        formula="condition",
        beta={"Intercept": 400.0, "condition": 20.0},
        random=(RandomEffect("subject", {"Intercept": sigma_subject}), RandomEffect("item", {"Intercept": sigma_item})),
        sigma_e=sigma_e,
        outcome="rt",
    )


def uneven_clusters(n_clusters: int = 10, cluster_size: int = 12, sigma_u: float = 1.0,
                    sigma_e: float = 3.0, dropout: float = 0.15) -> Design:
    """A cluster trial whose clusters lose members (monotone dropout): unequal sizes."""
    return Design(
        factors=(Factor("cluster", n_clusters), Factor("member", cluster_size, within="cluster", values=range(cluster_size))),
        covariates=(Indicator("treatment", share=0.5, level="cluster"), Normal("x")),
        formula="treatment + x",
        beta={"Intercept": 0.0, "treatment": 0.5, "x": 0.5},
        random=(RandomEffect("cluster", {"Intercept": sigma_u}),),
        sigma_e=sigma_e,
        outcome="y",
        dropout=Dropout("cluster", "member", rate=dropout, slope=0.0),
    )


CUSTOM = {
    "crossed": (
        crossed,
        ModelSpec("rt ~ condition", groups="all", re_formula="0",
                  vc_formula={"subject": "0 + C(subject)", "item": "0 + C(item)"},
                  lme4="rt ~ condition + (1 | subject) + (1 | item)"),
    ),
    "uneven_clusters": (
        uneven_clusters,
        ModelSpec("y ~ treatment + x", groups="cluster", re_formula="1", lme4="y ~ treatment + x + (1 | cluster)"),
    ),
}


def design_and_model(name: str, params: dict[str, Any]) -> tuple[Design, ModelSpec]:
    """The design and model of a spec's ``design`` name (a scenario or a custom design)."""
    if name in CUSTOM:
        build, model = CUSTOM[name]
        return build(**params), model
    scenario = scenarios.get(name)
    return scenario(**params), scenario.model


def dataset(spec: dict[str, Any]) -> pd.DataFrame:
    """Regenerate a spec's data with ``lmmsim.simulate``."""
    design, _ = design_and_model(spec["design"], spec["params"])
    data = simulate(design, seed=spec["seed"]).data.copy()
    if spec["design"] == "crossed":
        data["all"] = 1  # statsmodels fits crossed factors as variance components of one group
    return data


def canonical_csv(data: pd.DataFrame) -> bytes:
    """The data as CSV bytes: no index, floats round-tripping exactly, LF line ends."""
    return data.to_csv(index=False, float_format="%.17g", lineterminator="\n").encode()


def sha256(data: pd.DataFrame) -> str:
    return hashlib.sha256(canonical_csv(data)).hexdigest()


def _grid() -> list[tuple[str, dict[str, Any], int]]:
    """(design, params, how many seeds) for every cell of the reference set."""
    cells: list[tuple[str, dict[str, Any], int]] = []
    # Schools: nested random intercepts. Smaller than the default to keep the tests fast.
    cells += [("schools", {"n_schools": 20, "n_classrooms": 4, "n_students": 20}, 6)]
    cells += [("schools", {"n_schools": j, "n_classrooms": 3, "n_students": 8}, 8) for j in (6, 8, 12)]
    cells += [("schools", {"n_schools": 10, "n_classrooms": 3, "n_students": 8, "sigma_classroom": 0.5}, 10)]
    cells += [("schools", {"n_schools": 10, "n_classrooms": 2, "n_students": 6, "sigma_school": 1.0}, 10)]
    cells += [("schools", {"n_schools": 8, "n_classrooms": 4, "n_students": 5, "sigma_school": 8.0, "sigma_classroom": 2.0}, 8)]
    # Blood pressure: correlated random slopes, with and without dropout.
    cells += [("blood_pressure", {}, 15)]
    cells += [("blood_pressure", {"dropout": d}, 10) for d in (0.1, 0.25)]
    cells += [("blood_pressure", {"n_patients": n, "dropout": 0.15}, 8) for n in (6, 8, 12)]
    cells += [("blood_pressure", {"n_patients": 20, "sigma_u1": 0.1}, 10)]
    cells += [("blood_pressure", {"n_patients": 20, "rho": 0.8, "dropout": 0.1}, 8)]
    # Plant growth: few plots, random slopes.
    cells += [("plant_growth", {}, 20)]
    cells += [("plant_growth", {"n_plots": n}, 10) for n in (6, 9)]
    cells += [("plant_growth", {"n_plots": 24, "n_weeks": 4}, 8)]
    cells += [("plant_growth", {"sigma_u1": 0.02}, 10)]
    cells += [("plant_growth", {"rho": -0.7, "sigma_e": 1.5}, 8)]
    # Cluster trial: random intercept; few clusters, small ICC, unequal sizes.
    cells += [("cluster_trial", {}, 15)]
    cells += [("cluster_trial", {"n_clusters": j, "cluster_size": 10}, 8) for j in (5, 6, 8)]
    cells += [("cluster_trial", {"n_clusters": 10, "sigma_u": 0.1}, 10)]
    cells += [("cluster_trial", {"n_clusters": 12, "cluster_size": 5, "sigma_u": 2.0}, 8)]
    cells += [("uneven_clusters", {}, 14)]
    cells += [("uneven_clusters", {"n_clusters": 6, "dropout": 0.25}, 8)]
    cells += [("uneven_clusters", {"n_clusters": 8, "sigma_u": 0.2}, 8)]
    # Crossed subjects x items.
    cells += [("crossed", {}, 8)]
    cells += [("crossed", {"n_subjects": 12, "n_items": 8, "sigma_item": 5.0}, 8)]
    return cells


def specs() -> list[dict[str, Any]]:
    """Every spec with its data's sha256 (computed now: run this script to refresh)."""
    out = []
    root = np.random.SeedSequence(20261130)
    for cell, (name, params, n_seeds) in enumerate(_grid()):
        for k in range(n_seeds):
            # A plain integer seed per dataset, derived from the cell and replicate.
            seed = int(np.random.SeedSequence([root.entropy, cell, k]).generate_state(1)[0])
            spec = {"id": f"{name}-{cell:02d}-{k:02d}", "design": name, "params": params, "seed": seed}
            _, model = design_and_model(name, params)
            spec["lme4"] = model.lme4
            out.append(spec)
    return out


def main() -> int:
    DATA.mkdir(exist_ok=True)
    out = []
    for spec in specs():
        data = dataset(spec)
        (DATA / f"{spec['id']}.csv").write_bytes(canonical_csv(data))
        out.append({**spec, "nobs": len(data), "sha256": sha256(data)})
    SPECS.write_text(json.dumps(out, indent=1) + "\n")
    print(f"{len(out)} datasets written to {DATA}; specs in {SPECS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
