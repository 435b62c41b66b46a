"""Finite-difference derivatives of smooth functions of the variance parameters.

Central differences with one Richardson extrapolation (error O(h⁴)), as numDeriv (which
lmerTest uses) does with more steps. The step is relative to |x|, with a floor of
``FLOOR`` times the parameter's natural scale (given by the caller, 1 by default) for
parameters near 0 (an off-diagonal element of θ, a variance at its bound): a step far below
that scale would drown the difference in rounding error, one far above it would step
over the function's curvature (a slope's SD in hours rather than weeks).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

FLOOR = 1.0


def _steps(x: np.ndarray, rel: float, scale: np.ndarray | None) -> np.ndarray:
    return rel * np.maximum(np.abs(x), FLOOR * (1.0 if scale is None else scale))


def _central(f: Callable, x: np.ndarray, h: np.ndarray) -> list:
    return [(f(x + h[i] * e) - f(x - h[i] * e)) / (2 * h[i]) for i, e in enumerate(np.eye(len(x)))]


def jacobian(f: Callable, x: np.ndarray, rel: float = 1e-3, scale: np.ndarray | None = None) -> list:
    """∂f/∂x_i for each i (f may return a scalar or an array)."""
    coarse = _central(f, x, _steps(x, rel, scale))
    fine = _central(f, x, _steps(x, rel / 2, scale))
    return [(4 * b - a) / 3 for a, b in zip(coarse, fine)]


def gradient(f: Callable, x: np.ndarray, rel: float = 1e-3, scale: np.ndarray | None = None) -> np.ndarray:
    """Gradient of a scalar function."""
    return np.array(jacobian(f, x, rel, scale), dtype=float)


def _hessian(f: Callable, x: np.ndarray, h: np.ndarray) -> np.ndarray:
    k = len(x)
    E = np.eye(k)
    H = np.empty((k, k))
    f0 = f(x)
    for i in range(k):
        for j in range(i, k):
            if i == j:
                H[i, i] = (f(x + h[i] * E[i]) - 2 * f0 + f(x - h[i] * E[i])) / h[i] ** 2
            else:
                a, b = h[i] * E[i], h[j] * E[j]
                H[i, j] = H[j, i] = (f(x + a + b) - f(x + a - b) - f(x - a + b) + f(x - a - b)) / (4 * h[i] * h[j])
    return H


def hessian(f: Callable, x: np.ndarray, rel: float = 2e-3, scale: np.ndarray | None = None) -> np.ndarray:
    """Hessian of a scalar function."""
    x = np.asarray(x, dtype=float)
    return (4 * _hessian(f, x, _steps(x, rel / 2, scale)) - _hessian(f, x, _steps(x, rel, scale))) / 3
