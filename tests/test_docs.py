"""The README and docs/ stay true: links resolve, the zoo table is zoo.yaml's, examples run, tables are not copied.

``python tests/test_docs.py --update-readme`` rewrites the README's zoo block from ``dgl-hod list --markdown``.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
RESULTS = sorted((ROOT / "benchmarks" / "results").glob("*.md"))
# pages whose ```python blocks are complete programs (other pages may show fragments)
RUNNABLE = [README, ROOT / "docs" / "engine.md", ROOT / "docs" / "models.md"]

BEGIN = re.compile(r"^<!-- zoo-table:(?! end).*-->$", re.M)
END = "<!-- zoo-table: end -->"
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def _strip_code(text: str) -> str:
    """The text without fenced code blocks and inline code (links inside code are not links)."""
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]{2,}|`", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", FENCE.sub("", page.read_text(encoding="utf-8")), re.M)
    return {_slug(h) for h in headings}


def _links(page: Path) -> list[str]:
    return LINK.findall(_strip_code(page.read_text(encoding="utf-8")))


def zoo_markdown() -> str:
    """``dgl-hod list --markdown``, run in this process."""
    from dgl_hod import cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["list", "--markdown"]) == 0
    return out.getvalue().strip()


def readme_zoo_block(text: str) -> tuple[int, int]:
    """Start and end offsets of the generated table between the README's zoo-table markers."""
    begin = BEGIN.search(text)
    assert begin is not None, "README.md lost its '<!-- zoo-table: ... -->' marker line"
    end = text.find(END, begin.end())
    assert end > 0, f"README.md lost its '{END}' marker line"
    return begin.end() + 1, end


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in _links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target} (no file {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest})")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target} (no heading with anchor #{anchor} in {dest.name})")
    assert not broken, f"{page.relative_to(ROOT)}: broken links: " + "; ".join(broken)


def test_slug_follows_github() -> None:
    assert (
        _slug("bench_jets.py: derivative jets against torch.func") == "bench_jetspy-derivative-jets-against-torchfunc"
    )
    assert _slug("The zoo's training runs") == "the-zoos-training-runs"
    assert _slug("Set-up: two commands") == "set-up-two-commands"


def test_link_checker_finds_a_broken_link(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text("# Title\n[ok](p.md#title) [bad](missing.md) [code](`x`)\n```\n[not a link](nowhere.md)\n```\n")
    links = _links(page)
    assert links == ["p.md#title", "missing.md"]
    assert "title" in _anchors(page)


def test_readme_zoo_table_is_generated_from_zoo_yaml() -> None:
    text = README.read_text(encoding="utf-8")
    start, end = readme_zoo_block(text)
    expected = zoo_markdown()
    assert text[start:end].strip() == expected, (
        "README.md's zoo table differs from `dgl-hod list --markdown` (zoo.yaml changed?); "
        "regenerate it with `python tests/test_docs.py --update-readme`"
    )


def test_readme_is_short() -> None:
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= 200, f"README.md has {lines} lines; keep it under ~200 and move details into docs/"


def test_no_result_table_is_copied_into_the_docs() -> None:
    """Result tables have one source (benchmarks/results/*.md): pages link them, never paste their rows."""
    rows = {}
    for res in RESULTS:
        for line in res.read_text(encoding="utf-8").splitlines():
            if line.startswith("|") and re.search(r"\d", line) and not set(line) <= set("|-: "):
                rows[line.strip()] = res.name
    copied = [
        f"{page.relative_to(ROOT)} repeats a row of {rows[line.strip()]}: {line.strip()[:60]}"
        for page in PAGES
        for line in page.read_text(encoding="utf-8").splitlines()
        if line.strip() in rows
    ]
    assert not copied, "; ".join(copied)


def test_every_result_file_is_documented() -> None:
    """Each benchmarks/results/*.md is linked from docs/ or the README, so no measurement is orphaned."""
    linked = {Path(t.partition("#")[0]).name for page in PAGES for t in _links(page)}
    orphans = [r.name for r in RESULTS if r.name not in linked]
    assert not orphans, f"benchmarks/results files linked from no page (add them to docs/benchmarks.md): {orphans}"


@pytest.mark.slow  # the README evaluates two zoo models on the ZINC-12k test split (seconds on an idle machine)
@pytest.mark.parametrize("page", RUNNABLE, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_python_examples_run(page: Path) -> None:
    """Every ```python block of the page, run in order in one namespace (the README's quick start included)."""
    blocks = re.findall(r"^```python\n(.*?)^```", page.read_text(encoding="utf-8"), re.M | re.S)
    assert blocks, f"{page.name} has no python example"
    namespace: dict = {"__name__": "__docs__"}
    with contextlib.redirect_stdout(io.StringIO()):
        for i, code in enumerate(blocks):
            exec(compile(code, f"{page.name}[python block {i}]", "exec"), namespace)  # noqa: S102


def update_readme() -> bool:
    """Rewrite the README's zoo block from ``dgl-hod list --markdown``; True when it changed."""
    from dgl_hod.utils import atomic_write_bytes

    text = README.read_text(encoding="utf-8")
    start, end = readme_zoo_block(text)
    new = text[:start] + zoo_markdown() + "\n" + text[end:]
    if new != text:
        atomic_write_bytes(README, new.encode("utf-8"))
    return new != text


if __name__ == "__main__":
    if sys.argv[1:] != ["--update-readme"]:
        sys.exit("usage: python tests/test_docs.py --update-readme")
    print("README.md zoo table " + ("updated" if update_readme() else "already up to date"))
