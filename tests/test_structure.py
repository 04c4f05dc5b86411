"""The code's shape, checked from its source text: short functions in the product, no unused top-level code in
fgat_core, one version number, design citations that resolve (docs/DESIGN.md §6), and the import graph
(fgat_core imports no front end; no cycles)."""

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
# the product: the method (fgat_core) and its front ends
PRODUCT = ("fgat_core", "fgat_cli", "fgat_demo", "fgat_webui", "fgat_comfy")
FRONT_ENDS = ("fgat_cli", "fgat_demo", "fgat_webui", "fgat_comfy", "scripts")
# where fgat_core's code may be used from
USERS = (*PRODUCT, "scripts", "tests", "bench")


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


@pytest.mark.parametrize("package", PRODUCT)
def test_every_function_in_the_product_is_under_60_lines(package):
    assert long_functions(ROOT / package) == []


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


@pytest.mark.parametrize("folder", [*PRODUCT, "scripts", "tests", "bench"])
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


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path, packages: tuple[str, ...]) -> dict[str, set[str]]:
    """module -> the product modules it imports, at module level or inside a function (a lazy import is an
    arrow too); relative imports resolved; `from pkg import mod` counts as an arrow to `pkg.mod`."""
    files = {p: _module_name(p, root) for d in packages for p in (root / d).rglob("*.py")}
    known = set(files.values())
    graph: dict[str, set[str]] = {}
    for path, mod in files.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                names = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            deps |= {n for n in names if n in known and n != mod}
        graph[mod] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_product_has_no_import_cycle():
    assert cycles(import_graph(ROOT, PRODUCT)) == []


def test_fgat_core_imports_no_front_end():
    """The method knows no front end. `fgat_core/__main__.py` is the one exception: a shim that runs
    `fgat_cli` by name (runpy) for scripts written before the split, and imports nothing from it."""
    graph = import_graph(ROOT, PRODUCT)
    arrows = [f"{m} -> {d}" for m, deps in graph.items() if m.startswith("fgat_core") for d in deps
              if d.split(".")[0] in FRONT_ENDS]
    assert arrows == []
    for path in CORE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        named = [fe for fe in FRONT_ENDS if re.search(rf"^\\s*(from|import) {fe}\\b", text, re.M)]
        assert named == [], path


def test_the_import_graph_check_finds_cycles_and_resolves_relative_imports(tmp_path):
    pkg = tmp_path / "p"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import x\n")
    (pkg / "b.py").write_text("def f():\n    from p import c\n")
    (pkg / "c.py").write_text("import p.a\n")
    (pkg / "d.py").write_text("from . import b\n")
    graph = import_graph(tmp_path, ("p",))
    assert graph["p.a"] == {"p.b"} and graph["p.b"] == {"p", "p.c"} and graph["p.d"] == {"p", "p.b"}
    assert cycles(graph) == [["p.a", "p.b", "p.c"]]
    (pkg / "c.py").write_text("")
    assert cycles(import_graph(tmp_path, ("p",))) == []
