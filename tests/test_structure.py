"""The code's shape, checked from its source text: short functions in fgat_core, no unused top-level code in
fgat_core, one version number, and design citations that resolve (docs/DESIGN.md §6)."""

import ast
import re
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (the WebUIs' own): pip vendors the same parser
    from pip._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "fgat_core"
MAX_LINES = 60
# where fgat_core's code may be used from
USERS = ("fgat_core", "fgat_webui", "scripts", "tests", "bench")


def _functions(path: Path) -> list[tuple[str, int, int]]:
    """(qualified name, first line, line count) of every function and method in a file, nested ones too."""
    out = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                first = min([child.lineno] + [d.lineno for d in child.decorator_list])
                out.append((name, first, child.end_lineno - first + 1))
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(path.read_text(encoding="utf-8")), "")
    return out


def long_functions(root: Path, limit: int = MAX_LINES) -> list[str]:
    return [
        f"{p.relative_to(root.parent)}:{first} {name} ({n} lines)"
        for p in sorted(root.rglob("*.py"))
        for name, first, n in _functions(p)
        if n >= limit
    ]


def test_every_function_in_fgat_core_is_under_60_lines():
    assert long_functions(CORE) == []


def test_the_length_check_counts_methods_nested_functions_and_decorators(tmp_path):
    body = "".join(f"            x{i} = {i}\n" for i in range(55))
    src = f"class A:\n    @staticmethod\n    def f():\n        def g():\n{body}            return 0\n        return g\n"
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text(src)
    assert long_functions(tmp_path / "pkg") == ["pkg/m.py:2 A.f (60 lines)"]
    assert long_functions(tmp_path / "pkg", 57) == ["pkg/m.py:2 A.f (60 lines)", "pkg/m.py:4 A.f.g (57 lines)"]


def _sources() -> dict[Path, str]:
    files = [p for d in USERS for p in (ROOT / d).rglob("*.py") if "fake_" not in str(p.relative_to(ROOT))]
    return {p: p.read_text(encoding="utf-8") for p in files + [ROOT / "install.py"]}


def test_no_top_level_function_or_class_in_fgat_core_is_unused():
    """Dead code: a module-level function or class of fgat_core that nothing names, neither its own module
    (beyond its definition) nor any other file of the repository, tests included."""
    texts = _sources()
    unused = []
    for path in sorted(CORE.glob("*.py")):
        for node in ast.parse(texts[path]).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                name = re.compile(rf"\b{re.escape(node.name)}\b")
                elsewhere = any(name.search(t) for p, t in texts.items() if p != path)
                if len(name.findall(texts[path])) <= 1 and not elsewhere:
                    unused.append(f"{path.name}: {node.name}")
    assert unused == []


def test_the_version_has_one_source():
    """pyproject.toml declares no version of its own: setuptools reads fgat_core.__version__."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "fgat_core.__version__"}
    import fgat_core

    assert re.fullmatch(r"\d+\.\d+\.\d+", fgat_core.__version__)
    copies = [p for p, t in _sources().items() if fgat_core.__version__ in t and p.name != "__init__.py"]
    assert copies == []


def _design_sections() -> set[str]:
    heads = re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", (ROOT / "docs" / "DESIGN.md").read_text(), re.M)
    return set(heads)


CITATION = re.compile(r"DESIGN(?:\.md)?\s*§\s*(\d+(?:\.\d+)?)")


@pytest.mark.parametrize("folder", ["fgat_core", "fgat_webui", "scripts", "tests", "bench"])
def test_design_citations_point_to_sections_that_exist(folder):
    sections = _design_sections()
    assert {"2", "2.4", "3", "4.3", "5"} <= sections
    bad = []
    for path, text in _sources().items():
        if path.is_relative_to(ROOT / folder):
            for m in CITATION.finditer(text):
                line = text.count("\n", 0, m.start()) + 1
                prefix = text[max(0, m.start() - 5) : m.start()]
                if not prefix.endswith("docs/") or m.group(1) not in sections:
                    bad.append(f"{path.relative_to(ROOT)}:{line} {m.group(0)}")
            if "research " + "notes" in text:  # the maintainers' notes, not in the repository
                bad.append(f"{path.relative_to(ROOT)}: cites notes that are not in the repository")
    assert bad == []
