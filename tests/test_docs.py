"""The documentation's links hold: every relative link in README.md and docs/*.md names a file that exists, and
every `#anchor` (on the same page or another) names a heading of that page, by GitHub's slug rules. README.md
links every page of docs/."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^ {0,3}(```|~~~)")


def _prose(text: str) -> list[str]:
    """The lines outside fenced code blocks, with inline code spans blanked (links inside code are text)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            lines.append("")
            continue
        lines.append("" if fenced else re.sub(r"`[^`]*`", lambda m: " " * len(m.group(0)), line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text (link targets and code ticks dropped), lowercased,
    punctuation removed except '-' and '_', each space a '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text).lower()
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's anchor on a page; repeated headings get GitHub's -1, -2 suffixes."""
    seen: dict[str, int] = {}
    out = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        m = None if fenced else HEADING.match(line)
        if m:
            base = slug(m.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def broken_links(page: Path) -> list[str]:
    """`page:line target (why)` for each relative link whose file or anchor does not exist."""
    bad = []
    for number, line in enumerate(_prose(page.read_text(encoding="utf-8")), 1):
        for target in LINK.findall(line):
            if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            dest = (page.parent / file_part).resolve() if file_part else page
            why = None
            if not dest.exists():
                why = "no such file"
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                why = "no such heading"
            if why:
                bad.append(f"{page.name}:{number} {target} ({why})")
    return bad


def _pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_every_relative_link_and_anchor_in_the_docs_resolves():
    assert len(_pages()) >= 12
    assert [b for page in _pages() for b in broken_links(page)] == []


def test_the_readme_links_every_page_of_docs():
    readme = ROOT / "README.md"
    linked = {(ROOT / t.partition("#")[0]).resolve() for line in _prose(readme.read_text(encoding="utf-8"))
              for t in LINK.findall(line) if t.startswith("docs/")}
    assert sorted(p.name for p in (ROOT / "docs").glob("*.md") if p.resolve() not in linked) == []


def test_slugs_follow_github_rules():
    assert slug("Models (offline)") == "models-offline"
    assert slug("`batch`: many pairs") == "batch-many-pairs"
    assert slug("2.1 Notation and the timestep convention") == "21-notation-and-the-timestep-convention"
    assert slug("Progress, Interrupt, Skip") == "progress-interrupt-skip"
    assert slug("X/Y/Z plot") == "xyz-plot"
    assert slug("Settings (`FGATConfig`)") == "settings-fgatconfig"
    assert slug("snake_case and a-dash") == "snake_case-and-a-dash"


def test_the_checker_finds_a_broken_file_a_broken_anchor_and_accepts_good_ones(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## Same heading\n\n## Same heading\n", encoding="utf-8")
    (tmp_path / "real.png").write_bytes(b"")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n## Settings (`FGATConfig`)\n\n"
        "[ok](other.md) [ok](other.md#same-heading-1) [ok](#settings-fgatconfig) ![ok](real.png)\n"
        "[web](https://example.com/x.md#nothing) `[in code](missing.md)`\n"
        "```\n[in a fence](missing.md)\n```\n"
        "[gone](missing.md)\n"
        "[bad anchor](other.md#same-heading-2) [bad here](#settings)\n",
        encoding="utf-8",
    )
    assert broken_links(page) == [
        "page.md:10 missing.md (no such file)",
        "page.md:11 other.md#same-heading-2 (no such heading)",
        "page.md:11 #settings (no such heading)",
    ]
