"""`python -m fgat_core`: transfer end to end on the tiny model, PNG settings round trip, flags, presets,
errors, diagnostics."""

import json
import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fgat_core import cli
from fgat_core.config import DIFT_PROMPTS, GAMMA_ON, INVERSIONS, MASK_LAYERS, MASK_SOURCES, MATCHINGS, FGATConfig
from fgat_core.diagnostics import COLUMNS, LABEL_HEIGHT, mask_overlay, warp_by_correspondence
from fgat_core.infotext import image_hash, parse_infotext
from fgat_core.pnginfo import parse_generation_parameters, quote, read_png_settings

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
EXAMPLE_PAIR = (EXAMPLES / "source.png", EXAMPLES / "target.png")  # 64 px demo-world cats, as in the README
PROMPT = "a photo of a cat"
STEPS = 6  # window [ceil(0.24 * 6), ceil(0.44 * 6)) = [2, 3)
SIZE = 64  # in-process runs use 64 px copies of the examples (8x8 latents) to stay fast


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    folder = tmp_path_factory.mktemp("small")
    for name in ("source", "target"):
        Image.open(EXAMPLES / f"{name}.png").convert("RGB").resize((SIZE, SIZE), Image.LANCZOS).save(
            folder / f"{name}.png")
    return folder / "source.png", folder / "target.png"


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """No user presets from the home folder; no FGAT_MODEL from the environment."""
    monkeypatch.setenv("FGAT_PRESETS_DIR", str(tmp_path / "presets"))
    monkeypatch.delenv("FGAT_MODEL", raising=False)


@pytest.fixture
def use_tiny(monkeypatch, tiny_pipe):
    """In-process runs reuse the session's tiny model instead of building it again (same model, seed 0)."""
    monkeypatch.setattr(cli, "_load", lambda args: tiny_pipe)
    return tiny_pipe


def transfer_args(out, images, *extra):
    source, target = images
    return ["transfer", "--source", str(source), "--target", str(target), "--source-prompt", PROMPT,
            "--target-prompt", PROMPT, "--out", str(out), "--quiet", *extra]


def test_readme_command_runs_end_to_end_as_a_module(tmp_path):
    """The README's main command (plus --steps to stay fast), in a fresh process, with no --model."""
    out = tmp_path / "out" / "result.png"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("FGAT_MODEL", None)
    proc = subprocess.run(
        [sys.executable, "-m", "fgat_core", *transfer_args(out, EXAMPLE_PAIR, "--steps", str(STEPS))],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "bundled demo model" in proc.stderr and "random weights" not in proc.stderr
    assert "Traceback" not in proc.stderr
    with Image.open(out) as img:
        assert img.size == (64, 64) and img.mode == "RGB"
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["model"] == "fgat-demo-world" and side["device"] == "cpu" and side["dtype"] == "float32"
    assert side["config"] == FGATConfig(steps=STEPS).to_dict()
    # direct inversion: source levels N..1 (N calls) batched with the target's N..start (start = 2)
    assert side["stats"]["inversion"]["calls"] == STEPS
    assert side["stats"]["inversion"]["rows"] == STEPS + (STEPS - 2 + 1)
    # timing summary: one line per stage and a total
    lines = proc.stdout.splitlines()
    for stage in ("encode", "inversion", "matching", "sampling", "decode", "total"):
        assert any(line.startswith(stage) for line in lines), (stage, proc.stdout)
    assert read_png_settings(out)[0] == FGATConfig(steps=STEPS)


def test_png_text_round_trips_into_an_identical_config(tmp_path, small, use_tiny):
    out = tmp_path / "r.png"
    flags = ["--delta", "0.55", "--lam", "0.3", "--gamma", "0.25", "--window-start", "0.2", "--window-end", "0.5",
             "--steps", str(STEPS), "--guidance-scale", "5", "--matching", "initial", "--mask-word", "cat",
             "--mask-threshold", "0.4", "--seed", "7", "--mask-dilate", "0", "--dift-prompt", "empty",
             "--dift-ensemble", "2", "--gamma-on", "uncond", "--match-chunk", "64", "--mask-layers", "all",
             "--negative-prompt", "blurry, dark"]
    assert cli.main(transfer_args(out, small, *flags)) == 0
    expected = FGATConfig(
        delta=0.55, lam=0.3, gamma=0.25, window_start=0.2, window_end=0.5, steps=STEPS, guidance_scale=5.0,
        matching="initial", mask_word="cat", mask_threshold=0.4, seed=7, mask_dilate=0, dift_prompt="empty",
        dift_ensemble=2, gamma_on="uncond", match_chunk=64, mask_layers="all",
    )
    cfg, extras = read_png_settings(out)
    assert cfg == expected
    assert extras == {"target_prompt": PROMPT, "target_hash": image_hash(Image.open(small[1]))}
    # the A1111 "parameters" chunk alone carries the same settings (what the WebUI's PNG Info reads)
    params = Image.open(out).text["parameters"]
    assert params.startswith(f"{PROMPT}\nNegative prompt: blurry, dark\nSteps: {STEPS}, Sampler: DDIM, CFG scale: 5.0")
    parsed = parse_generation_parameters(params)
    assert parsed["Prompt"] == PROMPT and parsed["Negative prompt"] == "blurry, dark"
    assert parsed["Size"] == f"{SIZE}x{SIZE}" and parsed["Seed"] == "7" and parsed["Model"] == "tiny-sd"
    assert parse_infotext(parsed["FGAT"]) == (expected, extras)
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["config"] == expected.to_dict() and side["negative_prompt"] == "blurry, dark"
    assert side["window"] == [2, 3]  # ceil(0.2 * 6), ceil(0.5 * 6)


def test_a1111_quoting_of_values_with_commas():
    assert quote("a b") == "a b"
    assert quote('x="a, b"') == json.dumps('x="a, b"')
    text = "p\nSteps: 1, Sampler: DDIM, CFG scale: 7, FGAT: " + quote('delta=0.6; target_prompt="a cat, spotted"')
    assert parse_generation_parameters(text)["FGAT"] == 'delta=0.6; target_prompt="a cat, spotted"'


def test_every_config_field_has_a_flag_with_its_type_and_choices():
    parser = cli.build_parser()
    actions = {a.dest: a for a in parser._subparsers._group_actions[0].choices["transfer"]._actions}
    choices = {"inversion": INVERSIONS, "matching": MATCHINGS, "mask_source": MASK_SOURCES, "gamma_on": GAMMA_ON,
               "mask_layers": MASK_LAYERS, "dift_prompt": DIFT_PROMPTS}
    for f in fields(FGATConfig):
        a = actions[f"cfg_{f.name}"]
        assert a.option_strings == ["--" + f.name.replace("_", "-")]
        assert a.type is {"float": float, "int": int, "str": str}[str(f.type)]
        assert tuple(a.choices or ()) == tuple(choices.get(f.name, ()))
        assert a.default is None  # unset flags never override a preset


def test_precedence_defaults_then_preset_then_flags(tmp_path):
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "presets.json").write_text(json.dumps({"mine": {"delta": 0.9, "window_end": 0.6}}))
    assert cli.base_config(None, {}) == FGATConfig()
    assert cli.base_config("mine", {}) == FGATConfig(delta=0.9, window_end=0.6)
    assert cli.base_config("mine", {"delta": 0.5}) == FGATConfig(delta=0.5, window_end=0.6)
    assert cli.base_config("Strong transfer", {"steps": 10}) == FGATConfig(delta=0.8, window_end=0.5, steps=10)


def test_presets_command_lists_and_shows(tmp_path, capsys):
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "presets.json").write_text(json.dumps({"mine": {"delta": 0.9}}))
    assert cli.main(["presets"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert "Paper defaults  (built-in)" in listed and "mine" in listed
    assert cli.main(["presets", "--show", "mine"]) == 0
    assert json.loads(capsys.readouterr().out) == FGATConfig(delta=0.9).to_dict()
    assert cli.main(["presets", "--show", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown preset 'nope'" in err and "mine" in err


@pytest.mark.parametrize(
    "change, message",
    [
        ({"--source": "missing.png"}, "does not exist"),
        ({"--target": "NOT_AN_IMAGE"}, "cannot be read as an image"),
        ({"--delta": "1.5"}, "--delta must be in [0.0, 1.0]"),
        ({"--window-start": "0.5", "--window-end": "0.4"}, "--window-end (0.4) must be greater than"),
        ({"--out": "result.jpg"}, "must be a .png file"),
        ({"--mask-source": "user"}, "no mask image was given"),
        ({"--mask-word": "dog"}, "the mask word 'dog' is not in the source prompt"),
        ({"--preset": "nope"}, "unknown preset 'nope'"),
        ({"--steps": "2"}, "the FGAT window is empty at 2 steps"),
    ],
)
def test_bad_input_exits_2_with_a_message_and_writes_nothing(tmp_path, small, use_tiny, capsys, change, message):
    bad = tmp_path / "bad.png"
    bad.write_text("this is not a PNG")
    out = tmp_path / "out.png"
    args = transfer_args(out, small, "--steps", str(STEPS))
    for flag, value in change.items():
        value = str(bad) if value == "NOT_AN_IMAGE" else value
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err
    assert "Traceback" not in err
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_a_prompt_longer_than_the_text_encoder_reads_gets_a_note(tmp_path, small, use_tiny, capsys):
    long_prompt = "a photo of a cat " + "with many stripes and spots " * 20
    args = transfer_args(tmp_path / "long.png", small, "--steps", str(STEPS), "--mask-word", "cat")
    args[args.index("--source-prompt") + 1] = long_prompt
    assert cli.main(args) == 0
    err = capsys.readouterr().err
    assert "note: the source prompt has" in err and "reads the first 75, the rest is ignored" in err
    assert "note: the target prompt" not in err


def test_batch_cache_size_below_one_is_refused_before_loading(tmp_path, capsys):
    (tmp_path / "pairs.csv").write_text("source,target,source_prompt\na.png,b.png,a cat\n")
    assert cli.main(["batch", "--pairs", str(tmp_path / "pairs.csv"), "--cache-size", "0"]) == 2
    assert "--cache-size must be at least 1 (got 0)" in capsys.readouterr().err


def test_no_transfer_runs_without_matching_and_records_it(tmp_path, small, use_tiny):
    out = tmp_path / "rec.png"
    assert cli.main(transfer_args(out, small, "--steps", str(STEPS), "--no-transfer")) == 0
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["transfer"] is False
    assert side["stats"]["matching"]["feature_calls"] == 0  # no matching without transfer
    assert read_png_settings(out)[1]["transfer"] is False


def test_user_mask_flag_implies_mask_source_user(tmp_path, small, use_tiny):
    mask = tmp_path / "mask.png"
    Image.fromarray(np.tile(np.array([0, 255], np.uint8).repeat(SIZE), (2 * SIZE, 1))).save(mask)
    out = tmp_path / "m.png"
    assert cli.main(transfer_args(out, small, "--steps", str(STEPS), "--mask", str(mask))) == 0
    cfg, _ = read_png_settings(out)
    assert cfg == FGATConfig(steps=STEPS, mask_source="user")
    assert json.loads(out.with_suffix(".json").read_text())["mask"] == str(mask)


def test_diagnostics_sheet_layout_and_panels(tmp_path, small, use_tiny):
    out = tmp_path / "d.png"
    assert cli.main(transfer_args(out, small, "--steps", str(STEPS), "--diagnostics")) == 0
    assert read_png_settings(out)[1]["diagnostics"] is True  # recorded as the WebUI records it
    sheet = Image.open(tmp_path / "d-diagnostics.png").convert("RGB")
    # panels: source, target, mask, warped target, result, then x0 at window step 2 -> 6 panels
    cell_w, cell_h = SIZE, SIZE + LABEL_HEIGHT
    assert sheet.size == (COLUMNS * cell_w, 2 * cell_h)
    arr = np.asarray(sheet)
    src = np.asarray(Image.open(small[0]).convert("RGB"))
    result = np.asarray(Image.open(out).convert("RGB"))
    np.testing.assert_array_equal(arr[LABEL_HEIGHT:cell_h, 0:SIZE], src)
    np.testing.assert_array_equal(arr[LABEL_HEIGHT:cell_h, 4 * cell_w : 4 * cell_w + SIZE], result)
    # x0 panels are images, not blank cells; the cells after the last panel are blank
    x0_panel = arr[cell_h + LABEL_HEIGHT : 2 * cell_h, 0:SIZE]
    assert x0_panel.std() > 1.0
    assert (arr[cell_h:, cell_w:] == 255).all()


def test_mask_overlay_tints_only_inside_the_mask():
    img = Image.fromarray(np.full((16, 16, 3), 100, np.uint8))
    mask = torch.zeros(4, 4)
    mask[1, 2] = 1.0
    out = np.asarray(mask_overlay(img, mask, colour=(200, 0, 50), opacity=0.5)).astype(int)
    inside = np.zeros((16, 16), bool)
    inside[4:8, 8:12] = True  # latent cell (1, 2) covers a 4x4 block
    assert (out[~inside] == 100).all()
    assert (out[inside] == np.array([150, 50, 75])).all()  # 100 * 0.5 + colour * 0.5


def test_warp_by_correspondence_moves_whole_cells():
    rng = np.random.default_rng(0)
    target = Image.fromarray(rng.integers(0, 255, (32, 48, 3), dtype=np.uint8))
    h, w = 4, 6  # 8x8-pixel cells
    identity = torch.arange(h * w)
    np.testing.assert_array_equal(np.asarray(warp_by_correspondence(target, identity, (h, w))), np.asarray(target))
    # every source cell takes the target cell one to its right (wrapping): a roll by -8 pixels in x
    shift = torch.tensor([r * w + (c + 1) % w for r in range(h) for c in range(w)])
    warped = np.asarray(warp_by_correspondence(target, shift, (h, w)))
    np.testing.assert_array_equal(warped, np.roll(np.asarray(target), -8, axis=1))
    with pytest.raises(ValueError, match="not a multiple of the latent grid"):
        warp_by_correspondence(target, identity, (5, 6))
