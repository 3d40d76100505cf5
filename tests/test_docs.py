"""The documentation against the checkout: the README stays a page, every
link and every source path the docs name exists, code comments cite only
files that exist, and a number docs/results.md quotes is the committed
file's own line. Unit tests: fast, no root."""

import re
from pathlib import Path
import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [ROOT / "README.md", *DOCS, *(ROOT / d / "README.md" for d in
                                     ("config", "paper", "vm", "results"))]
# top-level folders whose files are sources (committed), not outputs
SOURCE_DIRS = ("workflow/", "native/", "tests/", "nix/", "config/", "vm/",
               "kernels/", "docs/", "results/reference/", "paper/data/")


def test_readme_is_a_page():
    n = len((ROOT / "README.md").read_text().splitlines())
    assert n < 250, f"README.md has {n} lines: move detail to docs/"


def test_docs_exist():
    names = {p.name for p in DOCS}
    assert {"platforms.md", "method.md", "results.md", "nix.md"} <= names, names


def test_every_relative_link_resolves():
    bad = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if re.match(r"[a-z]+://", target):
                continue
            if not (page.parent / target).exists():
                bad.append(f"{page.relative_to(ROOT)}: {target}")
    assert not bad, "links to nothing:\n" + "\n".join(bad)


def test_every_source_path_the_docs_name_exists():
    bad = []
    for page in PAGES:
        for span in re.findall(r"`([^`\s]+)`", page.read_text()):
            path = span.rstrip(".,;:)")
            if not path.startswith(SOURCE_DIRS) or re.search(r"[{}<>*\[]|\.\.\.|\b[A-Z]{3,}\b", path):
                continue
            if not (ROOT / path).exists():
                bad.append(f"{page.relative_to(ROOT)}: {path}")
    assert not bad, "paths that do not exist:\n" + "\n".join(bad)


def test_code_cites_only_docs_that_exist():
    """Docstrings and comments name .md files of the checkout, never one
    that is not there (design notes kept elsewhere)."""
    bad = []
    for folder in ("workflow", "native", "tests", "nix", "config", "vm"):
        for f in (ROOT / folder).rglob("*"):
            if f == Path(__file__) or not f.is_file() or f.suffix not in (".py", ".smk", ".c", ".h", ".nix",
                                                    ".yaml", ".sh", ""):
                continue
            try:
                text = f.read_text()
            except UnicodeDecodeError:
                continue
            for m in re.finditer(r"(?<![\w/.-])([\w./-]*[\w-]+\.md)\b", text):
                name = m.group(1)
                if any((d / name).exists() for d in (ROOT, f.parent, f.parent.parent, ROOT / "docs")):
                    continue
                bad.append(f"{f.relative_to(ROOT)}: {name}")
    assert not bad, "citations of files that are not in the repo:\n" + "\n".join(bad)


def test_quoted_measurement_is_the_committed_line():
    """docs/results.md quotes the ssh platform's orchestration cost as one
    line of a committed benchmark output: that line is in that file."""
    text = (ROOT / "docs/results.md").read_text()
    m = re.search(r"one line of\n`(results/reference/[^`]+/table\.txt)`:\n\n    (ssh .+)\n", text)
    assert m, "docs/results.md: the quoted orchestration line is gone"
    table = (ROOT / m.group(1)).read_text().splitlines()
    assert m.group(2) in table, f"{m.group(1)} has no line {m.group(2)!r}"
    per_cell = re.search(r"orchestration (\d+\.\d+) s/cell", m.group(2)).group(1)
    assert f"that is {per_cell} s per cell" in text
