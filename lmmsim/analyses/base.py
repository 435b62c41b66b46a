"""Ways to analyse a simulated dataset, each reporting estimate, SE, 95 % CI and p-value.

An :class:`Analysis` is a named method for the fixed effects of a model (or, for
``lrt_vc``, its random-intercept variance). Call it on one dataset, or let
:func:`lmmsim.montecarlo.run` apply it to thousands::

    >>> from lmmsim import simulate
    >>> from lmmsim.analyses import ANALYSES
    >>> from lmmsim.montecarlo import cluster_trial
    >>> sim = simulate(cluster_trial(), seed=1)
    >>> ANALYSES["lmm_t"](sim.data, cluster_trial.model, coefs=["treatment"])  # doctest: +SKIP
       parameter  estimate  se  ci_low  ci_high  statistic  df  p_value status    message

The analyses (``ANALYSES``; every test is two-sided, of the null value 0):

``ols``
    Naive OLS: ignores the grouping; t test with N − p df.
``ols_cluster``
    OLS with cluster-robust (sandwich) SEs, clustered by ``model.groups``, with
    statsmodels' small-sample factor; t test with J − 1 df (J clusters), as Stata and
    Cameron & Miller (2015) recommend for few clusters.
``cluster_means``
    OLS of the J cluster means of y on the cluster-level columns of X; t test with
    J − p_b df. Reports only cluster-level coefficients (constant within every cluster).
``lmm_wald``
    LMM by REML; statsmodels' SE (from the observed information of β and the variance
    parameters) and Wald z test. (Batch form: at the boundary σ̂_u = 0, where that
    information is not defined, the model-based SE of ``lmm_t``.)
``lmm_t``
    LMM by REML; model-based SE ``sqrt(diag(σ̂²(X'V̂₀⁻¹X)⁻¹))`` (the variance
    components treated as known, as lme4) and a t test with **between-within**
    denominator df (SAS ``DDFM=BETWITHIN``): J − p_b for the p_b cluster-level
    coefficients, N − J − p_w for the p_w coefficients that vary within clusters.
    With random slopes, a slope variable and its interactions with cluster-level
    variables are counted as between-cluster too (J minus their number); see
    :func:`denominator_df`. Exact for balanced designs whose effects are all of these
    kinds; otherwise an approximation (Satterthwaite and Kenward–Roger are not
    implemented). Clusters are the levels of ``model.groups``; nested variance
    components (``vc_formula``) are not counted.
``lrt``
    Likelihood-ratio test of each coefficient: ML fits with and without its column of
    X, LR = 2 Δℓ referred to χ²₁. Estimate, SE and CI are from the full ML fit (Wald).
``lrt_vc``
    REML likelihood-ratio test of σ_u = 0 (random-intercept models only), against the
    50:50 mixture of χ²₀ and χ²₁ (Self & Liang 1987; Stram & Lee 1994):
    p = ½ P(χ²₁ ≥ LR). Reports ``sd(Intercept|<groups>)`` with no SE or CI.
``sd_reml``, ``sd_ml``
    Estimates of the variance parameters (``sd(...)``, ``cor(...)``, ``sd(residual)``;
    see :func:`variance_names`) by REML or ML, to compare their bias; estimates only
    (no SE, CI or test). They ignore ``coefs``.

Each result row carries a ``status``: ``"ok"``, ``"boundary"`` (a variance estimated
as zero), ``"not_converged"`` or ``"failed"`` (no usable estimates), and a ``message``.

Every analysis except a user's own has a *batch* form used by the Monte Carlo fast
path: it fits R replications of a random-intercept model at once, with
:func:`lmmsim.reml.fit_random_intercept` for the mixed models and numpy for OLS. The
batch and per-dataset forms compute the same quantities (tested to optimizer
precision), except that statsmodels sometimes fails where the exact fitter does not.

Notes
-----
statsmodels' L-BFGS fit of MixedLM often ends at a spurious boundary point with an
infinite log-likelihood (statsmodels 0.15 / scipy 1.17), so the mixed-model analyses
here call :func:`lmmsim.fit.fit_lmm` with BFGS tried first (``LMM_OPTIMIZERS``), and
record any fit whose log-likelihood is not finite as ``"failed"``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import patsy
from scipy import stats

from lmmsim.design import INTERCEPT
from lmmsim.fit import Fit, fit_lmm, fit_ols, prepare
from lmmsim.model import ModelSpec

LEVEL = 0.95
"""Confidence level of every interval."""
LMM_OPTIMIZERS = ("bfgs", "lbfgs", "powell", "nm")
"""Optimizers for statsmodels MixedLM, in the order tried (see Notes above)."""
COLUMNS = ("parameter", "estimate", "se", "ci_low", "ci_high", "statistic", "df", "p_value", "status", "message")
"""Columns of an analysis result, one row per reported parameter."""
STATUSES = ("ok", "boundary", "not_converged", "failed")
_TOL = 1e-10  # a column is cluster-level if it varies within clusters by less than this (relative)


# --------------------------------------------------------------------------------------
# The Analysis type and the shape of its results


@dataclass
class Batch:
    """R replications of one design, for the batch form of the analyses.

    Attributes
    ----------
    y : ndarray, shape (R, n)
        Outcomes, one replication per row.
    X : ndarray, shape (n, p) or (R, n, p)
        Fixed-effects design, shared or per replication.
    groups : ndarray of int, shape (n,)
        Cluster codes 0..J-1 of ``model.groups``.
    columns : tuple of str
        Names of the columns of X.
    group_name : str
        Name of the grouping factor (``model.groups``).
    """

    y: np.ndarray
    X: np.ndarray
    groups: np.ndarray
    columns: tuple[str, ...]
    group_name: str = "group"
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def R(self) -> int:
        """Number of replications."""
        return self.y.shape[0]

    @property
    def J(self) -> int:
        """Number of clusters."""
        return int(self.groups.max()) + 1

    def take(self, rows: slice | Sequence[int]) -> Batch:
        """The replications ``rows`` as a new batch."""
        X = self.X if self.X.ndim == 2 else self.X[rows]
        return Batch(self.y[rows], X, self.groups, self.columns, self.group_name)

    def cached(self, key: Any, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per batch (fits shared by several analyses)."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def between(self) -> np.ndarray:
        """:func:`cluster_level` of X: shape (p,) or (R, p)."""
        return self.cached("between", lambda: cluster_level(self.X, self.groups))

    def reml(self, reml: bool = True, drop: int | None = None):
        """:func:`lmmsim.reml.fit_random_intercept` of the batch, optionally without column ``drop``."""
        from lmmsim.reml import fit_random_intercept

        def compute():
            X = self.X if drop is None else np.delete(self.X, drop, axis=-1)
            return fit_random_intercept(self.y, X, self.groups, reml=reml)

        return self.cached(("reml", reml, drop), compute)


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
        ``batch(Batch, coefs) -> BatchResult``: the same analysis for many
        replications of a random-intercept model at once.
    check : callable, optional
        ``check(model)`` raises ``ValueError`` if the analysis cannot fit ``model``.
    reports : callable, optional
        ``reports(model, coefs)``: the parameters it reports, in order (also when
        it fails); default ``coefs``.
    """

    name: str
    description: str
    fit: Callable[[pd.DataFrame, ModelSpec, tuple[str, ...]], pd.DataFrame]
    batch: Callable[[Batch, tuple[str, ...]], BatchResult] | None = None
    check: Callable[[ModelSpec], None] | None = None
    reports: Callable[[ModelSpec, tuple[str, ...]], list[str]] | None = None

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


def guarded(analysis: Analysis, data: pd.DataFrame, model: ModelSpec, coefs: tuple[str, ...]) -> pd.DataFrame:
    """Run ``analysis.fit``; an exception becomes a ``"failed"`` row per coefficient and
    warnings are appended to the message."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            table = analysis.fit(data, model, coefs)
        except Exception as err:  # noqa: BLE001 - every failure is recorded, none lost
            table = _frame(analysis.parameters(model, coefs), status="failed", message=f"failed: {type(err).__name__}: {err}")
    if caught:
        extra = "; ".join(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))
        table["message"] = [_join(m, extra) for m in table["message"]]
    return table


def _join(a: str, b: str) -> str:
    return " ".join(f"{a}; {b}".split()) if a else " ".join(b.split())


def _frame(parameters: Sequence[str], status: str = "ok", message: str = "", **values) -> pd.DataFrame:
    n = len(parameters)
    out = {"parameter": list(parameters)}
    for column in COLUMNS[1:8]:
        out[column] = np.broadcast_to(np.asarray(values.get(column, np.nan), dtype=float), (n,)).copy()
    out["status"] = [status] * n
    out["message"] = [" ".join(str(message).split())] * n
    return pd.DataFrame(out, columns=list(COLUMNS))


# --------------------------------------------------------------------------------------
# Shared helpers


def is_random_intercept(model: ModelSpec) -> bool:
    """Whether ``model`` has one random intercept per group and nothing else."""
    return model.re_formula.replace("~", "").replace(" ", "") == "1" and not model.vc_formula


def variance_names(model: ModelSpec) -> list[str]:
    """Names of the variance parameters of ``model``, as :func:`lmmsim.fit.fit_lmm` reports them:
    ``sd(term|groups)``, ``cor(term1,term2|groups)``, ``sd(Intercept|<vc>)``, ``sd(residual)``."""
    terms = [t.strip() for t in model.re_formula.replace("~", "").split("+") if t.strip()]
    intercept = not any(t in ("0", "-1") for t in terms)
    terms = ([INTERCEPT] if intercept else []) + [t for t in terms if t not in ("0", "1", "-1")]
    names = [f"sd({t}|{model.groups})" for t in terms]
    names += [f"cor({a},{b}|{model.groups})" for i, a in enumerate(terms) for b in terms[i + 1 :]]
    names += [f"sd({INTERCEPT}|{name})" for name in model.vc_formula]
    return names + ["sd(residual)"]


def _check_random_intercept(model: ModelSpec) -> None:
    if not is_random_intercept(model):
        raise ValueError(
            f"analysis lrt_vc: the model {model.lme4 or model.formula!r} is not a random-intercept model "
            "(re_formula '1', no variance components); the σ_u = 0 test is implemented only for those"
        )


def design_matrices(data: pd.DataFrame, model: ModelSpec) -> tuple[np.ndarray, pd.DataFrame, np.ndarray]:
    """``y``, ``X`` (a DataFrame named by column) and cluster codes of ``model.groups``."""
    data = prepare(data, model)
    X = patsy.dmatrix(model.fixed, data, return_type="dataframe", NA_action="raise")
    y = data[model.outcome].to_numpy(dtype=float)
    codes = pd.factorize(data[model.groups], sort=True)[0]
    return y, X, codes


def fixed_effect_names(data: pd.DataFrame, model: ModelSpec) -> tuple[str, ...]:
    """Column names of X for ``model`` on ``data``."""
    return tuple(design_matrices(data, model)[1].columns)


def cluster_level(X: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Which columns of X are constant within every cluster.

    ``X`` of shape (n, p) gives shape (p,); (R, n, p) gives (R, p).
    """
    J = int(groups.max()) + 1
    onehot = np.zeros((len(groups), J))
    onehot[np.arange(len(groups)), groups] = 1.0
    sizes = onehot.sum(0)
    means = np.swapaxes(np.swapaxes(X, -1, -2) @ onehot / sizes, -1, -2)  # (..., J, p)
    spread = np.abs(X - means[..., groups, :]).max(axis=-2)
    scale = 1.0 + np.abs(X).max(axis=-2)
    return spread <= _TOL * scale


def between_within_df(between: np.ndarray, n: int, J: int) -> np.ndarray:
    """Between-within df of each coefficient: J − p_b if cluster-level, else N − J − p_w."""
    between = np.asarray(between, dtype=bool)
    p_b = between.sum(axis=-1, keepdims=True)
    p_w = between.shape[-1] - p_b
    return np.where(between, J - p_b, n - J - p_w).astype(float)


def denominator_df(X: np.ndarray, groups: np.ndarray, Z: np.ndarray | None = None) -> np.ndarray:
    """Between-within df, extended to random slopes, for each column of X (shape (n, p)).

    Each random-effect column z_t of ``Z`` (shape (n, q); default: the random intercept)
    claims the columns of X that are z_t times a cluster-level variable (for the
    intercept: the cluster-level columns; for a random slope of week: week and its
    interactions with cluster-level variables). Those are estimated from the J clusters'
    own coefficients: df = J − (number of columns claimed by z_t). The remaining
    columns get N − J·q − (their number). With only a random intercept this is SAS's
    ``DDFM=BETWITHIN``: J − p_b and N − J − p_w.
    """
    n, p = X.shape
    J = int(groups.max()) + 1
    Z = np.ones((n, 1)) if Z is None else np.asarray(Z, dtype=float).reshape(n, -1)
    family = np.full(p, -1)
    for t in range(Z.shape[1]):
        for c in range(p):
            if family[c] < 0 and _proportional_within(X[:, c], Z[:, t], groups, J):
                family[c] = t
    df = np.empty(p)
    for t in range(Z.shape[1]):
        df[family == t] = J - (family == t).sum()
    rest = family < 0
    df[rest] = n - J * Z.shape[1] - rest.sum()
    return df


def _proportional_within(x: np.ndarray, z: np.ndarray, groups: np.ndarray, J: int) -> bool:
    """Whether x = z · (a value per cluster), up to rounding."""
    tol = _TOL * (1.0 + np.abs(x).max())
    zero = np.abs(z) <= _TOL * (1.0 + np.abs(z).max())
    if np.any(np.abs(x[zero]) > tol) or zero.all():
        return False
    ratio, g = x[~zero] / z[~zero], groups[~zero]
    low, high = np.full(J, np.inf), np.full(J, -np.inf)
    np.minimum.at(low, g, ratio)
    np.maximum.at(high, g, ratio)
    seen = np.isfinite(low)
    return bool(np.all(high[seen] - low[seen] <= _TOL * (1.0 + np.abs(ratio).max())))


def _t_or_z(estimate, se, df):
    """Statistic, two-sided p and CI half-width: t with ``df`` or, where df is NaN, z."""
    estimate, se, df = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (estimate, se, df)))
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = estimate / se
    z = np.isnan(df)
    dfs = np.where(z | (df <= 0), 1.0, df)
    p = np.where(z, 2 * stats.norm.sf(np.abs(statistic)), 2 * stats.t.sf(np.abs(statistic), dfs))
    q = np.where(z, stats.norm.ppf(0.5 + LEVEL / 2), stats.t.ppf(0.5 + LEVEL / 2, dfs))
    bad = ~z & (df <= 0)
    p, q = np.where(bad, np.nan, p), np.where(bad, np.nan, q)
    return statistic, p, estimate - q * se, estimate + q * se


def _test_frame(parameters, estimate, se, df, status="ok", message="") -> pd.DataFrame:
    statistic, p, low, high = _t_or_z(estimate, se, df)
    return _frame(parameters, status, message, estimate=estimate, se=se, ci_low=low, ci_high=high,
                  statistic=statistic, df=df, p_value=p)


def _select(columns: Sequence[str], coefs: Sequence[str]) -> list[int]:
    missing = [c for c in coefs if c not in columns]
    if missing:
        raise ValueError(f"coefs: {missing} are not fixed effects of the model; expected some of {list(columns)}")
    return [list(columns).index(c) for c in coefs]


def _status_of(fit: Fit) -> tuple[str, str]:
    """Our status and message for a :class:`~lmmsim.fit.Fit`."""
    message = fit.status.message
    if message.startswith("failed") or not np.isfinite(fit.loglik):
        if not message.startswith("failed"):
            message = f"failed: statsmodels returned log-likelihood {fit.loglik} ({message})"
        return "failed", message
    if not fit.status.converged:
        return "not_converged", message
    if fit.status.boundary:
        return "boundary", message
    return "ok", message


def _worst(*statuses: str) -> str:
    return max(statuses, key=STATUSES.index)


def _lmm(data, model, reml=True) -> Fit:
    return fit_lmm(data, model, reml=reml, optimizers=LMM_OPTIMIZERS)


def _gls_covariance(result) -> np.ndarray:
    """σ̂²(X'V̂₀⁻¹X)⁻¹ from a statsmodels MixedLM result: the variance components
    treated as known, for any random-effects structure."""
    model = result.model
    cov_re = np.asarray(result.cov_re)
    p = len(result.fe_params)
    A = np.zeros((p, p))
    for j in range(len(model.group_labels)):
        X = model.exog_li[j]
        V = result.scale * np.eye(X.shape[0])
        if model.k_re:
            Z = model.exog_re_li[j]
            V += Z @ cov_re @ Z.T
        for k in range(len(model.exog_vc.names)):
            M = model.exog_vc.mats[k][j]
            V += result.vcomp[k] * (M @ M.T)
        A += X.T @ np.linalg.solve(V, X)
    return np.linalg.inv(A)


# --------------------------------------------------------------------------------------
# Per-dataset analyses


def _ols(data, model, coefs):
    fit = fit_ols(data, model)
    r = fit.result
    return _test_frame(coefs, r.params[list(coefs)], r.bse[list(coefs)], float(r.df_resid))


def _ols_cluster(data, model, coefs):
    fit = fit_ols(data, model, cluster=True)
    J = prepare(data, model)[model.groups].nunique()
    r = fit.result
    return _test_frame(coefs, r.params[list(coefs)], r.bse[list(coefs)], float(J - 1))


def _cluster_means(data, model, coefs):
    y, X, codes = design_matrices(data, model)
    between = cluster_level(X.to_numpy(), codes)
    J = int(codes.max()) + 1
    keep = [c for c in coefs if between[list(X.columns).index(c)]]
    first = np.unique(codes, return_index=True)[1]
    Xb = X.loc[:, between].to_numpy()[first]
    ybar = np.bincount(codes, weights=y) / np.bincount(codes)
    beta, *_ = np.linalg.lstsq(Xb, ybar, rcond=None)
    df = J - Xb.shape[1]
    s2 = ((ybar - Xb @ beta) ** 2).sum() / df
    se = np.sqrt(s2 * np.diag(np.linalg.inv(Xb.T @ Xb)))
    names = list(X.columns[between])
    idx = [names.index(c) for c in keep]
    return _test_frame(keep, beta[idx], se[idx], float(df))


def _lmm_wald(data, model, coefs):
    fit = _lmm(data, model)
    status, message = _status_of(fit)
    if status == "failed":
        return _frame(coefs, status, message)
    est = fit.estimates.reindex(list(coefs))
    return _test_frame(coefs, est["estimate"], est["se"], np.nan, status, message)


def _lmm_t(data, model, coefs):
    fit = _lmm(data, model)
    status, message = _status_of(fit)
    if status == "failed":
        return _frame(coefs, status, message)
    _, X, codes = design_matrices(data, model)
    idx = _select(X.columns, coefs)
    se = np.sqrt(np.diag(_gls_covariance(fit.result)))[idx]
    df = denominator_df(X.to_numpy(), codes, fit.result.model.exog_re)[idx]
    return _test_frame(coefs, fit.result.fe_params.to_numpy()[idx], se, df, status, message)


def _lrt(data, model, coefs):
    _, X, _ = design_matrices(data, model)
    idx = _select(X.columns, coefs)
    names = [f"_x{k}" for k in range(X.shape[1])]
    data = prepare(data, model)
    data[names] = X.to_numpy()

    def fit(columns):
        spec = ModelSpec(f"{model.outcome} ~ 0 + {' + '.join(columns)}", model.groups, model.re_formula,
                         model.vc_formula, levels=model.levels)
        return _lmm(data, spec, reml=False)

    full = fit(names)
    status, message = _status_of(full)
    if status == "failed":
        return _frame(coefs, status, message)
    est = full.estimates.reindex([names[i] for i in idx])
    rows = []
    for k, i in enumerate(idx):
        reduced = fit([n for j, n in enumerate(names) if j != i])
        s, m = _status_of(reduced)
        lr = max(2.0 * (full.loglik - reduced.loglik), 0.0) if s != "failed" else np.nan
        _, _, low, high = _t_or_z(est["estimate"].iloc[k], est["se"].iloc[k], np.nan)
        rows.append(_frame([coefs[k]], _worst(status, s), message if s == "ok" else _join(message, f"reduced fit: {m}"),
                           estimate=est["estimate"].iloc[k], se=est["se"].iloc[k], ci_low=low, ci_high=high,
                           statistic=lr, df=1.0, p_value=stats.chi2.sf(lr, 1)))
    return pd.concat(rows, ignore_index=True) if rows else _frame([])


def _ols_reml_loglik(y: np.ndarray, X: np.ndarray) -> np.ndarray:
    """REML log-likelihood of the model without random effects (σ_u = 0), with the
    constants of statsmodels and :mod:`lmmsim.reml`; batched over the leading axes."""
    n, p = X.shape[-2:]
    XtX = np.swapaxes(X, -1, -2) @ X
    beta = np.linalg.solve(XtX, np.swapaxes(X, -1, -2) @ y[..., None])[..., 0]
    rss = ((y - (X @ beta[..., None])[..., 0]) ** 2).sum(-1)
    sigma2 = rss / (n - p)
    return -0.5 * ((n - p) * (np.log(2 * np.pi * sigma2) + 1.0) + np.linalg.slogdet(XtX)[1])


def _sd(reml: bool):
    def fit_sd(data, model, coefs):
        names = variance_names(model)
        fit = _lmm(data, model, reml=reml)
        status, message = _status_of(fit)
        if status == "failed":
            return _frame(names, status, message)
        return _frame(names, status, message, estimate=fit.estimates["estimate"].reindex(names).to_numpy())

    fit_sd.__name__ = fit_sd.__qualname__ = f"_sd_{'reml' if reml else 'ml'}"
    return fit_sd


_sd_reml, _sd_ml = _sd(True), _sd(False)


def _mixture_p(lr):
    lr = np.asarray(lr, dtype=float)
    return np.where(lr > 0, 0.5 * stats.chi2.sf(np.maximum(lr, 0), 1), 1.0)


def _lrt_vc(data, model, coefs):
    _check_random_intercept(model)
    name = f"sd({INTERCEPT}|{model.groups})"
    fit = _lmm(data, model)
    status, message = _status_of(fit)
    if status == "failed":
        return _frame([name], status, message)
    y, X, _ = design_matrices(data, model)
    lr = max(2.0 * (fit.loglik - float(_ols_reml_loglik(y, X.to_numpy()))), 0.0)
    return _frame([name], status, message, estimate=fit.estimates.loc[name, "estimate"], statistic=lr, df=1.0,
                  p_value=float(_mixture_p(lr)))


# --------------------------------------------------------------------------------------
# Batch analyses (random-intercept models, R replications at once)


def _batch_result(parameters, estimate, se, df, status=None, message=None, statistic=None, p_value=None,
                  ci=None) -> BatchResult:
    R = estimate.shape[0]
    df = np.broadcast_to(np.asarray(df, dtype=float), estimate.shape)
    stat, p, low, high = _t_or_z(estimate, se, df)
    if ci is not None:
        low, high = ci
    return BatchResult(
        tuple(parameters), estimate, se, low, high,
        stat if statistic is None else statistic, df.copy(), p if p_value is None else p_value,
        np.full(R, "ok", dtype=object) if status is None else status,
        np.full(R, "", dtype=object) if message is None else message,
    )


def _reml_status(fit) -> tuple[np.ndarray, np.ndarray]:
    status = np.where(~fit.converged, "not_converged", np.where(fit.boundary, "boundary", "ok")).astype(object)
    message = np.where(
        ~fit.converged, "not converged (exact REML/ML)",
        np.where(fit.boundary, f"boundary (singular fit): sd({INTERCEPT}) = 0", "converged (exact REML/ML)"),
    ).astype(object)
    return status, message


def _observed_se(fit) -> np.ndarray:
    """statsmodels-like SEs (observed information of β and γ); at the boundary γ = 0,
    where that information is not defined, the model-based SE."""
    usable = ~fit.boundary[:, None] & np.isfinite(fit.se_observed)
    return np.where(usable, fit.se_observed, fit.se)


def _xtx(X):
    return np.swapaxes(X, -1, -2) @ X


def _ols_fit(b: Batch):
    """β (R,p), residuals (R,n), (X'X)⁻¹ (p,p) or (R,p,p)."""

    def compute():
        inv = np.linalg.inv(_xtx(b.X))
        Xty = (b.y[:, None, :] @ b.X)[:, 0, :] if b.X.ndim == 3 else b.y @ b.X
        beta = (inv @ Xty[..., None])[..., 0] if b.X.ndim == 3 else Xty @ inv.T
        fitted = (b.X @ beta[..., None])[..., 0] if b.X.ndim == 3 else beta @ b.X.T
        return beta, b.y - fitted, inv

    return b.cached("ols", compute)


def _diag(m):
    return np.diagonal(m, axis1=-2, axis2=-1)


def _ols_batch(b: Batch, coefs):
    idx = _select(b.columns, coefs)
    beta, resid, inv = _ols_fit(b)
    n, p = b.y.shape[1], len(b.columns)
    s2 = (resid**2).sum(1) / (n - p)
    se = np.sqrt(s2[:, None] * _diag(inv))
    return _batch_result(coefs, beta[:, idx], se[:, idx], float(n - p))


def _ols_cluster_batch(b: Batch, coefs):
    idx = _select(b.columns, coefs)
    beta, resid, inv = _ols_fit(b)
    n, p, J = b.y.shape[1], len(b.columns), b.J
    onehot = np.zeros((n, J))
    onehot[np.arange(n), b.groups] = 1.0
    X = np.broadcast_to(b.X, (b.R, n, p))
    scores = np.swapaxes(X * resid[..., None], 1, 2) @ onehot  # (R, p, J)
    meat = scores @ np.swapaxes(scores, 1, 2)
    cov = inv @ meat @ inv * (J / (J - 1) * (n - 1) / (n - p))
    return _batch_result(coefs, beta[:, idx], np.sqrt(_diag(cov))[:, idx], float(J - 1))


def _cluster_means_batch(b: Batch, coefs):
    between = b.between()
    if between.ndim == 2:
        if not (between == between[0]).all():
            raise ValueError("the cluster-level columns of X differ between replications")
        between = between[0]
    keep = [c for c in coefs if between[list(b.columns).index(c)]]
    first = np.unique(b.groups, return_index=True)[1]
    Xb = b.X[..., first, :][..., between]  # (J, p_b) or (R, J, p_b)
    sizes = np.bincount(b.groups)
    onehot = np.zeros((len(b.groups), b.J))
    onehot[np.arange(len(b.groups)), b.groups] = 1.0
    ybar = b.y @ onehot / sizes
    sub = Batch(ybar, Xb, np.arange(b.J), tuple(np.asarray(b.columns)[between]))
    beta, resid, inv = _ols_fit(sub)
    df = b.J - Xb.shape[-1]
    s2 = (resid**2).sum(1) / df
    se = np.sqrt(s2[:, None] * _diag(inv))
    idx = [list(sub.columns).index(c) for c in keep]
    return _batch_result(keep, beta[:, idx], se[:, idx], float(df))


def _lmm_wald_batch(b: Batch, coefs):
    idx = _select(b.columns, coefs)
    fit = b.reml(True)
    status, message = _reml_status(fit)
    return _batch_result(coefs, fit.beta[:, idx], _observed_se(fit)[:, idx], np.nan, status, message)


def _lmm_t_batch(b: Batch, coefs):
    idx = _select(b.columns, coefs)
    fit = b.reml(True)
    status, message = _reml_status(fit)
    df = between_within_df(b.between(), b.y.shape[1], b.J)
    df = np.broadcast_to(df, fit.beta.shape)[:, idx]
    return _batch_result(coefs, fit.beta[:, idx], fit.se[:, idx], df, status, message)


def _lrt_batch(b: Batch, coefs):
    idx = _select(b.columns, coefs)
    full = b.reml(False)
    status, message = _reml_status(full)
    status, message = status.copy(), message.copy()
    lr = np.empty((b.R, len(idx)))
    for k, i in enumerate(idx):
        reduced = b.reml(False, drop=i)
        lr[:, k] = np.maximum(2.0 * (full.loglik_ml - reduced.loglik_ml), 0.0)
        s, m = _reml_status(reduced)
        worse = np.array([STATUSES.index(x) for x in s]) > np.array([STATUSES.index(x) for x in status])
        status = np.where(worse, s, status)
        message = np.where(s != "ok", [_join(a, f"reduced fit: {c}") for a, c in zip(message, m)], message)
    est, se = full.beta[:, idx], _observed_se(full)[:, idx]
    _, _, low, high = _t_or_z(est, se, np.nan)
    return _batch_result(coefs, est, se, 1.0, status.astype(object), message.astype(object), statistic=lr,
                         p_value=stats.chi2.sf(lr, 1), ci=(low, high))


def _lrt_vc_batch(b: Batch, coefs):
    fit = b.reml(True)
    status, message = _reml_status(fit)
    X = b.X if b.X.ndim == 3 else np.broadcast_to(b.X, (b.R, *b.X.shape))
    lr = np.maximum(2.0 * (fit.loglik_reml - _ols_reml_loglik(b.y, X)), 0.0)[:, None]
    nan = np.full_like(lr, np.nan)
    return BatchResult((f"sd({INTERCEPT}|{b.group_name})",), fit.sigma_u[:, None], nan, nan, nan, lr, np.ones_like(lr),
                       _mixture_p(lr), status, message)


def _sd_batch(reml: bool):
    def batch_sd(b: Batch, coefs):
        fit = b.reml(reml)
        status, message = _reml_status(fit)
        est = np.column_stack([fit.sigma_u, fit.sigma_e])
        nan = np.full_like(est, np.nan)
        return BatchResult((f"sd({INTERCEPT}|{b.group_name})", "sd(residual)"), est, nan, nan, nan, nan, nan, nan,
                           status, message)

    batch_sd.__name__ = batch_sd.__qualname__ = f"_sd_{'reml' if reml else 'ml'}_batch"
    return batch_sd


_sd_reml_batch, _sd_ml_batch = _sd_batch(True), _sd_batch(False)


def _variance_names(model, coefs):
    return variance_names(model)


def _lrt_vc_names(model, coefs):
    return [f"sd({INTERCEPT}|{model.groups})"]


# --------------------------------------------------------------------------------------
# The registry

ANALYSES: dict[str, Analysis] = {
    a.name: a
    for a in (
        Analysis("ols", "naive OLS, t test with N - p df", _ols, _ols_batch),
        Analysis("ols_cluster", "OLS with cluster-robust SEs, t test with J - 1 df", _ols_cluster, _ols_cluster_batch),
        Analysis("cluster_means", "OLS of cluster means on cluster-level columns, t with J - p_b df",
                 _cluster_means, _cluster_means_batch),
        Analysis("lmm_wald", "LMM by REML, statsmodels SE, Wald z test", _lmm_wald, _lmm_wald_batch),
        Analysis("lmm_t", "LMM by REML, model-based SE, t test with between-within df", _lmm_t, _lmm_t_batch),
        Analysis("lrt", "likelihood-ratio test of each coefficient (ML fits), chi2(1)", _lrt, _lrt_batch),
        Analysis("lrt_vc", "REML likelihood-ratio test of sd(Intercept) = 0, 50:50 chi2(0):chi2(1)",
                 _lrt_vc, _lrt_vc_batch, _check_random_intercept, _lrt_vc_names),
        Analysis("sd_reml", "REML estimates of the variance parameters (SDs, correlations)", _sd_reml, _sd_reml_batch,
                 reports=_variance_names),
        Analysis("sd_ml", "ML estimates of the variance parameters (SDs, correlations)", _sd_ml, _sd_ml_batch,
                 reports=_variance_names),
    )
}
"""Every built-in analysis by name."""


def get(names: str | Analysis | Sequence[str | Analysis]) -> tuple[Analysis, ...]:
    """Analyses by name (``"ols,lmm_t"``, ``["ols", "lmm_t"]``) or as given.

    Raises
    ------
    ValueError
        For an unknown name, a duplicate or an empty list.
    """
    if isinstance(names, (str, Analysis)):
        names = [names] if isinstance(names, Analysis) else [n.strip() for n in names.split(",")]
    out = []
    for item in names:
        if isinstance(item, Analysis):
            out.append(item)
        elif item in ANALYSES:
            out.append(ANALYSES[item])
        else:
            raise ValueError(f"analyses: got {item!r}, expected one of {list(ANALYSES)}")
    if not out:
        raise ValueError(f"analyses: got none, expected some of {list(ANALYSES)}")
    seen = [a.name for a in out]
    if len(set(seen)) != len(seen):
        raise ValueError(f"analyses: {seen} names one analysis twice")
    return tuple(out)
