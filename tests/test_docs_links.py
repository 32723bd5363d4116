"""Every relative link in README.md, docs/ and benchmarks/ resolves in a clone of the repository.

The docs are read on GitHub and in a checkout, where a link to a file that moved, or to a
heading that was renamed, fails silently. These tests follow each relative link (and image) in
README.md, docs/**/*.md and benchmarks/*.md to a file inside the repository, and each ``#anchor`` to a heading
of its target, with GitHub's heading-to-anchor rule. The code's comments point into
docs/methods.md by anchor (``docs/methods.md#dccf``): those anchors are checked too.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = sorted([REPO / "README.md", *(REPO / "docs").rglob("*.md"), *(REPO / "benchmarks").glob("*.md")])

FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
# [text](target) and ![alt](target); the target stops at whitespace or the closing parenthesis
# (an optional "title" after a space is ignored).
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$", re.M)
EXPLICIT_ANCHOR = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"")
CODE_ANCHOR = re.compile(r"docs/methods\.md#([\w-]+)")


def prose(text: str) -> str:
    """The markdown without fenced code blocks and inline code, where brackets are not links."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    found = set(EXPLICIT_ANCHOR.findall(text))
    for _, title in HEADING.findall(text):
        base = slug(title)
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def links(path: Path) -> list[str]:
    return LINK.findall(prose(path.read_text(encoding="utf-8")))


def broken(path: Path, target: str) -> str | None:
    """Why ``target`` (a link in ``path``) does not resolve, or None if it does."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
        return None
    file_part, _, anchor = target.partition("#")
    dest = path if not file_part else (path.parent / file_part).resolve()
    if REPO not in (dest, *dest.parents):
        return f"{target}: outside the repository ({dest})"
    if not dest.exists():
        return f"{target}: no such file {dest.relative_to(REPO)}"
    if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
        return f"{target}: {dest.relative_to(REPO)} has no heading with anchor #{anchor}"
    return None


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(path):
    problems = [why for target in links(path) if (why := broken(path, target))]
    assert not problems, f"{path.relative_to(REPO)}:\n" + "\n".join(problems)


def test_code_references_to_methods_doc_resolve():
    """``docs/methods.md#anchor`` in the code's docstrings and help texts names a real heading."""
    known = anchors(REPO / "docs" / "methods.md")
    problems = []
    for folder in ("models", "app"):
        for py in (REPO / folder).rglob("*.py"):
            for anchor in CODE_ANCHOR.findall(py.read_text(encoding="utf-8")):
                if anchor not in known:
                    problems.append(f"{py.relative_to(REPO)}: docs/methods.md#{anchor}")
    assert not problems, "\n".join(problems)


def test_the_checker_sees_links_and_anchors(tmp_path, monkeypatch):
    """The checker itself: a missing file and a missing anchor are reported, code is skipped."""
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    (tmp_path / "a.md").write_text("# Top\n## Some `code` (here)\n")
    doc = tmp_path / "b.md"
    doc.write_text("[ok](a.md#some-code-here) [gone](c.md) [bad](a.md#nope) `[x](y.md)`\n"
                   "```\n[z](w.md)\n```\n![img](a.md) [web](https://example.com/x)\n")
    found = links(doc)
    assert found == ["a.md#some-code-here", "c.md", "a.md#nope", "a.md", "https://example.com/x"]
    assert [t for t in found if broken(doc, t)] == ["c.md", "a.md#nope"]
