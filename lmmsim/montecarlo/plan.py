"""The plan of a Monte Carlo run: every argument checked and resolved, frozen.

:func:`make_plan` validates the arguments of :func:`~lmmsim.montecarlo.run`, simulates a
pilot dataset to check the model and the coefficients, and chooses the path (fast or
general) and the chunk size. A :class:`Plan` is what a checkpoint's manifest records
(:meth:`Plan.manifest`), and it splits into :class:`Chunk` s, the units of work.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lmmsim.analyses import Analysis, fixed_effect_names, get, is_random_intercept
from lmmsim.design import INTERCEPT, Design
from lmmsim.fit.exact.block_layout import model_block_reason
from lmmsim.model import ModelSpec
from lmmsim.montecarlo.study import Study, cells, describe, replication_seed
from lmmsim.scenarios import Scenario
from lmmsim.validate import check_count

FAST_CHUNK = 1000
"""Default replications per chunk in the fast path for random-intercept models: each call's
fixed costs (seeding, the fit's steps) are shared by more replications, ~1.2 times as fast
as 250 for cluster_trial. The chunking changes estimates in their last digits only, and a
checkpoint written by other lmmsim code is refused, so chunks of two sizes never mix."""
BLOCK_CHUNK = 1000
"""Default replications per chunk in the fast path for block-diagonal models: their
batched fits cost more per call, so larger chunks are ~1.5 times as fast as 250; a
chunk's arrays stay in tens of MB."""
GENERAL_CHUNK = 20
"""Default replications per chunk in the general path."""
CHUNK_VALUES = 2**21
"""At most this many observations (replications x rows) per fast-path chunk by default
(~16 MB per column of y or X): designs of more than ~2,000 rows get smaller chunks."""
_STATEFUL = re.compile(r"\b(center|standardize|scale|bs|cr|cc|te)\s*\(")


def fast_path_reason(design: Design | None, model: ModelSpec, analyses: Sequence[Analysis]) -> str | None:
    """Why the fast path cannot run this study (``None`` if it can).

    It runs random-intercept models (exact REML/ML per batch) and models whose random
    effects are blocks within the groups: intercepts and slopes, nested intercepts
    (:func:`~lmmsim.fit.exact.fit_block`), on data from any design without dropout.
    """
    if design is None:
        return "the study is a function, not a Design or Scenario"
    if design.dropout is not None:
        return "the design has dropout"
    if model.outcome != design.outcome:
        return f"the model's outcome {model.outcome!r} is not the design's {design.outcome!r}"
    if model.groups not in {f.name for f in design.factors}:
        return f"the model's groups {model.groups!r} are not a factor of the design"
    valued = {f.name for f in design.factors if f.values is not None}
    if any(c.level in valued for c in design.covariates):
        return "a covariate is drawn per occasion of a factor with values"
    if _STATEFUL.search(design.formula) or _STATEFUL.search(model.fixed):
        return "a formula uses a data-dependent transform (center, standardize, splines)"
    block = not is_random_intercept(model)
    if block:
        reason = model_block_reason(model)
        if reason is not None:
            return reason
        drawn = {c.name for c in design.covariates} & set(model.re_formula.replace("~", " ").replace("+", " ").split())
        if drawn:
            return f"a random slope is on {sorted(drawn)}, drawn anew in each replication (Z would vary)"
    for a in analyses:
        if a.batch is None:
            return f"analysis {a.name!r} has no batch form"
        if block and not a.block:
            return f"analysis {a.name!r} has a batch form for random-intercept models only"
    return None


@dataclass(frozen=True)
class Chunk:
    """Replications ``start`` to ``stop - 1`` of one cell: the unit of work and of checkpointing."""

    cell: int
    start: int
    stop: int
    seed: int
    study: Study
    model: ModelSpec
    analyses: tuple[Analysis, ...]
    coefs: tuple[str, ...]
    fast: bool

    @property
    def filename(self) -> str:
        """The chunk's file in a checkpoint folder."""
        return f"cell{self.cell:04d}_reps{self.start:07d}-{self.stop:07d}.csv"


@dataclass(frozen=True)
class Plan:
    """A Monte Carlo run, resolved: what :func:`~lmmsim.montecarlo.run` will do."""

    study: Any
    params: Mapping[str, Any]
    grid: Mapping[str, Sequence[Any]]
    cells: tuple[Mapping[str, Any], ...]
    studies: tuple[Study, ...]
    model: ModelSpec
    analyses: tuple[Analysis, ...]
    coefs: tuple[str, ...]
    reps: int
    seed: int
    chunk_size: int
    fast: bool

    def chunks(self) -> list[Chunk]:
        """Every chunk, cell by cell."""
        return [
            Chunk(c, start, min(start + self.chunk_size, self.reps), self.seed, s, self.model, self.analyses,
                  self.coefs, self.fast)
            for c, s in enumerate(self.studies)
            for start in range(0, self.reps, self.chunk_size)
        ]

    def manifest(self) -> dict[str, Any]:
        """What a checkpoint records: a rerun may reuse its chunks only if this is equal."""
        return {
            "study": describe(self.study), "params": dict(self.params), "grid": dict(self.grid),
            "model": repr(self.model), "analyses": [f"{a.name} ({describe(a.fit)})" for a in self.analyses],
            "coefs": list(self.coefs), "seed": self.seed, "chunk_size": self.chunk_size, "fast": self.fast,
        }

    @property
    def total(self) -> int:
        """Replications in all cells."""
        return self.reps * len(self.studies)


def _model(study, model: ModelSpec | None) -> ModelSpec:
    if model is None:
        if not isinstance(study, Scenario):
            raise ValueError("model: required unless the study is a Scenario")
        model = study.model
    if not isinstance(model, ModelSpec):
        raise ValueError(f"model: got {type(model).__name__}, expected an lmmsim ModelSpec")
    return model


def _coefs(pilot: Study, seed: int, model: ModelSpec, coefs: Sequence[str] | None) -> tuple[str, ...]:
    """The coefficients to report, checked against the X of a pilot dataset."""
    data, _ = pilot.data(replication_seed(seed, 0, 0))
    try:
        names = fixed_effect_names(data, model)
    except ValueError:  # already says what is wrong, in one line
        raise
    except Exception as err:  # noqa: BLE001 - a user's function may return data of any shape
        raise ValueError(f"model: {model.formula!r} cannot be fitted to the simulated data: {err}") from None
    coefs = tuple(c for c in names if c != INTERCEPT) if coefs is None else tuple(coefs)
    unknown = [c for c in coefs if c not in names]
    if unknown:
        raise ValueError(f"coefs: {unknown} are not fixed effects of {model.formula!r}; expected some of {list(names)}")
    return coefs


def _fast(studies: Sequence[Study], model: ModelSpec, analyses, fast: bool | None) -> bool:
    reasons = {fast_path_reason(s.design, model, analyses) for s in studies}
    reason = next(iter(sorted(r for r in reasons if r)), None)
    if fast and reason:
        raise ValueError(f"fast: the fast path cannot run this study: {reason}")
    return reason is None if fast is None else bool(fast)


def make_plan(study: Scenario | Design | Callable[..., Any], *, reps: int, seed: int,
              analyses: str | Sequence[str | Analysis], params: Mapping[str, Any] | None,
              grid: Mapping[str, Sequence[Any]] | None, model: ModelSpec | None, coefs: Sequence[str] | None,
              chunk_size: int | None, fast: bool | None) -> Plan:
    """Check the arguments of :func:`~lmmsim.montecarlo.run` and resolve them into a :class:`Plan`.

    Raises
    ------
    ValueError
        For invalid arguments, before anything long starts.
    """
    reps = check_count("reps", reps, minimum=1)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed: got {seed!r}, expected a non-negative integer")
    analyses = get(analyses)
    params, grid = dict(params or {}), dict(grid or {})
    model = _model(study, model)
    for analysis in analyses:
        if analysis.check is not None:
            analysis.check(model)
    combos, studies = cells(study, params, grid)
    coefs = _coefs(studies[0], int(seed), model, coefs)
    fast = _fast(studies, model, analyses, fast)
    default = (FAST_CHUNK if is_random_intercept(model) else BLOCK_CHUNK) if fast else GENERAL_CHUNK
    largest = max((s.design.n_obs for s in studies if s.design is not None), default=0)
    if fast and largest:  # large designs: fewer replications per chunk, so a chunk's arrays stay bounded
        default = min(default, max(16, CHUNK_VALUES // largest))
    chunk_size = check_count("chunk_size", default if chunk_size is None else chunk_size)
    return Plan(study, params, grid, tuple(combos), tuple(studies), model, analyses, coefs, reps, int(seed),
                chunk_size, fast)
