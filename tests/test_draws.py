"""The draw order lives in one place (lmmsim.simulate.draws): the single and batch paths
make the same data from the same seed, and a change of the order changes both."""

from __future__ import annotations

import numpy as np
import pytest

from lmmsim import AR1, Categorical, Design, Factor, Indicator, ModelSpec, Normal, RandomEffect, scenarios, simulate
from lmmsim.montecarlo import replication_seed
from lmmsim.simulate import design_matrices, draws, simulate_batch
from lmmsim.simulate.batch import simulate_replications


def categorical_design() -> Design:
    return Design(
        factors=(Factor("site", 7), Factor("visit", 3, within="site")),
        covariates=(Categorical("arm", ("a", "b", "c"), level="site"), Normal("z", mean=1.0, sd=2.0)),
        formula="arm + z",
        beta={"Intercept": 1.0, "arm[T.b]": 0.5, "arm[T.c]": -0.5, "z": 0.2},
        random=(RandomEffect("site", {"Intercept": 0.7}),),
        sigma_e=1.3,
    )


DESIGNS = {
    "ar1": (Design(
        factors=(Factor("site", 5), Factor("visit", 4, within="site", values=range(4))),
        formula="visit", beta={"Intercept": 1.0, "visit": 0.3},
        random=(RandomEffect("site", {"Intercept": 0.7}),), sigma_e=1.3,
        residual=AR1(0.6, "site", "visit"),
    ), ModelSpec("y ~ visit", "site")),
    "cluster_trial": (scenarios.cluster_trial(n_clusters=6, cluster_size=4), scenarios.cluster_trial.model),
    "sum_coded": (Design(
        factors=(Factor("site", 6), Factor("visit", 4, within="site")),
        covariates=(Indicator("arm", level="site", values=(-0.5, 0.5)), Indicator("dose", values=(1, 3))),
        formula="arm + dose", beta={"Intercept": 1.0, "arm": 0.3, "dose": 0.1},
        random=(RandomEffect("site", {"Intercept": 0.7}),), sigma_e=1.3,
    ), ModelSpec("y ~ arm + dose", "site")),
    "categorical": (categorical_design(), ModelSpec("y ~ arm + z", "site", levels={"arm": ("a", "b", "c")})),
    "slopes": (scenarios.blood_pressure(n_patients=6, n_weeks=4), scenarios.blood_pressure.model),
    "crossed": (Design(  # item's rows are not consecutive: u spread by index, not by repetition
        factors=(Factor("subject", 4), Factor("item", 3)), covariates=(Indicator("cond", level="item"),),
        formula="cond", beta={"Intercept": 1.0, "cond": 0.5},
        random=(RandomEffect("item", {"Intercept": 0.4}), RandomEffect("subject", {"Intercept": 0.7})),
        sigma_e=1.0,
    ), ModelSpec("y ~ cond", "subject")),
}


def assert_paths_agree(design, model, seeds):
    batch = simulate_batch(design, model, seeds)
    for r, seed in enumerate(seeds):
        y, X, groups = design_matrices(simulate(design, seed).data, model)
        np.testing.assert_allclose(batch.y[r], y, rtol=1e-13, atol=1e-12)
        np.testing.assert_array_equal(batch.X if batch.X.ndim == 2 else batch.X[r], X.to_numpy())
        np.testing.assert_array_equal(batch.groups, groups)
    return batch


@pytest.mark.parametrize("name", DESIGNS)
@pytest.mark.parametrize("root", [0, 7, 2024])
def test_single_and_batch_paths_make_the_same_data(name, root):
    design, model = DESIGNS[name]
    assert_paths_agree(design, model, [replication_seed(root, c, r) for c in range(2) for r in range(3)])


def test_a_changed_draw_order_changes_both_paths_alike(monkeypatch):
    design, model = DESIGNS["categorical"]
    seeds = [replication_seed(5, 0, r) for r in range(4)]
    before = simulate(design, seeds[0]).data
    monkeypatch.setattr(draws, "STREAMS", tuple(reversed(draws.STREAMS)))
    after = simulate(design, seeds[0]).data
    assert not np.allclose(before["y"], after["y"])  # the order changed the single path ...
    assert_paths_agree(design, model, seeds)  # ... and the batch path with it


def test_streams_are_independent_of_each_other():
    # Dropout draws from its own stream: a design with dropout keeps the other draws.
    design = scenarios.blood_pressure(n_patients=6, n_weeks=3)
    with_dropout = scenarios.blood_pressure(n_patients=6, n_weeks=3, dropout=0.3)
    full = simulate(design, 11).data
    kept = simulate(with_dropout, 11).data
    merged = full.merge(kept, on=["patient", "week"], suffixes=("", "_kept"))
    np.testing.assert_array_equal(merged["bp"], merged["bp_kept"])


@pytest.mark.parametrize("name", DESIGNS)
def test_replications_are_seeded_as_montecarlo_seeds_them(name):
    design, model = DESIGNS[name]
    reps = [0, 3, 5]
    fast = simulate_replications(design, model, 9, 2, reps)
    slow = simulate_batch(design, model, [replication_seed(9, 2, r) for r in reps])
    np.testing.assert_array_equal(fast.y, slow.y)
    np.testing.assert_array_equal(fast.X, slow.X)
    assert fast.columns == slow.columns
