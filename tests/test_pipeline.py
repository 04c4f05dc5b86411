"""The library's pipeline (fgat_cli.pipeline) on odd input: targets in any image mode, of another size or
aspect, oversized images, SDXL and v-prediction, and an inversion cache shared across checkpoints.

The tiny model runs with few steps so the file stays fast."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image
from test_images import png_bytes

from fgat_core import images as images_mod
from fgat_core.config import FGATConfig
from fgat_core.images import fit_to

CFG = FGATConfig(steps=6)
SRC_PROMPT, TAR_PROMPT = "a photo of a cat sitting on grass", "a photo of a dog"


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
    from fgat_cli.pipeline import tiny_pipeline

    pipe = tiny_pipeline(sdxl=True) if kind == "sdxl" else tiny_pipe_v
    src = example_images[0].resize((128, 64))
    out = pipe.transfer(src, gray_target[1]["RGBA"], SRC_PROMPT, TAR_PROMPT, FGATConfig(steps=5))
    assert out.image.size == (128, 64) and torch.isfinite(out.latent).all()
    assert (np.asarray(out.target) == np.asarray(fit_to(gray_target[0], (128, 64)))).all()


def test_an_inversion_cache_shared_across_checkpoints_is_never_stale(tiny_pipe, example_images):
    """Switching models between runs that share one cache: nothing of the other model is reused, the cache
    serves only the model that filled it, and it never holds more than its limit."""
    from fgat_cli.pipeline import tiny_pipeline
    from fgat_core.cache import InversionCache

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
