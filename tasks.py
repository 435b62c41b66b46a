#!/usr/bin/env python3
"""Build the book and run the tests, from nothing but Python >= 3.11.

    python3 tasks.py build    # create .venv, install pinned requirements, build _build/html
    python3 tasks.py test     # everything `build` does, then the full test suite

The virtual environment is (re)installed only when requirements.txt or pyproject.toml
change, and the book's execution cache means a rebuild without code changes executes
nothing.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
STAMP = VENV / "requirements.sha256"
BUILD = ROOT / "_build"


def run(*cmd: str | Path, **kwargs) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], cwd=ROOT, check=True, **kwargs)


def ensure_env() -> None:
    """Create .venv and install the pinned requirements and lmmsim, when they changed."""
    if sys.version_info < (3, 11):
        sys.exit(f"Python >= 3.11 is required, this is {sys.version.split()[0]}")
    wanted = hashlib.sha256(
        b"".join((ROOT / name).read_bytes() for name in ("requirements.txt", "pyproject.toml"))
    ).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == wanted and PYTHON.exists():
        return
    if not PYTHON.exists():
        print(f"creating {VENV}", flush=True)
        venv.create(VENV, with_pip=True)
    run(PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(PYTHON, "-m", "pip", "install", "--quiet", "-r", "requirements.txt")
    run(PYTHON, "-m", "pip", "install", "--quiet", "--no-deps", "-e", ".")
    STAMP.write_text(wanted + "\n")


def build() -> None:
    """Build the HTML site into _build/html; any warning or failing cell is an error."""
    ensure_env()
    run(BIN / "jupyter-book", "build", ".", "--warningiserror", "--nitpick", "--keep-going")
    print(f"site: {BUILD / 'html' / 'index.html'}")


def test() -> None:
    """Build (quick when cached), then run the whole test suite."""
    build()
    run(PYTHON, "-m", "pytest")


TASKS = {"build": build, "test": test}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in TASKS:
        sys.exit(f"usage: python3 tasks.py {{{'|'.join(TASKS)}}}")
    try:
        TASKS[sys.argv[1]]()
    except subprocess.CalledProcessError as err:
        sys.exit(err.returncode)
