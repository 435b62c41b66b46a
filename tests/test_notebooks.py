"""The executed chapters that nbval re-runs, and a guard that nbval really runs them all.

`python3 tasks.py test` passes every executed notebook of the table of contents
(_build/jupyter_execute/<doc>.ipynb) to pytest with `--nbval --nbval-current-env`: each chapter is
re-executed in the project's Python and its text outputs must match the build's exactly (strict mode;
PNG images are not compared; see tests/nbval_sanitize.cfg for the only sanitizers; cells whose first
line is `# NBVAL_IGNORE_OUTPUT` run but are not compared). These tests make sure that set is complete
and current.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from site_toc import ROOT, pages  # noqa: E402

NOTEBOOKS = [page for page in pages() if page.is_notebook]


def code_cells(notebook) -> list[str]:
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


@pytest.mark.parametrize("page", NOTEBOOKS, ids=[p.docname for p in NOTEBOOKS])
def test_executed_notebook_is_current(page):
    """The executed notebook exists and has the source's code cells; no error or stderr outputs."""
    import jupytext
    import nbformat

    if not page.executed.is_file():
        pytest.fail(f"{page.executed.relative_to(ROOT)} missing: run `python3 tasks.py build`")
    executed = nbformat.read(page.executed, as_version=4)
    assert code_cells(executed) == code_cells(jupytext.read(page.source)), (
        f"{page.executed.relative_to(ROOT)} is stale: run `python3 tasks.py build`"
    )
    for cell in executed.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if out.output_type == "error":
                assert "raises-exception" in cell.metadata.get("tags", []), f"{page.docname}: error in {cell.source[:80]!r}"
            assert not (out.output_type == "stream" and out.name == "stderr"), (
                f"{page.docname}: stderr output in {cell.source[:80]!r}: {out.text[:200]!r}"
            )


def test_nbval_runs_every_chapter(request):
    """In the full suite every executed chapter is collected by nbval (strict mode)."""
    config = request.config
    if not config.getoption("nbval", default=False):
        message = "nbval is not enabled: the full suite is `python3 tasks.py test`"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    assert not config.getoption("nbval_lax"), "nbval must run in strict mode (--nbval, not --nbval-lax)"
    assert config.getoption("nbval_current_env"), "nbval must use the project's Python (--nbval-current-env)"
    collected = {Path(str(item.fspath)).resolve() for item in request.session.items if str(item.fspath).endswith(".ipynb")}
    missing = [page.docname for page in NOTEBOOKS if page.executed.resolve() not in collected]
    assert not missing, f"nbval did not collect: {missing}"
