#!/usr/bin/env python3
"""Build the book and run the tests, from Python >= 3.11 and Node.js (which typesets the math).

    python3 tasks.py build     # create .venv, install pinned requirements, build _build/html
    python3 tasks.py student   # build the student edition (no solutions) into _build/student/html
    python3 tasks.py test      # build both editions, then the full test suite (unit tests, every
                               # chapter re-executed with nbval, every page in headless Chromium)
    python3 tasks.py format    # format the chapters' code cells with ruff (book/ruff.toml: 88 columns)

The virtual environment is (re)installed only when requirements.txt or pyproject.toml change.
Notebooks execute through the jupyter-cache in _build/.jupyter_cache, so a rebuild without changes
executes nothing; the notebooks that must run execute in parallel, one per core, before Sphinx
reads them (jupyter-cache's local-parallel executor, wired in by _ext/parallel_execution.py). The
cache keys on a notebook's code only, so it is cleared whenever the lmmsim package's files, the
pinned requirements or the kernels' configuration (_ext/ipython_kernel_config.py) change
(fingerprint in _build/.code-fingerprint): the site never shows numbers from old code. Both
editions share the cache.

The tests run in one pytest invocation on 2 workers (LMMSIM_TEST_WORKERS to change; 0 = serial);
screenshots of every page land in _build/screenshots/. The browser tests use /usr/bin/chromium
(LMMSIM_CHROMIUM to point elsewhere); `test` installs Debian's chromium when it is missing and this
runs as root with apt-get, and otherwise stops with the command to install it. The build needs
Node.js (`node`, or LMMSIM_NODE) to typeset the math with MathJax at build time; Debian's nodejs is
installed the same way when it is missing.

The build is strict: any Sphinx warning is an error (-W), references are nit-picky (-n), a cell that
raises fails the build (unless tagged raises-exception) and so does any stderr output of a cell.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
STAMP = VENV / "requirements.sha256"
BUILD = ROOT / "_build"
CACHE = BUILD / ".jupyter_cache"
FINGERPRINT = BUILD / ".code-fingerprint"
STUDENT = BUILD / "student"
CHROMIUM = os.environ.get("LMMSIM_CHROMIUM", "/usr/bin/chromium")
NODE = os.environ.get("LMMSIM_NODE", "node")
# One BLAS/OpenMP thread in the build's and nbval's kernels: multithreaded linear algebra may change
# the last bits of a result from run to run, and nbval compares the re-executed outputs exactly.
# On this 2-core machine (2 test workers) it is also faster. Set the variables to override.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")


def run(*cmd: str | Path, **kwargs) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], cwd=ROOT, check=True, **kwargs)


def ensure_env() -> None:
    """Create .venv and install the pinned requirements and lmmsim, when they changed."""
    if sys.version_info < (3, 11):  # noqa: UP036 - tasks.py runs under any python3, before the venv exists
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


def code_fingerprint() -> str:
    """Hash of everything a notebook's numbers depend on besides its own source."""
    digest = hashlib.sha256()
    files = [
        p for p in (ROOT / "lmmsim").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and not p.name.startswith(".")
    ]
    # the kernels' IPython configuration (figure format) changes every figure
    files += [ROOT / "requirements.txt", ROOT / "pyproject.toml", ROOT / "_ext" / "ipython_kernel_config.py"]
    for path in sorted(files):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def invalidate_stale_outputs() -> None:
    """Clear the execution cache (and the Sphinx environments) when lmmsim or the pins changed."""
    wanted = code_fingerprint()
    if FINGERPRINT.exists() and FINGERPRINT.read_text().strip() == wanted:
        return
    stale = [CACHE, BUILD / ".doctrees", STUDENT / ".doctrees"]
    if any(path.exists() for path in stale):
        print("lmmsim/ or the requirements changed: clearing the execution cache", flush=True)
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    BUILD.mkdir(exist_ok=True)
    FINGERPRINT.write_text(wanted + "\n")


def sphinx(edition: str) -> None:
    """Build one edition with jupyter-book's Sphinx driver, in the project's Python (.venv)."""
    ensure_env()
    ensure_node()
    invalidate_stale_outputs()
    start = time.perf_counter()
    run(PYTHON, Path(__file__).name, "_sphinx", edition)
    print(f"{edition} edition built in {time.perf_counter() - start:.0f} s", flush=True)


def _sphinx(edition: str) -> None:
    """(runs inside .venv) The equivalent of `jupyter-book build . -W -n --keep-going`."""
    from jupyter_book.sphinx import build_sphinx

    overrides = {
        "external_toc_path": (ROOT / "_toc.yml").as_posix(),
        "latex_individualpages": False,
        "nitpicky": True,
        # one execution cache for both editions (myst-nb's default is next to each output folder)
        "nb_execution_cache_path": CACHE.as_posix(),
    }
    if edition == "student":
        output = STUDENT / "html"
        overrides["student_edition"] = True
    else:
        output = BUILD / "html"
    result = build_sphinx(
        ROOT,
        output,
        use_external_toc=True,
        noconfig=True,
        path_config=(ROOT / "_config.yml").as_posix(),
        confoverrides=overrides,
        builder="html",
        warningiserror=True,
        keep_going=True,
    )
    if isinstance(result, Exception):
        raise SystemExit(f"The {edition} build failed: {result!r}")
    if result:
        raise SystemExit(f"The {edition} build failed (exit code {result}); see the messages above.")
    print(f"site: {output / 'index.html'}", flush=True)


def build() -> None:
    """Build the HTML site into _build/html; any warning or failing cell is an error."""
    sphinx("main")


def student() -> None:
    """Build the student edition (exercise solutions left out) into _build/student/html."""
    sphinx("student")


def apt_install(package: str) -> bool:
    """Install a Debian package when this runs as root with apt-get; False when it cannot try."""
    apt = shutil.which("apt-get")
    if not (apt and hasattr(os, "geteuid") and os.geteuid() == 0):
        return False
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(apt, "update", env=env)
    run(apt, "install", "-y", package, env=env)
    return True


def ensure_chromium() -> None:
    """The browser tests drive Debian's chromium; install it when we can, else say how."""
    if Path(CHROMIUM).exists():
        return
    if CHROMIUM == "/usr/bin/chromium" and apt_install("chromium") and Path(CHROMIUM).exists():
        return
    sys.exit(
        f"The browser tests need Chromium at {CHROMIUM}, which is missing.\n"
        "Install it (Debian/Ubuntu): sudo apt-get update && sudo apt-get install -y chromium\n"
        "or point LMMSIM_CHROMIUM at a Chromium/Chrome binary, then run `python3 tasks.py test` again."
    )


def ensure_node() -> None:
    """The build typesets the math with MathJax in Node.js (_ext/lmmsim_weight.py); install Debian's
    nodejs when we can, else say how."""
    if shutil.which(NODE):
        return
    if NODE == "node" and apt_install("nodejs") and shutil.which(NODE):
        return
    sys.exit(
        f"The build needs Node.js ({NODE!r} not found) to typeset the book's math with MathJax.\n"
        "Install it (Debian/Ubuntu): sudo apt-get update && sudo apt-get install -y nodejs\n"
        "or point LMMSIM_NODE at a node binary, then run the build again."
    )


def test() -> None:
    """Build both editions (quick when cached), then run the whole test suite in one pytest run."""
    build()
    student()
    ensure_chromium()
    shutil.rmtree(BUILD / "screenshots", ignore_errors=True)  # the browser tests save fresh ones
    (BUILD / "page-weights.tsv").unlink(missing_ok=True)  # and measure every page again
    run(PYTHON, "-m", "pytest", *pytest_args(), env=dict(os.environ, LMMSIM_CHROMIUM=CHROMIUM))


def pytest_args() -> list[str]:
    """Unit, site and student tests plus nbval over the executed chapters of the table of contents."""
    listing = subprocess.run(
        [str(PYTHON), str(ROOT / "tests" / "site_toc.py"), "--executed-notebooks"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout.split()
    return [
        "tests",
        *listing,
        "--nbval",
        "--nbval-current-env",
        "--nbval-sanitize-with", "tests/nbval_sanitize.cfg",
        "-p", "no:cacheprovider",
        "-n", os.environ.get("LMMSIM_TEST_WORKERS", "2"),
        "--dist", "loadfile",  # all cells of one notebook on one worker, in order
    ]


CODE_CELL = re.compile(
    r"^(?P<open>```\{code-cell\}[^\n]*\n)(?P<options>(?::[^\n]*\n)*)(?P<code>.*?)(?P<close>^```[ \t]*$)", re.S | re.M
)


def format_cell(code: str) -> str:
    """One code cell through `ruff format` (the cell unchanged if ruff cannot parse it, e.g. magics)."""
    result = subprocess.run([str(BIN / "ruff"), "format", "--config", str(ROOT / "book" / "ruff.toml"), "-"],
                            input=code, capture_output=True, text=True)
    return result.stdout if result.returncode == 0 and code.strip() else code


def format_chapters() -> None:
    """Format the code cells of every chapter in book/ with ruff; the prose is not touched."""
    ensure_env()
    for path in sorted((ROOT / "book").glob("*.md")):
        text = path.read_text(encoding="utf-8")
        new = CODE_CELL.sub(lambda m: m["open"] + m["options"] + format_cell(m["code"]) + m["close"], text)
        if new != text:
            path.write_text(new, encoding="utf-8")
            print(f"formatted {path.relative_to(ROOT)}", flush=True)


TASKS = {"build": build, "student": student, "test": test, "format": format_chapters}

if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "_sphinx":
        _sphinx(sys.argv[2])
        sys.exit(0)
    if len(sys.argv) != 2 or sys.argv[1] not in TASKS:
        sys.exit(f"usage: python3 tasks.py {{{'|'.join(TASKS)}}}")
    try:
        TASKS[sys.argv[1]]()
    except subprocess.CalledProcessError as err:
        sys.exit(err.returncode)
