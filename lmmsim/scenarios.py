"""The book's studies, each a thin function over the core.

Every scenario is called with keyword parameters (all have defaults) and returns a
:class:`~lmmsim.design.Design`; it also knows the model that fits it, and the kind of
each parameter, by which its values are checked::

    >>> from lmmsim import scenarios, simulate
    >>> design = scenarios.plant_growth(n_plots=12)
    >>> scenarios.plant_growth.model.lme4
    'height ~ week * treatment + (1 + week | plot)'
    >>> scenarios.plant_growth.kinds["rho"]
    Kind(name='correlation', minimum=None)

The kinds (:class:`Kind`) are re-exported here: ``count(minimum)``, ``SD``,
``CORRELATION``, ``PROPORTION`` and ``REAL``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lmmsim.design import Categorical, Design, Dropout, Factor, Indicator, Normal, RandomEffect
from lmmsim.frozen import FrozenMap
from lmmsim.model import ModelSpec
from lmmsim.residual import AR1
from lmmsim.validate import CORRELATION, KINDS, PROPORTION, REAL, SD, Kind, count

PLANT_TREATMENTS = ("Control", "FertA", "FertB")
__all__ = ["CORRELATION", "KINDS", "PROPORTION", "REAL", "SCENARIOS", "SD", "Kind", "Scenario", "blood_pressure",
           "cluster_trial", "count", "get", "plant_growth", "schools"]


@dataclass(frozen=True)
class Scenario:
    """A named study: a design builder with defaults, and the model that fits it.

    Attributes
    ----------
    name : str
        Name used on the command line.
    build : callable
        Keyword parameters -> Design.
    model : ModelSpec
        The statsmodels/lme4 model for the scenario's data.
    kinds : mapping of str to Kind
        The kind of every parameter of ``build``.
    """

    name: str
    build: Callable[..., Design]
    model: ModelSpec
    kinds: Mapping[str, Kind]

    def __post_init__(self) -> None:
        if set(self.kinds) != set(self.parameters):
            raise ValueError(
                f"kinds: got {sorted(self.kinds)}, expected one for each parameter of scenario {self.name!r}: "
                f"{list(self.parameters)}"
            )
        object.__setattr__(self, "kinds", FrozenMap({p: self.kinds[p] for p in self.parameters}))

    @property
    def summary(self) -> str:
        """First line of the builder's docstring."""
        return inspect.getdoc(self.build).splitlines()[0]

    @property
    def parameters(self) -> dict[str, Any]:
        """Parameter names and defaults, in order."""
        return {p.name: p.default for p in inspect.signature(self.build).parameters.values()}

    def __call__(self, **params: Any) -> Design:
        unknown = set(params) - set(self.parameters)
        if unknown:
            raise ValueError(
                f"parameter {sorted(unknown)[0]!r} is not a parameter of scenario {self.name!r}; "
                f"expected one of {list(self.parameters)}"
            )
        return self.build(**{name: self.kinds[name].check(name, value) for name, value in params.items()})


def _schools(
    n_schools: int = 20,
    n_classrooms: int = 4,
    n_students: int = 20,
    beta0: float = 50.0,
    beta1: float = 5.0,
    beta2: float = 3.0,
    sigma_school: float = 6.0,
    sigma_classroom: float = 4.0,
    sigma_e: float = 10.0,
) -> Design:
    """Students in classrooms in schools; a teaching method assigned to half the schools.

    score = β0 + β1·method + β2·ses + u_school + v_classroom + ε, where ``method`` is 1 in
    the schools that use the new teaching method and ``ses`` is a standardised
    student-level socio-economic index.

    Parameters
    ----------
    n_schools, n_classrooms, n_students : int
        Schools; classrooms per school; students per classroom.
    beta0 : float
        Mean score under the old method at ses = 0.
    beta1 : float
        Effect of the new teaching method (school level).
    beta2 : float
        Effect of one SD of ses (student level).
    sigma_school, sigma_classroom, sigma_e : float
        SDs of school intercepts, classroom intercepts and residuals.
    """
    return Design(
        factors=(
            Factor("school", n_schools),
            Factor("classroom", n_classrooms, within="school"),
            Factor("student", n_students, within="classroom"),
        ),
        covariates=(Indicator("method", share=0.5, level="school"), Normal("ses")),
        formula="method + ses",
        beta={"Intercept": beta0, "method": beta1, "ses": beta2},
        random=(
            RandomEffect("school", {"Intercept": sigma_school}),
            RandomEffect("classroom", {"Intercept": sigma_classroom}),
        ),
        sigma_e=sigma_e,
        outcome="score",
    )


def _blood_pressure(
    n_patients: int = 40,
    n_weeks: int = 8,
    beta0: float = 150.0,
    beta1: float = -0.3,
    beta2: float = 0.0,
    beta3: float = -1.5,
    sigma_u0: float = 12.0,
    sigma_u1: float = 1.0,
    rho: float = -0.3,
    sigma_e: float = 6.0,
    dropout: float = 0.0,
    dropout_slope: float = 1.0,
    phi: float = 0.0,
) -> Design:
    """Patients measured weekly after starting a drug or placebo, with optional dropout.

    bp = β0 + β1·week + β2·drug + β3·week·drug + u0 + u1·week + ε, with (u0, u1) per patient
    correlated (ρ). Weeks run 0, 1, ..., n_weeks - 1; half the patients get the drug.

    Parameters
    ----------
    n_patients, n_weeks : int
        Patients; weekly visits per patient (week 0 is the baseline visit).
    beta0 : float
        Mean systolic blood pressure (mmHg) at week 0 under placebo.
    beta1 : float
        Weekly change under placebo (mmHg/week).
    beta2 : float
        Drug minus placebo at week 0 (0 in a randomised trial).
    beta3 : float
        Drug minus placebo in the weekly change (mmHg/week): the treatment effect.
    sigma_u0, sigma_u1 : float
        SDs of the patients' intercepts and slopes.
    rho : float
        Correlation of a patient's intercept and slope.
    sigma_e : float
        Residual SD (visit-to-visit noise).
    dropout : float
        Probability of leaving the study after a visit, at an average reading; 0 keeps
        every visit.
    dropout_slope : float
        Log-odds of leaving per SD of the last reading: patients whose blood pressure is
        high leave more often (missing at random).
    phi : float
        Lag-1 autocorrelation φ of a patient's residuals from week to week, in (-1, 1);
        0 keeps them independent.
    """
    return Design(
        factors=(Factor("patient", n_patients), Factor("week", n_weeks, within="patient", values=range(n_weeks))),
        covariates=(Indicator("drug", share=0.5, level="patient"),),
        formula="week * drug",
        beta={"Intercept": beta0, "week": beta1, "drug": beta2, "week:drug": beta3},
        random=(RandomEffect("patient", {"Intercept": sigma_u0, "week": sigma_u1}, corr=rho),),
        sigma_e=sigma_e,
        outcome="bp",
        dropout=Dropout("patient", "week", rate=dropout, slope=dropout_slope) if dropout > 0 else None,
        residual=AR1(phi, "patient", "week") if phi != 0 else None,
    )


def _plant_growth(
    n_plots: int = 12,
    n_weeks: int = 6,
    beta0: float = 10.0,
    beta1: float = 2.0,
    beta2: float = 0.8,
    beta3: float = 1.6,
    shift_a: float = 0.0,
    shift_b: float = 0.0,
    sigma_u0: float = 1.0,
    sigma_u1: float = 0.4,
    rho: float = 0.2,
    sigma_e: float = 0.8,
    phi: float = 0.0,
) -> Design:
    """The article's fertilizer experiment: Control, FertA and FertB plots measured weekly.

    height = β0 + β1·week + β2·week·A + β3·week·B + shift_a·A + shift_b·B + u0 + u1·week + ε.
    The fertilizers change the weekly growth rate (β2, β3), as the article's text says;
    ``shift_a``/``shift_b`` are the intercept shifts that its printed equation has instead
    (0 by default: plots are randomised before the fertilizer is applied).

    Parameters
    ----------
    n_plots, n_weeks : int
        Plots (split as evenly as possible over the three treatments); weekly
        measurements per plot, at weeks 0, 1, ..., n_weeks - 1.
    beta0 : float
        Mean height (cm) of Control plants at week 0.
    beta1 : float
        Weekly growth of Control plants (cm/week).
    beta2, beta3 : float
        Extra weekly growth under Fertilizer A and B (cm/week).
    shift_a, shift_b : float
        Height difference of A and B plots from Control at week 0 (cm).
    sigma_u0, sigma_u1 : float
        SDs of the plots' intercepts and growth rates.
    rho : float
        Correlation of a plot's intercept and growth rate.
    sigma_e : float
        Residual SD (measurement noise).
    phi : float
        Lag-1 autocorrelation φ of a plot's residuals from week to week (this week's
        height is related to last week's beyond the plot's line), in (-1, 1); 0 keeps
        them independent.
    """
    return Design(
        factors=(Factor("plot", n_plots), Factor("week", n_weeks, within="plot", values=range(n_weeks))),
        covariates=(Categorical("treatment", PLANT_TREATMENTS, level="plot"),),
        formula="week * treatment",
        beta={
            "Intercept": beta0,
            "treatment[T.FertA]": shift_a,
            "treatment[T.FertB]": shift_b,
            "week": beta1,
            "week:treatment[T.FertA]": beta2,
            "week:treatment[T.FertB]": beta3,
        },
        random=(RandomEffect("plot", {"Intercept": sigma_u0, "week": sigma_u1}, corr=rho),),
        sigma_e=sigma_e,
        outcome="height",
        residual=AR1(phi, "plot", "week") if phi != 0 else None,
    )


schools = Scenario(
    "schools",
    _schools,
    ModelSpec(
        formula="score ~ method + ses",
        groups="school",
        re_formula="1",
        vc_formula={"classroom": "0 + C(classroom)"},
        lme4="score ~ method + ses + (1 | school) + (1 | school:classroom)",
    ),
    kinds={"n_schools": count(2), "n_classrooms": count(1), "n_students": count(1), "sigma_school": SD,
           "sigma_classroom": SD, "sigma_e": SD, **dict.fromkeys(("beta0", "beta1", "beta2"), REAL)},
)
blood_pressure = Scenario(
    "blood_pressure",
    _blood_pressure,
    ModelSpec(
        formula="bp ~ week * drug",
        groups="patient",
        re_formula="~week",
        lme4="bp ~ week * drug + (1 + week | patient)",
    ),
    kinds={"n_patients": count(2), "n_weeks": count(2), "sigma_u0": SD, "sigma_u1": SD, "rho": CORRELATION,
           "sigma_e": SD, "dropout": PROPORTION, "dropout_slope": REAL, "phi": CORRELATION,
           **dict.fromkeys(("beta0", "beta1", "beta2", "beta3"), REAL)},
)
plant_growth = Scenario(
    "plant_growth",
    _plant_growth,
    ModelSpec(
        formula="height ~ week * treatment",
        groups="plot",
        re_formula="~week",
        lme4="height ~ week * treatment + (1 + week | plot)",
        levels={"treatment": PLANT_TREATMENTS},
    ),
    kinds={"n_plots": count(len(PLANT_TREATMENTS)), "n_weeks": count(2), "sigma_u0": SD, "sigma_u1": SD,
           "rho": CORRELATION, "sigma_e": SD, "phi": CORRELATION,
           **dict.fromkeys(("beta0", "beta1", "beta2", "beta3", "shift_a", "shift_b"), REAL)},
)


def _cluster_trial(
    n_clusters: int = 30,
    cluster_size: int = 20,
    beta0: float = 0.0,
    beta1: float = 0.0,
    beta2: float = 0.5,
    sigma_u: float = 1.0,
    sigma_e: float = 3.0,
) -> Design:
    """A cluster-randomised trial: half the clusters treated, one individual-level covariate.

    y = β0 + β1·treatment + β2·x + u_cluster + ε, with ``treatment`` assigned to half the
    clusters (cluster level) and ``x`` ~ N(0, 1) per individual. With the defaults
    ICC = σ_u² / (σ_u² + σ_ε²) = 0.1 and there is no treatment effect (β1 = 0).

    Parameters
    ----------
    n_clusters, cluster_size : int
        Clusters J; individuals per cluster m.
    beta0 : float
        Mean outcome in control clusters at x = 0.
    beta1 : float
        Treatment effect (cluster level).
    beta2 : float
        Effect of the individual-level covariate x.
    sigma_u, sigma_e : float
        SDs of the cluster intercepts and of the residuals.
    """
    return Design(
        factors=(Factor("cluster", n_clusters), Factor("member", cluster_size, within="cluster")),
        covariates=(Indicator("treatment", share=0.5, level="cluster"), Normal("x")),
        formula="treatment + x",
        beta={"Intercept": beta0, "treatment": beta1, "x": beta2},
        random=(RandomEffect("cluster", {"Intercept": sigma_u}),),
        sigma_e=sigma_e,
        outcome="y",
    )


cluster_trial = Scenario(
    "cluster_trial",
    _cluster_trial,
    ModelSpec("y ~ treatment + x", groups="cluster", re_formula="1", lme4="y ~ treatment + x + (1 | cluster)"),
    kinds={"n_clusters": count(2), "cluster_size": count(2), "sigma_u": SD, "sigma_e": SD,
           **dict.fromkeys(("beta0", "beta1", "beta2"), REAL)},
)

SCENARIOS: dict[str, Scenario] = {s.name: s for s in (schools, blood_pressure, plant_growth, cluster_trial)}


def get(name: str) -> Scenario:
    """The scenario called ``name``."""
    if name not in SCENARIOS:
        raise ValueError(f"scenario: got {name!r}, expected one of {list(SCENARIOS)}")
    return SCENARIOS[name]
