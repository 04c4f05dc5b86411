"""Image input (fgat_core.images): modes converted to RGB, unreadable files, the size limit, the resize policy.

Expected values come from independent computations (numpy, hand-built files, hand-computed crop boxes),
never from the function under test."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from fgat_core import images as images_mod
from fgat_core.images import fit_to, to_rgb


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
    with pytest.raises(ValueError, match="must be a PIL image, an image file's path or an HxWx3 .* uint8 numpy "
                       "array .*got ndarray"):
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
