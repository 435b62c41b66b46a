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

from collections.abc import Callable, Iterable
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
    _draw_into(raw, design, {name: [g] for name, g in rng.items()})
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
    _draw_into(raw, design, {name: map(seeds.generator, states[name]) for name in STREAMS if name != "dropout"})
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


def _draw_into(raw: Draws, design: Design, rngs: dict[str, Iterable[np.random.Generator]]) -> None:
    """Each replication's random numbers into its row of ``raw``, from its generator of each
    stage (``rngs[stage]`` yields one per replication, in row order): THE draw order.

    Stage by stage, with every decision taken before the loops over replications: the
    per-replication Python is only seeding and drawing.
    """
    steps = [_covariate_step(c, raw.covariates[c.name].shape[1]) for c in design.covariates]
    covariates = [raw.covariates[c.name] for c in design.covariates]
    if covariates:
        for rng, *rows in zip(rngs["covariates"], *covariates):
            for step, row in zip(steps, rows):
                step(rng, row)
    effects = [raw.random_effects[e.factor] for e in design.random]
    if effects:
        for rng, *rows in zip(rngs["random_effects"], *effects):
            for row in rows:
                rng.standard_normal(out=row)
    for rng, row in zip(rngs["residuals"], raw.residuals):
        rng.standard_normal(out=row)


def _finish(design: Design, units, raw: Draws) -> Draws:
    """Scale and spread the raw draws of ``_draw_into`` (elementwise, so one replication or
    many give the same numbers)."""
    covariates = {}
    for c in design.covariates:
        values = raw.covariates[c.name]  # the raw buffers are scaled in place: they are ours
        if isinstance(c, Normal):
            values *= c.sd
            values += c.mean
        elif isinstance(c, Indicator) and c.coded:  # arms 0/1 recoded, e.g. to ±0.5
            values = np.asarray(c.values)[values]
        # a unit-level covariate spread to its rows; a row-level one is already per row
        covariates[c.name] = values if c.level is None else spread(values, units[c.level][1])
    random_effects = {e.factor: (raw.random_effects[e.factor] @ _root(e.corr).T) * np.array(list(e.sd.values()))
                      for e in design.random}
    z = raw.residuals
    if design.residual is not None:
        z = np.stack([autoregress(design.residual, row, units) for row in z])
    z *= design.sigma_e
    return Draws(covariates, random_effects, z, None)


def run_length(codes: np.ndarray) -> int:
    """``m`` if ``codes`` is 0, 0, ..., 1, 1, ... with every unit on ``m`` consecutive rows, else 0."""
    m = len(codes) // (int(codes.max()) + 1) if len(codes) else 0
    return m if m and np.array_equal(codes, np.arange(len(codes)) // m) else 0


def spread(values: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Values per unit, shape (R, units), onto rows, shape (R, n): ``values[:, codes]``
    (by repetition when each unit's rows are consecutive and equally many, much faster)."""
    m = run_length(codes)
    return np.repeat(values, m, axis=1) if m else np.take(values, codes, axis=1)


def _covariate_step(c, units: int) -> Callable[[np.random.Generator, np.ndarray], None]:
    """How one covariate is drawn for ``units`` units into a row: N(0, 1) for a Normal
    (scaled later), a random assignment for an Indicator or a Categorical (level codes)."""
    if isinstance(c, Normal):
        return lambda rng, out: rng.standard_normal(out=out)
    if isinstance(c, Indicator):
        start = np.zeros(units, dtype=int)
        start[: round(c.share * units)] = 1
    elif isinstance(c, Categorical):
        start = np.arange(units) % len(c.levels)
    else:
        raise ValueError(f"covariates: got {c!r}, expected Normal, Indicator or Categorical")

    def assign(rng: np.random.Generator, out: np.ndarray) -> None:
        out[:] = start
        rng.shuffle(out)

    return assign


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
