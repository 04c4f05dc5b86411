"""The FGAT Settings and FGAT Preset nodes: inputs built from the one table of setting metadata, the same presets
as the CLI and the WebUI (built-in and the user's presets.json), bad values refused with one message."""

import json

import pytest
from fake_comfy import harness

from fgat_core.config import FGATConfig
from fgat_core.presets import BUILTIN
from fgat_core.settings import SETTINGS


@pytest.fixture
def nodes(tmp_path, monkeypatch):
    monkeypatch.setenv("FGAT_PRESETS_DIR", str(tmp_path))
    harness.start()
    try:
        from fgat_comfy import nodes

        yield nodes
    finally:
        harness.stop()


def test_every_method_setting_is_an_input_with_the_tables_range_default_and_help(nodes):
    inputs = nodes.FGATSettings.INPUT_TYPES()["optional"]
    expected = [s.name for s in SETTINGS if s.control is not None and not s.host_owned and s.name != "mask_word"]
    assert list(inputs) == expected
    kind, delta = inputs["delta"]
    assert kind == "FLOAT" and (delta["min"], delta["max"], delta["step"], delta["default"]) == (0.0, 1.0, 0.01, 0.9)
    delta_setting = next(s for s in SETTINGS if s.name == "delta")
    assert delta["tooltip"] == f"{delta_setting.control.label}: {delta_setting.help} (valid: [0, 1])"
    kind, window = inputs["window_end"]  # a percent control in the WebUI: a fraction here, as the setting is
    assert kind == "FLOAT" and (window["min"], window["max"], window["default"]) == (0.01, 1.0, 0.44)
    choices, inversion = inputs["inversion"]
    assert choices == ["direct", "null-text", "negative-prompt", "ddim"] and inversion["default"] == "negative-prompt"
    kind, ensemble = inputs["dift_ensemble"]
    assert kind == "INT" and (ensemble["min"], ensemble["max"]) == (1, 32)
    by_name = {s.name: s for s in SETTINGS}
    for name, (kind, _options) in inputs.items():  # each input's type is its setting's kind (found in the real
        setting = by_name[name]                     # ComfyUI: a text setting shown as INT failed validation)
        want = list(setting.choices) if setting.choices else {str: "STRING", float: "FLOAT", int: "INT"}[setting.kind]
        assert kind == want, name
    assert inputs["target_mask_word"][0] == "STRING"
    transfer = nodes.FGATAppearanceTransfer.INPUT_TYPES()["required"]
    assert transfer["steps"][1]["default"] == 50 and transfer["cfg"][1]["default"] == 7.5  # host-owned: its own


def test_the_settings_node_returns_the_values_and_refuses_bad_ones(nodes):
    defaults = {name: spec[1]["default"] for name, spec in nodes.FGATSettings.INPUT_TYPES()["optional"].items()}
    (out,) = nodes.FGATSettings().settings(**{**defaults, "delta": 0.75})
    assert nodes.FGATSettings().settings(delta=0.75) == (out,)  # an input left out takes the table's default
    assert out["delta"] == 0.75 and FGATConfig.from_dict(out) == FGATConfig(delta=0.75)
    with pytest.raises(ValueError, match=r"^FGAT: 'window_end' \(0.2\) must be greater than 'window_start' \(0.24\)$"):
        nodes.FGATSettings().settings(**{**defaults, "window_end": 0.2})


def test_presets_are_the_cli_and_webui_ones_and_a_user_preset_file_is_reread(nodes, tmp_path):
    names = nodes.FGATPreset.INPUT_TYPES()["required"]["preset"][0]
    assert names == list(BUILTIN)
    (strong,) = nodes.FGATPreset().preset("Strong transfer")
    assert FGATConfig.from_dict(strong) == FGATConfig.from_dict(BUILTIN["Strong transfer"])
    before = nodes.FGATPreset.IS_CHANGED(preset="Mine")
    (tmp_path / "presets.json").write_text(json.dumps({"Mine": FGATConfig(delta=0.3).to_dict()}))
    assert nodes.FGATPreset.IS_CHANGED(preset="Mine") != before  # ComfyUI re-runs the node after an edit
    assert "Mine" in nodes.FGATPreset.INPUT_TYPES()["required"]["preset"][0]
    assert nodes.FGATPreset().preset("Mine")[0]["delta"] == 0.3
    with pytest.raises(ValueError, match="^FGAT: unknown preset 'Nope'; available presets: Defaults"):
        nodes.FGATPreset().preset("Nope")


def test_the_repository_root_is_a_comfy_node_pack():
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    harness.start()
    try:  # as ComfyUI's load_custom_node does (nodes.py:2244-2263): the folder's __init__.py under a name of its own
        spec = importlib.util.spec_from_file_location("custom_nodes_x_fgat", root / "__init__.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        harness.stop()
    assert set(module.NODE_CLASS_MAPPINGS) == {"FGATAppearanceTransfer", "FGATSettings", "FGATPreset",
                                               "FGATDiagnostics"}
    assert all(cls.CATEGORY == "FGAT" for cls in module.NODE_CLASS_MAPPINGS.values())
    assert set(module.NODE_DISPLAY_NAME_MAPPINGS) == set(module.NODE_CLASS_MAPPINGS)


def test_the_example_workflows_use_the_nodes_as_defined_and_the_bundled_images(nodes):
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    api = json.loads((root / "examples" / "fgat_comfy_api.json").read_text())
    settings = next(n for n in api.values() if n["class_type"] == "FGATSettings")["inputs"]
    defaults = {k: spec[1]["default"] for k, spec in nodes.FGATSettings.INPUT_TYPES()["optional"].items()}
    assert settings == {k: defaults[k] for k in settings}  # settings the node has, at the table's defaults
    convert = {"STRING": str, "FLOAT": float, "INT": int}  # what ComfyUI's validate_inputs applies (execution.py)
    for name, value in settings.items():
        kind = nodes.FGATSettings.INPUT_TYPES()["optional"][name][0]
        assert value in kind if isinstance(kind, list) else convert[kind](value) == value, name
    transfer = next(n for n in api.values() if n["class_type"] == "FGATAppearanceTransfer")["inputs"]
    spec = nodes.FGATAppearanceTransfer.INPUT_TYPES()
    assert set(transfer) <= set(spec["required"]) | set(spec["optional"]) and set(spec["required"]) <= set(transfer)
    images = {n["inputs"]["image"] for n in api.values() if n["class_type"] == "LoadImage"}
    assert images == {"source.png", "target.png"} and all((root / "examples" / i).is_file() for i in images)
    ui = json.loads((root / "examples" / "fgat_comfy_workflow.json").read_text())
    assert sorted(n["type"] for n in ui["nodes"]) == sorted(n["class_type"] for n in api.values())
    ids = {n["id"]: n for n in ui["nodes"]}
    for link_id, src, slot, dst, dst_slot, kind in ui["links"]:  # every link joins an output to an input of its type
        assert link_id in ids[src]["outputs"][slot]["links"] and ids[dst]["inputs"][dst_slot]["link"] == link_id
        assert ids[dst]["inputs"][dst_slot]["type"] == kind
    ui_settings = next(n for n in ui["nodes"] if n["type"] == "FGATSettings")["widgets_values"]
    assert ui_settings == list(settings.values())


def test_pyproject_has_the_comfy_registry_entry():
    from pathlib import Path

    try:
        import tomllib
    except ModuleNotFoundError:
        from pip._vendor import tomli as tomllib
    data = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    comfy = data["tool"]["comfy"]
    assert {"PublisherId", "DisplayName", "Icon", "requires-comfyui"} <= set(comfy) and data["project"]["name"]
    assert (Path(__file__).resolve().parents[1] / comfy["Icon"]).is_file()
