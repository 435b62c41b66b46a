"""lmmsim: simulate grouped data with known truth, to teach linear mixed models.

The pipeline has one module per stage, with plain data between them::

    design (describe) -> simulate -> fit -> recovery (compare with truth)

>>> from lmmsim import scenarios, simulate
>>> sim = simulate(scenarios.plant_growth(), seed=1)
>>> sim.data.head()  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import sys
import types

_EXPORTS = {
    "AR1": "lmmsim.residual",
    "Categorical": "lmmsim.design",
    "Design": "lmmsim.design",
    "Dropout": "lmmsim.design",
    "Factor": "lmmsim.design",
    "Fit": "lmmsim.fit",
    "FitStatus": "lmmsim.fit",
    "Indicator": "lmmsim.design",
    "ModelSpec": "lmmsim.model",
    "Normal": "lmmsim.design",
    "RandomEffect": "lmmsim.design",
    "Simulation": "lmmsim.simulate",
    "Truth": "lmmsim.truth",
    "blups": "lmmsim.recovery",
    "fit_lmer": "lmmsim.fit",
    "fit_lmm": "lmmsim.fit",
    "fit_ols": "lmmsim.fit",
    "recovery": "lmmsim.recovery",
    "scenarios": None,  # the module lmmsim.scenarios itself
    "simulate": "lmmsim.simulate",
}
"""Each public name and the module it comes from, imported on first use (PEP 562): the
command line starts without pandas, patsy, scipy or statsmodels when it needs none."""
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = _EXPORTS[name]
    value = importlib.import_module(f"{__name__}.{name}") if module is None else \
        getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


class _Package(types.ModuleType):
    """The functions ``simulate`` and ``recovery`` share their names with modules; importing
    those modules must not replace the functions as attributes of the package."""

    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, types.ModuleType) and _EXPORTS.get(name) == f"{__name__}.{name}":
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
