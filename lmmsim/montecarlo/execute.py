"""Run chunks: simulate each replication, apply every analysis, return the chunk's rows.

The general path simulates and analyses one dataset at a time; the fast path simulates a
chunk as arrays (:func:`~lmmsim.simulate.simulate_batch`), computes the shared fits once
(:func:`~lmmsim.analyses.fit_batch`) and applies the batch form of each analysis.
Every failure is recorded in its rows' ``status`` and ``message``; the run goes on.
"""

from __future__ import annotations

import concurrent.futures
import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from lmmsim.analyses import Analysis, BatchFits, BatchResult, fit_batch, guarded
from lmmsim.analyses.base import complete
from lmmsim.fit.status import captured_warnings, describe_warnings
from lmmsim.montecarlo.plan import Chunk
from lmmsim.montecarlo.study import replication_seed
from lmmsim.schema import NUMBERS, RESULT_COLUMNS, RESULT_DTYPES
from lmmsim.simulate import Batch
from lmmsim.simulate.batch import simulate_replications
from lmmsim.truth import Truth


def normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns in the order of ``RESULT_COLUMNS``, with their dtypes."""
    frame = frame.reindex(columns=list(RESULT_COLUMNS)).astype(RESULT_DTYPES)
    frame["message"] = frame["message"].fillna("")
    return frame.reset_index(drop=True)


def run_chunk(chunk: Chunk) -> pd.DataFrame:
    """The rows of one chunk (a module-level function, so executors can pickle it)."""
    return _fast_chunk(chunk) if chunk.fast else normalise(_general_chunk(chunk))


def _general_chunk(chunk: Chunk) -> pd.DataFrame:
    parts = []
    for rep in range(chunk.start, chunk.stop):
        try:
            data, truth = chunk.study.data(replication_seed(chunk.seed, chunk.cell, rep))
        except Exception as err:  # noqa: BLE001 - recorded, not lost
            message = f"failed: simulation: {type(err).__name__}: {err}"
            data, truth = None, {}
        for analysis in chunk.analyses:
            if data is None:
                table = pd.DataFrame({"parameter": analysis.parameters(chunk.model, chunk.coefs), "status": "failed",
                                      "message": message})
            else:
                table = guarded(analysis, data, chunk.model, chunk.coefs)
            table.insert(0, "analysis", analysis.name)
            table.insert(0, "rep", rep)
            table["truth"] = [truth.get(p, np.nan) for p in table["parameter"]]
            parts.append(table)
    frame = pd.concat(parts, ignore_index=True)
    frame.insert(0, "cell", chunk.cell)
    return frame


def _batch_frame(result: BatchResult, reps: np.ndarray, name: str) -> pd.DataFrame:
    k = len(result.parameters)
    out = {"rep": np.repeat(reps, k), "analysis": name,
           "parameter": np.tile(np.array(result.parameters, dtype=object), len(reps))}
    for column in NUMBERS:
        out[column] = np.asarray(getattr(result, column), dtype=float).reshape(-1)
    out["status"] = np.repeat(result.status, k)
    out["message"] = np.repeat(result.message, k)
    return pd.DataFrame(out)


def _failed_frame(chunk: Chunk, analysis: Analysis, reps, message: str) -> pd.DataFrame:
    names = analysis.parameters(chunk.model, chunk.coefs)
    k = len(names)
    return pd.DataFrame({"rep": np.repeat(reps, k), "analysis": analysis.name, "parameter": names * len(reps),
                         "status": "failed", "message": message})


def _apply_batch(chunk: Chunk, analysis: Analysis, fits: BatchFits | None, batch: Batch,
                 reps: np.ndarray) -> pd.DataFrame:
    """One analysis on a batch; if it raises, replication by replication, recording failures.

    ``fits`` are the chunk's shared fits (``None``: compute them here, for this batch).
    """
    with captured_warnings() as caught:
        try:
            fits = fit_batch(batch, analysis.needs) if fits is None else fits
            frame = _batch_frame(analysis.batch(fits, chunk.coefs), reps, analysis.name)
            frame = complete(frame, analysis.parameters(chunk.model, chunk.coefs), analysis.name, reps)
        except Exception:  # noqa: BLE001 - isolate the failing replications
            if len(reps) == 1:
                raise
            parts = []
            for r, rep in enumerate(reps):
                try:
                    parts.append(_apply_batch(chunk, analysis, None, batch.take([r]), reps[r : r + 1]))
                except Exception as err:  # noqa: BLE001
                    parts.append(_failed_frame(chunk, analysis, [rep], f"failed: {type(err).__name__}: {err}"))
            return pd.concat(parts, ignore_index=True)
    extra = "; ".join([fits.warnings[n] for n in analysis.needs if n in fits.warnings]
                      + ([describe_warnings(caught, " (in this chunk's batch fit)")] if caught else []))
    if extra:
        frame["message"] = [f"{m}; {extra}" if m else extra for m in frame["message"]]
    return frame


def _shared_fits(chunk: Chunk, batch: Batch) -> BatchFits | None:
    """The fits the chunk's analyses need, computed once; ``None`` if one fails (then each
    analysis isolates the failing replications itself)."""
    try:
        return fit_batch(batch, [n for a in chunk.analyses for n in a.needs])
    except Exception:  # noqa: BLE001 - handled per analysis
        return None


@functools.cache
def _steady_heap() -> None:
    """Allocate and free one 31 MiB block, once per process.

    glibc hands freed memory back to the system when the free top of its heap exceeds a
    threshold, which it raises to twice the largest block it has unmapped (64 MiB at most).
    A fast chunk frees ~40 MB at its end, more than twice its largest array, so each chunk
    would fault its memory in afresh: the kernel zeroing pages cost ~10 µs per replication
    of cluster_trial, a fifth of the run (``benchmarks/bench_montecarlo.py`` prints the
    kernel's share). Freeing this block raises the threshold once, as freeing any array of
    its size would; other allocators are unaffected.
    """
    np.empty(31 * 2**20 // 8)


def _fast_chunk(chunk: Chunk) -> pd.DataFrame:
    _steady_heap()
    reps = np.arange(chunk.start, chunk.stop)
    design = chunk.study.design
    batch = simulate_replications(design, chunk.model, chunk.seed, chunk.cell, reps)
    fits = _shared_fits(chunk, batch)
    truth = Truth.from_design(design).parameters()
    direct = None if fits is None else _direct_rows(chunk, fits, reps, truth)
    if direct is not None:
        return direct
    parts = []
    for order, analysis in enumerate(chunk.analyses):
        try:
            frame = _apply_batch(chunk, analysis, fits, batch, reps)
        except Exception as err:  # noqa: BLE001
            frame = _failed_frame(chunk, analysis, reps, f"failed: {type(err).__name__}: {err}")
        frame["_order"] = order
        parts.append(frame)
    frame = pd.concat(parts, ignore_index=True).sort_values(["rep", "_order"], kind="stable").drop(columns="_order")
    frame["truth"] = [truth.get(p, np.nan) for p in frame["parameter"]]
    frame.insert(0, "cell", chunk.cell)
    return normalise(frame)


def _direct_rows(chunk: Chunk, fits: BatchFits, reps: np.ndarray, truth: dict[str, float]) -> pd.DataFrame | None:
    """The rows :func:`_fast_chunk` assembles, from the analyses' arrays without a frame per
    analysis, already as :func:`normalise` leaves them; ``None`` if an analysis raises or
    lacks a parameter (then every failure is isolated and recorded the long way)."""
    columns: dict[str, list] = {name: [] for name in ("analysis", "parameter", *NUMBERS, "status", "message")}
    for analysis in chunk.analyses:
        with captured_warnings() as caught:
            try:
                result = analysis.batch(fits, chunk.coefs)
            except Exception:  # noqa: BLE001 - isolated by the long way
                return None
        if set(analysis.parameters(chunk.model, chunk.coefs)) - set(result.parameters):
            return None
        R, k = len(reps), len(result.parameters)
        extra = "; ".join([fits.warnings[n] for n in analysis.needs if n in fits.warnings]
                          + ([describe_warnings(caught, " (in this chunk's batch fit)")] if caught else []))
        message = np.asarray(result.message, dtype=object)
        if extra:
            message = np.array([f"{m}; {extra}" if m else extra for m in message], dtype=object)
        columns["analysis"].append(np.full((R, k), analysis.name, dtype=object))
        columns["parameter"].append(np.broadcast_to(np.array(result.parameters, dtype=object), (R, k)))
        for column in NUMBERS:
            columns[column].append(np.asarray(getattr(result, column), dtype=float).reshape(R, k))
        columns["status"].append(np.repeat(np.asarray(result.status, dtype=object)[:, None], k, axis=1))
        columns["message"].append(np.repeat(message[:, None], k, axis=1))
    out = {name: np.concatenate(parts, axis=1).ravel() for name, parts in columns.items()}
    K = len(out["analysis"]) // len(reps)
    parameters = out["parameter"][:K]
    frame = pd.DataFrame({
        "cell": np.full(len(reps) * K, chunk.cell, dtype=np.int64), "rep": np.repeat(reps, K).astype(np.int64),
        "analysis": _strings(out["analysis"]), "parameter": _strings(out["parameter"]),
        "truth": np.tile(np.array([truth.get(p, np.nan) for p in parameters], dtype=float), len(reps)),
        **{column: out[column] for column in NUMBERS}, "status": _strings(out["status"]),
        "message": _strings(out["message"]),
    })
    return frame


def _strings(values: np.ndarray):
    """Strings as the ``str`` dtype of the result table, converting each distinct value once."""
    codes, uniques = pd.factorize(values, use_na_sentinel=False)  # by hashing: sorting strings is slow
    return pd.array(uniques.astype(str).astype(object), dtype=RESULT_DTYPES["parameter"]).take(codes)


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


def check_executor(executor: Any) -> None:
    """Raise ``ValueError`` unless ``executor`` is one :func:`execute` accepts."""
    _executor(executor)


def execute(chunks: Sequence[Chunk], executor: Any, record: Callable[[Chunk, pd.DataFrame], None]) -> None:
    """Run ``chunks`` serially (``executor=None``) or on an executor; ``record(chunk, rows)`` each
    as it finishes (in the calling thread)."""
    pool = _executor(executor)
    if pool is None:
        for chunk in chunks:
            record(chunk, run_chunk(chunk))
        return
    futures = {pool.submit(run_chunk, chunk): chunk for chunk in chunks}
    try:
        for future in concurrent.futures.as_completed(futures):
            record(futures[future], future.result())
    finally:
        for future in futures:
            future.cancel()
