"""Every WebUI symbol FGAT touches, per WebUI and version, and that each fake defines it.

The manifest below is the list to check first when a WebUI changes: each entry is a dotted path, a module of
the WebUI (`modules.shared`) or a name in it (`modules.shared.sd_model`, a method `...AutoencoderKL.encode`).
Two checks keep it true: every symbol the code of `fgat_webui/`, `scripts/` and `install.py` reaches through
an import from a WebUI package is listed for the WebUIs that run that code (read from the source with `ast`),
and every listed symbol is defined in that WebUI's fake (read from the fake's source, so no fake is imported).
Symbols reached dynamically (the X/Y/Z plot's module, found through `scripts.scripts_data`) are listed by
hand: they cannot be read off an import.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FAKE_A1111 = ROOT / "tests" / "fake_webui"
FAKE_FORGE = ROOT / "tests" / "fake_forge"
FAKE_NEO = ROOT / "tests" / "fake_neo"
WEBUI_PACKAGES = ("modules", "modules_forge", "backend", "ldm", "sgm", "k_diffusion", "launch", "scripts")

A1111 = "AUTOMATIC1111 1.10.1"
FORGE = "Forge 2.0.1"
NEO = "Forge Neo 3df257ae"

# the WebUI's own modules every WebUI runs (the script, UI, X/Y/Z axes, install, the backend base class)
COMMON = [
    "launch",
    "launch.is_installed",
    "launch.run_pip",
    "modules.extra_networks",
    "modules.extra_networks.parse_prompt",
    "modules.images",
    "modules.images.resize_image",
    "modules.prompt_parser",
    "modules.prompt_parser.SdConditioning",
    "modules.script_callbacks",
    "modules.script_callbacks.on_before_ui",
    "modules.scripts",
    "modules.scripts.AlwaysVisible",
    "modules.scripts.Script",
    "modules.scripts.scripts_data",
    "modules.shared",
    "modules.shared.sd_model",
    "modules.shared.state",
    "modules.ui_components.InputAccordion",
    "modules.ui_components.ToolButton",
    # found at run time through modules.scripts.scripts_data (fgat_webui/xyz.py)
    "scripts.xyz_grid.AxisOption",
    "scripts.xyz_grid.AxisOptionImg2Img",
    "scripts.xyz_grid.axis_options",
]

MANIFEST = {
    A1111: COMMON + [
        "modules.devices",
        "modules.devices.autocast",
        "modules.devices.device",
        "modules.devices.dtype_vae",
        "modules.devices.without_autocast",
        "modules.lowvram",
        "modules.lowvram.cpu",
        "modules.lowvram.module_in_gpu",
        "modules.shared.device",
        "sgm.models.autoencoder.AutoencoderKL",
        "sgm.models.autoencoder.AutoencoderKL.encode",
    ],
    FORGE: COMMON + [
        "backend.sampling.sampling_function.sampling_cleanup",
        "backend.sampling.sampling_function.sampling_prepare",
    ],
}
MANIFEST[NEO] = list(MANIFEST[FORGE])  # Neo runs ForgeBackend's code; NeoBackend reaches only modules.shared


def _webuis_running(path: Path, scope: str) -> tuple[str, ...]:
    """Which WebUIs run the code at `scope` (a top-level class, or "<module>") of `path`."""
    name = path.relative_to(ROOT).as_posix()
    if name == "fgat_webui/neo_backend.py":
        return (NEO,)
    if name == "fgat_webui/forge_backend.py":
        return (FORGE, NEO)
    if name == "fgat_webui/backend.py" and scope != "WebUIBackend":
        return (A1111,)  # A1111Backend and the module-level helpers it calls
    return (A1111, FORGE, NEO)


def used_symbols(path: Path) -> set[tuple[str, str]]:
    """(scope, dotted symbol) for every import from a WebUI package in `path` and every attribute read off a
    name bound by such an import (`from modules import shared` ... `shared.state` -> `modules.shared.state`)."""
    found: set[tuple[str, str]] = set()

    def visit(node: ast.AST, scope: str, names: dict[str, str]) -> None:
        names = dict(names)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                if child.module.split(".")[0] in WEBUI_PACKAGES:
                    for alias in child.names:
                        found.add((scope, f"{child.module}.{alias.name}"))
                        names[alias.asname or alias.name] = f"{child.module}.{alias.name}"
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.split(".")[0] in WEBUI_PACKAGES:
                        found.add((scope, alias.name))
                        if alias.asname:  # import a.b as c: c is a.b
                            names[alias.asname] = alias.name
                        else:  # import a.b: a is a
                            names[alias.name.split(".")[0]] = alias.name.split(".")[0]
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Attribute) and isinstance(child.value, ast.Name) and child.value.id in names:
                found.add((scope, f"{names[child.value.id]}.{child.attr}"))
            visit(child, child.name if isinstance(child, ast.ClassDef) and scope == "<module>" else scope, names)

    visit(ast.parse(path.read_text(encoding="utf-8")), "<module>", {})
    return found


def _fgat_sources() -> list[Path]:
    return sorted((ROOT / "fgat_webui").glob("*.py")) + [ROOT / "scripts" / "fgat.py", ROOT / "install.py"]


def _roots(webui: str, package: str) -> list[Path]:
    if package == "scripts":  # both harnesses load the built-in X/Y/Z script from the fake A1111's scripts/
        return [FAKE_A1111]
    if webui == A1111:
        return [FAKE_A1111]
    if package == "launch":
        # install.py's `launch`: the fake Forge has none (its harness does not run install.py); Forge keeps
        # A1111's launch.py, whose is_installed / run_pip come from modules/launch_utils as in A1111
        return [FAKE_A1111]
    # the fake Forge's `modules` package searches the fake A1111's modules/ after its own (fake_forge/modules);
    # the fake Neo's packages search the fake Forge's (and A1111's) after their own (fake_neo/*/__init__.py)
    forge = [FAKE_FORGE, FAKE_A1111] if package in ("modules", "k_diffusion") else [FAKE_FORGE]
    return [FAKE_NEO, *forge] if webui == NEO else forge


def _module_file(roots: list[Path], parts: list[str]) -> Path | None:
    for root in roots:
        base = root.joinpath(*parts)
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def _defines(body: list[ast.stmt], name: str) -> ast.AST | None:
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return node
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            return node
        if isinstance(node, (ast.Import, ast.ImportFrom)) and any(
            (a.asname or a.name.split(".")[0]) == name for a in node.names
        ):
            return node
    return None


def _executed_twin(path: Path) -> list[ast.stmt]:
    """A fake module that runs the file of the same name of the WebUI it extends in its own namespace (e.g.
    fake_forge/modules/shared.py: `exec(compile(<fake_webui/modules/shared.py>))`, fake_neo's the fake
    Forge's) defines what that file does, and what that file's own twin does."""
    bases = {FAKE_NEO: FAKE_FORGE, FAKE_FORGE: FAKE_A1111}
    fake = next((f for f in bases if path.is_relative_to(f)), None)
    if fake is None or "exec(compile(" not in path.read_text(encoding="utf-8"):
        return []
    twin = bases[fake] / path.relative_to(fake)
    return ast.parse(twin.read_text(encoding="utf-8")).body + _executed_twin(twin) if twin.is_file() else []


def defined_in_fake(webui: str, symbol: str) -> bool:
    """True when the fake defines `symbol`: the longest prefix that is a module of the fake, then each further
    name at top level of that module (and, for a class, in the class body)."""
    parts = symbol.split(".")
    roots = _roots(webui, parts[0])
    for i in range(len(parts), 0, -1):
        path = _module_file(roots, parts[:i])
        if path is None:
            continue
        body: list[ast.stmt] = ast.parse(path.read_text(encoding="utf-8")).body + _executed_twin(path)
        for name in parts[i:]:
            node = _defines(body, name)
            if node is None:
                return False
            body = node.body if isinstance(node, ast.ClassDef) else []
        return True
    return False


@pytest.mark.parametrize("webui", sorted(MANIFEST))
def test_every_listed_symbol_is_defined_by_that_webuis_fake(webui):
    missing = [s for s in MANIFEST[webui] if not defined_in_fake(webui, s)]
    assert missing == []


def test_every_webui_symbol_the_code_uses_is_listed_for_each_webui_that_runs_it():
    unlisted = []
    for path in _fgat_sources():
        for scope, symbol in sorted(used_symbols(path)):
            for webui in _webuis_running(path, scope):
                if symbol not in MANIFEST[webui]:
                    unlisted.append(f"{path.relative_to(ROOT)} ({scope}): {symbol} not listed for {webui}")
    assert unlisted == []


def test_the_checks_catch_an_unlisted_use_and_a_symbol_the_fake_lacks(tmp_path):
    src = tmp_path / "probe.py"
    src.write_text("from modules import shared\n\ndef f():\n    return shared.opts.x, shared.not_in_any_webui\n")
    assert used_symbols(src) == {("<module>", "modules.shared"), ("<module>", "modules.shared.opts"),
                                 ("<module>", "modules.shared.not_in_any_webui")}
    assert defined_in_fake(A1111, "modules.shared.opts")
    assert not defined_in_fake(A1111, "modules.shared.not_in_any_webui")
    assert not defined_in_fake(A1111, "modules_forge.forge_version")  # Forge only
    assert defined_in_fake(FORGE, "modules.script_callbacks.on_before_ui")  # the fake A1111's file, under Forge
    assert defined_in_fake(FORGE, "modules.shared.state")  # fake_forge/modules/shared.py runs A1111's
    assert not defined_in_fake(FORGE, "backend.sampling.sampling_function.not_a_forge_function")
