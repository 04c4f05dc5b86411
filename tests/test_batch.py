"""`python -m fgat_cli batch` and the inversion cache: a repeated image is inverted once, cached runs
equal fresh runs, and the pairs file's precedence and errors."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from fgat_cli import cli
from fgat_cli.batch import read_pairs
from fgat_cli.pipeline import tiny_pipeline
from fgat_cli.tiny import tiny_tokenizer
from fgat_core.cache import InversionCache
from fgat_core.config import FGATConfig
from fgat_core.presets import paper_config

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PROMPT = "a photo of a cat"
STEPS = 6
START = 2  # ceil(0.24 * 6)
SIZE = 64  # 64 px copies of the examples (8x8 latents) keep the runs fast


@pytest.fixture(autouse=True)
def _isolated(isolated_cli):
    """No user presets, no FGAT_MODEL (conftest.isolated_cli)."""


@pytest.fixture
def images(tmp_path):
    """source.png, a mirrored source (another source image) and target.png beside the pairs file."""
    src = Image.open(EXAMPLES / "source.png").convert("RGB").resize((SIZE, SIZE), Image.LANCZOS)
    src.save(tmp_path / "s1.png")
    ImageOps.mirror(src).save(tmp_path / "s2.png")
    Image.open(EXAMPLES / "target.png").convert("RGB").resize((SIZE, SIZE), Image.LANCZOS).save(tmp_path / "t.png")
    return tmp_path


class CleanLevelCounter:
    """Counts UNet rows evaluated at timestep 0. Only an inversion evaluates the clean latent (level N,
    timestep 0), once per image it inverts; sampling and DIFT never use timestep 0."""

    def __init__(self, unet):
        self.rows = 0
        self.handle = unet.register_forward_pre_hook(self.hook)

    def hook(self, _module, args):
        self.rows += int((args[1] == 0).sum())

    def remove(self):
        self.handle.remove()


def test_batch_inverts_a_target_repeated_in_three_rows_once(images, tiny_pipe, monkeypatch, capsys):
    (images / "pairs.csv").write_text(
        "source,target,source_prompt,target_prompt,delta,out\n"
        f"s1.png,t.png,{PROMPT},{PROMPT},,a.png\n"
        f"s2.png,t.png,{PROMPT},{PROMPT},,b.png\n"
        f"s1.png,t.png,{PROMPT},{PROMPT},0.8,c.png\n"
    )
    monkeypatch.setattr(cli, "_load", lambda args: tiny_pipe)
    counter = CleanLevelCounter(tiny_pipe.unet)
    try:
        code = cli.main(["batch", "--pairs", str(images / "pairs.csv"), "--out-dir", str(images / "out"),
                         "--steps", str(STEPS), "--quiet"])
    finally:
        counter.remove()
    assert code == 0, capsys.readouterr().err
    # three distinct images (s1, s2, t) -> three inversions; without the cache it would be six
    assert counter.rows == 3
    sides = [json.loads((images / "out" / f"{n}.json").read_text()) for n in "abc"]
    inv = [s["stats"]["inversion"] for s in sides]
    # row 1: source (levels N..1) and target (N..start) batched; row 2: the new source only; row 3: nothing
    assert [i["rows"] for i in inv] == [STEPS + (STEPS - START + 1), STEPS, 0]
    assert [i["calls"] for i in inv] == [STEPS, STEPS, 0]
    assert [s["inversion_cache"]["hits"] for s in sides] == [0, 1, 2]
    assert sides[2]["config"]["delta"] == 0.8 and sides[0]["config"]["delta"] == FGATConfig().delta
    report = json.loads((images / "out" / "batch.json").read_text())
    assert report["failed"] == 0 and report["inversion_cache"] == {"hits": 3, "misses": 3}
    # row 2 took the target's inversion from the cache: its image equals a fresh, uncached run
    fresh = tiny_pipe.transfer(Image.open(images / "s2.png"), Image.open(images / "t.png"), PROMPT, PROMPT,
                               FGATConfig(steps=STEPS))
    cached = np.asarray(Image.open(images / "out" / "b.png").convert("RGB")).astype(int)
    assert np.abs(cached - np.asarray(fresh.image).astype(int)).max() <= 1


@pytest.mark.parametrize("inversion", ["direct", "ddim"])
def test_a_source_inversion_computed_beside_another_target_is_within_the_documented_bound(tiny_pipe, images,
                                                                                           inversion):
    """The bound documented in the limits (issue 22, determinism): reusing a source inversion computed beside
    target A for target B is not bit-identical to a fresh run with B. B's inversion then runs alone (batch of
    one) instead of batched with the source's rows, and the UNet's output for a row differs in the last bits
    with the batch size on CPU (about 5e-8 for the tiny UNet); after the sampling that is at most 1e-4 in the
    latent and 1 level (of 255) in a few pixels."""
    s1, t = Image.open(images / "s1.png"), Image.open(images / "t.png")
    other = ImageOps.flip(t)
    cfg = FGATConfig(steps=STEPS, inversion=inversion)
    fresh = tiny_pipe.transfer(s1, t, PROMPT, PROMPT, cfg)
    cache = InversionCache()
    tiny_pipe.transfer(s1, other, PROMPT, PROMPT, cfg, cache=cache)
    reused = tiny_pipe.transfer(s1, t, PROMPT, PROMPT, cfg, cache=cache)
    assert cache.hits == 1  # the source's inversion came from the cache
    torch.testing.assert_close(reused.latent, fresh.latent, atol=1e-4, rtol=0)
    diff = np.abs(np.asarray(reused.image).astype(int) - np.asarray(fresh.image).astype(int))
    assert diff.max() <= 1


def test_cache_keys_follow_what_the_inversion_depends_on(tiny_pipe, images):
    s1, t = Image.open(images / "s1.png"), Image.open(images / "t.png")
    cache = InversionCache()
    cfg = FGATConfig(steps=STEPS)
    fresh = tiny_pipe.transfer(s1, t, PROMPT, PROMPT, cfg, cache=cache)
    # the same run again: nothing is inverted, and the result (mask included) is the fresh one
    again = tiny_pipe.transfer(s1, t, PROMPT, PROMPT, cfg, cache=cache)
    assert again.result.stats["inversion"].calls == 0
    torch.testing.assert_close(again.latent, fresh.latent, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(again.result.mask, fresh.result.mask)
    # another mask word: the attention maps recorded by the source inversion differ -> source again
    out = tiny_pipe.transfer(s1, t, PROMPT, PROMPT, cfg.replace(mask_word="photo"), cache=cache)
    assert out.result.stats["inversion"].rows == STEPS
    # another target prompt: the target is inverted again (the source is reused)
    out = tiny_pipe.transfer(s1, t, PROMPT, "a photo of a dog", cfg, cache=cache)
    assert out.result.stats["inversion"].rows == STEPS - START + 1


def test_cache_is_never_shared_across_pipelines_or_weight_changes(images):
    """Two pipelines with the same name and the same weights keep apart in one cache, and so does one pipeline
    before and after `weights_changed()`: a cache entry stands for the weights it was computed with."""
    s1, t = Image.open(images / "s1.png"), Image.open(images / "t.png")
    cfg = FGATConfig(steps=STEPS)
    cache = InversionCache()
    first, second = tiny_pipeline(seed=0), tiny_pipeline(seed=0)
    assert first.name == second.name
    first.transfer(s1, t, PROMPT, PROMPT, cfg, cache=cache)
    out = second.transfer(s1, t, PROMPT, PROMPT, cfg, cache=cache)
    assert out.result.stats["inversion"].calls > 0 and cache.hits == 0
    assert first.transfer(s1, t, PROMPT, PROMPT, cfg, cache=cache).result.stats["inversion"].calls == 0
    with torch.no_grad():
        first.unet.conv_out.weight.mul_(2.0)  # in place, as merging a LoRA would
    first.weights_changed()
    changed = first.transfer(s1, t, PROMPT, PROMPT, cfg, cache=cache)
    assert changed.result.stats["inversion"].calls > 0
    # and what it computed is the new weights' result, not the old one
    assert (changed.latent - out.latent).abs().max() > 1e-3


def test_null_text_embeddings_are_reused(tiny_pipe, images):
    s1, t = Image.open(images / "s1.png"), Image.open(images / "t.png")
    cfg = FGATConfig(steps=4, inversion="null-text", null_text_steps=2)
    cache = InversionCache()
    fresh = tiny_pipe.transfer(s1, t, PROMPT, PROMPT, cfg, cache=cache)
    assert fresh.result.stats["inversion"].calls > cfg.steps  # the optimisation ran
    again = tiny_pipe.transfer(s1, t, PROMPT, PROMPT, cfg, cache=cache)
    assert again.result.stats["inversion"].calls == 0
    torch.testing.assert_close(again.latent, fresh.latent, atol=1e-4, rtol=1e-4)


def test_csv_comments_above_the_header_and_duplicate_columns(images):
    (images / "commented.csv").write_text("# my pairs\n\nsource,target,source_prompt\ns1.png,t.png,a cat\n")
    (row_where, _), = read_pairs(images / "commented.csv", images / "out")
    assert row_where == "commented.csv line 4"  # the file's own line number
    (images / "twice.csv").write_text("source,target,source_prompt,delta,delta\ns1.png,t.png,a cat,0.5,0.9\n")
    with pytest.raises(ValueError, match="names the column\\(s\\) delta twice"):
        read_pairs(images / "twice.csv", images / "out")


def test_yaml_defaults_preset_flags_and_row_precedence(images):
    (images / "pairs.yaml").write_text(
        "defaults:\n"
        "  source_prompt: a photo of a cat\n"
        "  steps: 20\n"
        "  delta: 0.7\n"
        "  preset: Strong transfer\n"
        "pairs:\n"
        "  - {source: s1.png, target: t.png}\n"
        "  - {source: s2.png, target: t.png, delta: 0.3, window-end: 0.45, target_prompt: a cat}\n"
        "  - {source: s2.png, target: t.png, preset: Paper, out: sub/x}\n"
    )
    jobs = read_pairs(images / "pairs.yaml", images / "out", settings={"delta": 0.5, "steps": 10})
    cfgs = [job.config for _, job in jobs]
    # defaults < preset < file defaults < command line < row
    assert cfgs[0] == paper_config(delta=0.5, window_end=0.5, steps=10)  # "Strong transfer" is the paper's, stronger
    assert cfgs[1] == paper_config(delta=0.3, window_end=0.45, steps=10)
    assert cfgs[2] == paper_config(delta=0.5, steps=10)
    j0, j1, j2 = (job for _, job in jobs)
    assert j0.source == images / "s1.png" and j0.target_prompt == PROMPT and j1.target_prompt == "a cat"
    assert j0.out == images / "out" / "001-s1-t.png" and j2.out == images / "out" / "sub" / "x.png"


def test_csv_blank_cells_comments_and_masks(images):
    Image.new("L", (SIZE, SIZE), 255).save(images / "m.png")
    (images / "p.csv").write_text(
        "source,target,source_prompt,mask,steps,transfer\n"
        "# a comment row,,,,,\n"
        "s1.png,t.png,a cat,,,\n"
        ",,,,,\n"
        "s2.png,t.png,a cat,m.png,12,no\n"
    )
    jobs = [job for _, job in read_pairs(images / "p.csv", images / "o")]
    assert len(jobs) == 2
    assert jobs[0].config == FGATConfig() and jobs[0].mask is None and jobs[0].transfer
    assert jobs[1].config == FGATConfig(steps=12, mask_source="user") and jobs[1].mask == images / "m.png"
    assert jobs[1].transfer is False


def test_pairs_file_problems_are_all_reported_before_anything_runs(images, capsys, monkeypatch):
    (images / "bad.csv").write_text(
        "source,target,source_prompt,delta\n"
        "s1.png,t.png,a cat,0.5\n"
        "nope.png,t.png,a cat,\n"
        "s1.png,t.png,a cat,2\n"
        "s1.png,t.png,,abc\n"
    )
    monkeypatch.setattr(cli, "_load", lambda args: pytest.fail("the model must not load for a bad pairs file"))
    assert cli.main(["batch", "--pairs", str(images / "bad.csv"), "--out-dir", str(images / "out")]) == 2
    err = capsys.readouterr().err
    assert "nothing was run" in err and "Traceback" not in err
    assert "bad.csv line 3: the source image" in err and "does not exist" in err
    assert "bad.csv line 4: delta must be in [0.0, 1.0], got 2.0" in err
    assert "bad.csv line 5: missing source_prompt" in err
    assert not (images / "out").exists()


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("p.csv", "source,target,source_prompt,colour\ns1.png,t.png,a,red\n", "unknown column 'colour'"),
        ("p.txt", "x", "must be .csv, .yaml or .yml"),
        ("p.yaml", "pairs: [1, 2]", "a row must be a mapping"),
        ("p.yaml", "pairs: [", "not valid YAML"),
        ("p.csv", "source,target,source_prompt\n", "lists no pairs"),
        ("p.csv", "source,target,source_prompt,out\ns1.png,t.png,a,x.png\ns2.png,t.png,a,x.png\n",
         "writes the same output"),
    ],
)
def test_pairs_file_format_errors(images, name, text, message):
    (images / name).write_text(text)
    with pytest.raises(ValueError, match=message.replace(".", r"\.").replace("(", r"\(")):
        read_pairs(images / name, images / "out")


def test_example_pairs_files_are_valid():
    for name in ("pairs.csv", "pairs.yaml"):
        jobs = read_pairs(EXAMPLES / name, Path("out"))
        assert len(jobs) >= 3
        targets = [job.target for _, job in jobs]
        assert len(set(targets)) < len(targets)  # the examples show the cache: a target repeats


def test_every_problem_of_a_pairs_file_is_reported_in_one_pass_mask_words_included(images, capsys, monkeypatch):
    """Format problems, missing files, bad values and mask words that are not in the prompt: one list, each with
    its line, before the model loads (the mask words are checked with the model's tokenizer, read alone)."""
    (images / "bad.csv").write_text(
        "source,target,source_prompt,mask_word,steps\n"
        "s1.png,t.png,a cat,dog,\n"          # line 2: mask word not in the prompt
        "s1.png,t.png,a cat,,1000\n"         # line 3: steps out of range
        "nope.png,t.png,a cat,,\n"           # line 4: missing image
        "s1.png,t.png,!!!,,\n"               # line 5: a prompt without a word
        "s1.png,t.png,a cat,cat,,extra\n"    # line 6: more cells than columns
    )
    monkeypatch.setattr(cli, "_load", lambda args: pytest.fail("the model must not load for a bad pairs file"))
    assert cli.main(["batch", "--pairs", str(images / "bad.csv"), "--out-dir", str(images / "out")]) == 2
    err = capsys.readouterr().err
    lines = [line.strip() for line in err.splitlines()[1:]]
    assert [line.split(":")[0] for line in lines] == [f"bad.csv line {n}" for n in (2, 3, 4, 5, 6)], err
    assert "mask word 'dog' is not in the source prompt 'a cat'" in lines[0]
    assert lines[1].endswith("steps must be in [1, 999], got 1000")
    assert "has no word with letters" in lines[3] and "more cells than the header" in lines[4]


def test_yaml_pairs_are_reported_by_their_line(images):
    (images / "p.yaml").write_text(
        "defaults:\n  source_prompt: a photo of a cat\npairs:\n"
        "  - {source: s1.png, target: t.png}\n"
        "  - source: s1.png\n    target: t.png\n    mask_word: dog\n"
        "  - {source: s1.png, target: t.png, colour: red}\n"
    )
    with pytest.raises(ValueError) as e:
        read_pairs(images / "p.yaml", images / "out", tokenizer=tiny_tokenizer())
    found = str(e.value).splitlines()[1:]
    assert found[0].strip().startswith("p.yaml line 5 (pair 2): the mask word 'dog' is not in")
    assert found[1].strip().startswith("p.yaml line 8 (pair 3): unknown column 'colour'")
