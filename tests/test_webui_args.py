"""The WebUI script's settings: positional (UI order) and API-dict parsing, overrides, controls, tooltips,
install.py. No model and no fake WebUI needed here."""

import base64
import io
import re
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fgat_core.config import FGATConfig
from fgat_core.presets import PresetStore
from fgat_webui.args import (
    API_KEYS,
    CONTROLS,
    WEBUI_OWNED,
    FGATSettings,
    apply_overrides,
    decode_image,
    settings_from_dict,
    settings_from_positional,
    settings_from_script_args,
    ui_value,
)

ROOT = Path(__file__).resolve().parents[1]


def _png_b64(img: Image.Image, fmt: str = "PNG") -> str:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


@pytest.fixture(scope="module")
def small_image():
    rng = np.random.default_rng(3)
    return Image.fromarray(rng.integers(0, 255, (24, 32, 3)).astype(np.uint8))


def _ui_args(**values):
    args = [c.default for c in CONTROLS]
    for name, value in values.items():
        args[[c.name for c in CONTROLS].index(name)] = value
    return args


def test_positional_args_map_ui_units_to_config(small_image):
    args = _ui_args(enabled=True, target_image=small_image, target_prompt="a dog", mask_source="inpaint mask",
                    delta=0.7, window_start=10, window_end=55, inversion="null-text", dift_ensemble=3.0,
                    diagnostics=True, mask_dilate=2.0)
    s = settings_from_positional(args)
    assert s.enabled and s.diagnostics and s.target_image is small_image and s.target_prompt == "a dog"
    c = s.config
    assert (c.mask_source, c.delta, c.inversion) == ("user", 0.7, "null-text")
    assert c.window_start == pytest.approx(0.10) and c.window_end == pytest.approx(0.55)
    assert c.dift_ensemble == 3 and isinstance(c.dift_ensemble, int) and c.mask_dilate == 2


def test_disabled_positional_args_read_nothing_else():
    # garbage after a False toggle is never parsed: a disabled section can't break a generation
    s = settings_from_positional([False, "not an image", 123, None, "bogus"])
    assert s == FGATSettings(enabled=False)


def test_positional_missing_trailing_args_take_ui_defaults(small_image):
    s = settings_from_positional([True, small_image, "a dog"])
    assert s.config == FGATConfig()


@pytest.mark.parametrize(
    ("name", "value", "pattern"),
    [("delta", 1.5, r"delta.*\[0\.0, 1\.0\]"), ("inversion", "magic", r"inversion.*direct"),
     ("mask_source", "drawn", r"mask source must be one of"), ("dift_ensemble", 2.5, r"dift_ensemble.*whole number"),
     ("window_end", 20, r"Window end \(% of steps\). \(20 %\) must be greater than .Window start")],
)
def test_positional_bad_values_name_the_setting(small_image, name, value, pattern):
    with pytest.raises(ValueError, match=pattern):
        settings_from_positional(_ui_args(enabled=True, target_image=small_image, **{name: value}))


def test_every_config_field_has_a_control_except_webui_owned():
    names = {c.name for c in CONTROLS}
    config_fields = {f.name for f in fields(FGATConfig)}
    assert config_fields - names == set(WEBUI_OWNED)
    assert len({c.elem_id for c in CONTROLS}) == len(CONTROLS)


def test_ui_values_round_trip_through_positional_parse(small_image):
    config = FGATConfig(delta=0.35, lam=0.5, gamma=0.75, window_start=0.1, window_end=0.6, matching="initial",
                        inversion="negative-prompt", mask_source="none", mask_word="cat", mask_threshold=0.45,
                        dift_timestep=300, dift_ensemble=4, gamma_on="uncond", mask_layers="all", mask_dilate=0,
                        dift_prompt="empty", null_text_steps=5, null_text_lr=0.002, null_text_epsilon=2e-5,
                        match_chunk=512)
    settings = FGATSettings(enabled=True, config=config, target_image=small_image, target_prompt="t", diagnostics=True)
    back = settings_from_positional([ui_value(c, settings) for c in CONTROLS])
    assert back.config == config.replace(steps=back.config.steps, guidance_scale=back.config.guidance_scale,
                                         seed=back.config.seed)
    assert (back.target_prompt, back.diagnostics) == ("t", True)


def test_api_dict_keys_are_config_fields_plus_extras(small_image):
    expected = {f.name for f in fields(FGATConfig)} | {"enabled", "target_image", "target_prompt", "mask_image",
                                                         "preset", "diagnostics"}
    assert set(API_KEYS) == expected
    s = settings_from_dict({"target_image": _png_b64(small_image), "target_prompt": "a dog", "delta": 0.3,
                            "window_end": 0.5, "mask_source": "none"})
    assert s.enabled  # a dict means "use FGAT" unless it says otherwise
    assert s.config == FGATConfig(delta=0.3, window_end=0.5, mask_source="none")
    assert np.array_equal(np.asarray(s.target_image), np.asarray(small_image))
    assert s.given == frozenset({"target_image", "target_prompt", "delta", "window_end", "mask_source"})


def test_api_dict_rejects_unknown_keys_by_name():
    with pytest.raises(ValueError, match=r"unknown FGAT API key\(s\): colour, deltaa"):
        settings_from_dict({"deltaa": 0.5, "colour": "red", "delta": 0.2})


@pytest.mark.parametrize(
    ("data", "pattern"),
    [({"delta": "lots"}, r"delta must be a number"), ({"gamma": -0.1}, r"gamma must be in"),
     ({"matching": "fast"}, r"matching must be one of"), ({"enabled": "yes"}, r"'enabled' must be true or false"),
     ({"target_prompt": 5}, r"'target_prompt' must be text"), ({"steps": 0}, r"steps must be in"),
     ({"mask_word": 3}, r"mask_word must be a string")],
)
def test_api_dict_rejects_bad_values_by_name(data, pattern):
    with pytest.raises(ValueError, match=pattern):
        settings_from_dict(data)


def test_api_images_accept_png_jpeg_and_data_urls(small_image):
    png = decode_image(_png_b64(small_image), "x")
    assert np.array_equal(np.asarray(png.convert("RGB")), np.asarray(small_image))
    jpeg = decode_image(_png_b64(small_image, "JPEG"), "x")
    assert jpeg.format == "JPEG" and jpeg.size == small_image.size
    url = decode_image("data:image/png;base64," + _png_b64(small_image), "x")
    assert np.array_equal(np.asarray(url.convert("RGB")), np.asarray(small_image))
    arr = decode_image(np.asarray(small_image), "x")
    assert arr.size == small_image.size


@pytest.mark.parametrize(
    ("value", "pattern"),
    [("not base64!!", r"target_image'? is not valid base64"), (base64.b64encode(b"hello").decode(), r"not a readable"),
     ("https://example.com/a.png", r"not a URL"), ("data:text/plain;base64,aGk=", r"not a base64 image"),
     (12, r"must be a base64-encoded PNG or JPEG")],
)
def test_api_images_bad_values_are_clear(value, pattern):
    with pytest.raises(ValueError, match=pattern):
        settings_from_dict({"target_image": value})


def test_api_preset_is_the_base_and_keys_override_it(tmp_path):
    store = PresetStore(tmp_path)
    s = settings_from_dict({"preset": "Strong transfer", "gamma": 0.5}, store)
    assert (s.config.delta, s.config.window_end, s.config.gamma) == (0.8, 0.5, 0.5)
    with pytest.raises(ValueError, match=r"unknown preset 'Nope'; available presets: Defaults, Paper"):
        settings_from_dict({"preset": "Nope"}, store)


def test_script_args_dispatch_dict_first_else_positional(small_image):
    assert settings_from_script_args([{"delta": 0.1}, True, None]).config.delta == 0.1
    assert settings_from_script_args([True, small_image]).config == FGATConfig()


def test_xyz_overrides_preset_first_then_values(tmp_path, small_image):
    store = PresetStore(tmp_path)
    base = settings_from_positional(_ui_args(enabled=True, target_image=small_image, delta=0.1))
    out = apply_overrides(base, {"preset": "Strong transfer", "gamma": 0.9, "window_end": 60}, store)
    assert (out.config.delta, out.config.gamma, out.config.window_end) == (0.8, 0.9, 0.6)
    assert out.preset == "Strong transfer" and out.target_image is small_image
    assert base.config.delta == 0.1  # the original settings are untouched
    with pytest.raises(ValueError, match="unknown FGAT X/Y/Z override"):
        apply_overrides(base, {"colour": 1}, store)


def test_every_control_has_a_tooltip():
    js = (ROOT / "javascript" / "fgat.js").read_text(encoding="utf-8")
    tips = dict(re.findall(r'"(fgat_\w+)":\s*"([^"]+)"', js))
    from fgat_webui.ui import PRESET_IDS

    wanted = {c.elem_id for c in CONTROLS} | set(PRESET_IDS)
    assert wanted <= set(tips), f"controls without a tooltip: {sorted(wanted - set(tips))}"
    assert all(len(t) > 20 for t in tips.values())


class _FakeLaunch:
    def __init__(self, missing=()):
        self.missing = set(missing)
        self.calls = []

    def is_installed(self, name):
        return name not in self.missing

    def run_pip(self, command, desc=None, live=False):
        self.calls.append(command)


def _run_install(monkeypatch, launch):
    monkeypatch.setitem(sys.modules, "launch", launch)
    import runpy

    return runpy.run_path(str(ROOT / "install.py"))


def test_install_does_nothing_when_requirements_are_present(monkeypatch):
    launch = _FakeLaunch()
    _run_install(monkeypatch, launch)
    assert launch.calls == []


def test_install_installs_only_what_is_missing_and_never_pins(monkeypatch):
    launch = _FakeLaunch(missing={"numpy"})
    _run_install(monkeypatch, launch)
    assert launch.calls == ["install numpy"]
    assert not any(re.search(r"==|>=|<=|--upgrade|-U\b", c) for c in launch.calls)


def test_install_never_installs_torch_or_gradio(monkeypatch):
    launch = _FakeLaunch(missing={"torch", "gradio", "pillow", "PIL"})
    _run_install(monkeypatch, launch)
    assert launch.calls == ["install pillow"]  # a torch or gradio pulled unpinned would break the WebUI


def test_the_webui_side_never_imports_diffusers_transformers_or_modules_at_import():
    import ast
    import subprocess

    banned = {"diffusers", "transformers"}
    for path in [*(ROOT / "fgat_webui").glob("*.py"), ROOT / "scripts" / "fgat.py", ROOT / "install.py"]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] in banned for n in names), f"{path.name} imports {names}"
    code = (
        "import sys; import fgat_webui.args, fgat_webui.backend, fgat_webui.run, fgat_webui.ui, fgat_webui.xyz, "
        "fgat_webui.infotext, fgat_webui.ldm_host; "
        "print(sorted(m for m in ('diffusers', 'transformers', 'modules') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_api_mask_image_without_user_mask_source_is_refused(small_image):
    with pytest.raises(ValueError, match=r"'mask_image' was given but 'mask_source' is 'attention'"):
        settings_from_dict({"target_image": _png_b64(small_image), "mask_image": _png_b64(small_image)})
    s = settings_from_dict({"mask_source": "user", "mask_image": _png_b64(small_image)})
    assert s.mask_image is not None and s.config.mask_source == "user"
