"""Reliability of the core on odd input (issue 6): image modes, sizes, prompts, masks, presets, faults.

Expected values come from independent computations (numpy, hand-built files, hand-computed crop boxes),
never from the function under test. The tiny model runs with few steps so the file stays fast."""

from __future__ import annotations

import io
import json
import math
import os
import re
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from fgat_core import images as images_mod
from fgat_core.config import FGATConfig
from fgat_core.engine import FGATInputs, FGATInterrupted, run_fgat
from fgat_core.images import fit_to, to_rgb
from fgat_core.mask import AttentionRecorder, prepare_user_mask, threshold_mask, word_token_indices
from fgat_core.presets import BUILTIN, PresetStore, check_name
from fgat_core.tiny import DEMO_WORDS, tiny_tokenizer

CFG = FGATConfig(steps=6)
SRC_PROMPT, TAR_PROMPT = "a photo of a cat sitting on grass", "a photo of a dog"


def png_bytes(arr: np.ndarray, color_type: int, bit_depth: int = 16) -> bytes:
    """A PNG written by hand (no PIL): 16-bit samples, big-endian, filter 0 on every row."""
    h, w = arr.shape[:2]
    dtype = ">u2" if bit_depth == 16 else "u1"
    raw = b"".join(b"\x00" + arr[y].astype(dtype).tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def arr(img: Image.Image) -> np.ndarray:
    return np.asarray(img).astype(np.int64)


def module_hooks(*models) -> int:
    """Forward / pre-forward / backward hooks on every submodule, plus torch's global module hooks."""
    n = 0
    for model in models:
        for m in model.modules():
            n += len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
    g = torch.nn.modules.module
    return n + len(g._global_forward_hooks) + len(g._global_forward_pre_hooks)


# ============================================================================ image modes (to_rgb)
def test_grayscale_becomes_three_equal_channels():
    g = np.random.default_rng(1).integers(0, 256, (20, 30), dtype=np.uint8)
    out = to_rgb(Image.fromarray(g, "L"))
    assert out.mode == "RGB" and out.size == (30, 20)
    assert (arr(out) == g[..., None].astype(np.int64)).all()


def test_rgba_is_composited_on_white():
    rng = np.random.default_rng(2)
    rgba = rng.integers(0, 256, (16, 16, 4), dtype=np.uint8)
    out = arr(to_rgb(Image.fromarray(rgba, "RGBA")))
    a = rgba[..., 3:].astype(np.float64) / 255.0
    expected = rgba[..., :3] * a + 255.0 * (1.0 - a)  # "over" a white background
    assert np.abs(out - expected).max() <= 1.0


def test_palette_with_transparent_index_is_composited_on_white():
    idx = np.arange(16 * 16, dtype=np.uint8).reshape(16, 16) % 4
    pal = [10, 20, 30, 200, 100, 50, 0, 0, 255, 7, 7, 7]
    img = Image.fromarray(idx, "P")
    img.putpalette(pal)
    img.info["transparency"] = 2  # index 2 fully transparent
    out = arr(to_rgb(img))
    lut = np.array(pal, dtype=np.int64).reshape(4, 3)
    expected = lut[idx]
    expected[idx == 2] = 255
    assert (out == expected).all()


def test_16bit_grayscale_png_from_disk_is_scaled_not_clipped(tmp_path):
    rng = np.random.default_rng(3)
    v = rng.integers(0, 65536, (24, 40)).astype(np.uint16)
    path = tmp_path / "t16.png"
    Image.fromarray(v).save(path)  # PIL writes I;16 as a 16-bit greyscale PNG
    with Image.open(path) as img:
        assert img.mode.startswith("I")
        out = arr(to_rgb(img))
    expected = np.floor(v.astype(np.float64) * 255.0 / 65535.0 + 0.5)
    assert np.abs(out - expected[..., None]).max() <= 1
    # a dark 16-bit image stays dark (it must not be read as 8-bit values)
    dark = (v // 32).astype(np.uint16)  # max 2047 of 65535 -> at most 8 of 255
    Image.fromarray(dark).save(path)
    with Image.open(path) as img:
        assert arr(to_rgb(img)).max() <= 8


@pytest.mark.parametrize("color_type,channels", [(2, 3), (6, 4), (4, 2)], ids=["rgb16", "rgba16", "la16"])
def test_16bit_colour_pngs_written_by_hand(color_type, channels):
    rng = np.random.default_rng(4)
    v = rng.integers(0, 65536, (12, 20, channels)).astype(np.uint16)
    v[..., -1] = np.where(rng.random((12, 20)) < 0.5, 65535, v[..., -1]) if channels in (2, 4) else v[..., -1]
    img = Image.open(io.BytesIO(png_bytes(v, color_type)))
    out = arr(to_rgb(img, "target image"))
    f = v.astype(np.float64) / 65535.0
    color = f[..., :3] if channels >= 3 else np.repeat(f[..., :1], 3, axis=-1)
    if channels in (2, 4):
        a = f[..., -1:]
        color = color * a + (1.0 - a)
    assert np.abs(out - color * 255.0).max() <= 2.0  # 16 -> 8 bit rounding plus compositing


def test_cmyk_and_bilevel():
    cmyk = np.zeros((8, 8, 4), dtype=np.uint8)
    cmyk[:4, :, 3] = 255  # top half: full black ink
    cmyk[4:, :4, 0] = 255  # bottom left: full cyan
    out = arr(to_rgb(Image.fromarray(cmyk, "CMYK")))
    assert (out[:4] == 0).all()
    assert (out[4:, :4] == [0, 255, 255]).all()
    assert (out[4:, 4:] == 255).all()
    bits = np.zeros((8, 8), dtype=bool)
    bits[::2] = True
    out = arr(to_rgb(Image.fromarray(bits)))
    assert (out[::2] == 255).all() and (out[1::2] == 0).all()


def test_unreadable_images_give_clear_errors(tmp_path):
    good = io.BytesIO()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 90).save(good, "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(good.getvalue()[:-30])  # truncated inside the pixel data
    with Image.open(path) as img, pytest.raises(ValueError, match="target image cannot be read"):
        to_rgb(img, "target image")
    with pytest.raises(ValueError, match="colour mode La"):
        to_rgb(Image.new("La", (16, 16)), "target image")
    with pytest.raises(ValueError, match="must be an image, got ndarray"):
        to_rgb(np.zeros((16, 16, 3)), "target image")
    with pytest.raises(ValueError, match="7x9; it must be at least 8x8"):
        to_rgb(Image.new("RGB", (7, 9)), "target image")


def test_size_limit(monkeypatch):
    with pytest.raises(ValueError, match=r"4097x4096 .*limit is 16\.8 MP: downscale it"):
        to_rgb(Image.new("1", (4097, 4096)), "target image")  # 1-bit: cheap to allocate
    monkeypatch.setattr(images_mod, "MAX_PIXELS", 64 * 64)
    assert to_rgb(Image.new("RGB", (64, 64))).size == (64, 64)
    with pytest.raises(ValueError, match="limit"):
        to_rgb(Image.new("RGB", (65, 64)))


# ============================================================================ resize policy
def test_fit_to_centre_crops_a_wide_image_without_resizing():
    a = np.random.default_rng(5).integers(0, 256, (100, 300, 3), dtype=np.uint8)
    out = fit_to(Image.fromarray(a), (100, 100))
    assert (np.asarray(out) == a[:, 100:200]).all()  # the middle third, by hand


def test_fit_to_centre_crops_a_tall_image_then_resizes():
    a = np.random.default_rng(6).integers(0, 256, (300, 100, 3), dtype=np.uint8)
    out = fit_to(Image.fromarray(a), (50, 100))  # aspect 1:2 -> crop 100x200 from top 50
    expected = Image.fromarray(a[50:250]).resize((50, 100), Image.LANCZOS)
    assert (np.asarray(out) == np.asarray(expected)).all()


def test_fit_to_same_aspect_only_resizes_and_small_images_are_upscaled():
    a = np.random.default_rng(7).integers(0, 256, (32, 64, 3), dtype=np.uint8)
    out = fit_to(Image.fromarray(a), (128, 64))
    assert (np.asarray(out) == np.asarray(Image.fromarray(a).resize((128, 64), Image.LANCZOS))).all()


# ============================================================================ the pipeline on odd targets
@pytest.fixture(scope="module")
def gray_target():
    """One RGB reference target (grey values, a white patch) and the same picture in other modes."""
    rng = np.random.default_rng(8)
    g = rng.integers(0, 256, (128, 128), dtype=np.uint8)
    g[40:70, 50:90] = 255
    ref = Image.fromarray(np.repeat(g[..., None], 3, axis=-1), "RGB")
    rgba = np.zeros((128, 128, 4), np.uint8)
    rgba[..., :3] = g[..., None]
    rgba[..., 3] = 255
    rgba[40:70, 50:90] = [12, 200, 77, 0]  # transparent: composited to the same white
    pal = Image.fromarray(g, "P")
    pal.putpalette([c for v in range(256) for c in (v, v, v)])
    cmyk = np.zeros((128, 128, 4), np.uint8)
    cmyk[..., 3] = 255 - g
    modes = {
        "L": Image.fromarray(g, "L"),
        "RGBA": Image.fromarray(rgba, "RGBA"),
        "P": pal,
        "I;16": Image.open(io.BytesIO(png_bytes(g.astype(np.uint16) * 257, 0))),  # 16-bit grey PNG
        "CMYK": Image.fromarray(cmyk, "CMYK"),
    }
    return ref, modes


@pytest.fixture(scope="module")
def gray_reference_latent(tiny_pipe, example_images, gray_target):
    return tiny_pipe.transfer(example_images[0], gray_target[0], SRC_PROMPT, TAR_PROMPT, CFG).latent


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "CMYK"])
def test_targets_in_any_mode_transfer_like_their_rgb_picture(
    tiny_pipe, example_images, gray_target, gray_reference_latent, mode
):
    img = gray_target[1][mode]
    assert img.mode == mode
    out = tiny_pipe.transfer(example_images[0], img, SRC_PROMPT, TAR_PROMPT, CFG)
    assert out.image.mode == "RGB" and out.image.size == example_images[0].size
    assert torch.equal(out.latent, gray_reference_latent)


def test_target_of_other_size_and_aspect_is_centre_cropped_to_the_source(tiny_pipe, example_images):
    a = np.random.default_rng(9).integers(0, 256, (128, 256, 3), dtype=np.uint8)
    out = tiny_pipe.transfer(example_images[0], Image.fromarray(a), SRC_PROMPT, TAR_PROMPT, CFG)
    assert (np.asarray(out.target) == a[:, 64:192]).all()
    assert out.image.size == example_images[0].size
    ref = tiny_pipe.transfer(example_images[0], Image.fromarray(a[:, 64:192]), SRC_PROMPT, TAR_PROMPT, CFG)
    assert torch.equal(out.latent, ref.latent)


def test_source_size_is_snapped_to_the_models_multiple(tiny_pipe, example_images):
    src = example_images[0].resize((100, 70))
    m = tiny_pipe.size_multiple
    out = tiny_pipe.transfer(src, example_images[1], SRC_PROMPT, TAR_PROMPT, CFG)
    expected = (max(m, math.floor(100 / m + 0.5) * m), max(m, math.floor(70 / m + 0.5) * m))
    assert out.image.size == expected == out.source.size == out.target.size
    assert tuple(out.latent.shape[-2:]) == (expected[1] // tiny_pipe.vae_factor, expected[0] // tiny_pipe.vae_factor)


def test_oversized_images_are_rejected_by_name(tiny_pipe, example_images, monkeypatch):
    monkeypatch.setattr(images_mod, "MAX_PIXELS", 100 * 100)
    with pytest.raises(ValueError, match="the target image is 128x128 .* downscale it"):
        tiny_pipe.transfer(example_images[0].resize((64, 64)), example_images[1], SRC_PROMPT, TAR_PROMPT, CFG)
    with pytest.raises(ValueError, match="the source image is 128x128"):
        tiny_pipe.transfer(example_images[0], example_images[1].resize((64, 64)), SRC_PROMPT, TAR_PROMPT, CFG)


@pytest.mark.parametrize("kind", ["sdxl", "v_prediction"])
def test_sdxl_and_v_prediction_take_odd_targets(example_images, gray_target, tiny_pipe_v, kind):
    from fgat_core.pipeline import tiny_pipeline

    pipe = tiny_pipeline(sdxl=True) if kind == "sdxl" else tiny_pipe_v
    src = example_images[0].resize((128, 64))
    out = pipe.transfer(src, gray_target[1]["RGBA"], SRC_PROMPT, TAR_PROMPT, FGATConfig(steps=5))
    assert out.image.size == (128, 64) and torch.isfinite(out.latent).all()
    assert (np.asarray(out.target) == np.asarray(fit_to(gray_target[0], (128, 64)))).all()


def test_an_inversion_cache_shared_across_checkpoints_is_never_stale(tiny_pipe, example_images):
    """Switching models between runs that share one cache: nothing of the other model is reused, the cache
    serves only the model that filled it, and it never holds more than its limit."""
    from fgat_core.cache import InversionCache
    from fgat_core.pipeline import tiny_pipeline

    other = tiny_pipeline(seed=1)
    src, tar = (im.resize((64, 64)) for im in example_images)
    cache = InversionCache(max_entries=3)
    on_a = tiny_pipe.transfer(src, tar, SRC_PROMPT, TAR_PROMPT, CFG, cache=cache)
    hits = cache.hits
    on_b = other.transfer(src, tar, SRC_PROMPT, TAR_PROMPT, CFG, cache=cache)
    assert cache.hits == hits  # B found nothing of A's
    # a hit skips a batched UNet call, so it matches a miss to float rounding, not bit for bit
    gap = lambda a, b: float((a.latent - b.latent).abs().max())  # noqa: E731
    assert gap(on_b, other.transfer(src, tar, SRC_PROMPT, TAR_PROMPT, CFG)) < 1e-5
    again_a = tiny_pipe.transfer(src, tar, SRC_PROMPT, TAR_PROMPT, CFG, cache=cache)
    assert cache.hits > hits and gap(again_a, on_a) < 1e-5
    assert gap(on_a, on_b) > 1e-2  # the two models really differ
    for word in ("dog", "bird", "fish"):
        tiny_pipe.transfer(src, tar, f"a photo of a {word}", TAR_PROMPT, CFG, cache=cache)
    assert len(cache) <= 3


# ============================================================================ prompts and the mask word
@pytest.mark.parametrize("prompt, says", [("", "is empty"), ("   ", "is empty"),
                                          (" , ! ", "' , ! ' has no word with letters"),
                                          ("!!!", "'!!!' has no word with letters")])
def test_empty_source_prompt_with_attention_mask_says_what_to_do(tiny_pipe, example_images, prompt, says):
    """A prompt of punctuation is not called empty: the message quotes it and says what it lacks."""
    with pytest.raises(ValueError, match=f"the source prompt {re.escape(says)}.*mask source 'user' or 'none'"):
        tiny_pipe.transfer(*example_images, prompt, TAR_PROMPT, CFG)


def test_empty_prompts_are_fine_where_no_word_is_needed(tiny_pipe, example_images):
    a = tiny_pipe.transfer(*example_images, "", "", CFG.replace(mask_source="none"))
    b = tiny_pipe.transfer(*example_images, SRC_PROMPT, "", CFG)
    assert torch.isfinite(a.latent).all() and torch.isfinite(b.latent).all()
    assert not torch.equal(a.latent, b.latent)  # the prompts did reach the model


def test_mask_word_not_in_prompt_lists_the_prompts_words(tiny_pipe, example_images):
    with pytest.raises(ValueError) as e:
        tiny_pipe.transfer(*example_images, "a photo of a cat, sitting", TAR_PROMPT, CFG.replace(mask_word="cats"))
    msg = str(e.value)
    assert "'cats' is not in the source prompt" in msg
    assert msg.endswith("a, photo, of, cat, sitting")


def _token_tokenizer():
    return tiny_tokenizer(tuple(DEMO_WORDS) + ("((", "))", "!!"))


@pytest.mark.parametrize(
    "prompt,word",
    [
        ("a photo of a cat", "cat"),
        ("a photo of a cat", ""),  # empty word: the last word
        ("A Photo of a CAT on grass", "cat"),
        ("a zebra on grass", "zebra"),  # not in the vocabulary: spelled in several tokens
        ("wow!! a ((cat)) on grass", "cat"),  # punctuation runs merge into one token
        ("a red car, a blue car", "blue car"),
    ],
)
def test_mask_token_positions_spell_the_word(prompt, word):
    tok = _token_tokenizer()
    pos = word_token_indices(prompt, word, tok.tokenize)
    ids = tok(prompt).input_ids
    spelled = "".join(tok.convert_ids_to_tokens([ids[p] for p in pos])).replace("</w>", " ").split()
    want = (word or prompt.split()[-1]).lower().split()
    assert spelled == want
    assert pos == list(range(pos[0], pos[0] + len(pos)))  # one contiguous run


def test_mask_word_beyond_the_token_limit_is_an_error():
    tok = _token_tokenizer()
    prompt = " ".join(["grass"] * 80) + " cat"
    with pytest.raises(ValueError, match="beyond the first 75 tokens.*move it earlier"):
        word_token_indices(prompt, "cat", tok.tokenize)
    assert word_token_indices("a cat " + " ".join(["grass"] * 80), "cat", tok.tokenize) == [2]


# ============================================================================ masks
def test_attention_mask_that_thresholds_to_nothing_falls_back_and_says_so(tiny_pipe, example_images, monkeypatch):
    none = tiny_pipe.transfer(*example_images, SRC_PROMPT, TAR_PROMPT, CFG.replace(mask_source="none"))
    for empty in (torch.zeros, lambda s: torch.full(s, float("nan"))):
        monkeypatch.setattr(AttentionRecorder, "mean_map", lambda self, e=empty: e(self.latent_size))
        out = tiny_pipe.transfer(*example_images, SRC_PROMPT, TAR_PROMPT, CFG)
        assert any("thresholded to nothing" in m and "whole image" in m for m in out.messages)
        assert (out.result.mask == 1).all()
        assert torch.equal(out.latent, none.latent)  # M = 1 exactly as with mask source 'none'


def test_threshold_mask_of_empty_or_broken_maps_is_empty():
    for m in (torch.zeros(8, 8), torch.full((8, 8), float("nan")), -torch.ones(8, 8)):
        assert threshold_mask(m).sum() == 0


def test_user_mask_of_same_aspect_is_area_resized():
    rng = np.random.default_rng(10)
    m = rng.random((32, 64)).astype(np.float32)
    out = prepare_user_mask(torch.from_numpy(m), (8, 16))
    expected = m.reshape(8, 4, 16, 4).mean(axis=(1, 3))  # 4x4 block means
    assert np.allclose(out.numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("shape", [(32, 32), (64, 16)])
def test_user_mask_of_other_aspect_is_rejected(shape):
    with pytest.raises(ValueError, match="other aspect ratio.*same aspect ratio as the source"):
        prepare_user_mask(torch.ones(shape), (8, 16))


def test_user_mask_through_the_pipeline(tiny_pipe, example_images):
    cfg = CFG.replace(mask_source="user")
    half = np.zeros((256, 256), np.uint8)
    half[:, 128:] = 255
    out = tiny_pipe.transfer(*example_images, SRC_PROMPT, TAR_PROMPT, cfg, mask=Image.fromarray(half))
    h, w = out.latent.shape[-2:]
    expected = np.zeros((h, w))
    expected[:, w // 2:] = 1
    assert np.allclose(out.result.mask.numpy(), expected)
    with pytest.raises(ValueError, match="aspect ratio"):
        tiny_pipe.transfer(*example_images, SRC_PROMPT, TAR_PROMPT, cfg, mask=Image.new("L", (256, 128), 255))
    with pytest.raises(ValueError, match="no mask image was given"):
        tiny_pipe.transfer(*example_images, SRC_PROMPT, TAR_PROMPT, cfg)


def test_all_black_user_mask_changes_nothing_and_says_so(tiny_pipe, example_images):
    cfg = CFG.replace(mask_source="user")
    black = Image.new("L", (128, 128), 0)
    out = tiny_pipe.transfer(*example_images, SRC_PROMPT, TAR_PROMPT, cfg, mask=black)
    recon = tiny_pipe.transfer(*example_images, SRC_PROMPT, TAR_PROMPT, cfg, transfer=False, mask=black)
    assert any("all black" in m for m in out.messages)
    assert torch.allclose(out.latent, recon.latent, atol=1e-5)


# ============================================================================ faults leave nothing behind
@pytest.fixture(scope="module")
def small(tiny_pipe, example_images):
    """FGAT inputs at 64x64 pixels (an 8x8 latent), built once: the fault tests rerun the engine often."""
    src, tar = (im.resize((64, 64)) for im in example_images)
    return FGATInputs(
        source_latent=tiny_pipe.encode_image(src), target_latent=tiny_pipe.encode_image(tar),
        source_cond=tiny_pipe.encode_prompt(SRC_PROMPT), target_cond=tiny_pipe.encode_prompt(TAR_PROMPT),
        uncond=tiny_pipe.encode_prompt(""), mask_tokens=word_token_indices(SRC_PROMPT, "cat", tiny_pipe.tokens),
    )


@pytest.fixture(scope="module")
def probe(tiny_pipe):
    """A fixed UNet call whose output must not change after any failed run."""
    g = torch.Generator().manual_seed(11)
    x = torch.randn(1, 4, 8, 8, generator=g)
    cond = tiny_pipe.encode_prompt(SRC_PROMPT)
    t = torch.tensor([500])

    def run() -> torch.Tensor:
        with torch.no_grad():
            return tiny_pipe.host.eps(x, t, cond).clone()

    return run


def _state(pipe):
    mods = pipe._modules()
    return {
        "hooks": module_hooks(*mods),
        "grad": torch.is_grad_enabled(),
        "inference": torch.is_inference_mode_enabled(),
        "rng": torch.get_rng_state(),
        "training": [m.training for model in mods for m in model.modules()],
        "requires_grad": [p.requires_grad for model in mods for p in model.parameters()],
    }


def _assert_same_state(after, before, where: str) -> None:
    assert after["hooks"] == before["hooks"], f"hooks left behind after {where}"
    assert after["grad"] == before["grad"] and after["inference"] == before["inference"], f"grad mode, {where}"
    assert torch.equal(after["rng"], before["rng"]), f"global RNG state changed after {where}"
    assert after["training"] == before["training"], f"train/eval flags changed after {where}"
    assert after["requires_grad"] == before["requires_grad"], f"requires_grad changed after {where}"


def _stage_of(event, cfg: FGATConfig) -> str:
    """inversion / before / inside / after the window, from a progress event."""
    stage, done, total = event
    if stage != "sampling":
        return stage
    start, end = cfg.window()
    i = cfg.steps - total + done - 1  # sampling covers the last `total` steps
    return "before" if i < start else "inside" if i < end else "after"


@pytest.mark.parametrize(
    "cfg",
    [
        FGATConfig(steps=6),  # direct: sampling starts at the window
        FGATConfig(steps=6, inversion="ddim"),  # samples from step 0: steps before the window
        FGATConfig(steps=3, inversion="null-text", null_text_steps=2),  # autograd inside
    ],
    ids=["direct", "ddim", "null-text"],
)
def test_interrupt_at_every_stage_leaves_the_model_as_it_was(tiny_pipe, small, probe, cfg):
    events: list[tuple[str, int, int]] = []
    before, plain = _state(tiny_pipe), probe()
    full = run_fgat(tiny_pipe.host, small, cfg, progress=lambda *e: events.append(e))
    stages = [_stage_of(e, cfg) for e in events]
    expected = {"inversion", "inside", "after"} | ({"before"} if cfg.inversion != "direct" else set())
    assert set(stages) == expected
    # the first and the last event of every stage
    picks = sorted({stages.index(s) for s in expected} | {len(stages) - 1 - stages[::-1].index(s) for s in expected})
    for k in picks:
        seen = []

        def stop(*e, k=k, seen=seen):
            seen.append(e)
            if len(seen) == k + 1:
                raise FGATInterrupted("Interrupted")

        with pytest.raises(FGATInterrupted):
            run_fgat(tiny_pipe.host, small, cfg, progress=stop)
        _assert_same_state(_state(tiny_pipe), before, f"an interrupt at {stages[k]} event {events[k]}")
    assert torch.equal(probe(), plain)
    assert torch.equal(run_fgat(tiny_pipe.host, small, cfg).latent, full.latent)


@pytest.mark.parametrize(
    "where,error", [("eps", torch.cuda.OutOfMemoryError), ("features", RuntimeError)], ids=["eps", "features"]
)
def test_out_of_memory_at_every_unet_call_leaves_the_model_as_it_was(tiny_pipe, small, probe, where, error,
                                                                   monkeypatch):
    host = tiny_pipe.host
    original = getattr(host, where)
    calls = [0]
    fail_at = [-1]

    def wrapped(*a, **kw):
        calls[0] += 1
        if calls[0] == fail_at[0]:
            raise error("CUDA out of memory. Tried to allocate 20.00 MiB")
        return original(*a, **kw)

    monkeypatch.setattr(host, where, wrapped)
    full = run_fgat(host, small, CFG)
    total = calls[0]
    assert total >= 1
    before, plain = _state(tiny_pipe), probe()
    for k in range(1, total + 1):
        calls[0], fail_at[0] = 0, k
        with pytest.raises(error, match="out of memory"):
            run_fgat(host, small, CFG)
        _assert_same_state(_state(tiny_pipe), before, f"out of memory at {where} call {k} of {total}")
    fail_at[0] = -1
    assert torch.equal(probe(), plain)
    assert torch.equal(run_fgat(host, small, CFG).latent, full.latent)


def test_exception_inside_the_attention_hook_removes_every_hook(tiny_pipe, small, probe, monkeypatch):
    before, plain = _state(tiny_pipe), probe()

    def k_hook(self, i, heads):
        def hook(*_):
            if self.active:
                raise RuntimeError("boom inside the attention hook")

        return hook

    monkeypatch.setattr(AttentionRecorder, "_k_hook", k_hook)
    with pytest.raises(RuntimeError, match="boom"):
        run_fgat(tiny_pipe.host, small, CFG)
    _assert_same_state(_state(tiny_pipe), before, "an exception in a hook")
    assert torch.equal(probe(), plain)


def test_a_successful_run_leaves_global_state_alone(tiny_pipe, small):
    before = _state(tiny_pipe)
    run_fgat(tiny_pipe.host, small, CFG.replace(inversion="null-text", steps=3, null_text_steps=2))
    run_fgat(tiny_pipe.host, small, CFG)
    _assert_same_state(_state(tiny_pipe), before, "successful runs")


# ============================================================================ presets
VALID = FGATConfig(delta=0.7).to_dict()


def _files(root) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize(
    "content,reason",
    [
        (b"{not json", "cannot be read"),
        (b"\xff\xfe\x00garbage", "cannot be read"),
        (b"[" * 200_000, "cannot be read"),  # nesting deeper than the parser's recursion limit
        (b'["a list"]', "not a JSON object"),
        (b'"a string"', "not a JSON object"),
        (b"{" + b" " * 1_100_000 + b"}", "larger than 1 MB"),
    ],
    ids=["syntax", "binary", "deep", "list", "string", "huge"],
)
def test_corrupt_presets_file_is_reported_and_ignored(tmp_path, content, reason):
    (tmp_path / "presets.json").write_bytes(content)
    store = PresetStore(tmp_path)
    assert store.names() == list(BUILTIN)
    assert len(store.errors) == 1 and reason in store.errors[0] and "ignored" in store.errors[0]
    assert store.get("Paper defaults") == FGATConfig()
    with pytest.raises(ValueError, match=f"preset 'x' cannot be used: the presets file .* {reason}"):
        store.get("x")  # not 'unknown preset': the user's file, where it might be, is unreadable


def test_a_requested_preset_that_is_invalid_says_why_and_a_shadowed_one_is_reported(tmp_path):
    (tmp_path / "presets.json").write_text('{"bad": {"delta": "x"}, "Paper defaults": {"delta": 0.9}}')
    store = PresetStore(tmp_path)
    with pytest.raises(ValueError, match=r"preset 'bad' cannot be used: preset 'bad' in .* is invalid \(.*delta"):
        store.get("bad")
    assert store.get("Paper defaults") == FGATConfig()  # the built-in wins ...
    assert any("built-in preset's name" in e for e in store.errors)  # ... and the user is told
    with pytest.raises(ValueError, match="unknown preset 'other'; available presets"):
        store.get("other")


def test_presets_file_that_is_a_folder_is_reported(tmp_path):
    (tmp_path / "presets.json").mkdir()
    store = PresetStore(tmp_path)
    assert store.names() == list(BUILTIN) and "cannot be read" in store.errors[0]


def test_hand_edited_presets_keep_the_good_entries(tmp_path):
    bad = {
        "list": [1, 2],
        "string delta": {**VALID, "delta": "0.5"},
        "delta too big": {**VALID, "delta": 5},
        "unknown inversion": {**VALID, "inversion": "magic"},
        "unknown key": {**VALID, "colour": "red"},
        "fractional steps": {**VALID, "steps": 10.5},
        "bool steps": {**VALID, "steps": True},
        "word not text": {**VALID, "mask_word": 3},
        "../escape": VALID,
        "a/b": VALID,
    }
    text = json.dumps({"good one": {"delta": 0.3, "steps": 20}, **bad})
    text = text[:-1] + ', "nan delta": {"delta": NaN}}'  # json.loads accepts NaN: the schema must not
    (tmp_path / "presets.json").write_text(text, encoding="utf-8")
    store = PresetStore(tmp_path)
    assert store.names() == list(BUILTIN) + ["good one"]
    assert store.get("good one") == FGATConfig(delta=0.3, steps=20)
    assert len(store.errors) == len(bad) + 1
    for name, err in zip([*bad, "nan delta"], store.errors, strict=True):
        assert err.startswith(f"preset {name!r}") and err.endswith("it was ignored")


@pytest.mark.parametrize(
    "name",
    ["../evil", "..", ".", "a/b", "/abs", "a\\b", "..\\x", "a\x00b", "x" * 65, "", "   ", ".hidden", "a\nb", 7, None],
)
def test_preset_names_cannot_escape_the_presets_folder(tmp_path, name):
    folder = tmp_path / "presets"
    store = PresetStore(folder)
    with pytest.raises(ValueError, match="invalid preset name"):
        store.save(name, FGATConfig())
    with pytest.raises(ValueError):
        check_name(name)
    assert _files(tmp_path) == set()


def test_saving_writes_only_the_one_presets_file(tmp_path):
    folder = tmp_path / "presets"
    store = PresetStore(folder)
    store.save("My preset (v2) + more", FGATConfig(delta=0.5))
    store.save("Katze ü", FGATConfig(lam=0.3))
    assert _files(tmp_path) == {"presets", os.path.join("presets", "presets.json")}
    assert PresetStore(folder).get("Katze ü") == FGATConfig(lam=0.3)
    with pytest.raises(ValueError, match="built-in"):
        store.save("Paper defaults", FGATConfig())


@pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="symlinks need POSIX")
def test_a_symlinked_presets_file_is_replaced_not_followed(tmp_path):
    outside = tmp_path / "outside.json"
    outside.write_text("{}", encoding="utf-8")
    folder = tmp_path / "presets"
    folder.mkdir()
    (folder / "presets.json").symlink_to(outside)
    PresetStore(folder).save("mine", FGATConfig())
    assert outside.read_text(encoding="utf-8") == "{}"
    assert not (folder / "presets.json").is_symlink()
    assert PresetStore(folder).names()[-1] == "mine"


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    store = PresetStore(tmp_path)
    store.save("first", FGATConfig())
    old = (tmp_path / "presets.json").read_bytes()

    def broken_dump(*a, **k):
        raise OSError("No space left on device")

    monkeypatch.setattr("fgat_core.presets.json.dump", broken_dump)
    with pytest.raises(OSError, match="No space"):
        store.save("second", FGATConfig())
    assert (tmp_path / "presets.json").read_bytes() == old
    assert _files(tmp_path) == {"presets.json"}


def test_saving_keeps_hand_edited_entries_it_cannot_use(tmp_path):
    text = json.dumps({"typo": {"delta": "0.5"}, "kept": {"lam": 0.4}})
    (tmp_path / "presets.json").write_text(text, encoding="utf-8")
    store = PresetStore(tmp_path)
    store.save("new", FGATConfig(gamma=0.3))
    stored = json.loads((tmp_path / "presets.json").read_text(encoding="utf-8"))
    assert stored["typo"] == {"delta": "0.5"}  # left for the user to fix, not dropped
    assert stored["kept"] == {"lam": 0.4}
    assert store.names()[-2:] == ["kept", "new"] and "preset 'typo'" in store.errors[0]
    store.delete("new")
    assert json.loads((tmp_path / "presets.json").read_text(encoding="utf-8")) == json.loads(text)


def test_an_unreadable_presets_file_is_never_overwritten(tmp_path):
    (tmp_path / "presets.json").write_text('{"mine": {"delta": 0.5},', encoding="utf-8")  # a missing brace
    store = PresetStore(tmp_path)
    with pytest.raises(ValueError, match=r"cannot be read .*fix it or move it away, then save again"):
        store.save("new", FGATConfig())
    with pytest.raises(ValueError, match="no user preset named 'mine'"):
        store.delete("mine")
    assert (tmp_path / "presets.json").read_text(encoding="utf-8") == '{"mine": {"delta": 0.5},'
