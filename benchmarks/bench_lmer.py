"""Time of one ``fit_lmer`` (and its Satterthwaite df), and how often it factorises.

Two sets: the design of book/maximal.md (20 subjects × 12 items, the condition varying
over items; by-subject slope SD 0, 80 and 160 ms; the intercepts-only and the maximal
model, 60 fits) and the 16 datasets of the lmer reference (tests/reference). Prints the
median milliseconds per fit and the mean number of evaluations of ``Deviance.solve`` per
fit (one Cholesky factorisation of Λ'Z'ZΛ + I each: every value of the deviance, its
gradient or Hessian, σ̂ and Cov(β̂) costs one). From the repository root::

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_lmer.py
"""

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "reference"))

import lmer_datasets  # noqa: E402

from lmmsim import Design, Factor, Indicator, RandomEffect, fit_lmer, simulate  # noqa: E402
from lmmsim.inference.deviance import Deviance  # noqa: E402

MODELS = ("rt ~ cond + (1 | subject) + (1 | item)", "rt ~ cond + (1 + cond | subject) + (1 | item)")
SOLVES = [0]


def counted(solve):
    def wrapper(self, theta):
        SOLVES[0] += 1
        return solve(self, theta)
    return wrapper


def maximal_design(sd_u1: float) -> Design:
    return Design(
        factors=(Factor("subject", 20), Factor("item", 12)),
        covariates=(Indicator("cond", level="item", values=(-0.5, 0.5)),),
        formula="cond",
        beta={"Intercept": 600.0, "cond": 0.0},
        random=(RandomEffect("subject", {"Intercept": 60.0, "cond": sd_u1}, corr=0.3),
                RandomEffect("item", {"Intercept": 20.0})),
        sigma_e=100.0,
        outcome="rt",
    )


def measure(cases, satterthwaite: bool, repeats: int = 3) -> tuple[float, float]:
    times, solves = [], []
    for _ in range(repeats):
        for data, formula in cases:
            before = SOLVES[0]
            start = time.perf_counter()
            fit = fit_lmer(data, formula)
            if satterthwaite:
                fit.satterthwaite()
            times.append(time.perf_counter() - start)
            solves.append(SOLVES[0] - before)
    return 1e3 * float(np.median(times)), float(np.mean(solves))


def main() -> None:
    Deviance.solve = counted(Deviance.solve)
    seeds = {sd: np.random.SeedSequence([7, int(sd)]).spawn(10) for sd in (0.0, 80.0, 160.0)}
    maximal = [(simulate(maximal_design(sd), s).data, f) for sd, ss in seeds.items() for s in ss for f in MODELS]
    reference = [(case.data, case.formula) for case in lmer_datasets.cases()]
    for label, cases in (("maximal.md design, 60 fits", maximal), ("lmer reference, 16 fits", reference)):
        for satterthwaite in (False, True):
            ms, solves = measure(cases, satterthwaite)
            what = "fit_lmer + satterthwaite()" if satterthwaite else "fit_lmer"
            print(f"{label}, {what}: {ms:.1f} ms per fit (median), {solves:.0f} solves per fit (mean)")


if __name__ == "__main__":
    main()
