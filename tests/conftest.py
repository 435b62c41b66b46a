"""Shared helpers for the lmmsim test suite.

Statistical tests use fixed seeds and tolerances derived from standard errors: a check
``abs(estimate - truth) < Z * se`` with Z = 4 fails by chance with probability about
6e-5 per check, so a failure means the code is wrong, not that the seed was unlucky.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lmmsim import Design, Factor, Indicator, RandomEffect

ROOT = Path(__file__).resolve().parents[1]
PYTHON = Path(sys.executable)
# The console script installed next to the interpreter (`pip install -e .`).
LMMSIM_SCRIPT = PYTHON.parent / "lmmsim"

Z = 4.0  # tolerance in standard errors


def differences(f, x: np.ndarray, rel: float = 1e-4) -> np.ndarray:
    """∂f/∂x_i for each i (f scalar or array valued), stacked on the first axis: central
    differences with steps rel·max(|x_i|, 1) and one Richardson extrapolation (error
    O(step⁴)), the reference analytic derivatives are tested against."""
    x = np.asarray(x, dtype=float)

    def central(h: np.ndarray) -> np.ndarray:
        return np.array([(np.asarray(f(x + h[i] * e)) - np.asarray(f(x - h[i] * e))) / (2 * h[i])
                         for i, e in enumerate(np.eye(x.size))])

    h = rel * np.maximum(np.abs(x), 1.0)
    return (4 * central(h / 2) - central(h)) / 3


def crossed_design() -> Design:
    """Subjects crossed with items (reaction times), condition assigned to items."""
    return Design(
        factors=(Factor("subject", 30), Factor("item", 20)),
        covariates=(Indicator("condition", level="item"),),
        formula="condition",
        beta={"Intercept": 400, "condition": 20},
        random=(RandomEffect("subject", {"Intercept": 50}), RandomEffect("item", {"Intercept": 30})),
        sigma_e=80,
        outcome="rt",
    )


def sd_se(sigma: float, n: int) -> float:
    """SE of the sample SD of n normal draws with SD sigma: σ / √(2(n − 1))."""
    return sigma / np.sqrt(2 * (n - 1))


def corr_se(rho: float, n: int) -> float:
    """SE of the sample correlation of n bivariate-normal pairs: (1 − ρ²) / √(n − 1)."""
    return (1 - rho**2) / np.sqrt(n - 1)


def run_cli(args: list[str], cwd: Path, script: bool = False, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the command line in a fresh process: ``python -m lmmsim`` or the console script."""
    cmd = [str(LMMSIM_SCRIPT)] if script else [str(PYTHON), "-m", "lmmsim"]
    env = {**os.environ, "PYTHONHASHSEED": "random"}
    return subprocess.run(cmd + list(args), cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def start_cli(args: list[str], cwd: Path) -> subprocess.Popen:
    """Start ``python -m lmmsim`` without waiting (to run several processes at once)."""
    env = {**os.environ, "PYTHONHASHSEED": "random"}
    return subprocess.Popen(
        [str(PYTHON), "-m", "lmmsim", *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_default_sigint if os.name == "posix" else None, start_new_session=True,
    )


def _default_sigint() -> None:
    # A suite started in the background (`cmd &`, nohup, some CI runners) ignores SIGINT, the child
    # inherits that and Python then never raises KeyboardInterrupt: the Ctrl-C tests would wait forever.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def kill_cli(proc: subprocess.Popen) -> None:
    """Kill a process from :func:`start_cli` with every worker it started (its own session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, AttributeError):  # gone already; or not POSIX
        proc.kill()


def assert_one_line_error(stderr: str) -> str:
    """A CLI error: exactly one line on stderr, no traceback. Returns the line."""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert lines[0].startswith("lmmsim: error: "), stderr
    return lines[0]


def one_way_design(n_groups: int = 30, m: int = 5, sigma_u: float = 2.0, sigma_e: float = 3.0, beta0: float = 1.0) -> Design:
    """Balanced random-intercept design: y_ij = β0 + u_i + ε_ij, groups g, m obs each."""
    return Design(
        factors=(Factor("g", n_groups), Factor("obs", m, within="g")),
        formula="1",
        beta={"Intercept": beta0},
        random=(RandomEffect("g", {"Intercept": sigma_u}),),
        sigma_e=sigma_e,
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty folder to run the CLI in."""
    folder = tmp_path / "work"
    folder.mkdir()
    return folder
