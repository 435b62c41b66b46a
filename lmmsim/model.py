"""How to fit a design: the statsmodels MixedLM call and its lme4 equivalent."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lmmsim.design import INTERCEPT
from lmmsim.frozen import FrozenMap

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class ModelSpec:
    """The arguments of ``statsmodels.formula.api.mixedlm`` for one model.

    Parameters
    ----------
    formula : str
        Outcome and fixed effects, e.g. ``"bp ~ week * drug"``.
    groups : str
        Column of the top-level grouping factor (its random effects are ``re_formula``).
    re_formula : str
        Random effects of ``groups``: ``"1"`` (intercept) or ``"~week"`` (intercept and slope).
    vc_formula : mapping of str to str, optional
        Variance components nested in ``groups``, e.g. ``{"classroom": "0 + C(classroom)"}``;
        each key must be the name of the factor in the design.
    lme4 : str
        The same model as an lme4 formula, for display.
    levels : mapping of str to tuple of str, optional
        Level order of categorical columns (reference first), applied before fitting so
        that data read back from CSV are coded as the design intended.
    """

    formula: str
    groups: str
    re_formula: str = "1"
    vc_formula: Mapping[str, str] = field(default_factory=dict)
    lme4: str = ""
    levels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "vc_formula", FrozenMap(dict(self.vc_formula)))
        object.__setattr__(self, "levels", FrozenMap({k: tuple(v) for k, v in self.levels.items()}))

    @property
    def outcome(self) -> str:
        """The outcome column (left of ``~``)."""
        return self.formula.split("~", 1)[0].strip()

    @property
    def fixed(self) -> str:
        """The fixed-effects part (right of ``~``)."""
        return self.formula.split("~", 1)[1].strip()

    def statsmodels_call(self, data: str = "data") -> str:
        """The Python call, as a reader would type it."""
        args = [repr(self.formula), data, f"groups={self.groups!r}", f"re_formula={self.re_formula!r}"]
        if self.vc_formula:
            args.append(f"vc_formula={dict(self.vc_formula)!r}")
        return f"smf.mixedlm({', '.join(args)})"


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


def prepare(data: pd.DataFrame, model: ModelSpec) -> pd.DataFrame:
    """Apply the model's level order to categorical columns (reference level first)."""
    import pandas as pd  # here: the command line imports this module and starts without pandas

    if not isinstance(data, pd.DataFrame):
        raise ValueError(f"data: got {type(data).__name__}, expected a pandas DataFrame")
    missing = [c for c in (model.outcome, model.groups, *model.vc_formula) if c not in data.columns]
    if missing:
        raise ValueError(f"data: columns {missing} are missing; the data have {list(data.columns)}")
    data = data.copy()
    for column, levels in model.levels.items():
        data[column] = pd.Categorical(data[column], categories=list(levels))
    return data


def formula_error(what: str, formula: str, err: Exception) -> ValueError:
    """The one-line ``ValueError`` for a formula that cannot be built from the data.

    patsy's own message spans several lines (the formula with carets under the culprit);
    its first line says what is wrong.

    >>> import patsy
    >>> try:
    ...     patsy.dmatrix("dose", {"x": [1.0, 2.0]})
    ... except patsy.PatsyError as err:
    ...     print(formula_error("model", "y ~ dose", err))
    model: 'y ~ dose' cannot be built from the data: Error evaluating factor: NameError: name 'dose' is not defined
    """
    text = str(getattr(err, "message", "") or err).strip().splitlines()
    detail = " ".join(text[0].split()) if text else type(err).__name__
    return ValueError(f"{what}: {formula!r} cannot be built from the data: {detail}")
