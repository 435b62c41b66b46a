"""Monte Carlo studies: many simulated datasets, several analyses, one tidy table.

:func:`run` simulates a study ``reps`` times in every cell of a parameter grid, applies
each analysis to each dataset, and returns one row per replication × analysis × cell ×
reported parameter. :func:`lmmsim.summary.summarise` turns that into bias, RMSE,
coverage, rejection rates and their Monte Carlo SEs.

Example
-------
>>> from lmmsim import montecarlo as mc
>>> from lmmsim.summary import summarise
>>> results = mc.run(
...     mc.cluster_trial,                     # a Scenario, a Design, or your own function
...     params={"sigma_u": 1.0},              # held fixed
...     grid={"n_clusters": [10, 30]},        # varied: one cell per value (or combination)
...     analyses=["ols", "lmm_t"],
...     coefs=["treatment"],                  # fixed effects to report (default: all but the intercept)
...     reps=200, seed=2024, progress=False,  # progress=False in notebooks that are built
... )
>>> list(results.columns)  # doctest: +NORMALIZE_WHITESPACE
['n_clusters', 'cell', 'rep', 'analysis', 'parameter', 'truth', 'estimate', 'se', 'ci_low',
 'ci_high', 'statistic', 'df', 'p_value', 'status', 'message']
>>> table = summarise(results)  # one row per n_clusters x analysis x parameter

Seeds
-----
Replication ``rep`` of grid cell ``cell`` is simulated from
``replication_seed(seed, cell, rep)``, i.e. ``SeedSequence(seed).spawn(n_cells)[cell]
.spawn(reps)[rep]``, whatever the executor, the number of workers, the order in which
chunks finish, or ``reps``. :func:`dataset` returns that replication's data for a
closer look. Cells are numbered in the order of ``itertools.product`` over the grid
values (the first grid parameter varies slowest); cells get independent random numbers.

Replications are run in chunks of ``chunk_size`` (a chunk is the unit of work sent to
an executor and of checkpointing). Results are identical for every executor and worker
count; in the fast path a different ``chunk_size`` may change estimates in the last
digits (the batch fitter iterates until all replications of a chunk converge).

Fast path
---------
When the design has exactly one random effect, a random intercept of ``model.groups``,
the model is a random-intercept model, and every analysis has a batch form (all the
built-in ones do), a chunk is simulated as arrays and fitted at once: mixed models with
the exact REML/ML fitter :func:`lmmsim.reml.fit_random_intercept`, OLS with numpy. The
data of each replication are the same draws :func:`lmmsim.simulate.simulate` makes
from the same seed (equal to rounding), so both paths analyse the same datasets.
``fast=False`` forces the general path (statsmodels, one dataset at a time).

Executors
---------
``executor=None`` runs serially. Any ``concurrent.futures`` executor works; use a
``ProcessPoolExecutor`` (statsmodels fits record warnings, which is not thread-safe).
A ``dask.distributed.Client`` runs the chunks on its cluster. A study given as your own
function must be importable (defined in a module) for process pools.

Failures
--------
An analysis that raises, does not converge, or ends on the boundary is recorded in its
rows' ``status`` (``ok``, ``boundary``, ``not_converged``, ``failed``) and ``message``;
the run goes on.

Checkpoints
-----------
With ``checkpoint=FOLDER`` every finished chunk is written to the folder atomically;
running again with the same arguments reuses finished chunks and computes only the
rest, and returns the same table as an uninterrupted run. ``reps`` may be increased
between runs (chunks are keyed by their replications).
"""

from __future__ import annotations

import concurrent.futures
import itertools
import json
import numbers
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import patsy

from lmmsim import scenarios
from lmmsim.analyses import COLUMNS, Analysis, Batch, BatchResult, get, guarded, is_random_intercept
from lmmsim.design import INTERCEPT, Categorical, Design, Indicator, Normal
from lmmsim.io import csv_text, write_files
from lmmsim.model import ModelSpec
from lmmsim.scenarios import Scenario
from lmmsim.simulate import Simulation, simulate
from lmmsim.truth import Truth
from lmmsim.validate import check_count

__all__ = ["RESULT_COLUMNS", "SCENARIOS", "cluster_trial", "dataset", "fast_path_reason", "get_scenario",
           "replication_seed", "run", "simulate_batch"]

RESULT_COLUMNS = ("cell", "rep", "analysis", "parameter", "truth", *COLUMNS[1:])
"""Columns of :func:`run`'s table after the grid parameters."""
FAST_CHUNK = 250
"""Default replications per chunk in the fast path."""
GENERAL_CHUNK = 20
"""Default replications per chunk in the general path."""

_FLOATS = ("truth", "estimate", "se", "ci_low", "ci_high", "statistic", "df", "p_value")
_SCHEMA = {"cell": "int64", "rep": "int64", "analysis": "str", "parameter": "str",
           **dict.fromkeys(_FLOATS, "float64"), "status": "str", "message": "str"}
_STATEFUL = re.compile(r"\b(center|standardize|scale|bs|cr|cc|te)\s*\(")


# --------------------------------------------------------------------------------------
# Scenarios (cluster_trial, the Monte Carlo workhorse, lives with the others)

cluster_trial = scenarios.cluster_trial
SCENARIOS = scenarios.SCENARIOS
get_scenario = scenarios.get


# --------------------------------------------------------------------------------------
# Studies, cells and seeds


def replication_seed(seed: int, cell: int, rep: int) -> np.random.SeedSequence:
    """The seed of replication ``rep`` in grid cell ``cell``:
    ``SeedSequence(seed).spawn(...)[cell].spawn(...)[rep]``."""
    return np.random.SeedSequence(seed, spawn_key=(cell, rep))


@dataclass(frozen=True)
class _Study:
    """What to simulate in one cell: a design, or a user's function with its parameters."""

    design: Design | None
    function: Callable[..., Any] | None
    params: Mapping[str, Any]

    def simulate(self, seed: np.random.SeedSequence) -> tuple[pd.DataFrame, dict[str, float]]:
        if self.design is not None:
            sim = simulate(self.design, seed)
        else:
            sim = self.function(seed, **self.params)
        if isinstance(sim, Simulation):
            return sim.data, sim.truth.parameters()
        if isinstance(sim, pd.DataFrame):
            return sim, {}
        raise ValueError(f"study: the function returned {type(sim).__name__}, expected a Simulation or a DataFrame")


def _cells(study, params: Mapping[str, Any], grid: Mapping[str, Sequence[Any]]) -> tuple[list[dict], list[_Study]]:
    """Grid cells (parameter values) and what to simulate in each."""
    names = list(grid)
    for name, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
            raise ValueError(f"grid: {name!r} got {values!r}, expected a non-empty list of values")
    clash = sorted(set(names) & set(params))
    if clash:
        raise ValueError(f"grid: {clash} are also in params; give each parameter in one place")
    cells = [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]
    if isinstance(study, Scenario):
        return cells, [_Study(study(**params, **cell), None, {**params, **cell}) for cell in cells]
    if isinstance(study, Design):
        if names or params:
            raise ValueError("grid/params: a Design has no parameters to set; pass a Scenario or a function instead")
        return cells, [_Study(study, None, {})]
    if callable(study):
        return cells, [_Study(None, study, {**params, **cell}) for cell in cells]
    raise ValueError(f"study: got {type(study).__name__}, expected a Scenario, a Design or a function (seed, **params)")


def dataset(study, *, seed: int, rep: int, cell: int = 0, params: Mapping[str, Any] | None = None,
            grid: Mapping[str, Sequence[Any]] | None = None) -> Simulation | pd.DataFrame:
    """The dataset of one replication of :func:`run` (same arguments), to look at it closely.

    Returns what the study returns: a :class:`~lmmsim.simulate.Simulation` for a
    Scenario or Design.
    """
    _, studies = _cells(study, dict(params or {}), dict(grid or {}))
    chosen = studies[cell]
    seq = replication_seed(seed, cell, rep)
    return simulate(chosen.design, seq) if chosen.design is not None else chosen.function(seq, **chosen.params)


# --------------------------------------------------------------------------------------
# The fast path: a chunk of random-intercept replications as arrays


def fast_path_reason(design: Design | None, model: ModelSpec, analyses: Sequence[Analysis]) -> str | None:
    """Why the fast path cannot run this study (``None`` if it can)."""
    if design is None:
        return "the study is a function, not a Design or Scenario"
    if len(design.random) != 1 or design.random[0].terms != (INTERCEPT,):
        return "the design has random effects other than a single random intercept"
    if design.random[0].factor != model.groups:
        return f"the design's random intercept is on {design.random[0].factor!r}, the model's on {model.groups!r}"
    if design.dropout is not None:
        return "the design has dropout"
    if not is_random_intercept(model):
        return "the model is not a random-intercept model"
    if model.outcome != design.outcome:
        return f"the model's outcome {model.outcome!r} is not the design's {design.outcome!r}"
    valued = {f.name for f in design.factors if f.values is not None}
    if any(c.level in valued for c in design.covariates):
        return "a covariate is drawn per occasion of a factor with values"
    if _STATEFUL.search(design.formula) or _STATEFUL.search(model.fixed):
        return "a formula uses a data-dependent transform (center, standardize, splines)"
    for a in analyses:
        if a.batch is None:
            return f"analysis {a.name!r} has no batch form"
    return None


def _draw(covariate, n_units: int, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One replication's covariate, drawn exactly as :func:`lmmsim.simulate.simulate` does."""
    if isinstance(covariate, Normal):
        return (covariate.mean + covariate.sd * rng.standard_normal(n_units))[codes]
    if isinstance(covariate, Indicator):
        treated = np.zeros(n_units, dtype=int)
        treated[: round(covariate.share * n_units)] = 1
        return rng.permutation(treated)[codes]
    if isinstance(covariate, Categorical):
        return rng.permutation(np.arange(n_units) % len(covariate.levels))[codes]
    raise ValueError(f"covariates: got {covariate!r}, expected Normal, Indicator or Categorical")


def simulate_batch(design: Design, model: ModelSpec, seeds: Sequence[np.random.SeedSequence]) -> Batch:
    """Simulate a random-intercept design once per seed, as arrays for the batch analyses.

    Replication ``r`` uses the draws of ``simulate(design, seeds[r])``.
    """
    template = simulate(design, 0).data
    n, R = len(template), len(seeds)

    def units(level):
        if level is None:
            return n, np.arange(n)
        codes = pd.factorize(template[level])[0]
        return int(codes.max()) + 1, codes

    effect = design.random[0]
    J, re_codes = units(effect.factor)
    sd = effect.sd[INTERCEPT]
    cov_units = [units(c.level) for c in design.covariates]
    draws = {c.name: np.empty((R, n), dtype=float if isinstance(c, Normal) else int) for c in design.covariates}
    u = np.empty((R, J))
    eps = np.empty((R, n))
    for r, seed in enumerate(seeds):
        children = (np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, i)) for i in range(3))
        rng_cov, rng_re, rng_eps = (np.random.default_rng(s) for s in children)  # as seed.spawn(4)[:3]
        for c, (n_units, codes) in zip(design.covariates, cov_units):
            draws[c.name][r] = _draw(c, n_units, codes, rng_cov)
        u[r] = rng_re.standard_normal((J, 1))[:, 0] * sd
        eps[r] = design.sigma_e * rng_eps.standard_normal(n)

    used = design.formula + " " + model.fixed  # patsy needs only the columns the formulas name
    frame = {f.name: np.tile(template[f.name].to_numpy(), R) for f in design.factors if re.search(rf"\b{f.name}\b", used)}
    for c in design.covariates:
        values = draws[c.name].ravel()
        frame[c.name] = pd.Categorical.from_codes(values, categories=list(c.levels)) if isinstance(c, Categorical) else values
    frame = pd.DataFrame(frame)
    Xs = patsy.dmatrix(design.formula, frame, return_type="dataframe", NA_action="raise")
    beta = np.array([design.beta[c] for c in Xs.columns])
    eta = (Xs.to_numpy().reshape(R, n, -1) @ beta) + u[:, re_codes] * 1.0
    y = eta + eps
    if model.fixed.replace(" ", "") == design.formula.replace(" ", "") and not model.levels:
        X = Xs  # the model's X is the design's
    else:
        for column, levels in model.levels.items():
            frame[column] = pd.Categorical(frame[column], categories=list(levels))
        X = patsy.dmatrix(model.fixed, frame, return_type="dataframe", NA_action="raise")
    columns = tuple(X.columns)
    X = X.to_numpy().reshape(R, n, -1)
    if (X == X[:1]).all():
        X = X[0]
    groups = pd.factorize(template[model.groups], sort=True)[0]
    return Batch(y, X, groups, columns, model.groups)


# --------------------------------------------------------------------------------------
# One chunk of replications


@dataclass(frozen=True)
class _Chunk:
    cell: int
    start: int
    stop: int
    seed: int
    study: _Study
    model: ModelSpec
    analyses: tuple[Analysis, ...]
    coefs: tuple[str, ...]
    fast: bool

    @property
    def filename(self) -> str:
        return f"cell{self.cell:04d}_reps{self.start:07d}-{self.stop:07d}.csv"


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.reindex(columns=list(RESULT_COLUMNS)).astype(_SCHEMA)
    frame["message"] = frame["message"].fillna("")
    return frame.reset_index(drop=True)


def _run_chunk(task: _Chunk) -> pd.DataFrame:
    """The rows of one chunk (a module-level function, so executors can pickle it)."""
    frame = _fast_chunk(task) if task.fast else _general_chunk(task)
    return _normalise(frame)


def _general_chunk(task: _Chunk) -> pd.DataFrame:
    parts = []
    for rep in range(task.start, task.stop):
        try:
            data, truth = task.study.simulate(replication_seed(task.seed, task.cell, rep))
        except Exception as err:  # noqa: BLE001 - recorded, not lost
            message = f"failed: simulation: {type(err).__name__}: {err}"
            data, truth = None, {}
        for analysis in task.analyses:
            if data is None:
                table = pd.DataFrame({"parameter": analysis.parameters(task.model, task.coefs), "status": "failed",
                                      "message": message})
            else:
                table = guarded(analysis, data, task.model, task.coefs)
            table.insert(0, "analysis", analysis.name)
            table.insert(0, "rep", rep)
            table["truth"] = [truth.get(p, np.nan) for p in table["parameter"]]
            parts.append(table)
    frame = pd.concat(parts, ignore_index=True)
    frame.insert(0, "cell", task.cell)
    return frame


def _batch_frame(result: BatchResult, reps: np.ndarray, name: str) -> pd.DataFrame:
    k = len(result.parameters)
    out = {"rep": np.repeat(reps, k), "analysis": name, "parameter": np.tile(np.array(result.parameters, dtype=object), len(reps))}
    for column in COLUMNS[1:8]:
        out[column] = np.asarray(getattr(result, column), dtype=float).reshape(-1)
    out["status"] = np.repeat(result.status, k)
    out["message"] = np.repeat(result.message, k)
    return pd.DataFrame(out)


def _failed_frame(task: _Chunk, analysis: Analysis, reps, message: str) -> pd.DataFrame:
    names = analysis.parameters(task.model, task.coefs)
    k = len(names)
    return pd.DataFrame({"rep": np.repeat(reps, k), "analysis": analysis.name, "parameter": names * len(reps),
                         "status": "failed", "message": message})


def _apply_batch(task: _Chunk, analysis: Analysis, batch: Batch, reps: np.ndarray) -> pd.DataFrame:
    """One analysis on a batch; if it raises, replication by replication, recording failures."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            frame = _batch_frame(analysis.batch(batch, task.coefs), reps, analysis.name)
        except Exception:  # noqa: BLE001 - isolate the failing replications
            if len(reps) == 1:
                raise
            parts = []
            for r, rep in enumerate(reps):
                try:
                    parts.append(_apply_batch(task, analysis, batch.take([r]), reps[r : r + 1]))
                except Exception as err:  # noqa: BLE001
                    parts.append(_failed_frame(task, analysis, [rep], f"failed: {type(err).__name__}: {err}"))
            return pd.concat(parts, ignore_index=True)
    if caught:
        extra = "; ".join(dict.fromkeys(f"{w.category.__name__} (in this chunk's batch fit): {w.message}" for w in caught))
        frame["message"] = [f"{m}; {extra}" if m else extra for m in frame["message"]]
    return frame


def _fast_chunk(task: _Chunk) -> pd.DataFrame:
    reps = np.arange(task.start, task.stop)
    design = task.study.design
    batch = simulate_batch(design, task.model, [replication_seed(task.seed, task.cell, r) for r in reps])
    truth = Truth.from_design(design).parameters()
    parts = []
    for order, analysis in enumerate(task.analyses):
        try:
            frame = _apply_batch(task, analysis, batch, reps)
        except Exception as err:  # noqa: BLE001
            frame = _failed_frame(task, analysis, reps, f"failed: {type(err).__name__}: {err}")
        frame["_order"] = order
        parts.append(frame)
    frame = pd.concat(parts, ignore_index=True).sort_values(["rep", "_order"], kind="stable").drop(columns="_order")
    frame["truth"] = [truth.get(p, np.nan) for p in frame["parameter"]]
    frame.insert(0, "cell", task.cell)
    return frame


# --------------------------------------------------------------------------------------
# Checkpoints


def _read_chunk(path: Path) -> pd.DataFrame:
    # pandas 3 parses floats exactly by default; older pandas needs asking
    exact = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}
    frame = pd.read_csv(path, dtype=_SCHEMA, keep_default_na=False, na_values={c: [""] for c in _FLOATS}, **exact)
    return _normalise(frame)


def _open_checkpoint(folder, config: dict) -> Path:
    folder = Path(folder)
    if not folder.parent.is_dir():
        raise ValueError(f"checkpoint: folder {str(folder.parent)!r} does not exist")
    folder.mkdir(exist_ok=True)
    manifest = folder / "manifest.json"
    text = json.dumps(config, indent=2, sort_keys=True, default=str) + "\n"
    if manifest.exists():
        if manifest.read_text(encoding="utf-8") != text:
            raise ValueError(
                f"checkpoint: {str(folder)!r} holds the results of a different run (its manifest.json differs); "
                "use a new folder"
            )
    else:
        write_files({manifest: text})
    return folder


def _describe(obj) -> str:
    if isinstance(obj, Scenario):
        return f"scenario {obj.name} ({obj.build.__module__}.{obj.build.__qualname__})"
    if isinstance(obj, Design):
        return repr(obj)
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


# --------------------------------------------------------------------------------------
# The engine


def _executor(executor):
    if executor is None:
        return None
    if hasattr(executor, "get_executor") and hasattr(executor, "scheduler_info"):  # dask.distributed.Client
        return executor.get_executor(pure=False)
    if isinstance(executor, concurrent.futures.Executor):
        return executor
    raise ValueError(
        f"executor: got {type(executor).__name__}, expected None, a concurrent.futures executor or a dask Client"
    )


def run(
    study: Scenario | Design | Callable[..., Simulation | pd.DataFrame],
    *,
    reps: int,
    seed: int,
    analyses: str | Sequence[str | Analysis] = ("lmm_t",),
    params: Mapping[str, Any] | None = None,
    grid: Mapping[str, Sequence[Any]] | None = None,
    model: ModelSpec | None = None,
    coefs: Sequence[str] | None = None,
    executor: Any = None,
    chunk_size: int | None = None,
    checkpoint: str | Path | None = None,
    progress: bool = True,
    fast: bool | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Run a Monte Carlo study: ``reps`` datasets per grid cell, every analysis on each.

    Parameters
    ----------
    study : Scenario, Design or callable
        What to simulate: a scenario (called with ``params`` and each grid cell's
        values), a fixed :class:`~lmmsim.design.Design`, or a function
        ``f(seed: numpy.random.SeedSequence, **params)`` returning a
        :class:`~lmmsim.simulate.Simulation` (its truth fills the ``truth`` column) or a
        DataFrame (``truth`` is missing).
    reps : int
        Replications per grid cell.
    seed : int
        Root seed; see "Seeds" in the module docstring.
    analyses : str or sequence of str or Analysis
        Names from :data:`lmmsim.analyses.ANALYSES` (``"ols,lmm_t"`` or a list) or
        your own :class:`~lmmsim.analyses.Analysis` objects.
    params : mapping, optional
        Parameters held fixed in every cell.
    grid : mapping of str to sequence, optional
        Parameters varied: every combination of the values is a cell.
    model : ModelSpec, optional
        The model the analyses fit; default the scenario's model (required otherwise).
    coefs : sequence of str, optional
        Fixed effects (columns of X) to report; default all except the intercept.
    executor : optional
        ``None`` (serial), a ``concurrent.futures`` executor such as
        ``ProcessPoolExecutor``, or a ``dask.distributed.Client``.
    chunk_size : int, optional
        Replications per unit of work; default 250 in the fast path, 20 otherwise.
    checkpoint : path, optional
        Folder (created if its parent exists) for finished chunks; reused when run
        again with the same arguments.
    progress : bool
        Show a progress bar (``tqdm.auto``). Use ``False`` in built notebooks: the bar
        writes to stderr.
    fast : bool, optional
        ``None`` uses the fast path when possible, ``True`` requires it, ``False``
        fits every dataset with statsmodels.
    on_chunk : callable, optional
        Called as ``on_chunk(done, total)`` (replications) after each chunk is saved.

    Returns
    -------
    pandas.DataFrame
        One row per cell × replication × analysis × parameter: the grid parameters,
        then ``RESULT_COLUMNS`` — ``cell``, ``rep``, ``analysis``, ``parameter``,
        ``truth``, ``estimate``, ``se``, ``ci_low``, ``ci_high`` (95 %), ``statistic``,
        ``df`` (of the t or χ² reference; missing for z), ``p_value`` (null value 0),
        ``status`` and ``message``. Sorted by cell, rep, analysis (in the order
        given) and parameter.

    Raises
    ------
    ValueError
        For invalid arguments, before anything is simulated.
    """
    reps = check_count("reps", reps, minimum=1)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed: got {seed!r}, expected a non-negative integer")
    seed = int(seed)
    analyses = get(analyses)
    params, grid = dict(params or {}), dict(grid or {})
    if model is None:
        if not isinstance(study, Scenario):
            raise ValueError("model: required unless the study is a Scenario")
        model = study.model
    if not isinstance(model, ModelSpec):
        raise ValueError(f"model: got {type(model).__name__}, expected an lmmsim ModelSpec")
    for analysis in analyses:
        if analysis.check is not None:
            analysis.check(model)
    cells, studies = _cells(study, params, grid)

    # A pilot dataset checks the study and the coefficients before anything long starts.
    from lmmsim.analyses import fixed_effect_names

    data, _ = studies[0].simulate(replication_seed(seed, 0, 0))
    try:
        names = fixed_effect_names(data, model)
    except Exception as err:  # noqa: BLE001 - patsy errors are not ValueErrors
        raise ValueError(f"model: {model.formula!r} cannot be fitted to the simulated data: {err}") from None
    coefs = tuple(c for c in names if c != INTERCEPT) if coefs is None else tuple(coefs)
    unknown = [c for c in coefs if c not in names]
    if unknown:
        raise ValueError(f"coefs: {unknown} are not fixed effects of {model.formula!r}; expected some of {list(names)}")

    reasons = {fast_path_reason(s.design, model, analyses) for s in studies}
    reason = next(iter(sorted(r for r in reasons if r)), None)
    if fast and reason:
        raise ValueError(f"fast: the fast path cannot run this study: {reason}")
    fast = reason is None if fast is None else bool(fast)
    chunk_size = check_count("chunk_size", chunk_size if chunk_size is not None else (FAST_CHUNK if fast else GENERAL_CHUNK))

    tasks = [
        _Chunk(c, start, min(start + chunk_size, reps), seed, s, model, analyses, coefs, fast)
        for c, s in enumerate(studies)
        for start in range(0, reps, chunk_size)
    ]
    done: dict[tuple[int, int], pd.DataFrame] = {}
    folder = None
    if checkpoint is not None:
        config = {
            "study": _describe(study), "params": params, "grid": grid, "model": repr(model),
            "analyses": [f"{a.name} ({_describe(a.fit)})" for a in analyses], "coefs": list(coefs),
            "seed": seed, "chunk_size": chunk_size, "fast": fast,
        }
        folder = _open_checkpoint(checkpoint, config)
        for task in tasks:
            if (folder / task.filename).exists():
                done[(task.cell, task.start)] = _read_chunk(folder / task.filename)
    pending = [t for t in tasks if (t.cell, t.start) not in done]

    if progress:  # tqdm.auto warns on import where ipywidgets is missing, so only when shown
        from tqdm.auto import tqdm
    else:
        from tqdm import tqdm

    total = reps * len(studies)
    finished = total - sum(t.stop - t.start for t in pending)
    bar = tqdm(total=total, initial=finished, disable=not progress, unit="rep", desc="montecarlo")

    def record(task: _Chunk, frame: pd.DataFrame) -> None:
        nonlocal finished
        if folder is not None:
            write_files({folder / task.filename: csv_text(frame)})
        done[(task.cell, task.start)] = frame
        finished += task.stop - task.start
        bar.update(task.stop - task.start)
        if on_chunk is not None:
            on_chunk(finished, total)

    pool = _executor(executor)
    try:
        if pool is None:
            for task in pending:
                record(task, _run_chunk(task))
        else:
            futures = {pool.submit(_run_chunk, task): task for task in pending}
            try:
                for future in concurrent.futures.as_completed(futures):
                    record(futures[future], future.result())
            finally:
                for future in futures:
                    future.cancel()
    finally:
        bar.close()

    frame = pd.concat([done[key] for key in sorted(done)], ignore_index=True)
    for position, name in enumerate(grid):
        frame.insert(position, name, pd.Series([cells[c][name] for c in frame["cell"]]))
    return frame
