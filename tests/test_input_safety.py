"""Bad input that used to end in a traceback or run away (issue 22, items 7-9): non-UTF-8 prompt bytes, library
misuse caught at the entry points before any work, YAML alias bombs; and images given as paths or arrays."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fgat_cli import cli
from fgat_cli.batch import read_pairs
from fgat_cli.loading import load_pipeline
from fgat_core.cache import InversionCache
from fgat_core.config import FGATConfig

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PROMPT = "a photo of a cat"
CFG = FGATConfig(steps=4)


@pytest.fixture(autouse=True)
def _isolated(isolated_cli):
    """No user presets, no FGAT_MODEL (conftest.isolated_cli)."""


def test_a_prompt_with_latin1_bytes_is_refused_in_one_line_before_the_model_loads(tmp_path):
    """As from a Latin-1 terminal: the byte 0xE9 ('é' in Latin-1) is not UTF-8; Python hands it over as a lone
    surrogate, on which the tokenizer raised a TypeError traceback."""
    out = tmp_path / "r.png"
    args = [b"transfer", b"--source", bytes(EXAMPLES / "source.png"), b"--target", bytes(EXAMPLES / "target.png"),
            b"--source-prompt", b"a photo of a caf\xe9 cat", b"--out", bytes(out), b"--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LC_ALL": "C.UTF-8"}
    proc = subprocess.run([sys.executable.encode(), b"-m", b"fgat_cli", *args], env=env, capture_output=True,
                          timeout=300)
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 2, err
    assert "--source-prompt holds a byte that is not UTF-8 at character 17 (near 'a photo of a caf\ufffd cat')" in err
    assert "Traceback" not in err and "building the demo model" not in err and not out.exists()


def _t(pipe, images, **kw):
    src, tar = images
    args = dict(source=src, target=tar, source_prompt=PROMPT, target_prompt=PROMPT, config=CFG)
    args.update(kw)
    return pipe.transfer(args.pop("source"), args.pop("target"), args.pop("source_prompt"),
                         args.pop("target_prompt"), args.pop("config"), **args)


@pytest.mark.parametrize("change, message", [
    ({"config": {"delta": 0.5}}, r"config must be an FGATConfig or None \(FGATConfig\(\*\*settings\)"),
    ({"cache": {}}, r"cache must be an InversionCache \(fgat_core.cache.InversionCache\(\)\) or None; got dict"),
    ({"progress": "yes"}, r"progress must be True \(progress bars\), False/None, or a callable"),
    ({"transfer": "no"}, r"transfer must be True or False; got str"),
    ({"source_prompt": b"a cat"}, r"source_prompt must be text"),
    ({"source": [1, 2, 3]}, r"source image must be a PIL image, an image file's path or an HxWx3"),
    ({"target": np.zeros((64, 64, 3))}, r"target image is a numpy array of shape \(64, 64, 3\) and dtype float64: "
                                        r"give an HxWx3"),
    ({"mask": "no-such-mask.png", "config": FGATConfig(steps=4, mask_source="user")},
     r"mask image 'no-such-mask.png' is not a file"),
])
def test_library_misuse_is_refused_before_any_work(tiny_pipe, images, monkeypatch, change, message):
    from fgat_cli import pipeline

    def no_work(*a, **k):
        raise AssertionError("work started before the arguments were checked")

    monkeypatch.setattr(pipeline, "run_fgat", no_work)
    monkeypatch.setattr(type(tiny_pipe), "encode_image", no_work)
    with pytest.raises(ValueError, match=message):
        _t(tiny_pipe, images, **change)


def test_images_as_paths_and_uint8_arrays_give_the_pil_result(tiny_pipe, images, tmp_path):
    src, tar = images
    src.save(tmp_path / "s.png")
    ref = _t(tiny_pipe, images, cache=InversionCache(), progress=False)
    by_path = _t(tiny_pipe, (str(tmp_path / "s.png"), np.asarray(tar)))
    assert np.array_equal(np.asarray(by_path.image), np.asarray(ref.image))


@pytest.mark.parametrize("args, message", [
    ((123,), r"model must be a path \(str or os.PathLike\).*got int"),
    ((None, 0), r"device must be text such as 'cpu'.*got int"),
    ((None, None, 16), r"dtype must be text such as 'fp16'.*got int"),
])
def test_load_pipeline_refuses_arguments_of_the_wrong_kind(args, message):
    with pytest.raises(ValueError, match=message):
        load_pipeline(*args)


def test_a_blank_fgat_model_names_the_variable(monkeypatch):
    monkeypatch.setenv("FGAT_MODEL", "   ")
    with pytest.raises(ValueError, match="FGAT_MODEL is '   '"):
        load_pipeline()


BOMB = """\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
pairs: [*i]
"""


def test_a_yaml_alias_bomb_is_refused_at_once_with_a_short_message(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    t0 = time.perf_counter()
    with pytest.raises(ValueError) as err:
        read_pairs(path, tmp_path / "out")
    assert time.perf_counter() - t0 < 30  # the old path built a multi-GB repr for minutes
    assert "expands to more than 100000 values through its aliases" in str(err.value)
    assert len(str(err.value)) < 500


def test_a_huge_value_is_cut_in_the_message(tmp_path):
    path = tmp_path / "p.yaml"
    for row in ("{source: s.png, target: t.png, source_prompt: a, delta: '" + "9" * 50_000 + "x'}",
                "{source: s.png, target: t.png, source_prompt: a, " + "x" * 50_000 + ": 1}"):  # a huge column
        path.write_text(f"pairs:\n  - {row}\n")
        with pytest.raises(ValueError) as err:
            read_pairs(path, tmp_path / "out")
        assert len(str(err.value)) < 1000 and "line 2" in str(err.value)


def test_yaml_anchors_of_modest_size_still_work(tmp_path):
    for name in ("source", "target"):
        Image.open(EXAMPLES / f"{name}.png").save(tmp_path / f"{name}.png")
    path = tmp_path / "p.yaml"
    path.write_text("base: &base {source: source.png, target: target.png, source_prompt: a photo of a cat}\n"
                    "pairs:\n  - *base\n  - {<<: *base, out: two.png, delta: 0.3}\n")
    with pytest.raises(ValueError, match="unknown top-level key"):  # 'base' is not a pairs-file key ...
        read_pairs(path, tmp_path / "out")
    path.write_text("defaults: &base {source: source.png, target: target.png, source_prompt: a photo of a cat}\n"
                    "pairs:\n  - {<<: *base, out: one.png}\n  - {<<: *base, out: two.png, delta: 0.3}\n")
    jobs = read_pairs(path, tmp_path / "out")  # ... but anchors and merge keys are fine
    assert [job.config.delta for _, job in jobs] == [FGATConfig().delta, 0.3]


def test_a_source_from_process_substitution_is_read_once(tmp_path, monkeypatch, tiny_pipe):
    """`--source <(cat source.png)`: a pipe can be read once; the check used to read it, then the run failed."""
    monkeypatch.setattr(cli, "_load", lambda args: tiny_pipe)
    read, write = os.pipe()
    data = (EXAMPLES / "source.png").read_bytes()
    pid = os.fork() if hasattr(os, "fork") else None
    if pid == 0:  # the child feeds the pipe, as the shell does
        os.close(read)
        os.write(write, data)
        os._exit(0)
    os.close(write)
    try:
        code = cli.main(["transfer", "--source", f"/dev/fd/{read}", "--target", str(EXAMPLES / "target.png"),
                         "--source-prompt", PROMPT, "--out", str(tmp_path / "r.png"), "--quiet", "--steps", "4"])
    finally:
        os.close(read)
        os.waitpid(pid, 0)
    assert code == 0 and (tmp_path / "r.png").exists()
