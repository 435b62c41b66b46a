"""lme4's profiled deviance of a linear mixed model, as a function of θ.

The model is y = Xβ + ZΛ(θ)u + ε with u ~ N(0, σ²I) and ε ~ N(0, σ²I): Λ(θ) is the
relative covariance factor, block diagonal, one lower-triangular block T per level of each
random-effect term, so that Cov(random effects) = σ² Λ Λ'. With L L' = Λ'Z'ZΛ + I, the
penalised residual sum of squares r²(θ) and R_X'R_X = X'X − X'ZΛ(LL')⁻¹Λ'Z'X, the REML
criterion (−2 × restricted log-likelihood, lme4's ``REMLcrit``) is

    d(θ) = log|L|² + log|R_X|² + (n − p)(1 + log(2π r² / (n − p)))

and the ML deviance is log|L|² + n(1 + log(2π r² / n)) (Bates et al. 2015, lme4).
Random-effect terms are read from a :class:`~lmmsim.model.ModelSpec` as statsmodels
reads them: ``re_formula`` gives correlated effects of ``groups`` (one T with a free
lower triangle), each ``vc_formula`` entry gives independent effects with one common
variance (T = θ·I) for every column of its design matrix within each group, which is how
nested and crossed factors are fitted. Dense linear algebra: for book-sized data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import patsy
from scipy import linalg, sparse

from lmmsim.design import INTERCEPT
from lmmsim.model import ModelSpec


@dataclass(frozen=True)
class Term:
    """One random-effect term: a name, its columns and where its θ's sit in T."""

    name: str  # the grouping factor, as in ``sd(term|name)``
    columns: tuple[str, ...]
    correlated: bool

    @property
    def n_theta(self) -> int:
        k = len(self.columns)
        return k * (k + 1) // 2 if self.correlated else 1


@dataclass(frozen=True)
class Deviance:
    """The cross-products of one model and dataset, ready to evaluate d(θ).

    Build it with :func:`deviance`. ``terms`` lists the random-effect terms in θ order;
    ``lower`` holds the lower bound of each θ (0 for diagonal elements of T, −∞ else).
    """

    terms: tuple[Term, ...]
    fixed_names: tuple[str, ...]
    lower: np.ndarray
    lam_index: tuple[np.ndarray, np.ndarray, np.ndarray]  # lme4's Lind: row, column, θ index
    ZtZ: np.ndarray
    ZtX: np.ndarray
    Zty: np.ndarray
    XtX: np.ndarray
    Xty: np.ndarray
    yty: float
    n: int
    reml: bool = True

    @property
    def p(self) -> int:
        return self.XtX.shape[0]

    @property
    def dof(self) -> int:
        """f = n − p for REML, n for ML: σ̂² = r²/f, and f log r² is d's residual part."""
        return self.n - self.p if self.reml else self.n

    def relative_factor(self, theta: np.ndarray) -> np.ndarray:
        """Λ(θ), dense: θ[i] at the positions (row, col) that ``lam_index`` lists for it."""
        rows, cols, which = self.lam_index
        lam = np.zeros(self.ZtZ.shape)
        lam[rows, cols] = np.asarray(theta, dtype=float)[which]
        return lam

    def solve(self, theta: np.ndarray) -> dict[str, np.ndarray | float]:
        """β̂(θ), r²(θ), log|L|², R_X'R_X at θ, and the factors behind them (Λ, Λ'Z'Z,
        L, L⁻¹Λ'Z'y, L⁻¹Λ'Z'X) for the gradient (``lmmsim.inference.deviance_gradient``)."""
        lam = self.relative_factor(theta)
        LtA = lam.T @ self.ZtZ
        L = np.linalg.cholesky(LtA @ lam + np.eye(lam.shape[0]))
        cu = linalg.solve_triangular(L, lam.T @ self.Zty, lower=True, check_finite=False)
        CX = linalg.solve_triangular(L, lam.T @ self.ZtX, lower=True, check_finite=False)
        RXtRX = self.XtX - CX.T @ CX
        rhs = self.Xty - CX.T @ cu
        beta = np.linalg.solve(RXtRX, rhs)
        r2 = self.yty - cu @ cu - rhs @ beta
        return {"beta": beta, "r2": r2, "ldL2": 2 * np.log(np.diag(L)).sum(), "RXtRX": RXtRX,
                "lam": lam, "LtA": LtA, "L": L, "cu": cu, "CX": CX}

    def __call__(self, theta: np.ndarray) -> float:
        """d(θ): the REML criterion (or ML deviance), profiled over β and σ."""
        return self.criterion(self.solve(theta))

    def criterion(self, s: dict) -> float:
        """d from the pieces :meth:`solve` returns (NaN where y is fitted exactly)."""
        if not s["r2"] > 1e-12 * self.yty:  # y fitted exactly: the likelihood is unbounded
            return np.nan
        residual = self.dof * (1 + np.log(2 * np.pi * s["r2"] / self.dof))
        if self.reml:
            return float(s["ldL2"] + np.linalg.slogdet(s["RXtRX"])[1] + residual)
        return float(s["ldL2"] + residual)

    def at_sigma(self, theta: np.ndarray, sigma: float) -> float:
        """The deviance at (θ, σ), not profiled over σ (lmerTest's ``devfun_vp``)."""
        s = self.solve(theta)
        d = s["ldL2"] + s["r2"] / sigma**2 + self.n * np.log(2 * np.pi * sigma**2)
        if self.reml:
            d += np.linalg.slogdet(s["RXtRX"])[1] - self.p * np.log(2 * np.pi * sigma**2)
        return float(d)

    def sigma(self, theta: np.ndarray) -> float:
        """σ̂(θ): the residual SD that maximises the criterion at θ."""
        return float(np.sqrt(self.solve(theta)["r2"] / self.dof))

    def vcov(self, theta: np.ndarray, sigma: float | None = None) -> np.ndarray:
        """Cov(β̂) = σ² (R_X'R_X)⁻¹ at θ (σ̂(θ) unless given)."""
        s = self.solve(theta)
        if sigma is None:
            sigma = np.sqrt(s["r2"] / self.dof)
        return sigma**2 * np.linalg.inv(s["RXtRX"])


def template(term: Term, theta: np.ndarray) -> np.ndarray:
    """The block T of one term from its θ's (lower triangle, column by column, as lme4)."""
    k = len(term.columns)
    if not term.correlated:
        return float(theta[0]) * np.eye(k)
    T = np.zeros((k, k))
    rows, cols = np.triu_indices(k)  # column-major lower triangle = row-major upper of T'
    T[cols, rows] = theta
    return T


def sd_corr(terms, theta: np.ndarray, sigma: float) -> dict[str, float]:
    """The SDs and correlations of every term's random effects at θ, given σ_ε, named as
    the fitters name them: ``sd(week|patient)``, ``cor(Intercept,week|patient)`` (NaN
    where an SD is 0)."""
    out, start = {}, 0
    for term in terms:
        T = template(term, theta[start:start + term.n_theta])
        start += term.n_theta
        cov = sigma**2 * T @ T.T
        sd = np.sqrt(np.diag(cov))
        for i, a in enumerate(term.columns):
            out[f"sd({a}|{term.name})"] = sd[i]
        for i, a in enumerate(term.columns):
            for j in range(i + 1, len(term.columns)):
                r = cov[i, j] / (sd[i] * sd[j]) if sd[i] * sd[j] > 0 else np.nan
                out[f"cor({a},{term.columns[j]}|{term.name})"] = r
    return out


def _group_columns(formula: str, data: pd.DataFrame) -> pd.DataFrame:
    rhs = formula.lstrip("~").strip()
    return patsy.dmatrix(rhs, data, return_type="dataframe")


def _indicator(codes: np.ndarray, levels: int, values: np.ndarray) -> np.ndarray:
    Z = np.zeros((len(codes), levels))
    Z[np.arange(len(codes)), codes] = values
    return Z


def deviance(data: pd.DataFrame, model: ModelSpec, *, reml: bool = True) -> Deviance:
    """The profiled deviance d(θ) of ``model`` on ``data``.

    Parameters
    ----------
    data : pandas.DataFrame
        The data, with the model's level order applied (:func:`lmmsim.fit.prepare`).
    model : ModelSpec
        The model, read as statsmodels reads it.
    reml : bool
        REML criterion (default) or ML deviance.

    Returns
    -------
    Deviance
    """
    y, X = patsy.dmatrices(model.formula, data, return_type="dataframe")
    y = y.to_numpy()[:, 0]
    groups = pd.factorize(data[model.groups], sort=True)[0]
    n_groups = groups.max() + 1
    terms, Zs, blocks = [], [], []
    col = 0
    if model.re_formula.strip().lstrip("~").strip() not in ("0", "-1", "0 +", ""):
        Xre = _group_columns(model.re_formula, data)
        names = tuple(INTERCEPT if c in ("Intercept", model.groups) else c for c in Xre.columns)
        k = len(names)
        Z = np.zeros((len(y), n_groups * k))
        for c in range(k):  # level-major: the k effects of one group are adjacent
            Z[:, c::k] = _indicator(groups, n_groups, Xre.iloc[:, c].to_numpy())
        terms.append(Term(model.groups, names, True))
        Zs.append(Z)
        blocks.append((col, n_groups, k))
        col += Z.shape[1]
    for name, formula in model.vc_formula.items():
        Z = _group_effects(_group_columns(formula, data).to_numpy(), groups)
        terms.append(Term(name, (INTERCEPT,), False))
        Zs.append(Z)
        blocks.append((col, Z.shape[1], 1))
        col += Z.shape[1]
    Z = sparse.hstack([sparse.csr_matrix(z) for z in Zs], format="csr")
    return assemble(y, X, Z, terms, blocks, reml)


def assemble(y: np.ndarray, X: pd.DataFrame, Z: sparse.csr_matrix, terms: list[Term],
             blocks: list[tuple[int, int, int]], reml: bool = True) -> Deviance:
    """The deviance of y = Xβ + Zb + ε for random-effect ``terms`` whose columns of Z are
    ``blocks`` (first column, levels, columns per level; level-major within a term)."""
    Xn = X.to_numpy()
    lower = np.concatenate([_lower_bounds(t) for t in terms])
    return Deviance(
        tuple(terms), tuple(X.columns), lower, _lam_index(terms, blocks), (Z.T @ Z).toarray(),
        np.asarray(Z.T @ Xn), np.asarray(Z.T @ y), Xn.T @ Xn, Xn.T @ y, float(y @ y), len(y), reml,
    )


def _group_effects(V: np.ndarray, groups: np.ndarray) -> sparse.csr_matrix:
    """One effect per (group, column of V) that the group's rows touch, as statsmodels
    reads a variance component: group-major columns, built sparse (a dense n × groups ×
    columns array would not fit in memory for thousands of classrooms)."""
    rows, cols = np.nonzero(V)
    keys, column = np.unique(groups[rows] * V.shape[1] + cols, return_inverse=True)
    return sparse.csr_matrix((V[rows, cols], (rows, column)), shape=(V.shape[0], len(keys)))


def _lower_bounds(term: Term) -> np.ndarray:
    if not term.correlated:
        return np.zeros(1)
    k = len(term.columns)
    rows, cols = np.triu_indices(k)
    return np.where(rows == cols, 0.0, -np.inf)


def _lam_index(terms: list[Term], blocks: list[tuple[int, int, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each θ goes in Λ: one block T per level (first column, levels, size) of each term."""
    rows, cols, which = [], [], []
    start = 0
    for term, (first, levels, k) in zip(terms, blocks):
        index = np.arange(term.n_theta) + start
        T = template(term, index + 1.0) - 1.0  # positions of θ's in T; -1 where T is 0
        r, c = np.nonzero(T >= 0)
        for j in range(levels):
            rows.append(first + j * k + r)
            cols.append(first + j * k + c)
            which.append(T[r, c].astype(int))
        start += term.n_theta
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(which)
