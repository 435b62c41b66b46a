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
from lmmsim.simulate import seeds

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
    raw = _buffers(design, units, n_rows, 1)
    _draw_into(raw, 0, design, rng)
    drawn = _finish(design, units, raw)
    return Draws({k: v[0] for k, v in drawn.covariates.items()}, {k: v[0] for k, v in drawn.random_effects.items()},
                 drawn.residuals[0], rng.get("dropout"))


def draw_batch(design: Design, units: dict[str, tuple[list, np.ndarray]], n_rows: int,
               states: dict[str, np.ndarray]) -> Draws:
    """The draws of R replications of a design without dropout, as :func:`draw` makes them.

    ``states`` holds, per stage of :data:`STREAMS` but dropout, the seed words of each
    replication's stream, shape (R, 4) (:func:`lmmsim.simulate.seeds.stream_states`).
    Arrays gain a first axis of length R; ``dropout`` is ``None``.
    """
    R = len(states["residuals"])
    raw = _buffers(design, units, n_rows, R)
    names = [s for s in STREAMS if s != "dropout"]
    for r in range(R):  # the only per-replication Python: seeding and drawing
        _draw_into(raw, r, design, {name: seeds.generator(states[name][r]) for name in names})
    return _finish(design, units, raw)


def _units(level, units, n_rows: int) -> tuple[int, np.ndarray]:
    """Number of units a covariate is drawn for (rows if ``level`` is None) and each row's unit."""
    return (n_rows, np.arange(n_rows)) if level is None else (len(units[level][0]), units[level][1])


def _buffers(design: Design, units, n_rows: int, R: int) -> Draws:
    """Arrays for the raw draws of R replications."""
    covariates = {c.name: np.empty((R, _units(c.level, units, n_rows)[0]), dtype=float if isinstance(c, Normal)
                                   else int) for c in design.covariates}
    effects_ = {e.factor: np.empty((R, len(units[e.factor][0]), len(e.terms))) for e in design.random}
    return Draws(covariates, effects_, np.empty((R, n_rows)), None)


def _draw_into(raw: Draws, r: int, design: Design, rng: dict[str, np.random.Generator]) -> None:
    """Replication r's random numbers into row r of ``raw``: THE draw order."""
    for c in design.covariates:
        covariate_draw(c, rng["covariates"], raw.covariates[c.name][r])
    for e in design.random:
        rng["random_effects"].standard_normal(out=raw.random_effects[e.factor][r])
    rng["residuals"].standard_normal(out=raw.residuals[r])


def _finish(design: Design, units, raw: Draws) -> Draws:
    """Scale and spread the raw draws of ``_draw_into`` (elementwise, so one replication or
    many give the same numbers)."""
    n_rows = raw.residuals.shape[1]
    covariates = {}
    for c in design.covariates:
        values = raw.covariates[c.name]
        if isinstance(c, Normal):
            values = c.mean + c.sd * values
        elif isinstance(c, Indicator) and c.coded:  # arms 0/1 recoded, e.g. to ±0.5
            values = np.asarray(c.values)[values]
        covariates[c.name] = values[:, _units(c.level, units, n_rows)[1]]
    random_effects = {e.factor: (raw.random_effects[e.factor] @ _root(e.corr).T) * np.array(list(e.sd.values()))
                      for e in design.random}
    z = raw.residuals
    if design.residual is not None:
        z = np.stack([autoregress(design.residual, row, units) for row in z])
    return Draws(covariates, random_effects, design.sigma_e * z, None)


def covariate_draw(c, rng: np.random.Generator, out: np.ndarray) -> None:
    """One covariate's draw per unit into ``out``: N(0, 1) for a Normal (scaled later), a
    random assignment for an Indicator or a Categorical (as level codes)."""
    if isinstance(c, Normal):
        rng.standard_normal(out=out)
    elif isinstance(c, Indicator):
        out[:] = 0
        out[: round(c.share * len(out))] = 1
        rng.shuffle(out)
    elif isinstance(c, Categorical):
        out[:] = np.arange(len(out)) % len(c.levels)
        rng.shuffle(out)
    else:
        raise ValueError(f"covariates: got {c!r}, expected Normal, Indicator or Categorical")


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
