"""Messages that say what to change (issue 22, "unclear messages"), --quiet, --threads."""

import json
import struct
import zlib
from pathlib import Path

import pytest
import torch
from PIL import Image

from fgat_cli import cli
from fgat_cli.batch import read_pairs
from fgat_cli.loading import load_pipeline
from fgat_core.config import FGATConfig

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PROMPT = "a photo of a cat"
PAIR = (EXAMPLES / "source.png", EXAMPLES / "target.png")


@pytest.fixture(autouse=True)
def _isolated(isolated_cli):
    """No user presets, no FGAT_MODEL (conftest.isolated_cli)."""


@pytest.fixture
def no_model(monkeypatch):
    def refuse(args):
        raise AssertionError("the model was loaded: the check should have come first")
    monkeypatch.setattr(cli, "_load", refuse)


def _err(args, capsys, code=2) -> str:
    assert cli.main(args) == code
    return capsys.readouterr().err


def _transfer(*extra, source=PAIR[0], target=PAIR[1]):
    return ["transfer", "--source", str(source), "--target", str(target), "--source-prompt", PROMPT, "--quiet",
            "--steps", "4", *extra]


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims width x height (Pillow refuses it at open, before decoding)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 4))
                     + chunk(b"IEND", b""))


def test_a_huge_image_says_downscale_it(tmp_path, capsys, no_model):
    big = tmp_path / "big.png"
    _png_header_only(big, 20000, 20000)  # 400 MP
    err = _err(_transfer("--out", str(tmp_path / "r.png"), target=big), capsys)
    assert "--target" in err and "400 MP" in err and "downscale it" in err and "PNG or JPEG" not in err


def test_an_empty_out_is_refused(tmp_path, capsys, no_model, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = _err(_transfer("--out", ""), capsys)
    assert "--out is empty: give a .png file name" in err and not (tmp_path / "outputs").exists()


def test_an_out_dir_that_is_a_file_says_give_a_folder(tmp_path, capsys, no_model):
    pairs = tmp_path / "p.csv"
    pairs.write_text(f"source,target,source_prompt\n{PAIR[0]},{PAIR[1]},{PROMPT}\n")
    (tmp_path / "taken").write_text("x")
    err = _err(["batch", "--pairs", str(pairs), "--out-dir", str(tmp_path / "taken"), "--quiet"], capsys)
    assert "--out-dir" in err and "is a file: give a folder" in err and "another the output" not in err


def test_a_semicolon_csv_gets_a_delimiter_hint(tmp_path):
    pairs = tmp_path / "p.csv"
    pairs.write_text(f"source;target;source_prompt\n{PAIR[0]};{PAIR[1]};{PROMPT}\n")
    with pytest.raises(ValueError, match="separates its columns with semicolons .*separate them with commas"):
        read_pairs(pairs, tmp_path / "out")


def test_a_truncated_safetensors_in_a_diffusers_folder_is_called_truncated(tmp_path, tiny_pipe):
    folder = tmp_path / "model"
    for name in ("unet", "vae", "text_encoder", "tokenizer"):
        getattr(tiny_pipe, name).save_pretrained(folder / name)
    (folder / "scheduler").mkdir()
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(
        {"_class_name": "DDIMScheduler", "beta_schedule": "scaled_linear", "beta_start": 0.00085,
         "beta_end": 0.012, "num_train_timesteps": 1000, "prediction_type": "epsilon"}))
    weights = next((folder / "unet").glob("*.safetensors"))
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])  # an interrupted download
    with pytest.raises(ValueError) as err:
        load_pipeline(str(folder), "cpu", "fp32")
    message = str(err.value)
    assert weights.name in message and "truncated" in message and "pickled" not in message


def test_a_blank_fgat_model_names_the_variable_in_the_cli(tmp_path, capsys, monkeypatch, no_model):
    monkeypatch.setenv("FGAT_MODEL", "   ")
    err = _err(_transfer("--out", str(tmp_path / "r.png")), capsys)
    assert "FGAT_MODEL is '   ' (only spaces): unset it" in err


def test_presets_save_with_an_empty_name_is_refused(capsys):
    err = _err(["presets", "--save", ""], capsys)
    assert "invalid preset name ''" in err


def test_a_from_sidecar_out_of_range_blames_the_file_not_the_flag(tmp_path, capsys):
    side = tmp_path / "r.json"
    side.write_text(json.dumps({"config": {**FGATConfig().to_dict(), "delta": 5.0}}))
    err = _err(["presets", "--save", "mine", "--from", str(side)], capsys)
    assert f"--from {str(side)!r} records a setting" in err and "delta" in err and "--delta" not in err


def test_a_presets_dir_that_is_a_file_is_named(tmp_path, capsys, monkeypatch):
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("FGAT_PRESETS_DIR", str(tmp_path / "file"))
    err = _err(["presets", "--save", "mine", "--delta", "0.3"], capsys)
    assert "presets folder" in err and "is a file: set FGAT_PRESETS_DIR to a folder" in err
    assert cli.main(["presets"]) == 0
    assert "is a file: set FGAT_PRESETS_DIR" in capsys.readouterr().err  # listing warns too


def test_a_mask_word_the_run_does_not_use_gets_a_note(tmp_path, capsys, monkeypatch, tiny_pipe):
    monkeypatch.setattr(cli, "_load", lambda args: tiny_pipe)
    small = [tmp_path / "s.png", tmp_path / "t.png"]
    for src, dst in zip(PAIR, small, strict=True):
        Image.open(src).convert("RGB").resize((64, 64)).save(dst)
    args = _transfer("--out", str(tmp_path / "r.png"), "--mask-source", "none", "--mask-word", "cat",
                     source=small[0], target=small[1])
    assert cli.main(args) == 0
    assert "note: --mask-word is ignored" in capsys.readouterr().err


def test_quiet_silences_the_libraries_warnings_and_bars():
    import diffusers.utils.logging as dl
    import huggingface_hub.utils as hub
    import transformers.utils.logging as tl

    try:
        cli.quiet_libraries()
        assert tl.get_verbosity() == tl.ERROR and dl.get_verbosity() == dl.ERROR
        assert not tl.is_progress_bar_enabled() and not dl.is_progress_bar_enabled()
        assert hub.are_progress_bars_disabled()
    finally:
        for lib in (dl, tl):
            lib.set_verbosity_warning()
            lib.enable_progress_bar()
        hub.enable_progress_bars()


def test_a_batch_mask_word_flag_the_rows_do_not_use_gets_a_note(tmp_path, capsys, monkeypatch):
    def stop(args):
        raise KeyboardInterrupt  # the notes come before the load; nothing needs to run
    monkeypatch.setattr(cli, "_load", stop)
    pairs = tmp_path / "p.csv"
    pairs.write_text(f"source,target,source_prompt,mask_source\n{PAIR[0]},{PAIR[1]},{PROMPT},none\n")
    code = cli.main(["batch", "--pairs", str(pairs), "--out-dir", str(tmp_path / "o"), "--mask-word", "cat"])
    assert code == 130 and "p.csv line 2: note: --mask-word is ignored" in capsys.readouterr().err


def test_threads_flag_sets_torchs_threads_and_refuses_zero(capsys, monkeypatch):
    seen = []
    monkeypatch.setattr(torch, "set_num_threads", seen.append)
    monkeypatch.setattr(torch, "set_num_interop_threads", lambda n: None)
    monkeypatch.setattr(cli, "cmd_transfer", lambda args: 0)
    assert cli.main(_transfer("--threads", "2")) == 0 and seen == [2]
    err = _err(_transfer("--threads", "0"), capsys)
    assert "--threads must be at least 1" in err


@pytest.mark.parametrize("name", ["pairs.csv", "pairs.yaml"])
def test_the_example_pairs_name_their_outputs_after_their_targets(name, tmp_path):
    """examples/make_examples.py: target.png has a striped body, target2.png a spotted one."""
    looks = {"target.png": "cat-stripes", "target2.png": "cat-spots"}
    jobs = read_pairs(EXAMPLES / name, tmp_path / "out")
    assert len(jobs) == 4
    for _, job in jobs:
        look = looks[job.target.name]
        assert job.out.stem == look or job.out.stem.startswith(look + "-"), (job.target.name, job.out.name)
