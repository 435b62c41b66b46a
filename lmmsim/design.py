"""Describe a study design: grouping factors, covariates, fixed and random effects.

A :class:`Design` is plain data in the book's notation. It says *what* to simulate;
:func:`lmmsim.simulate.simulate` draws data from it.

The rows of the data are the units of the deepest level of each grouping tree, and
separate trees are crossed. Students nested in classrooms nested in schools give one row
per student; patients with weekly visits give one row per visit; subjects crossed with
items give one row per (subject, item) pair.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from lmmsim.frozen import FrozenMap
from lmmsim.residual import AR1
from lmmsim.validate import check_count, check_finite, check_name, check_sd

INTERCEPT = "Intercept"


@dataclass(frozen=True)
class Factor:
    """A grouping factor (schools, patients, plots) or a set of occasions within one.

    Parameters
    ----------
    name : str
        Column name of the factor in the simulated data.
    n : int
        Number of levels; if ``within`` is given, the number of levels *per unit of*
        the parent factor (classrooms per school, visits per patient).
    within : str, optional
        Name of the parent factor this one is nested in.
    values : sequence of float, optional
        Numeric values of the levels, for occasions such as weeks (``values=range(6)``).
        When given, the column holds these numbers and can be used as a covariate;
        otherwise it holds unique labels such as ``"school03"`` or ``"school03/classroom2"``.
    """

    name: str
    n: int
    within: str | None = None
    values: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        check_name("name", self.name)
        # Fewer than two levels leaves nothing to vary between.
        n = check_count(f"n of factor {self.name!r}", self.n, minimum=2 if self.within is None else 1)
        object.__setattr__(self, "n", n)
        if self.values is not None:
            values = tuple(float(v) for v in self.values)
            if len(values) != self.n:
                raise ValueError(
                    f"values of factor {self.name!r}: got {len(values)} values, "
                    f"expected n={self.n}"
                )
            for v in values:
                check_finite(f"values of factor {self.name!r}", v)
            object.__setattr__(self, "values", values)


@dataclass(frozen=True)
class Normal:
    """A normally distributed covariate, drawn once per unit of ``level``.

    Parameters
    ----------
    name : str
        Column name.
    mean, sd : float
        Mean and standard deviation.
    level : str, optional
        Factor whose units share one value (a school-level covariate); ``None`` draws
        one value per observation.
    """

    name: str
    mean: float = 0.0
    sd: float = 1.0
    level: str | None = None

    def __post_init__(self) -> None:
        check_name("name", self.name)
        check_finite(f"mean of covariate {self.name!r}", self.mean)
        check_sd(f"sd of covariate {self.name!r}", self.sd)


@dataclass(frozen=True)
class Categorical:
    """A categorical covariate (a treatment) randomly assigned to units of ``level``.

    The units are split as evenly as possible over ``levels`` (counts differ by at most
    one) and the assignment is randomised. The first level is the reference level of
    the fixed effects, e.g. ``treatment[T.A]`` is the difference between level ``"A"``
    and the first level.

    Parameters
    ----------
    name : str
        Column name.
    levels : sequence of str
        At least two level names, reference first.
    level : str, optional
        Factor whose units share one value (the unit of randomisation); ``None``
        assigns per observation.
    """

    name: str
    levels: tuple[str, ...]
    level: str | None = None

    def __post_init__(self) -> None:
        check_name("name", self.name)
        levels = tuple(str(v) for v in self.levels)
        if len(levels) < 2 or len(set(levels)) != len(levels):
            raise ValueError(
                f"levels of covariate {self.name!r}: got {list(levels)}, "
                "expected at least two distinct level names"
            )
        object.__setattr__(self, "levels", levels)


@dataclass(frozen=True)
class Indicator:
    """A 0/1 treatment indicator randomly assigned to units of ``level``.

    ``round(share * units)`` randomly chosen units get 1, the rest 0, so the arms are
    as balanced as the count allows. ``values`` recodes the two arms, e.g.
    ``(-0.5, 0.5)`` for sum (deviation) coding.

    Parameters
    ----------
    name : str
        Column name.
    share : float
        Fraction of units treated, in (0, 1).
    level : str, optional
        Factor whose units share one value (the unit of randomisation); ``None``
        assigns per observation.
    values : sequence of float
        Two numbers: the column's value in the untreated and in the treated arm; default
        ``(0, 1)`` (treatment coding, integers).
    """

    name: str
    share: float = 0.5
    level: str | None = None
    values: tuple[float, float] = (0, 1)

    def __post_init__(self) -> None:
        check_name("name", self.name)
        share = check_finite(f"share of covariate {self.name!r}", self.share)
        if not 0 < share < 1:
            raise ValueError(f"share of covariate {self.name!r}: got {share}, expected a fraction in (0, 1)")
        what = f"values of covariate {self.name!r}"
        try:
            values = tuple(self.values)
        except TypeError:
            raise ValueError(f"{what}: got {self.values!r}, expected two distinct numbers") from None
        values = tuple(check_finite(what, v) for v in values)
        if len(values) != 2 or values[0] == values[1]:
            raise ValueError(f"{what}: got {list(values)}, expected two distinct numbers (untreated, treated)")
        object.__setattr__(self, "values", (0, 1) if values == (0, 1) else values)

    @property
    def coded(self) -> bool:
        """Whether the arms are coded other than 0/1 (the column then holds floats)."""
        return self.values != (0, 1)


Covariate = Normal | Categorical | Indicator


@dataclass(frozen=True)
class RandomEffect:
    """Random effects of one grouping factor: an intercept and/or slopes.

    Parameters
    ----------
    factor : str
        The grouping factor whose units get their own deviations u.
    sd : mapping of str to float
        Standard deviation of each term, e.g. ``{"Intercept": 5.0, "week": 1.0}``
        (σ_u0 and σ_u1). A slope term names a numeric column of the data.
    corr : float or array-like, optional
        Correlation between the terms: a number ρ when there are two terms, or a full
        correlation matrix in the order of ``sd``. Default: uncorrelated.
    """

    factor: str
    sd: Mapping[str, float]
    corr: tuple[tuple[float, ...], ...] = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        check_name("factor", self.factor)
        if not self.sd:
            raise ValueError(f"sd of random effect {self.factor!r}: got an empty mapping, expected at least one term")
        for term, value in self.sd.items():
            check_sd(f"sd[{term!r}] of random effect {self.factor!r}", value)
        object.__setattr__(self, "sd", FrozenMap({str(k): float(v) for k, v in self.sd.items()}))
        object.__setattr__(self, "corr", _correlation_matrix(self.factor, self.corr, len(self.sd)))

    @property
    def terms(self) -> tuple[str, ...]:
        """Names of the terms, intercept first if present."""
        return tuple(self.sd)

    def covariance(self) -> np.ndarray:
        """The covariance matrix G of this factor's random effects."""
        sd = np.array(list(self.sd.values()))
        return np.array(self.corr) * np.outer(sd, sd)


def _correlation_matrix(factor: str, corr, k: int) -> tuple[tuple[float, ...], ...]:
    name = f"corr of random effect {factor!r}"
    if corr is None:
        matrix = np.eye(k)
    elif np.ndim(corr) == 0:
        rho = check_finite(name, corr)
        if k != 2:
            raise ValueError(f"{name}: got a single number {rho} for {k} terms; give a {k}x{k} matrix")
        matrix = np.array([[1.0, rho], [rho, 1.0]])
    else:
        try:
            matrix = np.asarray(corr, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: got {corr!r}, expected a number or a {k}x{k} matrix") from None
        if matrix.shape != (k, k):
            raise ValueError(f"{name}: got shape {matrix.shape}, expected ({k}, {k})")
    if not np.all(np.isfinite(matrix)):
        raise ValueError(f"{name}: got {matrix.tolist()}, expected finite numbers")
    off = matrix[~np.eye(k, dtype=bool)]
    if np.any(np.abs(off) > 1):
        raise ValueError(f"{name}: got {matrix.tolist()}, correlations must lie in [-1, 1]")
    if not np.allclose(np.diag(matrix), 1) or not np.allclose(matrix, matrix.T):
        raise ValueError(f"{name}: got {matrix.tolist()}, expected a symmetric matrix with ones on the diagonal")
    if np.linalg.eigvalsh(matrix).min() < -1e-10:
        raise ValueError(f"{name}: got {matrix.tolist()}, which is not positive semi-definite")
    return tuple(tuple(float(v) for v in row) for row in matrix)


@dataclass(frozen=True)
class Dropout:
    """Monotone dropout that is missing at random (MAR).

    After each occasion a unit leaves the study with probability
    ``logistic(logit(rate) + slope * z)``, where z is its last *observed* outcome,
    standardised. Because it depends only on what was observed, the data are missing at
    random: the likelihood-based LMM stays unbiased, a complete-case analysis does not.

    Parameters
    ----------
    unit : str
        The factor that drops out (patients).
    occasion : str
        The nested occasion factor, in time order (visits), with ``values``.
    rate : float
        Probability of leaving after an occasion, at an average outcome; in [0, 1).
    slope : float
        Log-odds change per SD of the last observed outcome (positive: high values
        leave more often).
    """

    unit: str
    occasion: str
    rate: float
    slope: float = 0.0

    def __post_init__(self) -> None:
        rate = check_finite("rate", self.rate)
        if not 0 <= rate < 1:
            raise ValueError(f"rate: got {rate}, expected a dropout probability in [0, 1)")
        check_finite("slope", self.slope)


@dataclass(frozen=True)
class Design:
    """Everything needed to simulate ``y = Xβ + Zu + ε``.

    Parameters
    ----------
    factors : sequence of Factor
        Grouping factors and occasions. Parents come before the factors nested in them.
    formula : str
        Right-hand side of the fixed-effects formula in patsy notation, e.g.
        ``"week * treatment"``; it defines the columns of X.
    beta : mapping of str to float
        Fixed effects β by column name of X, e.g. ``{"Intercept": 5, "week": 2,
        "treatment[T.A]": 0, "week:treatment[T.A]": 0.8, ...}``. Must name every column.
    random : sequence of RandomEffect
        Random effects, one entry per grouping factor.
    sigma_e : float
        Residual standard deviation σ_ε.
    covariates : sequence of Normal or Categorical
        Covariates to draw.
    outcome : str
        Name of the outcome column.
    dropout : Dropout, optional
        Monotone dropout to apply after simulating.
    residual : lmmsim.residual.AR1, optional
        Correlated residuals within units; default independent.
    """

    factors: tuple[Factor, ...]
    formula: str
    beta: Mapping[str, float]
    random: tuple[RandomEffect, ...]
    sigma_e: float
    covariates: tuple[Covariate, ...] = ()
    outcome: str = "y"
    dropout: Dropout | None = None
    residual: AR1 | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "factors", tuple(self.factors))
        object.__setattr__(self, "random", tuple(self.random))
        object.__setattr__(self, "covariates", tuple(self.covariates))
        for name, value in self.beta.items():
            check_finite(f"beta[{name!r}]", value)
        object.__setattr__(self, "beta", FrozenMap({str(k): float(v) for k, v in self.beta.items()}))
        check_sd("sigma_e", self.sigma_e)
        check_name("outcome", self.outcome)
        self._check_structure()

    def _check_structure(self) -> None:
        names = [f.name for f in self.factors]
        duplicated = {n for n in names if names.count(n) > 1}
        if duplicated:
            raise ValueError(f"factors: names {sorted(duplicated)} are used twice; each factor needs its own name")
        seen: set[str] = set()
        for f in self.factors:
            if f.within is not None and f.within not in seen:
                raise ValueError(
                    f"within of factor {f.name!r}: got {f.within!r}, expected one of the factors "
                    f"listed before it: {sorted(seen)}"
                )
            seen.add(f.name)
        columns = set(names) | {c.name for c in self.covariates}
        numeric = {f.name for f in self.factors if f.values is not None} | {
            c.name for c in self.covariates if not isinstance(c, Categorical)
        }
        clash = {c.name for c in self.covariates} & set(names)
        if clash or len({c.name for c in self.covariates}) != len(self.covariates):
            got = sorted(clash) or [c.name for c in self.covariates]
            raise ValueError(f"covariates: names must be distinct from each other and from the factors, got {got}")
        for c in self.covariates:
            if c.level is not None and c.level not in names:
                raise ValueError(f"level of covariate {c.name!r}: got {c.level!r}, expected one of the factors {names}")
        for r in self.random:
            if r.factor not in names:
                raise ValueError(f"factor of random effect: got {r.factor!r}, expected one of the factors {names}")
            for term in r.terms:
                if term != INTERCEPT and term not in numeric:
                    what = "is not numeric" if term in columns else "is not a column"
                    raise ValueError(
                        f"sd of random effect {r.factor!r}: term {term!r} {what}; expected "
                        f"'Intercept' or a numeric column, one of {sorted(numeric)}"
                    )
        if len({r.factor for r in self.random}) != len(self.random):
            raise ValueError("random: each grouping factor may appear only once")
        if self.outcome in columns:
            raise ValueError(f"outcome: got {self.outcome!r}, which is already a factor or covariate name")
        if self.dropout is not None:
            by_name = {f.name: f for f in self.factors}
            occ = by_name.get(self.dropout.occasion)
            if occ is None or occ.within != self.dropout.unit or occ.values is None:
                raise ValueError(
                    f"dropout: occasion {self.dropout.occasion!r} must be a factor with values nested "
                    f"within unit {self.dropout.unit!r}"
                )
        if self.residual is not None:
            self.residual.check(self.factors, single_tree=len(self.leaf_counts()) == 1)

    @property
    def n_obs(self) -> int:
        """Number of observations before any dropout."""
        return math.prod(self.leaf_counts())

    def memory_estimate(self) -> int:
        """Bytes a simulated dataset of this design needs at its peak (a generous estimate:
        about 200 bytes per observation were measured for the built-in scenarios)."""
        columns = len(self.factors) + len(self.covariates) + len(self.beta) + 1
        return 48 * columns * self.n_obs

    def leaf_counts(self) -> list[int]:
        """Units of the deepest level of each (crossed) grouping tree."""
        counts: dict[str, int] = {}
        parents: dict[str, str | None] = {}
        for f in self.factors:
            counts[f.name] = f.n * (counts[f.within] if f.within else 1)
            parents[f.name] = f.within
        has_child = {p for p in parents.values() if p}
        return [counts[name] for name in counts if name not in has_child]

