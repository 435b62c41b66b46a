"""Sphinx extension for the lmmsim book: lighter pages (issue 12, page weight below 1.5 MB).

Loaded through ``sphinx.local_extensions`` in ``_config.yml``; it works on the built HTML output
(``build-finished``), so nothing here changes what the chapters execute.

Math typeset at build time
    MathJax in the reader's browser costs every page with math 0.8 MB of scripts (startup, core, TeX
    input, CHTML output, font data). The same MathJax (the pinned django-static-mathjax files, same
    components and options as the page would load) typesets each such page at build time in Node.js
    (``_ext/mathjax_prerender.js``, MathJax's documented server-side use); the page keeps the CHTML
    markup, the assistive MathML and MathJax's stylesheet, and loads only the MathJax fonts it uses.
    In the browser MathJax scales math to the ex-height of the surrounding font; Node has no fonts to
    measure, so the scale is fixed (``MATH_SCALE``) at what Chromium measured for the theme's body
    text. The build needs ``node`` (Debian: ``apt-get install nodejs``; ``LMMSIM_NODE`` to point
    elsewhere).

Figures as palette PNGs
    The kernels save figures as 2x ("retina") RGBA PNGs of a few thousand colours, almost all of them
    the anti-aliased edges of lines and text. Each opaque figure is re-encoded with Pillow as a
    256-colour palette PNG (max-coverage quantization, no dithering), which keeps its pixel size and
    is about a third of the bytes. A figure is re-encoded only when no pixel of any channel moves by
    more than ``MAX_COLOUR_ERROR`` levels of 255 and the file gets smaller, so no figure visibly
    changes; the executed notebooks (``.ipynb`` downloads) keep the original PNGs.

Font Awesome subset
    pydata-sphinx-theme's CSS draws its icons (menu, search, download, theme switch, admonition
    titles) with the Font Awesome webfonts, whose solid style alone is 0.16 MB for ~1,400 icons. The
    fonts are subset with fontTools to the icons the site can show: every icon class (``fa-...``) that
    appears in a page or a script, and every icon code point the stylesheets use outside Font
    Awesome's own catalogue of icon classes (the theme's admonition and navigation icons).
"""

from __future__ import annotations

import io
import json
import logging as std_logging
import os
import re
import shutil
import subprocess
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging

logger = logging.getLogger(__name__)

PRERENDER = Path(__file__).with_name("mathjax_prerender.js")
MATH_FONTS = Path("_static") / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2"
# MathJax's CHTML scale in node, where liteDOM takes the surrounding ex-height as 0.5 em: 1.125 makes it
# 0.563 em, what MathJax measured in Chromium for the theme's body text (math at 127.3 % of the text).
MATH_SCALE = 1.125
_MATHJAX_SCRIPT = re.compile(r'<script[^>]*\ssrc="[^"]*mathjax/startup\.js')
MAX_COLOUR_ERROR = 16  # levels of 255: the largest change of a channel a figure may take
FONT_DIR = Path("_static") / "vendor" / "fontawesome" / "webfonts"
_RULE = re.compile(r"([^{}]+)\{([^{}]*)\}")
_CATALOGUE_SELECTOR = re.compile(r"\.(fa-[a-z0-9-]+)(?:::?before|::?after)?")
_ESCAPE = re.compile(r"\\([0-9a-fA-F]{1,6})\s?")
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
_ICON_CLASS = re.compile(r"\bfa-[a-z0-9-]+")


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


# ------------------------------------------------------------------------------------------ math
def node_binary() -> str:
    node = shutil.which(os.environ.get("LMMSIM_NODE", "node"))
    if node is None:
        raise ExtensionError(
            "The book typesets its math with MathJax in Node.js at build time, and `node` was not found. "
            "Install it (Debian/Ubuntu: sudo apt-get install -y nodejs) or set LMMSIM_NODE to a node binary."
        )
    return node


def prerender_math(app: Sphinx, exc: Exception | None) -> None:
    """Typeset every page that loads MathJax, in place, and drop its MathJax scripts."""
    if exc is not None or app.builder.format != "html":
        return
    from lmmsim_book import mathjax_source

    outdir = Path(app.outdir)
    pages = [
        path for path in sorted(outdir.rglob("*.html"))
        if "_sources" not in path.parts and _MATHJAX_SCRIPT.search(path.read_text(encoding="utf-8"))
    ]
    node, es5 = node_binary(), mathjax_source() / "es5"
    for path in pages:
        fonts = os.path.relpath(outdir / MATH_FONTS, path.parent).replace(os.sep, "/")
        config = {**app.config.mathjax3_config, "chtml": {"fontURL": fonts, "scale": MATH_SCALE}}
        temporary = path.with_name(path.name + ".tmp")
        done = subprocess.run([node, str(PRERENDER), str(es5), json.dumps(config), str(path), str(temporary)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise ExtensionError(f"MathJax could not typeset {path.relative_to(outdir)}:\n{done.stderr}")
        os.replace(temporary, path)
    logger.info("math typeset at build time on %d pages", len(pages))


# ------------------------------------------------------------------------------------------- figures
def palette_png(data: bytes) -> bytes | None:
    """The PNG re-encoded with a 256-colour palette, or None when that would change it visibly or not
    make it smaller (transparent figures, photographs, already palette images)."""
    import numpy as np
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    if image.mode not in {"RGB", "RGBA"}:
        return None
    if image.mode == "RGBA":
        if image.getchannel("A").getextrema() != (255, 255):
            return None
        image = image.convert("RGB")
    palette = image.quantize(256, method=Image.Quantize.MAXCOVERAGE, dither=Image.Dither.NONE)
    error = np.abs(np.asarray(palette.convert("RGB"), dtype=int) - np.asarray(image, dtype=int)).max()
    if error > MAX_COLOUR_ERROR:
        return None
    out = io.BytesIO()
    palette.save(out, "PNG", optimize=True)
    return out.getvalue() if out.tell() < len(data) else None


def compress_figures(app: Sphinx, exc: Exception | None) -> None:
    if exc is not None or app.builder.format != "html":
        return
    images = Path(app.outdir) / "_images"
    before = after = 0
    for path in sorted(images.glob("*.png")):
        data = path.read_bytes()
        smaller = palette_png(data)
        before += len(data)
        after += len(smaller or data)
        if smaller is not None:
            _write_atomically(path, smaller)
    if before:
        logger.info("figures as palette PNGs: %.2f MB -> %.2f MB", before / 1e6, after / 1e6)


# ---------------------------------------------------------------------------------------- webfonts
def _css_strings(body: str) -> str:
    """The characters of the CSS string literals in a rule's body, escapes decoded."""
    return "".join(_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), literal) for literal in _STRING.findall(body))


def icon_code_points(outdir: Path) -> set[int]:
    """Code points of the icons the built site can show (see the module docstring)."""
    catalogue: dict[str, set[int]] = {}  # icon class -> its glyph, from rules like .fa-bars:before{...}
    always: set[int] = set()  # private-use glyphs of every other rule (theme icons, admonitions)
    for css in outdir.joinpath("_static").rglob("*.css"):
        for selectors, body in _RULE.findall(css.read_text(encoding="utf-8", errors="replace")):
            points = {ord(c) for c in _css_strings(body)}
            names = [_CATALOGUE_SELECTOR.fullmatch(s.strip()) for s in selectors.split(",")]
            if all(names):
                for name in names:
                    catalogue.setdefault(name.group(1), set()).update(points)
            else:
                always.update(p for p in points if 0xE000 <= p <= 0xF8FF)
    used = set()
    for path in outdir.rglob("*"):
        if path.suffix in {".html", ".js"} and path.is_file():
            used.update(_ICON_CLASS.findall(path.read_text(encoding="utf-8", errors="replace")))
    return always.union(*(catalogue[name] for name in used if name in catalogue))


def subset_font(path: Path, points: set[int]) -> None:
    from fontTools import subset

    options = subset.Options()
    options.flavor = "woff2" if path.suffix == ".woff2" else None
    font = subset.load_font(str(path), options)
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=sorted(points))
    subsetter.subset(font)
    out = io.BytesIO()
    subset.save_font(font, out, options)
    _write_atomically(path, out.getvalue())


def subset_icon_fonts(app: Sphinx, exc: Exception | None) -> None:
    if exc is not None or app.builder.format != "html":
        return
    outdir = Path(app.outdir)
    fonts = sorted(p for p in outdir.joinpath(FONT_DIR).glob("*") if p.suffix in {".woff2", ".ttf"})
    if not fonts:
        return
    points = icon_code_points(outdir)
    before = sum(p.stat().st_size for p in fonts)
    fonttools_log = std_logging.getLogger("fontTools")
    level = fonttools_log.level
    fonttools_log.setLevel(std_logging.WARNING)  # its INFO lines (tables pruned, glyph lists) are noise here
    try:
        for path in fonts:
            subset_font(path, points)
    finally:
        fonttools_log.setLevel(level)
    after = sum(p.stat().st_size for p in fonts)
    logger.info("Font Awesome subset to %d icons: %.2f MB -> %.2f MB", len(points), before / 1e6, after / 1e6)


def setup(app: Sphinx) -> dict:
    app.connect("build-finished", prerender_math)
    app.connect("build-finished", compress_figures)
    app.connect("build-finished", subset_icon_fonts, priority=950)  # after every page and script is written
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
