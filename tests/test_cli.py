"""`python -m fgat_cli`: transfer end to end on the tiny model, PNG settings round trip, flags, presets,
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

from fgat_cli import cli, loading
from fgat_cli.pnginfo import parse_generation_parameters, quote, read_png_settings
from fgat_core.config import FGATConfig
from fgat_core.diagnostics import COLUMNS, label_height, mask_overlay, warp_by_correspondence
from fgat_core.infotext import image_hash, parse_infotext
from fgat_core.presets import paper_config

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
EXAMPLE_PAIR = (EXAMPLES / "source.png", EXAMPLES / "target.png")  # 64 px demo-world cats, as in the README
PROMPT = "a photo of a cat"
STEPS = 6  # window [ceil(0.24 * 6), ceil(0.44 * 6)) = [2, 3)
SIZE = 64  # in-process runs use 64 px copies of the examples (8x8 latents) to stay fast



@pytest.fixture(autouse=True)
def _isolated(isolated_cli):
    """No user presets, no FGAT_MODEL (conftest.isolated_cli)."""



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
    choices = {"inversion": ("direct", "null-text", "negative-prompt", "ddim"), "matching": ("progressive", "initial"),
               "mask_source": ("attention", "user", "none"), "gamma_on": ("guided", "uncond"),
               "mask_layers": ("quarter", "all", "full"), "dift_prompt": ("own", "empty"),
               "target_mask": ("none", "gate", "restrict"), "background_lock": ("off", "on"),
               "mask_threshold_mode": ("fixed", "otsu"), "mask_levels": ("before-window", "all")}
    for f in fields(FGATConfig):
        a = actions[f"cfg_{f.name}"]
        assert a.option_strings == ["--" + f.name.replace("_", "-")]
        assert a.type is {"float": float, "int": int}.get(str(f.type), str)
        assert tuple(a.choices or ()) == tuple(choices.get(f.name, ()))
        assert a.default is None  # unset flags never override a preset


def test_precedence_defaults_then_preset_then_flags(tmp_path):
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "presets.json").write_text(json.dumps({"mine": {"delta": 0.9, "window_end": 0.6}}))
    assert cli.base_config(None, {}) == FGATConfig()
    assert cli.base_config("mine", {}) == FGATConfig(delta=0.9, window_end=0.6)
    assert cli.base_config("mine", {"delta": 0.5}) == FGATConfig(delta=0.5, window_end=0.6)
    assert cli.base_config("Strong transfer", {"steps": 10}) == paper_config(delta=0.8, window_end=0.5, steps=10)


def test_presets_command_lists_and_shows(tmp_path, capsys):
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "presets.json").write_text(json.dumps({"mine": {"delta": 0.9}}))
    assert cli.main(["presets"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert "Paper  (built-in)" in listed and "mine" in listed
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
        ({"--mask-word": "dog"}, "--mask-word 'dog' is not in --source-prompt 'a photo of a cat'"),
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
    # panels: source, target, mask, warped target, result, then x0 at window step 2 -> 6 panels; at 64 px the
    # longest label ("target warped by matching", 10 characters a line) takes 3 lines
    band = label_height(3)
    cell_w, cell_h = SIZE, SIZE + band
    # under the grid: the caption (prompts, mask coverage), wrapped to the sheet's width
    assert sheet.size[0] == COLUMNS * cell_w and sheet.size[1] > 2 * cell_h
    arr = np.asarray(sheet)
    src = np.asarray(Image.open(small[0]).convert("RGB"))
    result = np.asarray(Image.open(out).convert("RGB"))
    np.testing.assert_array_equal(arr[band:cell_h, 0:SIZE], src)
    np.testing.assert_array_equal(arr[band:cell_h, 4 * cell_w : 4 * cell_w + SIZE], result)
    # x0 panels are images, not blank cells; the cells after the last panel are blank
    x0_panel = arr[cell_h + band : 2 * cell_h, 0:SIZE]
    assert x0_panel.std() > 1.0
    assert (arr[cell_h : 2 * cell_h, cell_w:] == 255).all()
    assert (arr[2 * cell_h :] < 128).any()  # the caption's text


@pytest.mark.parametrize("size", [64, 256])
def test_diagnostics_labels_stay_inside_their_cell(size):
    """At 64 px a long label used to run into the next cells' labels; it is wrapped to its cell now."""
    from fgat_core.diagnostics import contact_sheet

    white = Image.new("RGB", (size, size), (255, 255, 255))
    sheet = contact_sheet([("target warped by matching", white), ("", white), ("correspondence-of-the-window",
                                                                             white)], columns=3)
    arr = np.asarray(sheet)
    assert (arr[:, size : 2 * size] == 255).all()  # the middle cell (no label, white panel) has no ink at all
    assert (arr[:, :size] < 128).any() and (arr[:, 2 * size :] < 128).any()


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


# ============================================================================ issue 11: a new user's first runs
def _no_model_load(monkeypatch):
    """Any model load fails the test: the error must come before it."""
    monkeypatch.setattr(cli, "_load", lambda args: pytest.fail("the model was loaded before the error"))


def _run(args, capsys):
    code = cli.main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---------------------------------------------------------------------------- 1. out of memory
def _allocate_a_terabyte(*_args, **_kwargs):
    torch.empty(2**40, dtype=torch.uint8)  # torch's own CPU allocator refuses this (no memory limit needed)
    pytest.fail("a 1 TiB allocation succeeded; the test needs an allocation that fails")


@pytest.mark.parametrize("failure", ["torch", "python"])
def test_cpu_out_of_memory_is_one_line_naming_the_size_and_what_to_do(tmp_path, small, use_tiny, capsys,
                                                                     monkeypatch, failure):
    def python_oom(*_a, **_k):
        raise MemoryError()

    monkeypatch.setattr(use_tiny, "encode_image", _allocate_a_terabyte if failure == "torch" else python_oom)
    code, _, err = _run(transfer_args(tmp_path / "r.png", small, "--steps", str(STEPS)), capsys)
    assert code == 1 and "Traceback" not in err
    assert err.startswith(f"error: out of memory on cpu (float32) at {SIZE}x{SIZE} px"), err
    assert "downscale the source and target" in err and len(err.strip().splitlines()) == 1
    if failure == "torch":
        assert "(one allocation asked for 1024.00 GiB)" in err  # read from torch's message


def test_out_of_memory_while_loading_the_model_is_one_line_too(tmp_path, small, capsys, monkeypatch):
    monkeypatch.setattr(cli, "_load", _allocate_a_terabyte)
    code, _, err = _run(transfer_args(tmp_path / "r.png", small), capsys)
    assert code == 1 and err.startswith("error: out of memory") and "Traceback" not in err


def test_batch_rows_that_run_out_of_memory_are_reported_with_their_size(tmp_path, small, use_tiny, capsys,
                                                                        monkeypatch):
    (tmp_path / "p.csv").write_text(f"source,target,source_prompt,steps\n{small[0]},{small[1]},{PROMPT},{STEPS}\n")
    monkeypatch.setattr(use_tiny, "encode_image", _allocate_a_terabyte)
    code, _, err = _run(["batch", "--pairs", str(tmp_path / "p.csv"), "--out-dir", str(tmp_path / "o"), "--quiet"],
                        capsys)
    assert code == 1 and "Traceback" not in err
    assert f"p.csv line 2: error: out of memory on cpu (float32) at {SIZE}x{SIZE} px" in err


def test_out_of_memory_messages_of_each_allocator():
    from fgat_cli.runner import out_of_memory_message

    cuda = RuntimeError("CUDA out of memory. Tried to allocate 512.00 MiB (GPU 0; 8.00 GiB total capacity)")
    text = out_of_memory_message(cuda, (2048, 1024), "cuda", "float32")
    assert text.startswith("out of memory on cuda (float32) at 2048x1024 px (one allocation asked for 0.50 GiB)")
    assert "--dtype fp16" in text and "--device cpu" in text
    assert "--dtype fp16" not in out_of_memory_message(cuda, None, "cuda", "float16")
    mps = RuntimeError("MPS backend out of memory (MPS allocated: 1.2 GB)")
    assert out_of_memory_message(mps, None, "mps", "float16").startswith("out of memory on mps (float16):")
    assert out_of_memory_message(RuntimeError("mat1 and mat2 shapes cannot be multiplied"), None, "cpu",
                                 "float32") is None


# ---------------------------------------------------------------------------- 2. unwritable outputs
@pytest.mark.parametrize("out", ["/sys/r.png", "/proc/fgat-no-such-folder/r.png"])
def test_outputs_in_unwritable_places_are_refused_before_any_model_work(small, capsys, monkeypatch, out):
    _no_model_load(monkeypatch)
    code, _, err = _run(transfer_args(out, small), capsys)
    assert code == 2 and err.startswith(f"error: --out '{out}' cannot be written") and "choose another --out" in err


def _make_unwritable(path: Path) -> bool:
    """Read-only for a user; immutable for root (whom permission bits do not stop). False if neither works."""
    path.chmod(0o444)
    if os.geteuid() != 0:
        return True
    return subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0


@pytest.mark.parametrize("which", ["image", "sidecar"])
def test_an_existing_output_that_cannot_be_overwritten_is_found_before_any_model_work(tmp_path, small, capsys,
                                                                                     monkeypatch, which):
    out = tmp_path / "r.png"
    locked = out if which == "image" else out.with_suffix(".json")
    locked.write_bytes(b"old")
    if not _make_unwritable(locked):
        pytest.skip("this machine can make no file unwritable for root (no chattr +i)")
    try:
        _no_model_load(monkeypatch)
        code, _, err = _run(transfer_args(out, small), capsys)
        assert code == 2 and f"the existing file '{locked}' cannot be overwritten" in err, err
        assert locked.read_bytes() == b"old"
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(locked)], capture_output=True)


# ---------------------------------------------------------------------------- 3. prompts checked before the load
@pytest.mark.parametrize("flags, message", [
    (["--mask-word", "dog"], "--mask-word 'dog' is not in --source-prompt"),
    (["--source-prompt", "!!!"], "--source-prompt '!!!' has no word with letters"),
    (["--source-prompt", "a photo of a " + "red " * 80 + "cat"], "--mask-word 'cat' lies beyond the first 75 tokens"),
])
def test_prompts_and_mask_words_are_checked_with_the_tokenizer_before_the_model_loads(tmp_path, small, capsys,
                                                                                     monkeypatch, flags, message):
    _no_model_load(monkeypatch)
    args = transfer_args(tmp_path / "r.png", small)
    if flags[0] in args:
        args[args.index(flags[0]) + 1] = flags[1]
    else:
        args += flags
    code, _, err = _run(args, capsys)
    assert code == 2 and message in err and "empty" not in err, err


def test_a_diffusers_folders_tokenizer_is_read_without_its_weights(tmp_path, tiny_pipe):
    tiny_pipe.tokenizer.save_pretrained(str(tmp_path / "model" / "tokenizer"))
    tok = loading.tokenizer_without_weights(str(tmp_path / "model"))
    text = "a photo of a cat with red stripes"
    assert tok is not None and tok.tokenize(text) == tiny_pipe.tokenizer.tokenize(text)
    assert loading.tokenizer_without_weights("owner/not-in-any-cache") is None  # a hub id: after the load


# ---------------------------------------------------------------------------- 4. steps
def test_steps_that_would_put_timestep_1000_on_the_grid_are_refused(tmp_path, small, capsys, monkeypatch):
    from fgat_core.errors import ConfigError
    from fgat_core.schedule import Schedule, scaled_linear_alphas_cumprod

    ac = scaled_linear_alphas_cumprod()
    for steps in (998, 999, 500, 501):  # every accepted value builds a grid inside the trained timesteps
        assert int(Schedule.ddim(ac, FGATConfig(steps=steps).steps).timesteps.max()) <= 999
    with pytest.raises(ConfigError) as e:
        FGATConfig(steps=1000)
    assert (e.value.field, e.value.value, e.value.allowed) == ("steps", 1000, "[1, 999]")
    _no_model_load(monkeypatch)
    code, _, err = _run(transfer_args(tmp_path / "r.png", small, "--steps", "1000"), capsys)
    assert code == 2 and err == "error: --steps must be in [1, 999], got 1000\n"


# ---------------------------------------------------------------------------- 5. the CLI's language
def test_config_errors_are_typed_and_rendered_per_front_end():
    from fgat_core.errors import ConfigError, flag_name, plain_name

    with pytest.raises(ConfigError) as e:
        FGATConfig(window_start=0.5, window_end=0.3)
    err = e.value
    assert isinstance(err, ValueError) and (err.field, err.value, err.allowed) == ("window_end", 0.3, "(0.5, 1.0]")
    assert str(err) == "FGATConfig.window_end (0.3) must be greater than window_start (0.5)"  # the library's
    assert err.render(flag_name) == "--window-end (0.3) must be greater than --window-start (0.5)"
    assert err.render(plain_name) == "window_end (0.3) must be greater than window_start (0.5)"
    with pytest.raises(ConfigError) as e:
        FGATConfig(inversion="magic")
    assert e.value.allowed == "direct, null-text, negative-prompt, ddim"
    import copy

    for twin in (copy.copy(err), copy.deepcopy(err)):  # rebuilt from their parts, not from the text
        assert type(twin) is ConfigError and str(twin) == str(err) and twin.render(flag_name) == err.render(flag_name)


def test_window_errors_name_both_flags(tmp_path, small, capsys, monkeypatch):
    _no_model_load(monkeypatch)
    code, _, err = _run(transfer_args(tmp_path / "r.png", small, "--window-start", "0.5", "--window-end", "0.3"),
                        capsys)
    assert code == 2 and err == "error: --window-end (0.3) must be greater than --window-start (0.5)\n"
    code, _, err = _run(transfer_args(tmp_path / "r.png", small, "--steps", "2"), capsys)
    assert "(--window-start=0.24 -> step 1, --window-end=0.44 -> step 1)" in err


def test_a_mask_of_another_aspect_ratio_is_compared_in_pixels(tmp_path, small, capsys, monkeypatch):
    Image.new("L", (2 * SIZE, SIZE), 255).save(tmp_path / "wide.png")
    _no_model_load(monkeypatch)
    code, _, err = _run(transfer_args(tmp_path / "r.png", small, "--mask", str(tmp_path / "wide.png")), capsys)
    assert code == 2
    assert f"is {2 * SIZE}x{SIZE} px, but the source image is {SIZE}x{SIZE} px" in err, err


def test_a_bad_fgat_model_names_the_variable(tmp_path, small, capsys, monkeypatch):
    monkeypatch.setenv("FGAT_MODEL", str(tmp_path / "no-such-model.safetensors"))
    _no_model_load(monkeypatch)
    code, _, err = _run(transfer_args(tmp_path / "r.png", small), capsys)
    assert code == 2 and err.startswith("error: the environment variable FGAT_MODEL is") and "unset it" in err


def test_argument_errors_are_one_line_without_the_usage_block(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["transfer", "--source", "a.png", "--delta", "big"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "usage:" not in err and len(err.strip().splitlines()) <= 2
    assert err.startswith("error: ") and "--delta" in err and "python -m fgat_cli transfer --help" in err
    assert cli.main([]) == 2
    assert "usage:" not in capsys.readouterr().err


# ---------------------------------------------------------------------------- 6. progress and notes
def test_the_model_load_says_what_it_does(tmp_path, small, tiny_pipe, capsys, monkeypatch):
    from fgat_cli import loading

    monkeypatch.setattr(loading, "load_pipeline", lambda *a, **k: tiny_pipe)
    args = [a for a in transfer_args(tmp_path / "r.png", small, "--steps", str(STEPS)) if a != "--quiet"]
    code, _, err = _run(args, capsys)
    assert code == 0
    assert "building the demo model ..." in err and "model ready: tiny-sd on cpu (float32) in" in err


def test_null_text_optimisation_has_a_bar_of_its_own_and_the_library_takes_progress_true(tiny_pipe, example_images,
                                                                                       capsys):
    cfg = FGATConfig(steps=4, window_start=0.25, window_end=0.5, inversion="null-text", null_text_steps=1)
    tiny_pipe.transfer(*example_images, PROMPT, PROMPT, cfg, progress=True)
    err = capsys.readouterr().err
    bars = [line.split(":")[0].strip() for line in err.replace("\r", "\n").splitlines() if "step" in line]
    assert {"inversion", "null-text optimisation", "sampling"} <= set(bars), err


def test_large_and_reshaped_inputs_get_notes_before_the_work_starts(tmp_path, use_tiny, capsys, monkeypatch):
    from fgat_cli import runner
    from fgat_core import images

    m = use_tiny.size_multiple
    Image.new("RGB", (3 * m - m // 4, m), "white").save(tmp_path / "s.png")  # snapped to 3m x m: another aspect
    Image.new("RGB", (m, m), "white").save(tmp_path / "t.png")
    monkeypatch.setattr(images, "LARGE_PIXELS", m * m)  # so that this small source counts as large
    seen = {}
    real = runner.run_job

    def run_job(*a, **k):
        seen["err"] = capsys.readouterr().err
        return real(*a, **k)

    monkeypatch.setattr(runner, "run_job", run_job)
    assert cli.main(transfer_args(tmp_path / "r.png", (tmp_path / "s.png", tmp_path / "t.png"),
                                  "--steps", str(STEPS))) == 0
    before = seen["err"]
    assert f"note: the source image {3 * m - m // 4}x{m} is resized to {3 * m}x{m}" in before
    assert "which changes its aspect ratio" in before
    assert "note: the target image" in before and "centre-cropped" in before
    assert f"the source is {3 * m}x{m}" in before and "the pixels of 512x512" in before


def test_size_notes_say_nothing_for_ordinary_inputs():
    from fgat_core.images import size_notes

    assert size_notes((512, 512), (768, 768), 64) == []
    assert size_notes((1024, 1024), (1024, 1024), 64) == []  # 1 MP: not "large"
    big = size_notes((2048, 2048), (2048, 2048), 64)
    assert len(big) == 1 and "16x the pixels of 512x512" in big[0] and "16x to 256x as long" in big[0]


# ---------------------------------------------------------------------------- 7. diagnostics
def test_diagnostics_record_mask_coverage_prompts_preset_and_settings(tmp_path, small, use_tiny, monkeypatch):
    from fgat_core import diagnostics

    captions = []
    real = diagnostics.diagnostics_sheet

    def sheet(*a, caption=(), **k):
        captions.append(list(caption))
        return real(*a, caption=caption, **k)

    monkeypatch.setattr(diagnostics, "diagnostics_sheet", sheet)
    out = tmp_path / "d.png"
    assert cli.main(transfer_args(out, small, "--steps", str(STEPS), "--diagnostics", "--mask-source", "none",
                                  "--preset", "paper")) == 0
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["mask_coverage"] == 1.0 and side["preset"] == "paper"
    assert side["source_prompt"] == PROMPT and side["target_prompt"] == PROMPT
    caption = captions[0]
    assert caption[:2] == [f"source prompt: {PROMPT}", f"target prompt: {PROMPT}"]
    assert "the WHOLE image" in caption[2] and "mask_source is 'none'" in caption[2]
    # the sheet's PNG carries the run's settings, as the result does
    assert read_png_settings(tmp_path / "d-diagnostics.png") == read_png_settings(out)
    # a user mask of half the image: its coverage, and no whole-image warning
    mask = tmp_path / "half.png"
    Image.fromarray(np.tile(np.array([0, 255], np.uint8).repeat(SIZE // 2), (SIZE, 1))).save(mask)
    out2 = tmp_path / "h.png"
    assert cli.main(transfer_args(out2, small, "--steps", str(STEPS), "--diagnostics", "--mask", str(mask))) == 0
    assert json.loads(out2.with_suffix(".json").read_text())["mask_coverage"] == 0.5
    assert captions[1][2] == "mask: 50% of the image (user)"


# ---------------------------------------------------------------------------- 8. presets
def test_preset_names_are_case_insensitive(tmp_path):
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "presets.json").write_text(json.dumps({"Soft": {"delta": 0.4}}))
    assert cli.base_config("strong TRANSFER", {}) == paper_config(delta=0.8, window_end=0.5)
    assert cli.base_config("soft", {}) == FGATConfig(delta=0.4)
    from fgat_core.presets import PresetStore

    store = PresetStore(tmp_path / "presets")
    assert store.save("SOFT", FGATConfig(delta=0.3)) is True  # replaces "Soft"
    assert json.loads((tmp_path / "presets" / "presets.json").read_text()) == {"SOFT": FGATConfig(delta=0.3).to_dict()}
    with pytest.raises(ValueError, match="built-in preset's name"):
        store.save("PAPER", FGATConfig())


def test_presets_save_takes_flags_or_a_runs_settings(tmp_path, small, use_tiny, capsys):
    from fgat_core.presets import PresetStore

    store = PresetStore(tmp_path / "presets")
    code, out, _ = _run(["presets", "--save", "mine", "--delta", "0.7", "--steps", "30"], capsys)
    assert code == 0 and out.startswith("saved preset 'mine'")
    assert store.get("Mine") == FGATConfig(delta=0.7, steps=30)
    code, _, _ = _run(["presets", "--save", "strong+", "--preset", "Strong transfer", "--lam", "0.3"], capsys)
    assert store.get("strong+") == paper_config(delta=0.8, window_end=0.5, lam=0.3)
    run = tmp_path / "run.png"
    assert cli.main(transfer_args(run, small, "--steps", str(STEPS), "--gamma", "0.35")) == 0
    for source in (run, run.with_suffix(".json")):
        code, out, _ = _run(["presets", "--save", "from run", "--from", str(source), "--seed", "3"], capsys)
        assert code == 0
        assert store.get("FROM RUN") == FGATConfig(steps=STEPS, gamma=0.35, seed=3)
    code, _, err = _run(["presets", "--delta", "0.5"], capsys)
    assert code == 2 and "for --save NAME" in err


# ---------------------------------------------------------------------------- 9. README and repository
def test_readme_says_how_to_choose_a_torch_build_before_the_two_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = text.index("```bash")
    note = text.find("CUDA build")
    assert 0 <= note < commands and "CPU" in text[:commands].split("\n\n")[-2]


def test_the_default_outputs_folder_is_git_ignored():
    for path in ("outputs/source-fgat.png", "outputs/pairs/batch.json", "out/result.png"):
        proc = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=ROOT)
        assert proc.returncode == 0, f"{path} is not ignored by .gitignore"
