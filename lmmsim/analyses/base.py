"""The :class:`Analysis` type, the shape of its results and the helpers the analyses share.

An analysis has a per-dataset form (``fit``: a DataFrame in, a table out) and, for the
Monte Carlo fast path, a batch form (``batch``: R replications of a random-intercept
model at once). The fits several batch analyses share (REML, ML, OLS) are computed once
per batch by :func:`fit_batch` and passed to each.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lmmsim.design import INTERCEPT
from lmmsim.fit.exact import BlockFit, RandomInterceptFit, fit_block, fit_random_intercept
from lmmsim.fit.ols import OlsArrays, fit_ols_arrays
from lmmsim.fit.result import Fit
from lmmsim.fit.status import FitStatus, captured_warnings, describe_warnings, status_codes
from lmmsim.inference import cluster_level, t_or_z
from lmmsim.model import ModelSpec, is_random_intercept, variance_names  # noqa: F401 - re-exported
from lmmsim.schema import COLUMNS, NUMBERS
from lmmsim.simulate.batch import Batch, design_matrices

NEEDS = ("reml", "ml", "ols", "between", "satterthwaite")
"""What a batch analysis may need computed for its batch (see :class:`BatchFits`);
``satterthwaite`` asks the block fitter's REML fit for Satterthwaite df."""


# --------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class BatchResult:
    """Results of one analysis on R replications: arrays of shape (R, k) for k parameters.

    ``status`` and ``message`` have shape (R,): one per replication.
    """

    parameters: tuple[str, ...]
    estimate: np.ndarray
    se: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    statistic: np.ndarray
    df: np.ndarray
    p_value: np.ndarray
    status: np.ndarray
    message: np.ndarray


def join(a: str, b: str) -> str:
    """Two messages as one line."""
    return " ".join(f"{a}; {b}".split()) if a else " ".join(b.split())


def frame(parameters: Sequence[str], status: str = "ok", message: str = "", **values) -> pd.DataFrame:
    """An analysis result: one row per parameter, ``values`` by column of ``NUMBERS``."""
    n = len(parameters)
    out = {"parameter": list(parameters)}
    for column in NUMBERS:
        out[column] = np.broadcast_to(np.asarray(values.get(column, np.nan), dtype=float), (n,)).copy()
    out["status"] = [status] * n
    out["message"] = [" ".join(str(message).split())] * n
    return pd.DataFrame(out, columns=list(COLUMNS))


def wald_frame(parameters, estimate, se, df, status="ok", message="") -> pd.DataFrame:
    """A result with t (or z, where ``df`` is NaN) tests and intervals."""
    statistic, p, low, high = t_or_z(estimate, se, df)
    return frame(parameters, status, message, estimate=estimate, se=se, ci_low=low, ci_high=high,
                 statistic=statistic, df=df, p_value=p)


def batch_result(parameters, estimate, se, df, status=None, message=None, statistic=None, p_value=None,
                 ci=None) -> BatchResult:
    """A batch result with t (or z) tests and intervals unless given."""
    R = estimate.shape[0]
    df = np.broadcast_to(np.asarray(df, dtype=float), estimate.shape)
    stat, p, low, high = t_or_z(estimate, se, df)
    if ci is not None:
        low, high = ci
    return BatchResult(
        tuple(parameters), estimate, se, low, high,
        stat if statistic is None else statistic, df.copy(), p if p_value is None else p_value,
        np.full(R, "ok", dtype=object) if status is None else status,
        np.full(R, "", dtype=object) if message is None else message,
    )


def select(columns: Sequence[str], coefs: Sequence[str]) -> list[int]:
    """Positions of ``coefs`` among the columns of X."""
    missing = [c for c in coefs if c not in columns]
    if missing:
        raise ValueError(f"coefs: {missing} are not fixed effects of the model; expected some of {list(columns)}")
    return [list(columns).index(c) for c in coefs]


def fit_status(fit: Fit) -> FitStatus:
    """A fit's status, failed also where statsmodels returned a log-likelihood that is not finite."""
    if fit.status.code != "failed" and not np.isfinite(fit.loglik):
        return fit.status.as_failed(f"failed: statsmodels returned log-likelihood {fit.loglik} ({fit.status.message})")
    return fit.status


def exact_status(fit: RandomInterceptFit | BlockFit, layout=None) -> tuple[np.ndarray, np.ndarray]:
    """Status codes and messages of a batch of exact fits, shape (R,). With the batch's
    ``layout`` (block fits), a singular fit's message names its variance parameters."""
    status = status_codes(fit.converged, fit.boundary)
    if isinstance(fit, RandomInterceptFit):
        singular = f"boundary (singular fit): sd({INTERCEPT}) = 0"
    else:
        singular = _block_singular(fit, layout)
    message = np.where(
        ~fit.converged, "not converged (exact REML/ML)",
        np.where(fit.boundary, singular, "converged (exact REML/ML)"),
    ).astype(object)
    return status, message


def _block_singular(fit: BlockFit, layout) -> np.ndarray:
    """Each fit's singular message: the parameters lme4's rule flags (as ``fit_lmer`` names
    them), or a generic line where the layout carries no names."""
    from lmmsim.fit.status import singular_terms  # scipy: imported when something is fitted

    out = np.full(len(fit.boundary), "boundary (singular fit): a random-effect SD is 0 or the correlations are "
                  "+-1", dtype=object)
    terms = None if layout is None else _block_terms(layout)
    for r in np.flatnonzero(fit.boundary) if terms else ():
        named = singular_terms(terms, fit.theta[r])
        if named:
            out[r] = "boundary (singular fit): " + ", ".join(named)
    return out


def _block_terms(layout) -> list | None:
    """The layout's terms as ``lmmsim.inference.deviance.Term`` in θ order, read from its
    variance names (the top level's SDs, its correlations, the nested SDs); ``None`` if
    it has none or a nested term with more than one column."""
    from lmmsim.inference.deviance import Term

    k = layout.terms[0][0]
    if not layout.names or any(size > 1 for size, _ in layout.terms[1:]):
        return None
    sds = list(layout.names[:k]) + list(layout.names[k + k * (k - 1) // 2:][: len(layout.terms) - 1])
    parsed = [re.fullmatch(r"sd\((.+)\|(.+)\)", name) for name in sds]
    if not all(parsed):
        return None
    top = Term(parsed[0].group(2), tuple(m.group(1) for m in parsed[:k]), True)
    return [top] + [Term(m.group(2), (m.group(1),), True) for m in parsed[k:]]


# --------------------------------------------------------------------------------------
# Model helpers


def fixed_effect_names(data: pd.DataFrame, model: ModelSpec) -> tuple[str, ...]:
    """Column names of X for ``model`` on ``data``."""
    return tuple(design_matrices(data, model)[1].columns)


# --------------------------------------------------------------------------------------
# Fits shared by the batch analyses


@dataclass(frozen=True)
class BatchFits:
    """A batch and the fits of it that analyses share, each computed once.

    Attributes
    ----------
    batch : Batch
        The data.
    reml, ml : RandomInterceptFit or BlockFit or None
        Exact REML and ML fits (``None`` if not needed); a :class:`~lmmsim.fit.exact.block.BlockFit` when the
        batch has a block layout.
    ols : tuple of ndarray or None
        OLS fits: β (R, p), residuals (R, n) and (X'X)⁻¹.
    between : ndarray or None
        :func:`~lmmsim.inference.cluster_level` of X.
    warnings : dict of str to str
        Warnings raised while computing each fit, as one line.
    """

    batch: Batch
    reml: RandomInterceptFit | BlockFit | None = None
    ml: RandomInterceptFit | BlockFit | None = None
    ols: OlsArrays | None = None
    between: np.ndarray | None = None
    warnings: dict[str, str] = field(default_factory=dict)


def fit_batch(batch: Batch, needs: Sequence[str]) -> BatchFits:
    """Compute the fits in ``needs`` (some of ``NEEDS``: ``reml``, ``ml``, ``ols``, ``between``) of ``batch``."""
    block = batch.layout
    df = "satterthwaite" in needs

    def exact(reml: bool):
        if block is None:
            return fit_random_intercept(batch.y, batch.X, batch.groups, reml=reml)
        return fit_block(batch.y, batch.X, block.Z, batch.groups, block.terms, reml=reml, satterthwaite=reml and df)

    compute = {
        "reml": lambda: exact(True),
        "ml": lambda: exact(False),
        "ols": lambda: fit_ols_arrays(batch.y, batch.X),
        "between": lambda: cluster_level(batch.X, batch.groups),
    }
    fits, warned = {}, {}
    for need in dict.fromkeys(n for n in needs if n != "satterthwaite"):
        with captured_warnings() as caught:
            fits[need] = compute[need]()
        if caught:
            warned[need] = describe_warnings(caught, " (in this chunk's batch fit)")
    return BatchFits(batch, **fits, warnings=warned)


# --------------------------------------------------------------------------------------
# The Analysis type


@dataclass(frozen=True)
class Analysis:
    """A named way to analyse one dataset.

    Attributes
    ----------
    name : str
        Short name (``"lmm_t"``), used in result tables and on the command line.
    description : str
        One line for people.
    fit : callable
        ``fit(data, model, coefs) -> DataFrame`` with the columns ``COLUMNS``.
    batch : callable, optional
        ``batch(BatchFits, coefs) -> BatchResult``: the same analysis for many
        replications of a random-intercept model at once.
    check : callable, optional
        ``check(model)`` raises ``ValueError`` if the analysis cannot fit ``model``.
    reports : callable, optional
        ``reports(model, coefs)``: the parameters it reports, in order (also when
        it fails); default ``coefs``.
    needs : tuple of str
        The shared fits its batch form uses (some of ``NEEDS``; see :class:`BatchFits`).
    block : bool
        Whether the batch form also takes block-diagonal models (random slopes,
        nested intercepts: ``BatchFits.reml`` a :class:`~lmmsim.fit.exact.block.BlockFit`).
    """

    name: str
    description: str
    fit: Callable[[pd.DataFrame, ModelSpec, tuple[str, ...]], pd.DataFrame]
    batch: Callable[[BatchFits, tuple[str, ...]], BatchResult] | None = None
    check: Callable[[ModelSpec], None] | None = None
    reports: Callable[[ModelSpec, tuple[str, ...]], list[str]] | None = None
    needs: tuple[str, ...] = ()
    block: bool = True

    def parameters(self, model: ModelSpec, coefs: Sequence[str]) -> list[str]:
        """Names of the parameters this analysis reports for ``model``."""
        return list(coefs) if self.reports is None else self.reports(model, tuple(coefs))

    def __call__(self, data: pd.DataFrame, model: ModelSpec, coefs: Sequence[str] | None = None) -> pd.DataFrame:
        """Analyse one dataset.

        Parameters
        ----------
        data : pandas.DataFrame
            The data, e.g. ``Simulation.data``.
        model : ModelSpec
            The model (formula, grouping factor, random effects).
        coefs : sequence of str, optional
            Fixed effects to report (column names of X); default all but the intercept.

        Returns
        -------
        pandas.DataFrame
            One row per reported parameter, columns ``COLUMNS``. A failure is a row
            with status ``"failed"``, missing numbers and the error as message.
        """
        if self.check is not None:
            self.check(model)
        if coefs is None:
            coefs = tuple(c for c in fixed_effect_names(data, model) if c != INTERCEPT)
        return guarded(self, data, model, tuple(coefs))

    def fit_batch(self, batch: Batch, coefs: Sequence[str]) -> BatchResult:
        """The batch form on ``batch``, computing the fits it needs."""
        if self.batch is None:
            raise ValueError(f"analysis {self.name!r} has no batch form")
        return self.batch(fit_batch(batch, self.needs), tuple(coefs))


def guarded(analysis: Analysis, data: pd.DataFrame, model: ModelSpec, coefs: tuple[str, ...]) -> pd.DataFrame:
    """Run ``analysis.fit``; an exception becomes a ``"failed"`` row per coefficient and
    warnings are appended to the message. Every parameter the analysis reports has a row
    (see ``lmmsim.analyses.base.complete``)."""
    expected = analysis.parameters(model, coefs)
    with captured_warnings() as caught:
        try:
            table = analysis.fit(data, model, coefs)
        except Exception as err:  # noqa: BLE001 - every failure is recorded, none lost
            message = f"failed: {type(err).__name__}: {err}"
            table = frame(expected, status="failed", message=message)
    if caught:
        extra = describe_warnings(caught)
        table["message"] = [join(m, extra) for m in table["message"]]
    return complete(table, expected, analysis.name)


def complete(table: pd.DataFrame, expected: Sequence[str], name: str, reps=None) -> pd.DataFrame:
    """``table`` with a ``"failed"`` row for each parameter in ``expected`` it lacks, so that
    no requested parameter vanishes from a result.

    With ``reps`` (the replications of a batch; ``table`` has a ``rep`` column) each
    replication gets the rows; rows are ordered by replication, then as in ``expected``.
    """
    missing = [p for p in expected if p not in set(table["parameter"])]
    if not missing:
        return table
    message = (f"failed: {name} gives no estimate of {', '.join(missing)} for this model and data "
               "(it reports only the parameters it can estimate)")
    filler = frame(missing, status="failed", message=message)
    if reps is not None:
        filler = pd.concat([filler.assign(rep=r, analysis=name) for r in reps], ignore_index=True)
    order = {p: i for i, p in enumerate(expected)}
    out = pd.concat([table, filler], ignore_index=True)
    keys = out["parameter"].map(order).fillna(len(order))
    keys = keys if reps is None else out["rep"] * (len(order) + 1) + keys
    return out.iloc[np.argsort(keys.to_numpy(), kind="stable")].reset_index(drop=True)
