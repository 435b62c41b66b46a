"""Sphinx extension: execute the book's notebooks in parallel before Sphinx reads them.

Loaded through ``sphinx.local_extensions`` in ``_config.yml``; active when myst-nb's execution mode
is ``cache``.

myst-nb executes the notebooks one after the other while Sphinx reads the documents.  Just before
reading (``env-before-read-docs``), this extension hands the MyST notebooks Sphinx is about to read
to jupyter-cache's ``local-parallel`` executor, which runs the ones without a cached result over a
pool of one process per core and caches them.  myst-nb then finds every notebook in the cache:

* nothing new happens when nothing changed (jupyter-cache executes only notebooks whose code has no
  cached result, and Sphinx passes only the documents it must read again);
* a notebook runs in the same environment either way: a separate kernel with the working directory
  of the chapter, the environment of the build (one BLAS thread, the book's ``IPYTHONDIR`` set by
  ``lmmsim_book`` at ``config-inited``), myst-nb's timeout and ``allow_errors``; so its outputs do
  not depend on which worker ran it;
* a failing notebook fails the build: the executor logs its traceback and the build stops before
  reading.
"""

from __future__ import annotations

import logging as stdlib_logging
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging

logger = logging.getLogger(__name__)

MYST_NOTEBOOK = {"type": "plugin", "name": "myst_nb_md"}  # the reader myst-nb registers for .md


def notebook_paths(app: Sphinx, docnames: list[str]) -> list[str]:
    """Sources of the documents that are MyST notebooks (front matter with a kernelspec)."""
    from myst_nb.core.read import is_myst_markdown_notebook

    paths = []
    for docname in docnames:
        path = Path(app.env.doc2path(docname))
        if path.suffix == ".md" and is_myst_markdown_notebook(path.read_text(encoding="utf-8")):
            paths.append(str(path.absolute()))
    return paths


def execute_in_parallel(app: Sphinx, env, docnames: list[str]) -> None:
    """Run the notebooks among ``docnames`` that have no cached result, over all cores."""
    if app.config.nb_execution_mode != "cache":
        return
    paths = notebook_paths(app, docnames)
    if not paths:
        return
    from jupyter_cache import get_cache
    from jupyter_cache.executors import load_executor

    cache = get_cache(app.config.nb_execution_cache_path or str(Path(app.outdir).parent / ".jupyter_cache"))
    for path in paths:
        cache.add_nb_to_project(path, read_data=MYST_NOTEBOOK)
    # at INFO, the executor's pool reports each notebook it starts and finishes (and no debug noise)
    progress = stdlib_logging.getLogger("jupyter_cache.executors")
    progress.setLevel(stdlib_logging.INFO)
    result = load_executor("local-parallel", cache=cache, logger=progress).run_and_cache(
        filter_uris=paths,
        timeout=app.config.nb_execution_timeout,
        allow_errors=app.config.nb_execution_allow_errors,
    )
    failed = result.excepted + result.errored
    if failed:  # the executor has logged each failure with its traceback
        raise ExtensionError(f"{len(failed)} notebook(s) failed to execute (tracebacks above): {', '.join(failed)}")
    if result.succeeded:
        logger.info("executed %d notebook(s) in parallel", len(result.succeeded))


def setup(app: Sphinx) -> dict:
    app.connect("env-before-read-docs", execute_in_parallel)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
