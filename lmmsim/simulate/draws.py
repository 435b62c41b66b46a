"""The random draws of one replication, in one fixed order: THE place the draw order lives.

Both :func:`lmmsim.simulate.simulate` (one dataset as a DataFrame) and
:func:`lmmsim.simulate.simulate_batch` (many replications as arrays) take their random
numbers from :func:`draw`, so they make the same datasets from the same seed.

A seed is split into independent streams, one per stage (:data:`STREAMS`), so adding a
stage (e.g. dropout) leaves the draws of the others unchanged. Within a stage the draws
follow the design's order: covariates in the order listed, random effects factor by
factor.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from lmmsim.design import Categorical, Design, Indicator, Normal

STREAMS = ("covariates", "random_effects", "residuals", "dropout")
"""The stages, in the order of the child seeds ``seed.spawn(4)`` they draw from."""


def child(root: np.random.SeedSequence, i: int) -> np.random.SeedSequence:
    """What ``root.spawn(n)[i]`` gives on a fresh SeedSequence, without spawning: ``spawn``
    advances the caller's SeedSequence, so simulating twice from one seed object would
    give two different datasets."""
    return np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, i), pool_size=root.pool_size)


def streams(seed: np.random.SeedSequence, names: tuple[str, ...] | None = None) -> dict[str, np.random.Generator]:
    """One generator per stage of :data:`STREAMS` (only those in ``names``, default all: seeding costs
    as much as drawing a few hundred normals, and each stage's stream is its own)."""
    return {name: np.random.default_rng(child(seed, i)) for i, name in enumerate(STREAMS)
            if names is None or name in names}


@dataclass(frozen=True)
class Draws:
    """The random parts of one replication.

    Attributes
    ----------
    covariates : dict of str to ndarray
        Each covariate's value per row (a categorical as level codes).
    random_effects : dict of str to ndarray
        Each factor's random effects u, shape (units, terms).
    residuals : ndarray
        ε per row, already scaled by σ_ε (and autocorrelated if the design says so).
    dropout : numpy.random.Generator or None
        The stream for dropout, drawn from once the outcome is known (``None``
        for a design without dropout).
    """

    covariates: dict[str, np.ndarray]
    random_effects: dict[str, np.ndarray]
    residuals: np.ndarray
    dropout: np.random.Generator | None


def draw(design: Design, units: dict[str, tuple[list, np.ndarray]], n_rows: int,
         seed: np.random.SeedSequence) -> Draws:
    """Every random draw of one replication of ``design``.

    ``units`` maps each factor to its unit labels and each row's unit code (see
    ``lmmsim.simulate.layout.layout``).
    """
    rng = streams(seed, None if design.dropout is not None else tuple(s for s in STREAMS if s != "dropout"))
    covariates = {}
    for c in design.covariates:
        n_units, codes = (n_rows, np.arange(n_rows)) if c.level is None else (len(units[c.level][0]), units[c.level][1])
        covariates[c.name] = covariate(c, n_units, codes, rng["covariates"])
    random_effects = {e.factor: effects(e, len(units[e.factor][0]), rng["random_effects"]) for e in design.random}
    z = rng["residuals"].standard_normal(n_rows)
    residuals = design.sigma_e * (z if design.residual is None else autoregress(design.residual, z, units))
    return Draws(covariates, random_effects, residuals, rng.get("dropout"))


def covariate(c, n_units: int, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One covariate per row: drawn per unit, then spread to the unit's rows by ``codes``."""
    if isinstance(c, Normal):
        return (c.mean + c.sd * rng.standard_normal(n_units))[codes]
    if isinstance(c, Indicator):
        treated = np.zeros(n_units, dtype=int)
        treated[: round(c.share * n_units)] = 1
        arms = rng.permutation(treated)[codes]
        return np.asarray(c.values)[arms] if c.coded else arms
    if isinstance(c, Categorical):
        return rng.permutation(np.arange(n_units) % len(c.levels))[codes]
    raise ValueError(f"covariates: got {c!r}, expected Normal, Indicator or Categorical")


def effects(effect, n_units: int, rng: np.random.Generator) -> np.ndarray:
    """u ~ N(0, G) for each unit, G = diag(σ) R diag(σ); R may be singular (ρ = ±1)."""
    root = _root(effect.corr)
    z = rng.standard_normal((n_units, len(effect.terms)))
    return (z @ root.T) * np.array(list(effect.sd.values()))


@lru_cache(maxsize=64)
def _root(corr: tuple[tuple[float, ...], ...]) -> np.ndarray:
    """A square root of the correlation matrix, computed once per matrix (every replication
    of a design uses the same one)."""
    values, vectors = np.linalg.eigh(np.array(corr))
    root = vectors * np.sqrt(np.clip(values, 0, None))
    root.setflags(write=False)
    return root


def autoregress(ar1, z: np.ndarray, units: dict[str, tuple[list, np.ndarray]]) -> np.ndarray:
    """Turn independent N(0, 1) draws into stationary AR(1) series, one per unit.

    In each unit, taken in occasion order, e_1 = z_1 and e_t = φ e_{t-1} + √(1 - φ²) z_t,
    so every e_t is N(0, 1) and corr(e_s, e_t) = φ^|s-t|.
    """
    unit_codes = units[ar1.unit][1]
    occasion_codes = units[ar1.occasion][1]
    order = np.lexsort((occasion_codes, unit_codes))
    series = z[order].reshape(len(units[ar1.unit][0]), -1)
    e = np.empty_like(series)
    e[:, 0] = series[:, 0]
    for t in range(1, series.shape[1]):
        e[:, t] = ar1.phi * e[:, t - 1] + np.sqrt(1 - ar1.phi**2) * series[:, t]
    out = np.empty_like(z)
    out[order] = e.ravel()
    return out
