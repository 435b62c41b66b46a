"""How to fit a design: the statsmodels MixedLM call and its lme4 equivalent."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


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
        object.__setattr__(self, "vc_formula", MappingProxyType(dict(self.vc_formula)))
        object.__setattr__(self, "levels", MappingProxyType({k: tuple(v) for k, v in self.levels.items()}))

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
