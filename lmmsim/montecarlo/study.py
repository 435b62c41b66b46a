"""What a Monte Carlo study simulates: grid cells, the study in each, and the seeds."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lmmsim.design import Design
from lmmsim.scenarios import Scenario
from lmmsim.simulate import Simulation, simulate


def replication_seed(seed: int, cell: int, rep: int) -> np.random.SeedSequence:
    """The seed of replication ``rep`` in grid cell ``cell``:
    ``SeedSequence(seed).spawn(...)[cell].spawn(...)[rep]``."""
    return np.random.SeedSequence(seed, spawn_key=(cell, rep))


@dataclass(frozen=True)
class Study:
    """What to simulate in one cell: a design, or a user's function with its parameters."""

    design: Design | None
    function: Callable[..., Any] | None
    params: Mapping[str, Any]

    def simulate(self, seed: np.random.SeedSequence) -> Simulation | pd.DataFrame:
        """What the study returns for ``seed``."""
        return simulate(self.design, seed) if self.design is not None else self.function(seed, **self.params)

    def data(self, seed: np.random.SeedSequence) -> tuple[pd.DataFrame, dict[str, float]]:
        """The data and the true parameters (empty if the study returns only data)."""
        sim = self.simulate(seed)
        if isinstance(sim, Simulation):
            return sim.data, sim.truth.parameters()
        if isinstance(sim, pd.DataFrame):
            return sim, {}
        raise ValueError(f"study: the function returned {type(sim).__name__}, expected a Simulation or a DataFrame")


def cells(study, params: Mapping[str, Any], grid: Mapping[str, Sequence[Any]]) -> tuple[list[dict], list[Study]]:
    """Grid cells (parameter values) and what to simulate in each."""
    names = list(grid)
    for name, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
            raise ValueError(f"grid: {name!r} got {values!r}, expected a non-empty list of values")
    clash = sorted(set(names) & set(params))
    if clash:
        raise ValueError(f"grid: {clash} are also in params; give each parameter in one place")
    combos = [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]
    if isinstance(study, Scenario):
        return combos, [Study(study(**params, **cell), None, {**params, **cell}) for cell in combos]
    if isinstance(study, Design):
        if names or params:
            raise ValueError("grid/params: a Design has no parameters to set; pass a Scenario or a function instead")
        return combos, [Study(study, None, {})]
    if callable(study):
        return combos, [Study(None, study, {**params, **cell}) for cell in combos]
    raise ValueError(f"study: got {type(study).__name__}, expected a Scenario, a Design or a function (seed, **params)")


def describe(obj) -> str:
    """A study or function, as the checkpoint manifest records it."""
    if isinstance(obj, Scenario):
        return f"scenario {obj.name} ({obj.build.__module__}.{obj.build.__qualname__})"
    if isinstance(obj, Design):
        return repr(obj)
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def dataset(study, *, seed: int, rep: int, cell: int = 0, params: Mapping[str, Any] | None = None,
            grid: Mapping[str, Sequence[Any]] | None = None) -> Simulation | pd.DataFrame:
    """The dataset of one replication of :func:`~lmmsim.montecarlo.run` (same arguments), to look
    at it closely.

    Returns what the study returns: a :class:`~lmmsim.simulate.Simulation` for a
    Scenario or Design.
    """
    _, studies = cells(study, dict(params or {}), dict(grid or {}))
    return studies[cell].simulate(replication_seed(seed, cell, rep))
