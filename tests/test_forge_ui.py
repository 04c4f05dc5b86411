"""The script inside the fake Forge without generating, what only Forge shows (test_webui_ui.py runs in every
fake WebUI, Forge included): FGAT detects Forge by the model, and the UI code's gradio API.

The UI is built with the venv's gradio 3.41 (A1111's pin); Forge 2.x runs gradio 4.40, which cannot be
installed beside it. What can be checked here is that the UI code uses only the API both versions share."""

import ast
from pathlib import Path

import pytest
from conftest import webui_fixture

ROOT = Path(__file__).resolve().parents[1]


webui = webui_fixture("forge")


def test_forge_is_detected_by_the_model_it_loads(webui):
    from fgat_webui.detect import detect_backend

    assert hasattr(webui.sd_model, "forge_objects") and not hasattr(webui.sd_model, "apply_model")
    assert detect_backend().name == "Forge"


# gradio 3.41-only API (removed or renamed in gradio 4): what the UI code must not use
GRADIO3_ONLY_CALLS = {"style", "Box"}  # Component.style(...), gr.Box
GRADIO3_ONLY_KEYWORDS = {"_js", "source", "tool", "shape", "brush_radius"}  # events' _js=; gr.Image(source=, ...)


@pytest.mark.parametrize("path", ["fgat_webui/ui.py", "scripts/fgat.py", "fgat_webui/xyz.py"])
def test_ui_code_uses_only_gradio_api_shared_by_3_41_and_4(path):
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in GRADIO3_ONLY_CALLS:
                problems.append(f"line {node.lineno}: {name}(...)")
            # gr.Slider.update(...) style class-level updates are gone in gradio 4: only gr.update(...)
            if name == "update" and isinstance(func, ast.Attribute) and isinstance(func.value, ast.Attribute):
                problems.append(f"line {node.lineno}: {ast.unparse(func)}(...)")
            problems += [f"line {node.lineno}: {k.arg}=" for k in node.keywords if k.arg in GRADIO3_ONLY_KEYWORDS]
    assert not problems, f"{path} uses gradio-3-only API: {problems}"
