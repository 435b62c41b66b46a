"""Draw one dataset from a :class:`~lmmsim.design.Design`: ``y = Xβ + Zu + ε``."""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import patsy

from lmmsim.design import INTERCEPT, Categorical, Design, Dropout, Indicator, Normal
from lmmsim.truth import Truth
from lmmsim.validate import check_memory


@dataclass(frozen=True)
class Simulation:
    """One simulated dataset with everything that produced it.

    Attributes
    ----------
    data : pandas.DataFrame
        Tidy data: one row per observation; factor, covariate and outcome columns.
    random_effects : dict of str to pandas.DataFrame
        The realised random effects u of each grouping factor: one row per unit
        (indexed by its label), one column per term.
    residuals : pandas.Series
        The realised residuals ε, aligned with ``data``.
    truth : Truth
        The parameters the data were drawn from.
    design : Design
        The design that was simulated.
    """

    data: pd.DataFrame
    random_effects: dict[str, pd.DataFrame]
    residuals: pd.Series
    truth: Truth
    design: Design


def seed_sequence(seed: Any) -> np.random.SeedSequence:
    """Turn ``seed`` (a non-negative int or a SeedSequence) into a SeedSequence."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed: got {seed!r}, expected a non-negative integer or a numpy SeedSequence")
    return np.random.SeedSequence(int(seed))


def _children(root: np.random.SeedSequence, n: int) -> list[np.random.SeedSequence]:
    """What ``root.spawn(n)`` gives on a fresh SeedSequence, without spawning: ``spawn``
    advances the caller's SeedSequence, so simulating twice from one seed object would
    give two different datasets."""
    return [
        np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, i), pool_size=root.pool_size)
        for i in range(n)
    ]


def simulate(design: Design, seed: Any, provenance: dict[str, Any] | None = None) -> Simulation:
    """Simulate one dataset.

    Parameters
    ----------
    design : Design
        What to simulate.
    seed : int or numpy.random.SeedSequence
        The only source of randomness: the same seed gives the same data, in any process.
    provenance : dict, optional
        Recorded in ``truth.provenance`` (the seed is added to it when it is an int).

    Returns
    -------
    Simulation
    """
    if not isinstance(design, Design):
        raise ValueError(f"design: got {type(design).__name__}, expected an lmmsim Design")
    check_memory(f"design: simulating {design.n_obs:,} observations", design.memory_estimate())
    root = seed_sequence(seed)
    # One independent stream per stage, so adding e.g. dropout leaves the other draws unchanged.
    rng_cov, rng_re, rng_eps, rng_drop = (np.random.default_rng(s) for s in _children(root, 4))

    data, units = _layout(design)
    for covariate in design.covariates:
        data[covariate.name] = _draw_covariate(covariate, units, len(data), rng_cov)

    X = _fixed_design(design, data)
    eta = X @ np.array([design.beta[c] for c in X.columns])

    random_effects = {}
    for effect in design.random:
        labels, codes = units[effect.factor]
        u = _draw_random_effects(effect, len(labels), rng_re)
        random_effects[effect.factor] = pd.DataFrame(u, index=pd.Index(labels, name=effect.factor), columns=list(effect.terms))
        for k, term in enumerate(effect.terms):
            eta = eta + u[codes, k] * (1.0 if term == INTERCEPT else data[term].to_numpy(dtype=float))

    residuals = design.sigma_e * rng_eps.standard_normal(len(data))
    data[design.outcome] = eta + residuals
    residuals = pd.Series(residuals, index=data.index, name="residual")

    if design.dropout is not None:
        keep = _dropout_mask(design.dropout, data, units, design.outcome, rng_drop)
        data = data[keep].reset_index(drop=True)
        residuals = residuals[keep].reset_index(drop=True)

    info = dict(provenance or {})
    if not isinstance(seed, np.random.SeedSequence):
        info.setdefault("seed", int(seed))
    return Simulation(data, random_effects, residuals, Truth.from_design(design, info), design)


def _layout(design: Design) -> tuple[pd.DataFrame, dict[str, tuple[list, np.ndarray]]]:
    """The rows (deepest units of each tree, trees crossed) and, per factor, its unit
    labels and each row's unit code."""
    children: dict[str | None, list] = {}
    for f in design.factors:
        children.setdefault(f.within, []).append(f)

    # For each tree: one record per leaf unit, holding the unit index at every level.
    trees = []
    for root in children.get(None, []):
        counts = {root.name: root.n}
        parent_of = {root.name: np.arange(root.n)}  # unit -> parent unit index (self for roots)
        order = [root]
        frontier = [root]
        while frontier:
            node = frontier.pop(0)
            for child in children.get(node.name, []):
                counts[child.name] = counts[node.name] * child.n
                parent_of[child.name] = np.repeat(np.arange(counts[node.name]), child.n)
                order.append(child)
                frontier.append(child)
        if sum(len(children.get(f.name, [])) > 0 for f in order) != len(order) - 1:
            raise ValueError(
                f"factors: the tree under {root.name!r} branches; nest each factor in the previous one "
                "(or make branches separate, crossed factors)"
            )
        leaf = order[-1]
        index = {leaf.name: np.arange(counts[leaf.name])}
        for node in reversed(order[:-1]):
            child = next(c for c in children[node.name])
            index[node.name] = parent_of[child.name][index[child.name]]
        trees.append((order, index, counts[leaf.name]))

    # Cross the trees: the first tree varies slowest.
    sizes = [n for _, _, n in trees]
    grids = np.meshgrid(*[np.arange(n) for n in sizes], indexing="ij")
    rows = {}
    units: dict[str, tuple[list, np.ndarray]] = {}
    for (order, index, _), grid in zip(trees, grids):
        leaf_codes = grid.ravel()
        for f in order:
            codes = index[f.name][leaf_codes]
            labels = _labels(f, order, index)
            units[f.name] = (labels, codes)
            if f.values is not None:
                values = np.asarray(f.values)
                # weeks 0, 1, 2 read better as integers (where int64 holds them exactly)
                if np.all(values == np.round(values)) and np.all(np.abs(values) < 2.0**53):
                    values = values.astype(int)
                rows[f.name] = values[codes % f.n]
            else:
                rows[f.name] = np.asarray(labels, dtype=object)[codes]
    data = pd.DataFrame({f.name: rows[f.name] for f in design.factors})
    return data, units


def _labels(factor, order, index) -> list[str]:
    """Unique labels: ``school03``, and for nested units ``school03/classroom2``."""
    by_name = {f.name: f for f in order}
    width = len(str(factor.n))
    if factor.within is None:
        return [f"{factor.name}{i + 1:0{width}d}" for i in range(factor.n)]
    parent_labels = _labels(by_name[factor.within], order, index)
    return [f"{p}/{factor.name}{k + 1:0{width}d}" for p in parent_labels for k in range(factor.n)]


def _draw_covariate(covariate, units, n_rows: int, rng: np.random.Generator) -> np.ndarray | pd.Categorical:
    if covariate.level is None:
        n_units, codes = n_rows, np.arange(n_rows)
    else:
        labels, codes = units[covariate.level]
        n_units = len(labels)
    if isinstance(covariate, Normal):
        values = covariate.mean + covariate.sd * rng.standard_normal(n_units)
        return values[codes]
    if isinstance(covariate, Indicator):
        treated = np.zeros(n_units, dtype=int)
        treated[: round(covariate.share * n_units)] = 1
        return rng.permutation(treated)[codes]
    if isinstance(covariate, Categorical):
        k = len(covariate.levels)
        assigned = rng.permutation(np.arange(n_units) % k)
        return pd.Categorical.from_codes(assigned[codes], categories=list(covariate.levels))
    raise ValueError(f"covariates: got {covariate!r}, expected Normal, Indicator or Categorical")


def _fixed_design(design: Design, data: pd.DataFrame) -> pd.DataFrame:
    """X from the formula; every column must have a β and every β a column."""
    try:
        X = patsy.dmatrix(design.formula, data, return_type="dataframe", NA_action="raise")
    except patsy.PatsyError as err:
        raise ValueError(f"formula: {design.formula!r} cannot be built from the data: {err}") from None
    columns, named = list(X.columns), set(design.beta)
    if set(columns) != named:
        raise ValueError(
            f"beta: names {sorted(named)} do not match the columns of X from formula "
            f"{design.formula!r}: {columns} (missing {sorted(set(columns) - named)}, "
            f"unknown {sorted(named - set(columns))})"
        )
    return X


def _draw_random_effects(effect, n_units: int, rng: np.random.Generator) -> np.ndarray:
    """u ~ N(0, G) for each unit, G = diag(σ) R diag(σ); R may be singular (ρ = ±1)."""
    corr = np.array(effect.corr)
    values, vectors = np.linalg.eigh(corr)
    root = vectors * np.sqrt(np.clip(values, 0, None))
    z = rng.standard_normal((n_units, len(effect.terms)))
    return (z @ root.T) * np.array(list(effect.sd.values()))


def _dropout_mask(dropout: Dropout, data: pd.DataFrame, units, outcome: str, rng: np.random.Generator) -> np.ndarray:
    """Monotone MAR dropout: after each occasion, leave with a probability that depends on
    the outcome just observed."""
    y = data[outcome].to_numpy()
    z = (y - y.mean()) / y.std()
    logit = np.log(dropout.rate / (1 - dropout.rate)) if dropout.rate > 0 else -np.inf
    p_leave = 1.0 / (1.0 + np.exp(-(logit + dropout.slope * z)))
    leaves = rng.random(len(data)) < p_leave
    _, unit_codes = units[dropout.unit]
    occasion = data[dropout.occasion].to_numpy()
    order = np.lexsort((occasion, unit_codes))
    keep = np.ones(len(data), dtype=bool)
    gone_unit = -1
    for row, prev in zip(order[1:], order[:-1]):
        same_unit = unit_codes[row] == unit_codes[prev]
        if not same_unit:
            gone_unit = -1
        elif gone_unit == unit_codes[row] or leaves[prev]:
            gone_unit = unit_codes[row]
            keep[row] = False
    return keep
