"""The built site (_build/html): every page of the table of contents opened in headless Chromium.

For each page: no uncaught page error, no request leaves 127.0.0.1 (external requests are aborted and
listed), math rendered by MathJax wherever the source has math (no raw TeX left, no MathJax errors),
every image loaded, every internal link and #anchor resolves. A screenshot of each page is saved in
_build/screenshots/. Static checks cover the remaining pages and assets (no CDN, no launch widgets).

These tests FAIL, never skip, when the site is not built or Chromium is missing.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from site_browser import (  # noqa: E402
    CHROMIUM,
    INSTALL_HINT,
    PAGE_WEIGHT_LIMIT,
    SiteServer,
    inspect_layout,
    inspect_page,
    launch_browser,
    source_has_math,
)
from site_toc import BUILD, HTML, STUDENT_HTML, pages  # noqa: E402

PAGES = pages()
SCREENSHOTS = BUILD / "screenshots"
WIDTHS = (375, 1280)  # a phone, a laptop
EDITIONS = {"main": HTML, "student": STUDENT_HTML}
WEIGHTS = BUILD / "page-weights.tsv"  # edition, page, bytes: written by the layout test
MEASURED: dict[tuple[str, str], int] = {}  # (edition, page) -> bytes, filled by the layout test


def require_site(root: Path, command: str) -> None:
    if not (root / "index.html").is_file():
        pytest.fail(f"no built site in {root}: run `{command}` first")


def search_index(root: Path) -> dict:
    text = (root / "searchindex.js").read_text(encoding="utf-8")
    return json.loads(text[text.index("(") + 1 : text.rindex(")")])


@pytest.fixture(scope="module")
def site():
    require_site(HTML, "python3 tasks.py build")
    with SiteServer(HTML) as server:
        yield server


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(INSTALL_HINT)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_browser(playwright)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def servers():
    for root in EDITIONS.values():
        require_site(root, "python3 tasks.py test")
    with SiteServer(HTML) as main, SiteServer(STUDENT_HTML) as student:
        yield {"main": main, "student": student}


@pytest.fixture(scope="module")
def tabs(browser, servers):
    """One tab per (edition, width), reused from page to page; every request goes through a route
    (which also turns the HTTP cache off, so each page's weight counts every file it needs)."""
    opened = {}

    def tab(edition: str, width: int):
        if (edition, width) not in opened:
            server = servers[edition]
            context = browser.new_context(viewport={"width": width, "height": 800}, service_workers="block")
            context.route("**/*", lambda route, request: route.continue_() if server.is_local(request.url)
                          else route.abort("blockedbyclient"))
            opened[edition, width] = context.new_page()
        return opened[edition, width]

    yield tab
    for page in opened.values():
        page.context.close()


# ------------------------------------------------------------------------------- in the browser
LAYOUT_PAGES = [page.html for page in PAGES] + ["genindex.html", "search.html"]  # Sphinx's own pages too


@pytest.mark.parametrize("edition", EDITIONS)
@pytest.mark.parametrize("path", LAYOUT_PAGES)
def test_page_layout_for_readers(path, edition, servers, tabs):
    """On a phone and a laptop: the menu opens and closes, nothing scrolls sideways (375 px), no
    equation is wider than the text (1280 px), alt texts are captions, ids are unique; the page's
    weight (everything it loads) is recorded for the weight test below."""
    problems, weights = [], []
    for width in WIDTHS:
        shot = SCREENSHOTS / edition / f"{path.removesuffix('.html')}-{width}.png"
        report = inspect_layout(tabs(edition, width), servers[edition], path, width, screenshot=shot)
        problems += [f"{width} px: {problem}" for problem in report.problems()]
        weights.append(report.weight)
    MEASURED[edition, path] = max(weights)
    with WEIGHTS.open("a", encoding="utf-8") as out:
        out.write(f"{edition}\t{path}\t{MEASURED[edition, path]}\n")
    assert not problems, f"{edition} edition, {path}:\n  " + "\n  ".join(problems)


def test_chapter_pages_weigh_less_than_the_limit():
    """Everything a chapter page loads (HTML, CSS, scripts, fonts, figures), measured by the layout test."""
    chapters = [(edition, page.html) for edition in EDITIONS for page in PAGES if page.is_notebook]
    missing = [key for key in chapters if key not in MEASURED]
    assert not missing, f"not measured (run the layout test first, in the same session): {missing[:3]}"
    heavy = {f"{edition}/{path}": f"{MEASURED[edition, path] / 1e6:.2f} MB" for edition, path in chapters
             if MEASURED[edition, path] > PAGE_WEIGHT_LIMIT}
    assert not heavy, f"pages over {PAGE_WEIGHT_LIMIT / 1e6:.1f} MB: {heavy}"



@pytest.mark.parametrize("page", PAGES, ids=[p.docname for p in PAGES])
def test_page_in_browser(page, site, browser):
    report = inspect_page(browser, site, page.html, screenshot=SCREENSHOTS / f"{page.docname}.png")
    problems = report.problems(expect_math=source_has_math(page.source.read_text(encoding="utf-8")))
    assert report.requests, "the page made no request at all"
    assert not problems, f"{page.docname} ({report.url}):\n  " + "\n  ".join(problems)


def test_index_redirects_to_the_first_page(site, browser):
    context = browser.new_context()
    context.route("**/*", lambda route, request: route.continue_() if site.is_local(request.url) else route.abort())
    page = context.new_page()
    try:
        page.goto(site.url("index.html"))
        page.wait_for_url(re.compile(re.escape(PAGES[0].html) + r"$"), timeout=10_000)
    finally:
        context.close()


def test_search_works_offline(site, browser):
    """Sphinx's client-side search finds a word of the first page's title, with no network."""
    html = (HTML / PAGES[0].html).read_text(encoding="utf-8")
    title = re.search(r"<h1[^>]*>(.*?)</h1>", html, re.S).group(1)
    words = re.findall(r"[A-Za-z]{4,}", re.sub(r"<[^>]+>", " ", title))
    assert words, f"no searchable word in the title {title!r}"
    word = max(words, key=len).lower()

    external: list[str] = []
    context = browser.new_context()

    def route(route_, request):
        if site.is_local(request.url):
            route_.continue_()
        else:
            external.append(request.url)
            route_.abort()

    context.route("**/*", route)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(site.url(f"search.html?q={word}"))
        # the results are listed one by one; the summary line is written when the search is finished
        page.wait_for_function(
            "() => (document.querySelector('#search-results p.search-summary') || {}).innerText",
            timeout=30_000,
        )
        hits = page.eval_on_selector_all("#search-results ul.search li a", "els => els.map(a => a.href)")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "search.png"))
    finally:
        context.close()
    assert not errors, errors
    assert not external, f"search made external requests: {external}"
    assert any(PAGES[0].html in hit for hit in hits), f"searching {word!r} did not find {PAGES[0].html}: {hits}"


# ------------------------------------------------------------------------------- static checks
EXTERNAL = re.compile(r"^\s*(https?:)?//", re.I)
RESOURCE_ATTRS = {
    "script": "src",
    "img": "src",
    "iframe": "src",
    "source": "src",
    "audio": "src",
    "video": "src",
    "embed": "src",
    "object": "data",
}
CSS_URL = re.compile(r"""(?:url\(\s*['"]?|@import\s+['"])\s*((?:https?:)?//[^'")\s]+)""", re.I)
LAUNCH_MARKERS = re.compile(r"sphinx-thebe|x-thebe-config|thebe-launch|launch-buttons|mybinder|colab\.research", re.I)


def built_sites() -> list[Path]:
    return [root for root in (HTML, STUDENT_HTML) if (root / "index.html").is_file()]


def external_resources(html: str) -> list[str]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    found = []
    for tag, attr in RESOURCE_ATTRS.items():
        for element in soup.find_all(tag):
            value = element.get(attr)
            if value and EXTERNAL.match(value):
                found.append(f"<{tag} {attr}={value}>")
    for link in soup.find_all("link"):
        rel = {r.lower() for r in link.get("rel", [])}
        if rel & {"stylesheet", "preload", "modulepreload", "icon", "manifest", "prefetch", "preconnect", "dns-prefetch"}:
            if EXTERNAL.match(link.get("href", "")):
                found.append(f"<link rel={sorted(rel)} href={link['href']}>")
    for style in soup.find_all("style"):
        found += CSS_URL.findall(style.get_text())
    for element in soup.find_all(style=True):
        found += CSS_URL.findall(element["style"])
    return found


def test_no_page_loads_anything_from_outside():
    """Every HTML page (not only the toc pages) and every stylesheet of both editions."""
    require_site(HTML, "python3 tasks.py build")
    problems = []
    for root in built_sites():
        for path in sorted(root.rglob("*.html")):
            if "_sources" in path.parts:
                continue
            html = path.read_text(encoding="utf-8", errors="replace")
            problems += [f"{path.relative_to(BUILD)}: {item}" for item in external_resources(html)]
            problems += [f"{path.relative_to(BUILD)}: launch widget {m}" for m in set(LAUNCH_MARKERS.findall(html))]
        for path in sorted((root / "_static").rglob("*.css")):
            urls = CSS_URL.findall(path.read_text(encoding="utf-8", errors="replace"))
            problems += [f"{path.relative_to(BUILD)}: {url}" for url in urls]
    assert not problems, "\n".join(problems)


def test_math_is_typeset_at_build_time():
    """MathJax (served by the site before) typesets every page with math at build time: the page holds
    the CHTML markup and MathJax's stylesheet, loads no MathJax script, and the site serves the fonts."""
    require_site(HTML, "python3 tasks.py build")
    mathjax = HTML / "_static" / "mathjax"
    assert (mathjax / "output" / "chtml" / "fonts" / "woff-v2" / "MathJax_Main-Regular.woff").is_file()
    assert "Apache License" in (mathjax / "LICENSE").read_text()
    assert "django-static-mathjax" in (mathjax / "PROVENANCE.txt").read_text()
    for page in PAGES:
        html = (HTML / page.html).read_text(encoding="utf-8")
        scripts = re.findall(r"<script[^>]+src=\"([^\"]*mathjax[^\"]*)\"", html, re.I)
        assert not scripts and "window.MathJax" not in html, f"{page.docname} still loads MathJax: {scripts}"
        if source_has_math(page.source.read_text(encoding="utf-8")):
            assert "<mjx-container" in html and 'id="MJX-CHTML-styles"' in html, f"{page.docname}: math not typeset"
            assert "_static/mathjax/output/chtml/fonts/woff-v2/" in html, f"{page.docname}: no MathJax fonts"


def test_pages_offer_their_sources_for_download():
    """The download menu: the .md source of every page and the executed .ipynb of every notebook."""
    require_site(HTML, "python3 tasks.py build")
    for page in PAGES:
        html = (HTML / page.html).read_text(encoding="utf-8")
        wanted = [f"{page.docname}{page.source.suffix}"]
        if page.is_notebook:
            wanted.append(f"{page.docname}.ipynb")
        for name in wanted:
            assert (HTML / "_sources" / name).is_file(), f"_sources/{name} missing"
            assert f"_sources/{name}\"" in html, f"{page.html} offers no download of {name}"
        if page.is_notebook:
            notebook = json.loads((HTML / "_sources" / f"{page.docname}.ipynb").read_text(encoding="utf-8"))
            assert notebook["nbformat"] == 4 and notebook["cells"], f"{page.docname}.ipynb is empty"


def test_downloaded_notebooks_are_the_ones_nbval_reexecutes():
    """The .ipynb a reader downloads is byte for byte the executed notebook that `tasks.py test`
    re-executes with nbval (outputs included), so every offered notebook is known to run."""
    require_site(HTML, "python3 tasks.py build")
    notebooks = [page for page in PAGES if page.is_notebook]
    assert notebooks
    for page in notebooks:
        download = HTML / "_sources" / f"{page.docname}.ipynb"
        assert page.executed.is_file(), f"{page.executed} missing"
        assert download.read_bytes() == page.executed.read_bytes(), f"{download.name} differs from {page.executed}"
        cells = [c for c in json.loads(download.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code"]
        assert all(c.get("execution_count") for c in cells), f"{download.name} has cells that were not executed"


def test_site_shell_title_favicon_and_light_icons():
    """index.html has a title and a link (not a bare redirect), every page a favicon, and the 1.5 MB
    fontawesome.js is a stub (the theme's CSS draws the icons with the webfont)."""
    for root in built_sites():
        index = (root / "index.html").read_text(encoding="utf-8")
        assert re.search(r"<title>[^<]+</title>", index), "index.html has no title"
        assert f'href="{PAGES[0].html}"' in index, "index.html has no link to the first page"
        assert (root / "_static" / "scripts" / "fontawesome.js").stat().st_size < 1000
        for page in PAGES:
            html = (root / page.html).read_text(encoding="utf-8")
            assert re.search(r'<link rel="icon" href="[^"]*favicon', html), f"{page.html}: no favicon"


CODE_CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(?P<options>(?::[^\n]*\n)*)(?P<code>.*?)^```[ \t]*$", re.S | re.M)
CODE_WIDTH = 88  # book/ruff.toml; `python3 tasks.py format` reflows the cells


def test_chapter_code_fits_a_narrow_column():
    """Code the site shows is formatted to 88 columns, so it needs no sideways scroll (cells
    tagged remove-cell or remove-input are not shown)."""
    long = []
    for page in PAGES:
        for cell in CODE_CELL.finditer(page.source.read_text(encoding="utf-8")):
            if re.search(r"remove-(cell|input)", cell["options"]):
                continue
            long += [f"{page.source.name}: {line[:60]}... ({len(line)})" for line in cell["code"].splitlines()
                     if len(line) > CODE_WIDTH]
    assert not long, f"{len(long)} code lines longer than {CODE_WIDTH} columns:\n" + "\n".join(long)


def test_only_toc_documents_are_built():
    """only_build_toc_files: the site holds exactly the documents of _toc.yml."""
    require_site(HTML, "python3 tasks.py build")
    built = set(search_index(HTML)["docnames"])
    assert built == {page.docname for page in PAGES}
