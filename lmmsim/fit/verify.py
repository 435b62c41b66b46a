"""Verify that a statsmodels MixedLM fit is a maximum of its criterion, and polish it.

An optimizer's "converged" only says that its stopping rule fired. Here a fit counts as
converged when its point is a verified local maximum of the REML (or ML) criterion, judged
on lme4's profiled deviance d(θ) (:mod:`lmmsim.inference.deviance`), whose parameters θ are
relative (SDs over σ_ε), so that every tolerance below is free of the outcome's units:

- the gradient is small: a Newton step would lower d by less than ``DECREMENT_TOL``;
- the Hessian of d over the free θ's is positive definite (of the log-likelihood:
  negative definite), and no step off a bound (a variance at 0) lowers d (gradient and
  Hessian analytic: :mod:`lmmsim.inference.deviance_gradient`, ``deviance_hessian``);
- no better point: a bounded quasi-Newton search from the optimizer's point finds nothing
  lower by ``GAP_TOL``. When the first optimizer's point fails, the next ones are tried;
  when none passes, the search also starts from lme4's start and a small one (with
  Powell's derivative-free method where L-BFGS-B stalls near a bound), and the best point
  found is kept.

The reported fit is statsmodels' model evaluated at the best θ found (a zero-iteration
refit), so its estimates are those of the maximum, not of wherever an optimizer stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize

from lmmsim.fit.status import ignored_warnings
from lmmsim.inference import deviance_gradient, deviance_hessian
from lmmsim.inference.deviance import Deviance

# Largest shortfall of a "converged" fit, in deviance units (2 × log-likelihood).
GAP_TOL = 1e-5
# Largest Newton decrement ½ g'H⁻¹g of d at a converged fit.
DECREMENT_TOL = 1e-7
# statsmodels cannot evaluate a relative variance of exactly 0 (it pseudo-inverts it):
# a θ at its bound is passed on as this (a relative variance of 1e-8).
SM_FLOOR = 1e-4
OPTIONS = {"ftol": 1e-13, "gtol": 1e-8, "maxiter": 1000}  # L-BFGS-B's: tight; Newton steps follow


@dataclass(frozen=True)
class Check:
    """The verdict on one point θ: whether it is a verified local minimum of d."""

    theta: np.ndarray
    deviance: float
    decrement: float
    min_eigenvalue: float
    ok: bool
    reason: str


def theta_of(result: Any, dev: Deviance) -> np.ndarray:
    """θ of a statsmodels result, in the order of ``dev.terms``."""
    params = result.params_object
    names = list(result.model.exog_vc.names) if result.model.k_vc else []
    theta = []
    for term in dev.terms:
        if term.correlated:
            T = psd_cholesky(np.asarray(params.cov_re, dtype=float))
            rows, cols = np.triu_indices(T.shape[0])
            theta.extend(T[cols, rows])
        else:
            theta.append(np.sqrt(max(float(params.vcomp[names.index(term.name)]), 0.0)))
    return np.array(theta)


def psd_cholesky(S: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a positive semi-definite S (zero columns where singular)."""
    k = S.shape[0]
    T = np.zeros((k, k))
    for j in range(k):
        d = S[j, j] - T[j, :j] @ T[j, :j]
        if d <= 1e-14 * max(S[j, j], 1e-300):
            continue
        T[j, j] = np.sqrt(d)
        T[j + 1:, j] = (S[j + 1:, j] - T[j + 1:, :j] @ T[j, :j]) / T[j, j]
    return T


def _packed(theta: np.ndarray, dev: Deviance, model: Any) -> np.ndarray:
    """statsmodels' start parameters (Cholesky factor row by row, then √vcomp) for θ."""
    theta = np.where(dev.lower == 0, np.maximum(theta, SM_FLOOR), theta)
    re, vc = [], {}
    start = 0
    for term in dev.terms:
        block = theta[start:start + term.n_theta]
        if term.correlated:
            k = len(term.columns)
            T = np.zeros((k, k))
            rows, cols = np.triu_indices(k)
            T[cols, rows] = block
            re = list(T[np.tril_indices(k)])
        else:
            vc[term.name] = block[0]
        start += term.n_theta
    names = list(model.exog_vc.names) if model.k_vc else []
    return np.array(re + [vc[n] for n in names])


def refit_at(lmm: Any, theta: np.ndarray, dev: Deviance, reml: bool) -> Any:
    """statsmodels' results at θ, without optimising (a zero-iteration fit)."""
    with ignored_warnings():  # "failed to converge": no iteration was asked for
        result = lmm.fit(reml=reml, start_params=_packed(theta, dev, lmm), method="bfgs", maxiter=0)
        _ = result.llf, result.bse  # computed lazily: their warnings (y constant, say) are silenced here too
        return result


def _active(theta: np.ndarray, dev: Deviance) -> np.ndarray:
    return (dev.lower == 0) & (theta <= 1e-6)


def _off_bound(dev: Deviance, theta: np.ndarray) -> int | None:
    """The first θ at its bound from which a small step inwards lowers d (None if none).

    d is even in a diagonal element of T, so its gradient there is 0 and only the step
    itself tells: any decrease beyond rounding means the bound is not a minimum. A column
    of T whose diagonal element is 0 gives the same covariance with its sign flipped, and
    the step inwards from the flipped column is a step outwards from this one: both are
    tried (else a bounded search can stop where only the other sign leads downhill).
    """
    value = dev(theta)
    for i in np.flatnonzero(_active(theta, dev)):
        below = _below(dev, i)
        for sign in (1.0, -1.0):
            for h in (1e-3, 1e-2, 1e-1):
                trial = theta.copy()
                trial[below] *= sign
                trial[i] += h
                if dev(trial) < value - 1e-10 * max(abs(value), 1.0):
                    return int(i)
            if not below.size:
                break
    return None


def _below(dev: Deviance, i: int) -> np.ndarray:
    """The θ's below the diagonal element θ[i] in its column of T (lme4 orders each term's
    θ's column by column, diagonal first; off-diagonal θ's have no lower bound)."""
    end = i + 1
    while end < len(dev.lower) and dev.lower[end] != 0:
        end += 1
    return np.arange(i + 1, end)


def check(dev: Deviance, theta: np.ndarray) -> Check:
    """Is θ a verified local minimum of d (with the bounds θ_diag ≥ 0)?"""
    value = dev(theta)
    active = _active(theta, dev)
    free = ~active
    off = _off_bound(dev, theta)
    if off is not None:
        return Check(theta, value, np.inf, np.nan, False, f"the criterion improves off the bound of θ[{off}]")
    if not free.any():
        return Check(theta, value, 0.0, np.nan, True, "")
    g, H = _derivatives(dev, theta, free)
    eig = float(np.linalg.eigvalsh(H).min())
    if not eig > 1e-8 * max(np.abs(H).max(), 1.0):
        return Check(theta, value, np.inf, eig, False, f"the Hessian is not definite (eigenvalue {eig:.3g})")
    decrement = float(0.5 * g @ np.linalg.solve(H, g))
    ok = decrement < DECREMENT_TOL
    reason = "" if ok else f"a Newton step would raise the log-likelihood by {decrement / 2:.3g}"
    return Check(theta, value, decrement, eig, ok, reason)


def _derivatives(dev: Deviance, theta: np.ndarray, free: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The gradient and Hessian of d over the free θ's (analytic; the others held fixed)."""
    return deviance_gradient.gradient(dev, theta)[free], deviance_hessian.hessian(dev, theta)[np.ix_(free, free)]


def lbfgsb(dev: Deviance, start: np.ndarray) -> np.ndarray:
    """Bounded L-BFGS-B (θ_diag ≥ 0) on d from ``start``, with d's analytic gradient."""
    bounds = [(0.0 if lo == 0 else None, None) for lo in dev.lower]
    with np.errstate(all="ignore"):
        found = optimize.minimize(lambda t: deviance_gradient.value_and_gradient(dev, t), start, jac=True,
                                  method="L-BFGS-B", bounds=bounds, options=OPTIONS)
    return np.asarray(found.x, dtype=float)


def minimise(dev: Deviance, starts: list[np.ndarray]) -> np.ndarray:
    """The lowest d found by bounded L-BFGS-B from each start, then polished by Newton steps."""
    bounds = [(0.0 if lo == 0 else None, None) for lo in dev.lower]
    best = None
    for start in starts:
        x = lbfgsb(dev, start)
        if not check(dev, x).ok:
            x = min(x, _rescue(dev, x, bounds), key=dev)
        if best is None or dev(x) < dev(best):
            best = x
    return newton_polish(dev, best)


def _rescue(dev: Deviance, theta: np.ndarray, bounds: list) -> np.ndarray:
    """Search again where L-BFGS-B stalled: on a bound that is not a minimum, or on a flat
    ridge near one (d is even in each diagonal element of T, so its gradient vanishes at
    0). Diagonal elements near 0 are moved inwards, then Powell's derivative-free method
    (lme4 uses BOBYQA, also derivative-free) and L-BFGS-B take over."""
    start = theta.copy()
    small = (dev.lower == 0) & (start < 0.05)
    start[small] = 0.1
    with np.errstate(all="ignore"):
        powell = {"xtol": 1e-8, "ftol": 1e-13, "maxfev": 20000}
        found = optimize.minimize(dev, start, method="Powell", bounds=bounds, options=powell)
    return lbfgsb(dev, found.x)


def newton_polish(dev: Deviance, theta: np.ndarray, steps: int = 3) -> np.ndarray:
    """A few Newton steps over the free θ's, kept only while they lower d."""
    for _ in range(steps):
        free = ~_active(theta, dev)
        if not free.any():
            return theta
        g, H = _derivatives(dev, theta, free)
        if not np.linalg.eigvalsh(H).min() > 0:  # a Newton step would head for a saddle
            return theta
        step = np.linalg.solve(H, g)
        trial = theta.copy()
        trial[free] -= step
        trial = np.where(dev.lower == 0, np.maximum(trial, 0.0), trial)
        if not dev(trial) < dev(theta):
            return theta
        theta = trial
    return theta


def default_start(dev: Deviance) -> np.ndarray:
    """lme4's start: identity relative covariance factors."""
    return np.where(dev.lower == 0, 1.0, 0.0)


@dataclass(frozen=True)
class Attempt:
    """One optimizer's fit: statsmodels' result, d at its point, and the local polish."""

    optimizer: str
    result: Any
    messages: tuple[str, ...]
    deviance: float = np.nan
    polished: Check | None = None

    @property
    def verified(self) -> bool:
        """Its point is within ``GAP_TOL`` of a verified local maximum found from it."""
        return self.polished is not None and self.polished.ok and self.deviance - self.polished.deviance < GAP_TOL


def attempt(dev: Deviance, optimizer: str, result: Any, messages: tuple[str, ...]) -> Attempt:
    """Assess one optimizer's result: d at its θ, and the best point a local search finds."""
    try:
        theta = theta_of(result, dev)
        value = dev(theta)
        polished = check(dev, minimise(dev, [theta])) if np.isfinite(value) else None
    except np.linalg.LinAlgError:  # X not of full rank: the criterion is undefined
        value, polished = np.nan, None
    return Attempt(optimizer, result, messages, value, polished)


@dataclass(frozen=True)
class Settled:
    """The fit to report: statsmodels' results at the best θ and what the search found."""

    result: Any
    optimizer: str
    messages: tuple[str, ...]
    converged: bool
    message: str
    theta: np.ndarray
    note: str = ""  # which optimizer won and by how much the first fell short, if it did


def settle(lmm: Any, dev: Deviance, attempts: list[Attempt], reml: bool) -> Settled:
    """Keep the best point; if no optimizer's point was verified, search from more starts.

    Parameters
    ----------
    lmm : statsmodels MixedLM
        The model, to evaluate at the chosen θ.
    dev : Deviance
        Its profiled deviance.
    attempts : list of Attempt
        The optimizers' fits, in the order tried (at least one with a result).
    reml : bool
        Whether the criterion is REML.

    Returns
    -------
    Settled
        ``message`` is ``"converged"`` when the first optimizer's point was verified, else
        names the winner and by how much (log-likelihood units) the first fell short.
    """
    fitted = [a for a in attempts if a.polished is not None]
    candidates = [a.polished for a in fitted]
    if not any(a.verified for a in fitted):
        # The optimizers' points were searched from already: add lme4's start and a small one.
        candidates.append(check(dev, minimise(dev, [default_start(dev), 0.1 * default_start(dev)])))
    best = min(candidates, key=lambda c: c.deviance)
    winners = [a for a in fitted if a.deviance - best.deviance < GAP_TOL]
    winner = winners[0].optimizer if winners else "profiled-deviance search"
    messages = winners[0].messages if winners else (fitted[0].messages if fitted else ())
    first = attempts[0]
    if winners and winners[0] is first:
        note = ""
    elif first.polished is None:
        note = f"{winner}; {first.optimizer} failed"
    else:
        shortfall = (first.deviance - best.deviance) / 2
        note = f"{winner}; {first.optimizer} fell short by {shortfall:.3g} log-likelihood units"
    if not best.ok:
        message = f"not converged ({winner}): {best.reason}"
    else:
        message = f"converged ({note})" if note else "converged"
    return Settled(refit_at(lmm, best.theta, dev, reml), winner, messages, best.ok, message, best.theta, note)
