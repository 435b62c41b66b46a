"""Serve a built site on 127.0.0.1 and inspect its pages in headless Chromium (playwright).

The browser is Debian's /usr/bin/chromium (or $LMMSIM_CHROMIUM); playwright's own browser download is
not used. Every request of a page is recorded; any that would leave 127.0.0.1 is aborted and reported.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import threading
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

CHROMIUM = os.environ.get("LMMSIM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
INSTALL_HINT = (
    f"Chromium is needed for the browser tests and was not found at {CHROMIUM}. "
    "Run `python3 tasks.py test` as root (it installs Debian's chromium), or install it yourself: "
    "`sudo apt-get update && sudo apt-get install -y chromium`, or set LMMSIM_CHROMIUM to a Chromium binary."
)

# Page errors from third-party code that are known and harmless, each with the reason. Every entry
# must name the bug; an unexpected page error fails the test. (None needed so far.)
KNOWN_PAGE_ERRORS: list[tuple[re.Pattern, str]] = []


# ------------------------------------------------------------------------------------------ server
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - keep pytest output clean
        pass


class SiteServer:
    """A static file server for ``root`` on 127.0.0.1, on a free port, in a daemon thread."""

    def __init__(self, root: Path):
        self.root = Path(root)
        handler = functools.partial(_QuietHandler, directory=str(self.root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.host, self.port = self.httpd.server_address[:2]
        self.origin = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> SiteServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, path: str) -> str:
        return f"{self.origin}/{path.lstrip('/')}"

    def is_local(self, url: str) -> bool:
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob", "about"):
            return True
        return parts.scheme == "http" and parts.netloc == f"127.0.0.1:{self.port}"

    def file_for(self, url: str) -> Path:
        """The file a local URL points to (``dir/`` means ``dir/index.html``)."""
        path = unquote(urlsplit(url).path).lstrip("/")
        target = self.root / path
        if path == "" or path.endswith("/") or target.is_dir():
            target = target / "index.html"
        return target


def launch_browser(playwright):
    if not Path(CHROMIUM).exists():
        raise FileNotFoundError(INSTALL_HINT)
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


# --------------------------------------------------------------------------------------- anchors
class _IdCollector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key == "id" or (tag == "a" and key == "name"):
                if value:
                    self.ids.add(value)


@functools.cache
def html_ids(path: Path) -> frozenset[str]:
    parser = _IdCollector()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return frozenset(parser.ids)


# ------------------------------------------------------------------------------------ page report
@dataclass
class PageReport:
    url: str
    requests: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    known_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    math_elements: int = 0
    mjx_containers: int = 0
    unrendered_math: list[str] = field(default_factory=list)
    math_errors: list[str] = field(default_factory=list)
    raw_tex: list[str] = field(default_factory=list)
    broken_images: list[str] = field(default_factory=list)
    images: int = 0
    broken_links: list[str] = field(default_factory=list)
    links_checked: int = 0

    def problems(self, expect_math: bool) -> list[str]:
        out = []
        if self.external:
            out.append(f"requests leaving 127.0.0.1 (blocked): {sorted(set(self.external))}")
        if self.failed:
            out.append(f"failed local requests: {sorted(set(self.failed))}")
        if self.page_errors:
            out.append(f"uncaught page errors: {self.page_errors}")
        if self.console_errors:
            out.append(f"console errors: {self.console_errors}")
        if expect_math and self.mjx_containers == 0:
            out.append("the source has math but MathJax rendered none (no mjx-container)")
        if self.unrendered_math:
            out.append(f"math left unrendered: {self.unrendered_math[:10]}")
        if self.math_errors:
            out.append(f"MathJax errors: {self.math_errors[:10]}")
        if self.raw_tex:
            out.append(f"raw TeX left in the text: {self.raw_tex[:10]}")
        if self.broken_images:
            out.append(f"images that did not load: {self.broken_images}")
        if self.broken_links:
            out.append(f"broken internal links/anchors: {self.broken_links}")
        return out


_PAGE_SCRIPT_MATH = r"""
async () => {
  const maths = Array.from(document.querySelectorAll('span.math, div.math'));
  if (maths.length && window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  const unrendered = maths.filter(el => !el.querySelector('mjx-container'))
                          .map(el => el.textContent.trim().slice(0, 80));
  const errors = Array.from(document.querySelectorAll('mjx-merror'))
                      .map(el => (el.getAttribute('data-mjx-error') || el.textContent).slice(0, 120));
  // Text outside code and outside rendered math must hold no TeX delimiters.
  const root = document.querySelector('main') || document.body;
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {
    acceptNode(node) {
      for (let el = node.parentElement; el && el !== root.parentElement; el = el.parentElement) {
        const tag = el.tagName.toLowerCase();
        if (['pre', 'code', 'script', 'style', 'textarea', 'mjx-container', 'mjx-assistive-mml'].includes(tag)
            || el.classList.contains('highlight') || el.classList.contains('output')
            || el.classList.contains('cell_output')) {
          return NodeFilter.FILTER_REJECT;
        }
      }
      return NodeFilter.FILTER_ACCEPT;
    }
  });
  const raw = [];
  // \( \[ $$ \begin{ or $...\macro...$ : delimiters MathJax should have consumed
  const pattern = /\\\(|\\\[|\$\$|\$[^$\s][^$]*\\[A-Za-z]+[^$]*\$|\\begin\{/;
  while (walker.nextNode()) {
    const text = walker.currentNode.textContent;
    if (pattern.test(text)) raw.push(text.trim().slice(0, 80));
  }
  return {maths: maths.length, containers: document.querySelectorAll('mjx-container').length,
          unrendered, errors, raw};
}
"""

_PAGE_SCRIPT_IMAGES = """
async () => {
  const imgs = Array.from(document.images);
  for (const img of imgs) { img.loading = 'eager'; }
  await Promise.all(imgs.map(img => img.complete ? null : img.decode().catch(() => null)));
  await Promise.all(imgs.map(img => new Promise(resolve => {
    if (img.complete) return resolve();
    img.addEventListener('load', resolve, {once: true});
    img.addEventListener('error', resolve, {once: true});
    setTimeout(resolve, 5000);
  })));
  return {count: imgs.length,
          broken: imgs.filter(img => !img.complete || img.naturalWidth === 0)
                      .map(img => img.getAttribute('src') || img.currentSrc)};
}
"""

_PAGE_SCRIPT_LINKS = """
() => ({
  links: Array.from(document.querySelectorAll('a[href]'))
             .map(a => [a.getAttribute('href'), a.href]),
  ids: Array.from(document.querySelectorAll('[id], a[name]')).map(el => el.id || el.getAttribute('name')),
})
"""


def inspect_page(browser, server: SiteServer, path: str, screenshot: Path | None = None) -> PageReport:
    """Open one page of the site and collect everything the site tests assert on."""
    url = server.url(path)
    report = PageReport(url=url)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")

    def route(route_, request):
        report.requests.append(request.url)
        if server.is_local(request.url):
            route_.continue_()
        else:
            report.external.append(request.url)
            route_.abort("blockedbyclient")

    context.route("**/*", route)
    page = context.new_page()

    def on_page_error(error):
        message = str(error)
        for pattern, reason in KNOWN_PAGE_ERRORS:
            if pattern.search(message):
                report.known_errors.append(f"{message} ({reason})")
                return
        report.page_errors.append(message)

    def on_response(response):
        if server.is_local(response.url) and response.status >= 400:
            report.failed.append(f"{response.status} {response.url}")

    def on_request_failed(request):
        if server.is_local(request.url):
            report.failed.append(f"{request.failure} {request.url}")

    def on_console(message):
        if message.type == "error":
            text = message.text
            # 404s and blocked requests are reported above with their URL
            if "Failed to load resource" in text:
                return
            report.console_errors.append(text)

    page.on("pageerror", on_page_error)
    page.on("response", on_response)
    page.on("requestfailed", on_request_failed)
    page.on("console", on_console)
    try:
        page.goto(url, wait_until="load")
        page.wait_for_load_state("networkidle")
        math = page.evaluate(_PAGE_SCRIPT_MATH)
        report.math_elements = math["maths"]
        report.mjx_containers = math["containers"]
        report.unrendered_math = math["unrendered"]
        report.math_errors = math["errors"]
        report.raw_tex = math["raw"]
        images = page.evaluate(_PAGE_SCRIPT_IMAGES)
        report.images = images["count"]
        report.broken_images = images["broken"]
        links = page.evaluate(_PAGE_SCRIPT_LINKS)
        report.broken_links, report.links_checked = check_links(server, url, links["links"], set(links["ids"]))
        page.wait_for_load_state("networkidle")
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
    finally:
        context.close()
    return report


def check_links(server: SiteServer, page_url: str, links, page_ids: set[str]) -> tuple[list[str], int]:
    """Every link into the site must reach an existing file, and its #fragment an existing id."""
    broken, checked = [], 0
    page_file = server.file_for(page_url)
    for raw, absolute in links:
        parts = urlsplit(absolute)
        if parts.scheme not in ("http", "https") or not server.is_local(absolute):
            continue  # mailto:, javascript:, and links to other sites (not requests)
        checked += 1
        target = server.file_for(absolute)
        if not target.is_file():
            broken.append(f"{raw} -> missing {target.relative_to(server.root)}")
            continue
        fragment = unquote(parts.fragment)
        if not fragment or target.suffix != ".html":
            continue
        ids = set(html_ids(target))
        if target == page_file:
            ids |= page_ids
        if fragment not in ids:
            broken.append(f"{raw} -> no id '{fragment}' in {target.relative_to(server.root)}")
    return broken, checked


CODE_BLOCK = re.compile(r"^(`{3,}|~{3,})(\{code-cell\}[^\n]*|[\w+-]*)\n.*?^\1[ \t]*$", re.S | re.M)
MATH_IN_SOURCE = re.compile(r"\$\$|(?<![\\$])\$[^$\n]+\$|\{math\}|\\begin\{")


def source_has_math(text: str) -> bool:
    """Does a MyST source contain math outside its front matter and code blocks?"""
    text = re.sub(r"^---\n.*?\n---\n", "", text, count=1, flags=re.S)
    return bool(MATH_IN_SOURCE.search(CODE_BLOCK.sub("", text)))


# ------------------------------------------------------------------------------- reader's layout
PAGE_WEIGHT_LIMIT = 1_500_000  # bytes, uncompressed, everything a chapter page loads
DRAWER_WIDE = 992  # sphinx-book-theme collapses the sidebar in place from this width; below it is a drawer

_PAGE_SCRIPT_LAYOUT = r"""
async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  const imgs = Array.from(document.images);
  for (const img of imgs) { img.loading = 'eager'; }
  await Promise.all(imgs.map(img => img.complete ? null : img.decode().catch(() => null)));
  const root = document.documentElement;
  const seen = new Map();
  for (const el of document.querySelectorAll('[id]')) { seen.set(el.id, (seen.get(el.id) || 0) + 1); }
  const badAlt = imgs.map(img => img.getAttribute('alt'))
    .filter(alt => alt === null || !alt.trim() || /^[0-9a-f]{32,}/i.test(alt.trim())
                   || (/^\S+$/.test(alt.trim()) && /[\/\\]|\.(png|jpe?g|svg|gif)$/i.test(alt.trim())))
    .map(alt => String(alt));
  const wide = [];
  for (const math of document.querySelectorAll('.bd-article mjx-container[display="true"] > mjx-math')) {
    const column = math.closest('div.math, .math-wrapper, mjx-container').parentElement;
    const width = math.getBoundingClientRect().width, room = column.clientWidth;
    if (width > room + 1) {
      const tex = math.closest('div.math, .math-wrapper');
      wide.push(`${Math.round(width)} px > ${room} px: ` + (tex ? tex.id || tex.textContent.slice(0, 60) : ''));
    }
  }
  return {scrollWidth: root.scrollWidth, innerWidth: window.innerWidth,
          duplicateIds: Array.from(seen).filter(([id, n]) => n > 1).map(([id, n]) => `${id} x${n}`),
          badAlt, wide};
}
"""


@dataclass
class LayoutReport:
    url: str
    width: int
    scroll_width: int = 0
    duplicate_ids: list[str] = field(default_factory=list)
    bad_alt: list[str] = field(default_factory=list)
    wide_equations: list[str] = field(default_factory=list)
    drawer: list[str] = field(default_factory=list)
    weight: int = 0  # bytes of every local file the page loaded

    def problems(self) -> list[str]:
        out = []
        if self.scroll_width > self.width:
            out.append(f"the page scrolls sideways: {self.scroll_width} px wide in a {self.width} px window")
        if self.duplicate_ids:
            out.append(f"duplicate ids: {self.duplicate_ids[:10]}")
        if self.bad_alt:
            out.append(f"images whose alt text is empty or a path: {self.bad_alt[:5]}")
        if self.wide_equations:
            out.append(f"equations wider than their column: {self.wide_equations}")
        out += self.drawer
        return out


def sidebar_state(page) -> dict:
    return page.evaluate(
        """() => {
          const dialog = document.querySelector('#pst-primary-sidebar-modal');
          const sidebar = document.querySelector('#pst-primary-sidebar');
          const visible = el => !!el && el.getBoundingClientRect().width > 0 && getComputedStyle(el).visibility !== 'hidden'
                                && getComputedStyle(el).opacity !== '0';
          return {modal: !!(dialog && dialog.open), modalVisible: !!(dialog && dialog.open && visible(dialog)),
                  sidebar: visible(sidebar) && !sidebar.classList.contains('pst-sidebar-hidden')};
        }"""
    )


def check_drawer(page, width: int) -> list[str]:
    """Open and close the table of contents with the visible menu button, as a reader would."""
    buttons = [b for b in page.query_selector_all(".primary-toggle") if b.is_visible()]
    if len(buttons) != 1:
        return [f"{len(buttons)} visible menu buttons (.primary-toggle), expected 1"]
    button = buttons[0]
    before = sidebar_state(page)
    button.click()
    page.wait_for_timeout(400)  # the theme's CSS transition is 0.25 s
    opened = sidebar_state(page)
    if width >= DRAWER_WIDE:  # the sidebar is shown and the button hides it, then shows it again
        if not before["sidebar"] or opened["sidebar"] or opened["modal"]:
            return [f"at {width} px the menu button did not hide the sidebar: {before} -> {opened}"]
        button.click()
        page.wait_for_timeout(400)
        if not sidebar_state(page)["sidebar"]:
            return [f"at {width} px the menu button did not bring the sidebar back"]
        return []
    if before["modal"] or not opened["modalVisible"]:
        return [f"at {width} px the menu button did not open the drawer: {before} -> {opened}"]
    links = page.query_selector_all("#pst-primary-sidebar-modal a.reference")
    if not any(link.is_visible() for link in links):
        return [f"at {width} px the drawer opened without visible table-of-contents links"]
    page.keyboard.press("Escape")
    page.wait_for_timeout(300)
    if sidebar_state(page)["modal"]:
        return [f"at {width} px Escape did not close the drawer"]
    return []


def inspect_layout(page, server: SiteServer, path: str, width: int, screenshot: Path | None = None) -> LayoutReport:
    """Load one page in an open tab of the given width; measure overflow, ids, alt text, math, drawer, weight.

    The tab's context must route every request through ``record_requests`` (routing also turns off
    the HTTP cache, so every file a page needs is requested again and counted).
    """
    report = LayoutReport(url=server.url(path), width=width)
    requested: set[str] = set()
    listener = lambda request: requested.add(request.url) if server.is_local(request.url) else None  # noqa: E731
    page.on("request", listener)
    try:
        page.goto(report.url, wait_until="load")
        page.wait_for_load_state("networkidle")
        layout = page.evaluate(_PAGE_SCRIPT_LAYOUT)
        page.wait_for_load_state("networkidle")
        report.scroll_width = layout["scrollWidth"] if width < DRAWER_WIDE else 0
        report.duplicate_ids = layout["duplicateIds"]
        report.bad_alt = layout["badAlt"]
        report.wide_equations = layout["wide"] if width >= DRAWER_WIDE else []
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=False)
        report.drawer = check_drawer(page, width)
    finally:
        page.remove_listener("request", listener)
    files = {server.file_for(url) for url in requested}
    report.weight = sum(f.stat().st_size for f in files if f.is_file())
    return report
