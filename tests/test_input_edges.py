"""Unusual but real inputs, each found by an adversarial audit: they used to be refused with a misleading
message, or accepted and silently misread. Each test states what a user hands in and what must happen."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fgat_cli.runner import Job, check_job, load_image, output_path
from fgat_core import FGATConfig
from fgat_core.images import mask_from_image
from fgat_core.mask import word_token_indices


def test_a_palette_mask_with_a_transparent_colour_is_read_by_its_alpha():
    """White strokes on a transparent layer, saved as a palette PNG (what many editors write): the strokes are
    the mask, as for the same picture saved as RGBA, not the whole (white-composited) image."""
    rgba = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    rgba.paste((255, 255, 255, 255), (0, 0, 16, 32))  # the left half painted
    palette = rgba.convert("P")
    palette.info["transparency"] = palette.getpixel((31, 31))
    buf = io.BytesIO()
    palette.save(buf, format="PNG", transparency=palette.info["transparency"])
    reread = Image.open(io.BytesIO(buf.getvalue()))
    assert reread.mode == "P" and "transparency" in reread.info
    for img in (rgba, reread):
        m = mask_from_image(img)
        assert float(m[:, :16].min()) == 1.0 and float(m[:, 16:].max()) == 0.0


def test_a_float_image_in_0_1_keeps_its_picture():
    from fgat_core.images import to_rgb

    grey = np.linspace(0.0, 1.0, 16 * 16, dtype=np.float32).reshape(16, 16)
    rgb = np.asarray(to_rgb(Image.fromarray(grey, "F")), dtype=np.float64)[..., 0]
    np.testing.assert_allclose(rgb, grey * 255.0, atol=1.0)  # not black


def test_a_mask_smaller_than_8_pixels_is_refused_even_with_alpha():
    with pytest.raises(ValueError, match="at least 8x8"):
        mask_from_image(Image.new("RGBA", (1, 1), (255, 255, 255, 100)))


def test_line_wrapped_base64_images_are_accepted_by_the_api():
    from fgat_webui.args import decode_image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 200, 30)).save(buf, format="PNG")
    wrapped = base64.encodebytes(buf.getvalue()).decode().replace("\n", "\r\n")  # MIME / `base64 file.png`
    assert "\n" in wrapped
    img = decode_image(wrapped, "FGAT 'target_image'")
    assert img.size == (16, 16) and img.convert("RGB").getpixel((3, 3)) == (10, 200, 30)


def test_the_cli_reads_photos_upright_by_their_exif_orientation(tmp_path):
    """A phone JPEG stored 48x24 with Orientation 6 (rotate 90°) is shown 24x48: that is the picture."""
    stored = Image.new("RGB", (48, 24), (255, 0, 0))
    stored.paste((0, 0, 255), (0, 0, 8, 24))  # a blue band on the stored image's left edge
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    stored.save(path, exif=exif.tobytes(), quality=95)
    img = load_image(path, "source image")
    assert img.size == (24, 48)
    r, g, b = img.convert("RGB").getpixel((12, 2))  # rotated 90° clockwise, the left edge is now the top
    assert b > 200 and r < 60


def test_config_takes_numpy_scalars_from_a_parameter_sweep():
    cfg = FGATConfig(delta=np.float32(0.5), steps=np.int64(20), dift_ensemble=np.float64(2.0))
    assert (cfg.delta, cfg.steps, cfg.dift_ensemble) == (0.5, 20, 2)
    assert type(cfg.delta) is float and type(cfg.steps) is int  # the infotext and JSON record plain numbers
    with pytest.raises(ValueError, match="steps must be an integer, got 2.5"):
        FGATConfig(steps=np.float64(2.5))


def _tokenize(text: str) -> list[str]:
    """A toy tokenizer with CLIP's convention: each token ends a word (`</w>`)."""
    for mark in "():,":
        text = text.replace(mark, f" {mark} ")
    return [t + "</w>" for t in text.split()]


@pytest.mark.parametrize("prompt", ["a photo of a cat 2", "a photo of a ((cat:1.3))", "a photo of a cat, 4k"])
def test_the_default_object_word_is_the_last_word_with_letters(prompt):
    """Numbers (emphasis weights, '4k', '2') name no object: the default word is the last word with letters."""
    expected = word_token_indices(prompt, "cat", _tokenize)
    assert word_token_indices(prompt, "", _tokenize) == expected


def test_the_library_refuses_a_mask_it_would_ignore_and_prompts_that_are_not_text(tiny_pipe, example_images):
    src, tar = example_images
    with pytest.raises(ValueError, match="mask_source is 'attention': set FGATConfig\\(mask_source='user'\\)"):
        tiny_pipe.transfer(src, tar, "a cat", "a cat", FGATConfig(steps=4), mask=Image.new("L", (128, 128), 255))
    with pytest.raises(ValueError, match="negative_prompt must be text"):
        tiny_pipe.transfer(src, tar, "a cat", "a cat", FGATConfig(steps=4), negative_prompt=None)


def test_out_naming_a_folder_writes_inside_it(tmp_path):
    (tmp_path / "results").mkdir()
    assert output_path(tmp_path / "results", "cat.png") == tmp_path / "results" / "cat-fgat.png"
    assert output_path(str(tmp_path / "new") + os.sep, "cat.png") == tmp_path / "new" / "cat-fgat.png"
    assert output_path(tmp_path / "x", "cat.png") == tmp_path / "x.png"


def _job(tmp_path: Path, images, **kw) -> Job:
    src, tar = images
    src.save(tmp_path / "s.png")
    tar.save(tmp_path / "t.png")
    base = dict(source=tmp_path / "s.png", target=tmp_path / "t.png", source_prompt="a photo of a cat",
                target_prompt="a photo of a cat", config=FGATConfig(steps=4), out=tmp_path / "o.png")
    return Job(**{**base, **kw})


def test_unusable_outputs_and_inputs_are_found_before_any_model_work(tmp_path, example_images):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    with pytest.raises(ValueError, match="blocker' is a file"):
        check_job(_job(tmp_path, example_images, out=blocker / "x.png"))
    Image.new("RGB", (7, 9)).save(tmp_path / "tiny.png")
    with pytest.raises(ValueError, match="7x9; it must be at least 8x8"):
        check_job(_job(tmp_path, example_images, target=tmp_path / "tiny.png"))
    Image.new("L", (128, 64), 255).save(tmp_path / "wide-mask.png")
    with pytest.raises(ValueError, match="mask image .*wide-mask.png.*aspect ratio"):
        check_job(_job(tmp_path, example_images, mask=tmp_path / "wide-mask.png",
                       config=FGATConfig(steps=4, mask_source="user")))
    assert not (tmp_path / "o.png").exists()
