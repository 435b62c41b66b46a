"""Sphinx extension for the lmmsim book: an offline site and a student edition.

Loaded through ``sphinx.local_extensions`` in ``_config.yml``.

Offline MathJax
    MathJax 3 comes from the PyPI package ``django-static-mathjax`` (pinned in requirements.txt;
    MathJax 3.2.2, Apache-2.0, the licence is copied next to the files), so no CDN is contacted and
    nothing is vendored into the repository. Sphinx's page template loads MathJax from
    ``mathjax_path`` (``_config.yml``: ``mathjax/startup.js``) with the components in
    ``MATHJAX_LOAD`` (TeX input, CHTML output and the assistive MathML that screen readers read);
    ``_ext/lmmsim_weight.py`` then typesets each such page at build time with these very files and
    options and removes the scripts, so the site serves only MathJax's CHTML fonts (copied into
    ``_static/mathjax/``).

No launch widgets
    jupyter-book always loads sphinx-thebe, which puts a CDN address for thebe (and its script) into
    every page even with launch buttons off; those script and style entries are dropped.

Notebook downloads
    sphinx-book-theme offers the executed ``.ipynb`` of a MyST notebook only when a launch service is
    configured; this extension copies it into ``_sources/`` and offers it in the download menu anyway.

Executed notebooks with outputs
    In cache mode myst-nb 1.4 writes ``_build/jupyter_execute/<doc>.ipynb`` *without* outputs when the
    notebook comes from the cache (it merges the outputs into a copy), and without the glue outputs
    when it has just executed it. nbval and the ``.ipynb`` download need the notebook exactly as the
    kernel produced it, so the file is rewritten with the cached outputs.

Reader's site (accessibility and page weight; see issue 12)
    * Figures get their caption as ``alt`` text (docutils otherwise writes the file path).
    * sphinx-exercise gives every exercise and solution body the same id (``exercise-content``,
      ``solution-content``); they are numbered (a class keeps the name).
    * Navigation drawer: ``_ext/static/lmmsim-nav.js`` removes the hidden duplicate sidebar toggles
      before the themes bind the first ``.primary-toggle`` (pydata-sphinx-theme issue 2451).
    * fontawesome.js (1.5 MB, swaps icons for SVGs) is replaced by a stub: the theme's CSS already
      draws the same icons with the Font Awesome webfont.
    * MathJax is loaded only on pages that have math (and there typeset at build time, see
      ``_ext/lmmsim_weight.py``), sphinx-design's assets only where used, and the search index
      only on the search page (``_ext/templates/layout.html``).
    * ``index.html`` is a small page with a title and a link, not a bare redirect; a favicon.
    * The Sphinx tag ``student_edition`` is set in the student edition (for ``{only}`` blocks).

Student edition (``student_edition = True``, set by ``python3 tasks.py student``)
    Every exercise solution is removed from the doctree (so from the HTML *and* the search index),
    and from the downloadable page sources in ``_sources/`` (.md and .ipynb), so nothing leaks.
    sphinx-exercise's own ``hide_solutions`` option is not used: in sphinx-exercise 1.2.1 it drops
    only the ``solution-start`` marker of a *gated* solution, so the solution's text and code cells
    stay in the page and the orphaned end marker crashes the HTML writer ("departing unknown node
    type: solution_end_node", checked on this book).  Setting it is therefore reported as a warning
    (an error under -W).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
from importlib import metadata
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.transforms import SphinxTransform
from sphinx.util import logging

logger = logging.getLogger(__name__)

MATHJAX_PATH = "mathjax/startup.js"
MATHJAX_DIST = "django-static-mathjax"
MATHJAX_LOAD = ["input/tex", "output/chtml", "a11y/assistive-mml"]  # core is loaded as their dependency
# Parts of MathJax's es5/ tree the site serves: the CHTML fonts of the math typeset at build time.
MATHJAX_PARTS = ("output/chtml/fonts/woff-v2",)


# ------------------------------------------------------------------------------- kernel configuration
KERNEL_CONFIG = Path(__file__).with_name("ipython_kernel_config.py")


def configure_kernels(app: Sphinx, config) -> None:
    """Point the chapters' kernels at the book's IPython configuration (retina figures).

    The kernels inherit this process's environment, so ``IPYTHONDIR`` chooses their profile; the
    profile lives in the build directory, not in the reader's home.
    """
    profile = Path(app.outdir).parent / ".ipython" / "profile_default"
    profile.mkdir(parents=True, exist_ok=True)
    shutil.copy2(KERNEL_CONFIG, profile / "ipython_kernel_config.py")
    os.environ["IPYTHONDIR"] = str(profile.parent)


# --------------------------------------------------------------------------------------- MathJax
def mathjax_source() -> Path:
    import mathjax  # provided by django-static-mathjax

    root = Path(mathjax.__file__).resolve().parent / "static" / "mathjax"
    if not (root / "es5" / "startup.js").is_file():
        raise FileNotFoundError(f"MathJax files not found under {root}")
    return root


def check_mathjax_config(app: Sphinx, config) -> None:
    if config.mathjax_path != MATHJAX_PATH:
        logger.warning(
            "mathjax_path is %r; the offline site needs %r (served from _static/)",
            config.mathjax_path,
            MATHJAX_PATH,
            type="lmmsim_book",
            subtype="mathjax",
        )
    # The components MathJax's startup loads (myst-parser adds its own options to this dict later).
    config.mathjax3_config = {**(config.mathjax3_config or {}), "loader": {"load": MATHJAX_LOAD}}
    if config.student_edition and config.html_title and "student edition" not in config.html_title:
        config.html_title = f"{config.html_title} (student edition)"
    if getattr(config, "hide_solutions", False):
        logger.warning(
            "hide_solutions breaks on gated solutions (sphinx-exercise 1.2.1); "
            "use student_edition = True (python3 tasks.py student) instead",
            type="lmmsim_book",
            subtype="solutions",
        )


def copy_mathjax(app: Sphinx, exc: Exception | None) -> None:
    if app.builder.format != "html":
        return
    src = mathjax_source()
    dest = Path(app.outdir) / "_static" / "mathjax"
    version = metadata.version(MATHJAX_DIST)
    stamp = dest / "PROVENANCE.txt"
    provenance = (
        f"MathJax 3 (es5 build) from the PyPI package {MATHJAX_DIST}=={version}.\n"
        "Licence: Apache License 2.0 (see LICENSE). Copied by _ext/lmmsim_book.py.\n"
        f"Parts: {', '.join(MATHJAX_PARTS)}\n"
    )
    if stamp.is_file() and stamp.read_text() == provenance:
        return
    shutil.rmtree(dest, ignore_errors=True)
    for part in MATHJAX_PARTS:
        source, target = src / "es5" / part, dest / part
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
    shutil.copy2(src / "LICENSE", dest / "LICENSE")
    stamp.write_text(provenance)


# ---------------------------------------------------------------------------------- reader's site
STATIC = Path(__file__).with_name("static")
TEMPLATES = Path(__file__).with_name("templates")  # layout.html: no search index on every page
_TEX_SYMBOLS = {
    r"\sigma": "σ", r"\tau": "τ", r"\beta": "β", r"\rho": "ρ", r"\mu": "μ", r"\alpha": "α",
    r"\theta": "θ", r"\epsilon": "ε", r"\varepsilon": "ε", r"\lambda": "λ", r"\chi": "χ",
    r"\times": "×", r"\le": "≤", r"\ge": "≥", r"\approx": "≈", r"\neq": "≠", r"\pm": "±",
}


def plain_math(tex: str) -> str:
    """A TeX fragment as plain text for alt attributes: ``\\hat\\sigma_u^2`` -> ``σ_u^2``."""
    for macro, symbol in _TEX_SYMBOLS.items():
        tex = re.sub(re.escape(macro) + r"(?![A-Za-z])", symbol, tex)
    tex = re.sub(r"\\(?:hat|bar|tilde|mathrm|text|operatorname|mathbf|boldsymbol|left|right|,|;|!)", "", tex)
    return re.sub(r"[{}]|\\(?=[A-Za-z])", "", tex).strip()


def caption_text(caption: nodes.Element) -> str:
    parts = []
    for node in caption.findall(nodes.Text):
        parent = node.parent
        parts.append(plain_math(str(node)) if isinstance(parent, nodes.math) else str(node))
    return " ".join("".join(parts).split())


def figure_alt_text(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """Give every figure's images the caption as alt text (unless an author wrote one)."""
    for figure in doctree.findall(nodes.figure):
        caption = next(iter(figure.findall(nodes.caption)), None)
        if caption is None:
            continue
        text = caption_text(caption)
        for image in figure.findall(nodes.image):
            if not image.get("alt"):
                image["alt"] = text


class UniqueExerciseIds(SphinxTransform):
    """sphinx-exercise 1.2.1 gives each exercise/solution body the fixed id ``exercise-content``
    (``solution-content``), so a page with several exercises repeats an id. Nothing links to these
    ids, but Sphinx's table of contents needs every section to have one: they are numbered."""

    default_priority = 600  # after sphinx-exercise's merges of gated directives (priority 10)

    def apply(self) -> None:
        count = {"exercise-content": 0, "solution-content": 0}
        for section in self.document.findall(nodes.section):
            for position, ident in enumerate(section["ids"]):
                if ident in count:
                    count[ident] += 1
                    section["ids"][position] = f"{ident}-{count[ident]}"
                    section["classes"].append(ident)


def site_assets(app: Sphinx, config) -> None:
    """Static files (navigation fix, CSS, favicon) and templates of the extension; the edition's tag."""
    config.html_static_path = [*config.html_static_path, str(STATIC)]
    config.templates_path = [*config.templates_path, str(TEMPLATES)]
    if config.student_edition:
        app.tags.add("student_edition")


DESIGN_CLASS = re.compile(r'class="(?:[^"]*\s)?sd-')


def trim_page_assets(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """No MathJax on a page without math (myst-nb asks Sphinx to load it on every page), and no
    sphinx-design assets (which jupyter-book always adds) on a page that uses none of its classes."""
    has_math = app.env.get_domain("math").has_equations(pagename)
    # a class of sphinx-design's (sd-...), not the text "sd-" (a chapter's code has "ss-sd-b1")
    has_design = DESIGN_CLASS.search(context.get("body", "")) is not None

    def unused(item) -> bool:
        # Sphinx's builder stores local assets as "_static/<name>" (mathjax_path and the extensions'
        # add_*_file calls give "<name>")
        name = str(getattr(item, "filename", "") or "").split("?")[0].removeprefix("_static/")
        body = str(getattr(item, "attributes", {}).get("body", ""))
        if not has_math and (name == app.config.mathjax_path or body.startswith("window.MathJax")):
            return True
        return not has_design and name in {"sphinx-design.min.css", "design-tabs.js"}

    for key in ("script_files", "css_files"):
        if key in context:
            context[key] = [item for item in context[key] if not unused(item)]


FONTAWESOME_STUB = (
    "/* lmmsim_book: pydata-sphinx-theme's fontawesome.js (1.5 MB) replaces icon <i> elements by SVGs;\n"
    "   the theme's CSS draws the same icons with the Font Awesome webfont, so it is not needed. */\n"
)
INDEX_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="_static/{favicon}">
<meta http-equiv="refresh" content="0; url={target}">
</head>
<body>
<p><a href="{target}">{title}: start reading</a></p>
</body>
</html>
"""


def finish_site(app: Sphinx, exc: Exception | None) -> None:
    """Replace fontawesome.js by a stub and index.html by a titled page that links to the book."""
    if exc is not None or app.builder.format != "html":
        return
    out = Path(app.outdir)
    fontawesome = out / "_static" / "scripts" / "fontawesome.js"
    if fontawesome.is_file():
        fontawesome.write_text(FONTAWESOME_STUB, encoding="utf-8")
        fontawesome.with_suffix(".js.map").unlink(missing_ok=True)
    target = app.builder.get_target_uri(app.config.root_doc)
    favicon = Path(app.config.html_favicon or "").name
    (out / "index.html").write_text(
        INDEX_HTML.format(title=html.escape(app.config.html_title), target=target, favicon=favicon),
        encoding="utf-8",
    )


# -------------------------------------------------------------------------------- student edition
class RemoveSolutions(SphinxTransform):
    """Drop every solution (after sphinx-exercise merged the gated ones, priority 10)."""

    default_priority = 500

    def apply(self) -> None:
        if not self.config.student_edition:
            return
        from sphinx_exercise.nodes import solution_end_node, solution_node, solution_start_node

        for cls in (solution_node, solution_start_node, solution_end_node):
            for node in list(self.document.findall(cls)):
                node.parent.remove(node)


_DIRECTIVE = re.compile(r"^\s*(?P<fence>`{3,}|:{3,})\{(?P<name>[\w-]+)\}")


class SolutionStripper:
    """Remove solutions from MyST source text, line by line (state carries across notebook cells).

    Handles ``{solution}`` blocks (closed by a fence at least as long as the opening one) and gated
    ``{solution-start}`` ... ``{solution-end}`` regions, whose code cells are dropped too.
    """

    def __init__(self) -> None:
        self.closing: re.Pattern | None = None  # inside a directive block until this line
        self.gated = False  # between solution-start and solution-end
        self.removed = 0

    @property
    def inside(self) -> bool:
        return self.closing is not None or self.gated

    def _close_pattern(self, fence: str) -> re.Pattern:
        return re.compile(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$")

    def keep(self, line: str) -> bool:
        if self.closing is not None:
            if self.closing.match(line):
                self.closing = None
            return False
        match = _DIRECTIVE.match(line)
        if self.gated:
            if match and match["name"] == "solution-end":
                self.gated = False
                self.closing = self._close_pattern(match["fence"])
            return False
        if match and match["name"] == "solution":
            self.closing = self._close_pattern(match["fence"])
            self.removed += 1
            return False
        if match and match["name"] == "solution-start":
            self.gated = True
            self.removed += 1
            return False
        return True

    def text(self, text: str) -> str:
        return "".join(line for line in text.splitlines(keepends=True) if self.keep(line))


def strip_markdown(text: str) -> tuple[str, int]:
    stripper = SolutionStripper()
    return stripper.text(text), stripper.removed


def strip_notebook(text: str) -> tuple[str, int]:
    notebook = json.loads(text)
    stripper = SolutionStripper()
    cells = []
    for cell in notebook.get("cells", []):
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        if cell.get("cell_type") == "code":
            if stripper.inside:
                continue  # a code cell of a gated solution
        else:
            kept = stripper.text(source)
            if kept != source:
                if not kept.strip():
                    continue
                cell["source"] = kept
        cells.append(cell)
    notebook["cells"] = cells
    return json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", stripper.removed


def strip_sources(app: Sphinx, exc: Exception | None) -> None:
    if not app.config.student_edition or app.builder.format != "html":
        return
    sources = Path(app.outdir) / "_sources"
    if not sources.is_dir():
        return
    for path in sorted(sources.rglob("*")):
        if not path.is_file():
            continue
        if path.suffix == ".ipynb":
            new, removed = strip_notebook(path.read_text(encoding="utf-8"))
        elif path.suffix in {".md", ".txt", ".rst"}:
            new, removed = strip_markdown(path.read_text(encoding="utf-8"))
        else:
            continue
        if removed:
            path.write_text(new, encoding="utf-8")
            logger.info("student edition: removed %d solution(s) from %s", removed, path.name)


# ------------------------------------------------------------------------------ executed notebooks
def restore_cached_outputs(app: Sphinx, doctree: nodes.document) -> None:
    """Give ``jupyter_execute/<doc>.ipynb`` the outputs myst-nb took from the cache."""
    if app.config.nb_execution_mode != "cache" or not is_notebook(app, app.env.docname):
        return
    path = Path(app.outdir).parent / "jupyter_execute" / f"{app.env.docname}.ipynb"
    if not path.is_file():
        return
    import nbformat
    from jupyter_cache import get_cache

    notebook = nbformat.read(path, as_version=4)
    if not any(cell.cell_type == "code" for cell in notebook.cells):
        return
    # Always take the outputs from the cache, also right after executing: myst-nb then wrote the
    # file with its glue outputs removed, which a re-execution (nbval) would not reproduce.
    cache_path = app.config.nb_execution_cache_path or Path(app.outdir).parent / ".jupyter_cache"
    try:
        _, merged = get_cache(str(cache_path)).merge_match_into_notebook(notebook)
    except KeyError:
        logger.warning("no cached outputs for %s", app.env.docname, type="lmmsim_book", subtype="cache")
        return
    nbformat.write(merged, path)


# ------------------------------------------------------------------------------------ page context
def drop_thebe_config(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """sphinx-thebe appends a thebe/binder config script to every page (doctree-resolved)."""
    for node in list(doctree.findall(nodes.raw)):
        text = node.astext()
        if "text/x-thebe-config" in text or text.startswith("<script>kernelName ="):
            node.parent.remove(node)


def is_notebook(app: Sphinx, pagename: str) -> bool:
    return "kernelspec" in app.env.metadata.get(pagename, {})


def page_context(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """Runs before sphinx-book-theme builds its header buttons (priority 501)."""

    def thebe(item) -> bool:
        name = str(getattr(item, "filename", "") or "")
        body = str(getattr(item, "attributes", {}).get("body", ""))
        return "sphinx-thebe" in name or "THEBE_JS_URL" in body

    for key in ("script_files", "css_files"):
        if key in context:
            context[key] = [item for item in context[key] if not thebe(item)]

    source = context.get("sourcename", "")
    if doctree is None or not source.endswith(".md") or not is_notebook(app, pagename):
        return
    executed = Path(app.outdir).parent / "jupyter_execute" / f"{pagename}.ipynb"
    if executed.is_file():
        target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(executed, target)
        context["ipynb_source"] = f"{pagename}.ipynb"


def setup(app: Sphinx) -> dict:
    app.add_config_value("student_edition", False, "env", types=[bool])
    app.connect("config-inited", check_mathjax_config)
    app.connect("config-inited", configure_kernels)
    app.connect("config-inited", site_assets)
    app.add_transform(UniqueExerciseIds)
    app.connect("doctree-resolved", figure_alt_text)
    app.connect("html-page-context", trim_page_assets, priority=900)
    app.add_js_file("lmmsim-nav.js", loading_method="defer", priority=100)
    app.add_css_file("lmmsim.css")
    app.connect("build-finished", finish_site, priority=900)
    app.add_transform(RemoveSolutions)
    app.connect("doctree-read", restore_cached_outputs)
    app.connect("doctree-resolved", drop_thebe_config, priority=900)
    app.connect("html-page-context", page_context, priority=500)
    app.connect("build-finished", copy_mathjax)
    app.connect("build-finished", strip_sources)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
