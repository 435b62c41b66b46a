"""The pages of the book, read from _toc.yml, and where the built site keeps them.

Used by the site/notebook tests and by ``tasks.py test`` (``python tests/site_toc.py
--executed-notebooks`` prints the executed notebooks nbval runs, one per line).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "_build"
HTML = BUILD / "html"
STUDENT_HTML = BUILD / "student" / "html"
EXECUTED = BUILD / "jupyter_execute"
TOC = ROOT / "_toc.yml"
SOURCE_SUFFIXES = (".md", ".ipynb", ".rst")


@dataclass(frozen=True)
class Page:
    docname: str  # e.g. "book/plant_growth"
    source: Path

    @property
    def html(self) -> str:
        """Path of the page relative to the site root."""
        return f"{self.docname}.html"

    @property
    def is_notebook(self) -> bool:
        """A MyST notebook (kernelspec in the front matter) or an .ipynb: executed at build time."""
        if self.source.suffix == ".ipynb":
            return True
        text = self.source.read_text(encoding="utf-8")
        front = re.match(r"^---\n(.*?)\n---\n", text, re.S)
        return bool(front and re.search(r"^kernelspec:", front.group(1), re.M))

    @property
    def executed(self) -> Path:
        return EXECUTED / f"{self.docname}.ipynb"


def toc_docnames(toc: Path = TOC) -> list[str]:
    """Documents of the table of contents, in reading order."""
    from sphinx_external_toc.parsing import parse_toc_yaml

    site_map = parse_toc_yaml(toc)
    ordered: list[str] = []

    def visit(docname: str) -> None:
        if docname in ordered:
            return
        ordered.append(docname)
        for subtree in site_map[docname].subtrees:
            for item in subtree.files():  # documents (not urls or globs)
                visit(item)

    visit(site_map.root.docname)
    return ordered


def source_of(docname: str) -> Path:
    for suffix in SOURCE_SUFFIXES:
        path = ROOT / f"{docname}{suffix}"
        if path.exists():
            return path
    raise FileNotFoundError(f"{docname} in _toc.yml has no source file")


def pages(toc: Path = TOC) -> list[Page]:
    return [Page(name, source_of(name)) for name in toc_docnames(toc)]


if __name__ == "__main__":
    if sys.argv[1:] == ["--executed-notebooks"]:
        for page in pages():
            if page.is_notebook and page.executed.exists():
                print(page.executed.relative_to(ROOT).as_posix())
    elif sys.argv[1:] == ["--pages"]:
        for page in pages():
            print(page.docname, "notebook" if page.is_notebook else "page")
    else:
        sys.exit("usage: python tests/site_toc.py --executed-notebooks | --pages")
