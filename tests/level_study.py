"""The Monte Carlo level study of issue 8, shared by the tests of lmmsim.inference.

Ten clusters of unequal size (5 to 40), a random intercept, and a cluster-level
treatment randomised to half of the clusters in every replication, with no treatment
effect. Each test of the treatment should reject in 5 % of the replications.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
from scipy import stats

from lmmsim.fit.exact import fit_random_intercept
from lmmsim.inference.cluster_robust import cluster_robust
from lmmsim.inference.satterthwaite_ri import satterthwaite_ri

SIZES = np.array([5, 6, 8, 10, 13, 17, 22, 28, 34, 40])
SIGMA_U, SIGMA_E = 0.5, 1.0
REPS, SEED, ALPHA = 20_000, 20261130, 0.05


def simulate(reps: int = REPS, seed: int = SEED) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``y`` (R, n), ``X`` (R, n, 2) (intercept, treatment) and cluster codes (n,)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    J = len(SIZES)
    groups = np.repeat(np.arange(J), SIZES)
    treated = rng.permuted(np.tile(np.arange(J) % 2, (reps, 1)), axis=1)[:, groups]
    X = np.stack([np.ones(treated.shape), treated.astype(float)], axis=-1)
    y = SIGMA_U * rng.standard_normal((reps, J))[:, groups] + SIGMA_E * rng.standard_normal((reps, len(groups)))
    return y, X, groups


@cache  # one study per test session, shared by the test modules
def rejection_rates(reps: int = REPS, seed: int = SEED) -> dict[str, float]:
    """Share of replications in which each test rejects "no treatment effect" at ALPHA."""
    y, X, groups = simulate(reps, seed)
    fit = fit_random_intercept(y, X, groups)
    assert fit.converged.all()
    treatment = [0.0, 1.0]
    satt = satterthwaite_ri(y, X, groups, fit, treatment)
    p_values = {
        "lmm_satterthwaite": satt.p_value,
        "lmm_t (between-within)": 2 * stats.t.sf(np.abs(satt.statistic), len(SIZES) - 2),  # J - p_b df
        "ols_cluster (CR1, J - 1)": cluster_robust(y, X, groups, contrasts=treatment, type="CR1").p_value,
        "ols_cr2 (CR2, Satterthwaite)": cluster_robust(y, X, groups, contrasts=treatment).p_value,
    }
    rates = {name: float(np.mean(p < ALPHA)) for name, p in p_values.items()}
    return {**rates, "boundary fits": float(np.mean(fit.boundary))}


def mc_se(rate: float = ALPHA, reps: int = REPS) -> float:
    """Monte Carlo SE of a rejection rate ``rate`` estimated from ``reps`` replications."""
    return float(np.sqrt(rate * (1 - rate) / reps))


def cluster_trial_example(seed: int = 7):
    """One unbalanced cluster_trial dataset (12 clusters of 3 to 14 members), its model,
    and the same data as a one-replication ``Batch``, to compare the analysis forms."""
    from lmmsim import simulate as simulate_design
    from lmmsim.analyses import Batch, design_matrices
    from lmmsim.scenarios import cluster_trial

    data = simulate_design(cluster_trial(n_clusters=12, cluster_size=14), seed).data
    keep = data.groupby("cluster").cumcount() < 3 + pd.factorize(data["cluster"])[0]
    data = data[keep].reset_index(drop=True)
    model = cluster_trial.model
    y, X, codes = design_matrices(data, model)
    return data, model, Batch(y[None], X.to_numpy(), codes, tuple(X.columns), model.groups)
