"""The script inside every fake WebUI (the `webui` fixture of conftest.py: A1111, Forge, Forge Neo) without
generating: UI build, API default args, presets through the UI's own event handlers, infotext paste-back, X/Y/Z
axis registration. What only Forge or Neo shows is in test_forge_ui.py and test_neo_ui.py."""

import copy
import json

import pytest
from PIL import Image

from fgat_core.config import FGATConfig
from fgat_core.infotext import INFOTEXT_KEY, format_infotext
from fgat_core.presets import BUILTIN, PresetStore
from fgat_webui import TITLE
from fgat_webui.args import CONFIG_CONTROLS, CONTROLS, FGATSettings, ui_value
from fgat_webui.ui import PresetActions


def test_each_fake_is_detected_as_the_webui_it_stands_for(webui, webui_name):
    """The shared tests really run in each WebUI: FGAT picks the backend of the fake that is running."""
    from conftest import BACKEND_NAMES

    from fgat_webui.detect import detect_backend

    assert detect_backend().name == BACKEND_NAMES[webui_name]
    assert hasattr(webui.sd_model, "forge_objects") == (webui_name != "a1111")


def test_script_is_one_always_on_section_in_img2img_only(webui):
    script = webui.script
    assert script is not None and script.title() == TITLE and script.alwayson
    assert script.show(False) is False  # never in txt2img
    assert script.args_to - script.args_from == len(CONTROLS)
    from modules.ui_components import InputAccordion

    assert isinstance(script.controls[0], InputAccordion)  # the enable toggle is the accordion
    assert [c.elem_id for c in script.controls[1:]] == [c.elem_id for c in CONTROLS[1:]]
    defaults = webui.default_args[script.args_from:script.args_to]
    assert defaults == [c.default for c in CONTROLS]
    assert [a.label for a in script.api_info.args] == [c.label for c in CONTROLS]


def test_api_default_args_call_ui_again_and_get_the_same_defaults(webui):
    from modules.api import api

    args = api.init_default_script_args(webui.runner)
    s = webui.script
    assert args[s.args_from:s.args_to] == [c.default for c in CONTROLS]


def test_preset_actions_save_load_delete(tmp_path):
    actions = PresetActions(lambda: PresetStore(tmp_path))
    values = [c.default for c in CONTROLS]
    values[[c.name for c in CONTROLS].index("delta")] = 0.42
    values[[c.name for c in CONTROLS].index("window_end")] = 61
    names, selected, status = actions.save("My look", values)
    assert "My look" in names and selected == "My look" and "Saved" in status
    stored = json.loads((tmp_path / "presets.json").read_text())
    assert stored["My look"]["delta"] == 0.42 and stored["My look"]["window_end"] == pytest.approx(0.61)
    loaded, status = actions.load("My look")
    assert loaded["delta"] == 0.42 and loaded["window_end"] == pytest.approx(61) and "Loaded" in status
    names, selected, status = actions.delete("My look")
    assert "My look" not in names and selected is None and "Deleted" in status
    assert actions.load("My look")[0] is None


@pytest.mark.parametrize(
    ("action", "pattern"),
    [(lambda a: a.delete("Paper"), "built-in preset and cannot be deleted"),
     (lambda a: a.save("../escape", [c.default for c in CONTROLS]), "invalid preset name"),
     (lambda a: a.save("Paper", [c.default for c in CONTROLS]), "cannot be overwritten"),
     (lambda a: a.delete("ghost"), "no user preset named 'ghost'"),
     # the window in the sliders' own units, not the config's fractions
     (lambda a: a.save("Bad window", [{"window_start": 30.0, "window_end": 20.0}.get(c.name, c.default)
                                      for c in CONTROLS]),
      "'Window end (% of steps)' (20 %) must be greater than 'Window start (% of steps)' (30 %)")],
)
def test_preset_errors_become_status_text(tmp_path, action, pattern):
    status = action(PresetActions(lambda: PresetStore(tmp_path)))[-1]
    assert pattern in status  # shown in the UI, never raised


def test_preset_events_drive_the_controls(webui):
    by_id = {c.elem_id: c for c in webui.demo.blocks.values() if getattr(c, "elem_id", None)}
    save = webui.event_handler(by_id["fgat_preset_save"], "click")
    load = webui.event_handler(by_id["fgat_preset"], "input")  # the user's pick, not Save/Delete's updates
    with pytest.raises(LookupError):
        webui.event_handler(by_id["fgat_preset"], "change")
    delete = webui.event_handler(by_id["fgat_preset_delete"], "click")

    values = [c.default for c in CONTROLS]
    values[[c.name for c in CONTROLS].index("gamma")] = 0.77
    dropdown, status = save("Gamma test", *values)
    assert "Gamma test" in dropdown["choices"] and dropdown["value"] == "Gamma test", status
    assert (webui.presets_dir / "presets.json").exists()

    updates = load("Gamma test")
    assert len(updates) == len(CONFIG_CONTROLS) + 1
    by_name = {c.name: u for c, u in zip(CONFIG_CONTROLS, updates, strict=False)}
    assert by_name["gamma"]["value"] == 0.77 and by_name["delta"]["value"] == FGATConfig().delta

    builtin = load("Strong transfer")
    by_name = {c.name: u for c, u in zip(CONFIG_CONTROLS, builtin, strict=False)}
    assert by_name["delta"]["value"] == BUILTIN["Strong transfer"]["delta"]
    assert by_name["window_end"]["value"] == pytest.approx(BUILTIN["Strong transfer"]["window_end"] * 100)

    dropdown, status = delete("Gamma test")
    assert "Gamma test" not in dropdown["choices"] and "Deleted" in status


def _infotext(config: FGATConfig, **extras) -> str:
    from modules.infotext_utils import quote

    value = format_infotext(config, **extras)
    params = f"Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 64x64, {INFOTEXT_KEY}: {quote(value)}"
    return f"a photo of a cat\n{params}"


def test_paste_restores_every_control(webui):
    config = FGATConfig(delta=0.33, lam=0.4, gamma=0.55, window_start=0.1, window_end=0.7, matching="initial",
                        inversion="ddim", mask_source="user", mask_word="cat", dift_ensemble=3, mask_threshold=0.5,
                        mask_dilate=2, mask_layers="all", dift_timestep=400, dift_prompt="empty", gamma_on="uncond",
                        null_text_steps=4, null_text_lr=0.003, null_text_epsilon=3e-5, match_chunk=256, steps=20)
    pasted = webui.paste(_infotext(config, target_prompt="a photo of a dog", target_hash="abc", diagnostics=True,
                                   sampler_note="FGAT sampled, with commas: and colons"))
    expected = FGATSettings(enabled=True, config=config, target_prompt="a photo of a dog", diagnostics=True)
    for control in CONTROLS:
        if control.kind == "image":
            assert control.name not in pasted  # only the hash is recorded; the image stays as it is
            continue
        want = ui_value(control, expected)
        if isinstance(want, float) or control.kind in ("int", "percent"):
            assert float(pasted[control.name]) == pytest.approx(float(want)), control.name
        else:
            assert pasted[control.name] == want, control.name


def test_paste_without_fgat_key_turns_the_section_off_and_keeps_the_rest(webui):
    pasted = webui.paste("a photo\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 64x64")
    assert pasted == {"enabled": False}


def test_paste_of_an_unreadable_fgat_value_is_reported_and_changes_nothing(webui, capsys):
    from fgat_webui.infotext import _report_unreadable

    _report_unreadable.cache_clear()  # said once per value: another WebUI's run of this test said it already
    pasted = webui.paste('a photo\nSteps: 20, Seed: 5, Size: 64x64, FGAT: "delta=1.7; lam=0.2"')
    assert pasted == {}  # every control left as it was
    err = capsys.readouterr().err
    assert "FGAT: the infotext's FGAT value cannot be read (" in err and "delta" in err
    assert "FGAT's settings were left as they were" in err


def test_xyz_axes_are_registered_once_and_apply_to_the_cell_copy(webui):
    from fgat_webui.run import XYZ_ATTR
    from fgat_webui.xyz import AXES, register_xyz_axes

    xyz = next(d.module for d in webui.modules.scripts.scripts_data if d.script_class.__module__ == "xyz_grid.py")
    labels = [o.label for o in xyz.axis_options]
    assert all(labels.count(label) == 1 for label, _, _ in AXES)
    assert register_xyz_axes(lambda: ["Paper"]) is True  # again: no duplicates
    assert [o.label for o in xyz.axis_options] == labels
    opts = {o.label: o for o in xyz.axis_options}
    assert all(getattr(opts[label], "is_img2img", True) for label, _, _ in AXES)

    p = webui.make_p(Image.new("RGB", (64, 64)), "x")
    opts["[FGAT] δ transfer strength"].apply(p, 0.9, [0.9])
    cell = copy.copy(p)  # what xyz_grid does per cell
    opts["[FGAT] γ noise balance"].apply(cell, 0.1, [0.1])
    assert getattr(p, XYZ_ATTR) == {"delta": 0.9}
    assert getattr(cell, XYZ_ATTR) == {"delta": 0.9, "gamma": 0.1}
    preset = opts["[FGAT] Preset"]
    assert "Paper" in preset.choices()
    with pytest.raises(RuntimeError, match="unknown FGAT preset"):
        preset.confirm(p, ["Paper", "Nope"])
