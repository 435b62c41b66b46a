"""The engine: plan → (checkpoint) → execute → assemble."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lmmsim.analyses import Analysis
from lmmsim.design import Design
from lmmsim.model import ModelSpec
from lmmsim.montecarlo.checkpoint import Checkpoint
from lmmsim.montecarlo.execute import check_executor, execute
from lmmsim.montecarlo.plan import Chunk, Plan, make_plan
from lmmsim.scenarios import Scenario
from lmmsim.simulate import Simulation


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
        For invalid arguments, before anything is simulated, and for a checkpoint folder
        that another run is using or that holds another run's results.
    KeyboardInterrupt
        On Ctrl-C (``lmmsim.montecarlo.run.Interrupted``): says how many replications the checkpoint holds.
    """
    plan = make_plan(study, reps=reps, seed=seed, analyses=analyses, params=params, grid=grid, model=model,
                     coefs=coefs, chunk_size=chunk_size, fast=fast)
    check_executor(executor)
    chunks = plan.chunks()
    store = None if checkpoint is None else Checkpoint(checkpoint, plan)
    try:
        done = {} if store is None else store.finished(chunks)
        pending = [c for c in chunks if (c.cell, c.start) not in done]
        bar = _Progress(plan.total, plan.total - sum(c.stop - c.start for c in pending), progress, on_chunk)

        def record(chunk: Chunk, frame: pd.DataFrame) -> None:
            if store is not None:
                store.save(chunk, frame)
            done[(chunk.cell, chunk.start)] = frame
            bar.advance(chunk.stop - chunk.start)

        try:
            execute(pending, executor, record)
        except KeyboardInterrupt:
            saved = sum(c.stop - c.start for c in chunks if (c.cell, c.start) in done) if store else 0
            raise Interrupted(saved, plan.total, None if store is None else store.folder) from None
        finally:
            bar.close()
    finally:
        if store is not None:
            store.close()
    return assemble(plan, done)


class Interrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C; says how many replications the checkpoint holds.

    Attributes
    ----------
    saved, total : int
        Replications saved in the checkpoint (0 without one), and in the whole run.
    checkpoint : Path or None
        The checkpoint folder.
    """

    def __init__(self, saved: int, total: int, checkpoint: Path | None) -> None:
        where = "no checkpoint" if checkpoint is None else f"{saved} of {total} replications saved in {checkpoint}"
        super().__init__(where)
        self.saved, self.total, self.checkpoint = saved, total, checkpoint


def assemble(plan: Plan, done: Mapping[tuple[int, int], pd.DataFrame]) -> pd.DataFrame:
    """The chunks' rows in order, with the grid parameters in front."""
    frame = pd.concat([done[key] for key in sorted(done)], ignore_index=True)
    for position, name in enumerate(plan.grid):
        frame.insert(position, name, pd.Series([plan.cells[c][name] for c in frame["cell"]]))
    return frame


class _Progress:
    """A progress bar (``tqdm``) and the ``on_chunk`` callback, counting replications."""

    def __init__(self, total: int, finished: int, show: bool, on_chunk: Callable[[int, int], None] | None) -> None:
        if show:  # tqdm.auto warns on import where ipywidgets is missing, so only when shown
            from tqdm.auto import tqdm
        else:
            from tqdm import tqdm
        self.total, self.finished, self.on_chunk = total, finished, on_chunk
        self.bar = tqdm(total=total, initial=finished, disable=not show, unit="rep", desc="montecarlo")

    def advance(self, reps: int) -> None:
        self.finished += reps
        self.bar.update(reps)
        if self.on_chunk is not None:
            self.on_chunk(self.finished, self.total)

    def close(self) -> None:
        self.bar.close()
