"""The student edition (_build/student/html) holds the exercises but no solution text anywhere.

`python3 tasks.py test` builds the student edition before the tests (it shares the execution cache
with the main build, so it executes nothing and takes seconds), so these tests check the edition as
built from the current sources. The main edition is the oracle: every solution found in it must be
missing from the student edition's pages, its search index and its downloadable .md/.ipynb sources.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "_ext"))

from lmmsim_book import SolutionStripper  # noqa: E402
from site_toc import HTML, STUDENT_HTML, pages  # noqa: E402

PAGES = pages()


def soup(path: Path):
    from bs4 import BeautifulSoup

    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def article(path: Path):
    page = soup(path)
    return page.find("article") or page.find("main") or page


def search_index(root: Path) -> dict:
    text = (root / "searchindex.js").read_text(encoding="utf-8")
    return json.loads(text[text.index("(") + 1 : text.rindex(")")])


def snippets(text: str, minimum: int = 25) -> list[str]:
    """Lines long enough to be distinctive, whitespace-normalised."""
    out = []
    for line in text.splitlines():
        line = " ".join(line.split())
        if len(line) >= minimum and not re.fullmatch(r"[`:~]{3,}.*", line):
            out.append(line)
    return out


def normalised(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def editions():
    for root, command in ((HTML, "build"), (STUDENT_HTML, "student")):
        if not (root / "index.html").is_file():
            pytest.fail(f"no site in {root}: run `python3 tasks.py {command}` first")
    return HTML, STUDENT_HTML


def split_source(page) -> tuple[list[str], list[str]]:
    """Source lines (inside, outside) solutions, per the same parser that strips the downloads."""
    stripper = SolutionStripper()
    inside, outside = [], []
    for line in page.source.read_text(encoding="utf-8").splitlines(keepends=True):
        (outside if stripper.keep(line) else inside).append(line)
    return inside, outside


def solution_sources(page) -> list[str]:
    return split_source(page)[0]


BLOCKS = "p, li, dt, dd, pre, td, th, .cell_output, .math, figcaption"


def blocks(element) -> set[str]:
    """Normalised text of the block-level pieces of an element (paragraphs, code, outputs...)."""
    return {normalised(b.get_text(" ")) for b in element.select(BLOCKS)} - {""}


def test_student_edition_has_every_page_and_exercise_but_no_solution(editions):
    main, student = editions
    checked = 0
    for page in PAGES:
        path = student / page.html
        assert path.is_file(), f"{page.html} missing from the student edition"
        theirs, ours = article(main / page.html), article(path)
        n_exercises = len(theirs.select("div.exercise"))
        assert len(ours.select("div.exercise")) == n_exercises, f"{page.docname}: exercises lost"
        assert not ours.select(".solution, [class*=solution]"), f"{page.docname}: solution element left"
        in_solutions: set[str] = set()
        for solution in theirs.select("div.solution"):
            title = solution.select_one(".admonition-title")
            if title:
                title.extract()
            in_solutions |= blocks(solution)
            solution.extract()
        # text that the main edition shows only inside solutions must not be in the student page
        rest = normalised(theirs.get_text(" "))
        secret = {text for text in in_solutions if len(text) >= 20 and text not in rest}
        checked += len(secret)
        student_text = normalised(ours.get_text(" "))
        for text in sorted(secret):
            assert text not in student_text, (
                f"{page.docname}: solution text in the student page: {text[:120]!r}"
            )
    if any(solution_sources(page) for page in PAGES):
        assert checked, "the sources have solutions but the main edition shows none"


def test_student_search_index_has_no_solution_words(editions):
    """Words that occur in a page only inside its solutions are not indexed for that page."""
    from sphinx.search.en import SearchEnglish

    main, student = editions
    language = SearchEnglish({})
    index_main, index_student = search_index(main), search_index(student)

    def terms(index: dict, docname: str) -> set[str]:
        number = index["docnames"].index(docname)
        out = set()
        for table in ("terms", "titleterms"):
            for term, docs in index[table].items():
                if number == docs or (isinstance(docs, list) and number in docs):
                    out.add(term)
        return out

    def stems(text: str) -> set[str]:
        """The index terms Sphinx makes of a text (sphinx.search.IndexBuilder.feed)."""
        out = set()
        for word in language.split(text):
            term = language.stem(word).lower()
            if not language.word_filter(term) and language.word_filter(word):
                term = word
            if language.word_filter(term):
                out.add(term)
        return out

    teeth = 0
    for page in PAGES:
        page_main = article(main / page.html)
        solution_words: set[str] = set()
        for solution in page_main.select("div.solution"):
            solution_words |= stems(solution.get_text(" "))
            solution.extract()
        # The index also holds the TeX of the math, which the page (typeset at build time) no longer
        # shows: the words of the source outside its solutions are the page's own words too.
        outside = SolutionStripper().text(page.source.read_text(encoding="utf-8"))
        page_words = stems(page_main.get_text(" ")) | stems(outside)
        only_in_solutions = (solution_words - page_words) & terms(index_main, page.docname)
        teeth += len(only_in_solutions)
        leaked = only_in_solutions & terms(index_student, page.docname)
        assert not leaked, f"{page.docname}: solution-only words in the student search index: {sorted(leaked)}"
    if any(solution_sources(page) for page in PAGES):
        assert teeth, "no solution-only word found in the main index: the check would prove nothing"


def test_student_downloads_have_no_solutions(editions):
    _, student = editions
    for page in PAGES:
        inside, outside = split_source(page)
        outside = normalised("".join(outside))
        secret = [line for line in snippets("".join(inside), minimum=20) if line not in outside]
        downloads = [student / "_sources" / f"{page.docname}{page.source.suffix}"]
        if page.is_notebook:
            downloads.append(student / "_sources" / f"{page.docname}.ipynb")
        for path in downloads:
            assert path.is_file(), f"{path.relative_to(student)} missing from the student edition"
            text = path.read_text(encoding="utf-8")
            if path.suffix == ".ipynb":
                cells = json.loads(text)["cells"]
                text = "\n".join("".join(c["source"]) if isinstance(c["source"], list) else c["source"]
                                 for c in cells)
            assert not re.search(r"\{solution(-start|-end)?\}", text), f"{path.name}: solution directive left"
            text = normalised(text)
            for line in secret:
                assert line not in text, f"{path.name}: solution text left: {line!r}"


def test_solution_stripper_handles_both_forms():
    source = (
        "intro\n"
        "```{exercise-start}\n:label: ex-1\n```\nDo it.\n```{exercise-end}\n```\n\n"
        "```{solution-start} ex-1\n:class: dropdown\n```\nSECRET one\n\n"
        "```{code-cell} ipython3\nprint('SECRET code')\n```\n```{solution-end}\n```\n"
        "between\n"
        "````{solution} ex-2\n:class: dropdown\nSECRET two\n```python\nx = 1\n```\n````\n"
        ":::{solution} ex-3\nSECRET three\n:::\n"
        "outro\n"
    )
    stripper = SolutionStripper()
    kept = "".join(line for line in source.splitlines(keepends=True) if stripper.keep(line))
    assert "SECRET" not in kept and "solution" not in kept
    assert "Do it." in kept and "between" in kept and kept.rstrip().endswith("outro")
    assert stripper.removed == 3


def test_preface_speaks_of_solutions_as_each_edition_has_them(editions):
    main, student = editions
    said = {name: normalised(article(root / "book" / "preface.html").get_text(" "))
            for name, root in (("main", main), ("student", student))}
    assert "Worked solutions sit in collapsed boxes" in said["main"]
    assert "This is the student edition" not in said["main"]
    assert "Worked solutions sit in collapsed boxes" not in said["student"]
    assert "This is the student edition" in said["student"]
