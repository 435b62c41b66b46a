"""Residual structures other than independent errors: AR(1) series within units.

A :class:`~lmmsim.design.Design` takes ``residual=AR1(phi, unit, occasion)``;
:func:`lmmsim.simulate.draws.autoregress` turns the design's independent residual draws
into the series.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lmmsim.validate import check_finite, check_name


@dataclass(frozen=True)
class AR1:
    """Residuals that follow a first-order autoregression within each unit.

    Within a unit, ε at consecutive occasions correlate by φ, at occasions k apart by
    φ^k (lags count occasions in order, whatever their ``values``); each ε keeps SD
    σ_ε and units are independent. This is nlme's ``corAR1(form = ~ 1 | unit)``, and
    ``corAR1(form = ~ occasion | unit)`` when the occasion values are consecutive integers
    (nlme counts lags by differences in the occasion's value, lmmsim by position).

    Parameters
    ----------
    phi : float
        Lag-1 autocorrelation φ, in (-1, 1); 0 gives independent residuals.
    unit : str
        The factor whose units carry one series each (plots, patients).
    occasion : str
        The occasion factor nested in ``unit``, with increasing ``values`` (weeks).

    Examples
    --------
    >>> AR1(0.5, "plot", "week").phi
    0.5
    >>> AR1(1.0, "plot", "week")
    Traceback (most recent call last):
    ValueError: phi: got 1.0, expected a lag-1 autocorrelation in (-1, 1)
    """

    phi: float
    unit: str
    occasion: str

    def __post_init__(self) -> None:
        phi = check_finite("phi", self.phi)
        if not -1 < phi < 1:
            raise ValueError(f"phi: got {phi}, expected a lag-1 autocorrelation in (-1, 1)")
        object.__setattr__(self, "phi", phi)
        check_name("unit", self.unit)
        check_name("occasion", self.occasion)

    def check(self, factors: Sequence, single_tree: bool) -> None:
        """Raise unless each unit has one series: the occasion is nested in the unit, has
        increasing values and is the deepest factor of the design's only grouping tree."""
        by_name = {f.name: f for f in factors}
        occ = by_name.get(self.occasion)
        if self.unit not in by_name:
            raise ValueError(f"residual: unit {self.unit!r} is not a factor; expected one of {sorted(by_name)}")
        if occ is None or occ.within != self.unit or occ.values is None:
            raise ValueError(
                f"residual: occasion {self.occasion!r} must be a factor with values nested within unit {self.unit!r}"
            )
        if any(f.within == occ.name for f in factors) or not single_tree:
            raise ValueError(
                f"residual: occasion {self.occasion!r} must be the deepest factor of the only grouping tree, "
                "so that each unit has one series"
            )
        if any(b <= a for a, b in zip(occ.values, occ.values[1:])):
            raise ValueError(
                f"values of factor {occ.name!r}: got {list(occ.values)}, expected increasing values for AR1 residuals"
            )
