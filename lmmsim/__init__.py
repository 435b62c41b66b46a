"""lmmsim: simulate grouped data with known truth, to teach linear mixed models.

The pipeline has one module per stage, with plain data between them::

    design (describe) -> simulate -> fit -> recovery (compare with truth)

>>> from lmmsim import scenarios, simulate
>>> sim = simulate(scenarios.plant_growth(), seed=1)
>>> sim.data.head()  # doctest: +SKIP
"""

from lmmsim import scenarios
from lmmsim.design import Categorical, Design, Dropout, Factor, Indicator, Normal, RandomEffect
from lmmsim.fit import Fit, FitStatus, fit_lmer, fit_lmm, fit_ols
from lmmsim.model import ModelSpec
from lmmsim.recovery import blups, recovery
from lmmsim.residual import AR1
from lmmsim.simulate import Simulation, simulate
from lmmsim.truth import Truth

__all__ = [
    "AR1",
    "Categorical",
    "Design",
    "Dropout",
    "Factor",
    "Fit",
    "FitStatus",
    "Indicator",
    "ModelSpec",
    "Normal",
    "RandomEffect",
    "Simulation",
    "Truth",
    "blups",
    "fit_lmer",
    "fit_lmm",
    "fit_ols",
    "recovery",
    "scenarios",
    "simulate",
]
