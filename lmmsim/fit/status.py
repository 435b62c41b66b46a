"""How a fit ended, in one type for every fitter, and the warnings fitters raise.

A :class:`FitStatus` records whether the optimizer converged, whether the estimate lies
on the boundary of the parameter space, whether the fit failed outright, and the
warnings raised; :attr:`FitStatus.code` is one of :data:`lmmsim.schema.STATUSES`.
:func:`status_codes` applies the same rule to arrays of fits (the batch fitters).

>>> FitStatus(True).code, FitStatus(True, boundary=True).code, FitStatus(False).code
('ok', 'boundary', 'not_converged')
>>> FitStatus(False, failed=True, message="failed: singular matrix").code
'failed'
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from lmmsim.schema import STATUSES

# lme4's isSingular() (lme4 1.1-31, R/utilities.R): a fit is singular when a θ whose lower
# bound is 0 -- a diagonal element of the relative covariance factor T, the SD of a
# random effect over σ_ε given the effects before it in its term -- is below this.
SINGULAR_TOL = 1e-4


def status_codes(converged, boundary, failed=False) -> np.ndarray:
    """The status code of each fit: ``failed``, else ``not_converged``, else ``boundary``,
    else ``ok`` (arrays broadcast; the result has dtype object)."""
    flags = (np.asarray(v, dtype=bool) for v in (converged, boundary, failed))
    converged, boundary, failed = np.broadcast_arrays(*flags)
    return np.select([failed, ~converged, boundary], list(STATUSES[:0:-1]), STATUSES[0]).astype(object)


def singular_mask(theta, lower, tol: float = SINGULAR_TOL) -> np.ndarray:
    """Which θ's are on the boundary by lme4's rule: ``lower == 0`` and ``theta < tol``.

    ``theta`` may hold many fits, shape (..., n_theta); ``lower`` is lme4's ``getME(m,
    "lower")``, shape (n_theta,). A fit is singular when any entry of its row is true.

    >>> singular_mask([[1.2, -0.3, 5e-5], [1.2, -0.3, 2e-4]], [0, -np.inf, 0]).any(axis=-1)
    array([ True, False])
    """
    return (np.asarray(lower) == 0) & (np.asarray(theta, dtype=float) < tol)


def singular_terms(terms, theta) -> list[str]:
    """The variance parameters named by each θ that :func:`singular_mask` flags.

    ``terms`` are the random-effect terms in θ order (``lmmsim.inference.deviance.Term``:
    ``name``, ``columns``, ``correlated``, θ's lower triangle column by column). A zero
    first diagonal element of T names ``sd(first|group)``; a later one, the SD of that
    column when it is (nearly) zero too, else its correlations with the columns before it,
    which are then jointly ±1 (for two columns: one correlation of ±1).

    >>> from lmmsim.inference.deviance import Term
    >>> ri_slope = [Term("g", ("Intercept", "x"), True)]
    >>> singular_terms(ri_slope, [1.0, -0.5, 0.0]), singular_terms(ri_slope, [1.0, 0.0, 0.0])
    (['cor(Intercept,x|g)'], ['sd(x|g)'])
    """
    from lmmsim.inference.deviance import template  # scipy: imported when something is fitted

    theta = np.asarray(theta, dtype=float)
    names, start = [], 0
    for term in terms:
        T = template(term, theta[start:start + term.n_theta])
        start += term.n_theta
        for j in np.flatnonzero(np.diag(T) < SINGULAR_TOL):
            if j == 0 or np.linalg.norm(T[j]) < SINGULAR_TOL:  # T[j] @ T[j] = (SD_j / σ_ε)²
                names.append(f"sd({term.columns[j]}|{term.name})")
            else:
                names += [f"cor({a},{term.columns[j]}|{term.name})" for a in term.columns[:j]]
    return names


def worst(*codes: str) -> str:
    """The worst of several status codes."""
    return max(codes, key=STATUSES.index)


@dataclass(frozen=True)
class FitStatus:
    """How a fit ended.

    Attributes
    ----------
    converged : bool
        The fit is at a verified local maximum of the criterion (see
        ``lmmsim.fit.verify``): gradient negligible, Hessian of the profiled criterion
        negative definite off the bounds, and no better point found from the other
        optimizers' points and several starts.
    boundary : bool
        A variance component is (numerically) zero or a correlation is ±1: the fit is
        singular and its variance-component inference is unreliable. Every fitter uses
        lme4's rule, a diagonal element of θ below ``SINGULAR_TOL`` (``singular_mask``).
    message : str
        One line for people: ``"converged"``; ``"converged (powell; lbfgs fell short by 2.1
        log-likelihood units)"`` when the first optimizer's point was not the maximum;
        ``"boundary (singular fit): ..."``; or what went wrong.
    warnings : tuple of str
        Every distinct warning raised while fitting.
    failed : bool
        No usable estimates (the fit raised, or stopped where its estimates are wrong).
    """

    converged: bool
    boundary: bool = False
    message: str = "converged"
    warnings: tuple[str, ...] = ()
    failed: bool = False

    @property
    def ok(self) -> bool:
        """Converged and not on the boundary."""
        return self.converged and not self.boundary and not self.failed

    @property
    def code(self) -> str:
        """One of :data:`lmmsim.schema.STATUSES`."""
        return str(status_codes(self.converged, self.boundary, self.failed)[()])

    def as_failed(self, message: str) -> FitStatus:
        """This status marked failed, with ``message``."""
        return replace(self, failed=True, message=message)

    def __str__(self) -> str:
        return self.message


# ``warnings.catch_warnings`` swaps process-wide state (the filters and ``showwarning``),
# so two threads capturing at once lose or steal each other's warnings -- and the warnings
# decide statsmodels' optimizer and the fit's status. Every capture holds this lock (it
# is re-entrant: captures nest), so fits in threads take turns and record exactly what a
# serial run records.
_CAPTURE = threading.RLock()


@contextlib.contextmanager
def captured_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """Record every warning raised in the block (none is shown); yields the list.

    Thread-safe: the block holds a process-wide lock, so blocks in different threads run
    one at a time (fitting in threads gives the results of fitting serially).
    """
    with _CAPTURE, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


def exclusive() -> threading.RLock:
    """The lock :func:`captured_warnings` holds: hold it around code that raises warnings
    (statsmodels) so that they cannot land in another thread's capture."""
    return _CAPTURE


@contextlib.contextmanager
def ignored_warnings() -> Iterator[None]:
    """Ignore every warning raised in the block (thread-safe like :func:`captured_warnings`)."""
    with _CAPTURE, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def describe_warnings(caught, where: str = "") -> str:
    """Distinct warnings as one line: ``Category<where>: message; ...``."""
    return "; ".join(dict.fromkeys(f"{w.category.__name__}{where}: {w.message}" for w in caught))


def warning_messages(caught) -> tuple[str, ...]:
    """The distinct messages of recorded warnings, stripped."""
    return tuple(dict.fromkeys(str(w.message).strip() for w in caught))


def warns_convergence(messages: tuple[str, ...]) -> bool:
    """statsmodels warned that the optimizer did not converge."""
    return any("converge" in m.lower() for m in messages)


def warns_hessian(messages: tuple[str, ...]) -> bool:
    """statsmodels warned that the Hessian is not negative definite at the estimate (its
    wording: "not positive definite"): the point is not a strict local maximum."""
    return any("not positive definite" in m.lower() for m in messages)
