"""Profile-likelihood intervals for the SDs, correlations and residual SD of a mixed model.

The variance parameters φ are the SDs and correlations of each random-effect term and
σ_ε; θ = (relative covariance factor) follows from φ. For one parameter fixed at v, the
profiled deviance D(v) is the deviance (REML or ML, as fitted) minimised over all the other
φ's, and the 95 % interval is {v : D(v) − D(φ̂) ≤ χ²₁(0.95)}. lme4's
``confint(method = "profile")`` profiles the ML deviance even for a REML fit (it refits by
ML first, with β profiled out); that is the default here too, so that the intervals are
lme4's, and ``reml=True`` profiles the REML criterion instead. Unlike a Wald interval on the log scale, it reaches 0
when the data are compatible with no variation, and it is not symmetric.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from lmmsim.fit.verify import minimise, psd_cholesky
from lmmsim.inference.deviance import Deviance, template


def _names(dev: Deviance) -> list[str]:
    names = []
    for term in dev.terms:
        if term.correlated:
            cols = term.columns
            names += [f"sd({c}|{term.name})" for c in cols]
            rows, cs = np.tril_indices(len(cols), -1)
            names += [f"cor({cols[j]},{cols[i]}|{term.name})" for i, j in zip(rows, cs)]
        else:
            names.append(f"sd({term.columns[0]}|{term.name})")
    return names + ["sd(residual)"]


def _phi_of(dev: Deviance, theta: np.ndarray) -> np.ndarray:
    """φ (SDs, correlations, σ) at θ, with σ = σ̂(θ)."""
    sigma = dev.sigma(theta)
    phi, start = [], 0
    for term in dev.terms:
        T = template(term, theta[start:start + term.n_theta])
        start += term.n_theta
        if term.correlated:
            cov = T @ T.T
            sd = np.sqrt(np.diag(cov))
            with np.errstate(invalid="ignore", divide="ignore"):
                cor = cov / np.outer(sd, sd)
            phi += list(sigma * sd) + list(np.nan_to_num(cor[np.tril_indices(len(sd), -1)]))
        else:
            phi.append(sigma * T[0, 0])
    return np.array(phi + [sigma])


def _theta_of(dev: Deviance, phi: np.ndarray) -> np.ndarray | None:
    """θ at φ; None where the correlations do not form a correlation matrix."""
    sigma = phi[-1]
    theta, at = [], 0
    for term in dev.terms:
        if not term.correlated:
            theta.append(phi[at] / sigma)
            at += 1
            continue
        k = len(term.columns)
        sd = phi[at:at + k]
        R = np.eye(k)
        R[np.tril_indices(k, -1)] = phi[at + k:at + term.n_theta]
        R = R + np.tril(R, -1).T
        at += term.n_theta
        if np.linalg.eigvalsh(R).min() < -1e-12:
            return None
        T = psd_cholesky(R * np.outer(sd, sd)) / sigma
        rows, cols = np.triu_indices(k)
        theta.extend(T[cols, rows])
    return np.array(theta)


def _bounds(dev: Deviance, phi: np.ndarray) -> list[tuple[float, float]]:
    out = []
    for term in dev.terms:
        k = len(term.columns) if term.correlated else 1
        out += [(0.0, np.inf)] * k + [(-1.0, 1.0)] * (term.n_theta - k if term.correlated else 0)
    return out + [(1e-6 * phi[-1], np.inf)]


class _Profile:
    """D(φ) and its minimum over all φ's but one."""

    def __init__(self, dev: Deviance, theta: np.ndarray):
        self.dev = dev
        self.phi = _phi_of(dev, np.asarray(theta, dtype=float))
        self.bounds = _bounds(dev, self.phi)
        # Optimise SDs in units of σ̂, so that the inner problem is well scaled whatever the outcome's units.
        self.scale = np.array([1.0 if lo == -1.0 else self.phi[-1] for lo, _ in self.bounds])
        self.warm: dict[int, np.ndarray] = {}  # the last inner solution: a start near the next
        self.evaluations = 0
        self.d_min = self.deviance(self.phi)

    def deviance(self, phi: np.ndarray) -> float:
        self.evaluations += 1
        theta = _theta_of(self.dev, phi)
        return np.inf if theta is None else self.dev.at_sigma(theta, phi[-1])

    def at(self, j: int, value: float) -> float:
        """D(φ_j = value) − D(φ̂), minimised over the other φ's."""
        others = np.arange(len(self.phi)) != j

        def f(x: np.ndarray) -> float:
            phi = self.phi.copy()
            phi[others] = x * self.scale[others]
            phi[j] = value
            return self.deviance(phi)

        bounds = [(lo / s, hi / s) for (lo, hi), s in zip(np.array(self.bounds)[others], self.scale[others])]
        if not others.any():
            return f(np.array([])) - self.d_min
        start = self.phi[others] / self.scale[others]
        if j in self.warm and f(self.warm[j]) < f(start):
            start = self.warm[j]
        found = optimize.minimize(f, start, method="L-BFGS-B", bounds=bounds, options={"ftol": 1e-13, "gtol": 1e-8})
        self.warm[j] = found.x
        return found.fun - self.d_min


def _side(prof: _Profile, j: int, cut: float, direction: int) -> float:
    """Where the profile crosses ``cut`` below (−1) or above (+1) the estimate."""
    lo, hi = prof.bounds[j]
    est = prof.phi[j]
    zeta = lambda v: prof.at(j, v) - cut  # noqa: E731 - a one-line objective
    edge = lo if direction < 0 else hi
    # Endpoints to 1e-7 of the parameter's scale: far below any interval's width.
    xtol = 1e-7 * (1.0 if lo == -1.0 else prof.phi[-1])
    if np.isfinite(edge):
        if zeta(edge) <= 0:
            return float(edge)
        return float(optimize.brentq(zeta, min(est, edge), max(est, edge), xtol=xtol, rtol=1e-7))
    step = max(abs(est), 0.1 * prof.phi[-1])
    far = est + step
    while zeta(far) <= 0:
        step *= 2
        far = est + step
    return float(optimize.brentq(zeta, est, far, xtol=xtol, rtol=1e-7))


def profile_intervals(
    fit: Any, level: float = 0.95, parameters: list[str] | None = None, *, reml: bool = False
) -> pd.DataFrame:
    """Profile-likelihood intervals of the variance parameters of a mixed-model fit.

    Parameters
    ----------
    fit : Fit
        From :func:`~lmmsim.fit.fit_lmm`.
    level : float
        Confidence level, in (0, 1).
    parameters : list of str, optional
        Names as in ``fit.estimates`` (``sd(Intercept|school)``, ``cor(Intercept,week|patient)``,
        ``sd(residual)``); default: all.
    reml : bool
        Profile the REML criterion; by default the ML deviance, as lme4 does.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``parameter``; columns ``estimate`` (of the profiled criterion: the ML
        estimate by default), ``ci_low``, ``ci_high``; ``attrs["method"]`` names the criterion.
    """
    dev, theta = getattr(fit, "deviance", None), getattr(fit, "theta", None)
    if dev is None or theta is None:
        got = getattr(fit, "method", type(fit).__name__)
        raise ValueError(f"fit: got a {got} fit, expected a mixed-model fit from fit_lmm")
    if not 0 < level < 1:
        raise ValueError(f"level: got {level}, expected a probability in (0, 1)")
    names = _names(dev)
    wanted = names if parameters is None else list(parameters)
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise ValueError(f"parameters: {unknown} are not variance parameters of the fit; expected some of {names}")
    if dev.reml != reml:
        dev = dataclasses.replace(dev, reml=reml)
        theta = minimise(dev, [np.asarray(theta, dtype=float)])
    prof = _Profile(dev, theta)
    cut = stats.chi2.ppf(level, 1)
    rows = {}
    for name in wanted:
        j = names.index(name)
        prof.warm.pop(j, None)
        low = _side(prof, j, cut, -1)
        prof.warm.pop(j, None)
        rows[name] = (prof.phi[j], low, _side(prof, j, cut, +1))
    table = pd.DataFrame.from_dict(rows, orient="index", columns=["estimate", "ci_low", "ci_high"])
    table.index.name = "parameter"
    table.attrs["method"] = f"profile likelihood ({'REML' if reml else 'ML'}), {level:.0%}"
    return table
