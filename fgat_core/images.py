"""Image I/O policy shared by the CLI and the WebUI: any PIL mode to RGB, size limits, resize policy."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

MAX_PIXELS = 4096 * 4096  # larger inputs are rejected, not silently downscaled
LARGE_PIXELS = 1024 * 1024  # above this a run gets a note on its cost before it starts
REFERENCE_SIDE = 512  # costs are stated relative to a 512x512 run (SD 1.x's native size)


ACCEPTED = "a PIL image, an image file's path or an HxWx3 (or HxW, HxWx4) uint8 numpy array"


def as_image(value: Any, what: str = "image") -> Image.Image:
    """What a caller means by an image, as a PIL image: a PIL image as it is; a path (str or os.PathLike)
    opened, decoded and turned upright (EXIF); a uint8 numpy array HxW, HxWx3 or HxWx4 (0-255). Anything else
    (a tensor, whose value range is ambiguous; a list) is refused naming what is accepted."""
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, (str, os.PathLike)):
        return _open_image(Path(value), what)
    if isinstance(value, np.ndarray):
        shape_ok = value.ndim == 2 or (value.ndim == 3 and value.shape[2] in (3, 4))
        if value.dtype != np.uint8 or not shape_ok:
            raise ValueError(f"the {what} is a numpy array of shape {value.shape} and dtype {value.dtype}: give an "
                             "HxWx3 (or HxW, HxWx4) uint8 array with values 0-255 (e.g. "
                             "(x * 255).round().astype(np.uint8) for floats in [0, 1]), or a PIL image")
        return Image.fromarray(np.ascontiguousarray(value))
    hint = (": convert it, e.g. torchvision's to_pil_image, or PIL.Image.fromarray of a uint8 HxWx3 array"
            if type(value).__name__ == "Tensor" else "")
    raise ValueError(f"the {what} must be {ACCEPTED}; got {type(value).__name__}{hint}")


def _open_image(path: Path, what: str) -> Image.Image:
    if not path.is_file():
        raise ValueError(f"the {what} {str(path)!r} is not a file: give an existing PNG or JPEG file")
    try:
        return decode_file(path)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ValueError(f"the {what} {str(path)!r} {unreadable(e)}") from None


def decode_file(path: Path) -> Image.Image:
    """An image file decoded, upright as viewers show it (a phone JPEG stores its rotation in EXIF). The bytes
    are read once, as a stream: a pipe (`--source <(...)`, /dev/stdin) works as a file does."""
    with open(path, "rb") as f:
        return decode_bytes(f.read())


def decode_bytes(data: bytes) -> Image.Image:
    """An image file's bytes decoded, upright (EXIF rotation applied): `decode_file` without the file (a Ray
    actor decodes the bytes the driver read)."""
    img = Image.open(io.BytesIO(data))
    img.load()
    return ImageOps.exif_transpose(img)


def unreadable(err: BaseException) -> str:
    """Why an image file could not be opened and what to do, for "the source image 'x.png' ..."."""
    if isinstance(err, Image.DecompressionBombError):  # PIL refuses > 2 x its MAX_IMAGE_PIXELS before decoding
        found = re.search(r"\((\d+) pixels\)", str(err))
        size = f" ({int(found.group(1)) / 1e6:.0f} MP)" if found else ""
        return (f"is too large to open{size}; FGAT takes up to {MAX_PIXELS / 1e6:.1f} MP: downscale it (e.g. to "
                "1024 px on the long side)")
    return f"cannot be read as an image ({err}): use a PNG or JPEG file"


def to_rgb(img: Image.Image, what: str = "image") -> Image.Image:
    """Grayscale, palette, RGBA (composited on white), CMYK and 16-bit images to 8-bit RGB."""
    if not isinstance(img, Image.Image):
        raise ValueError(f"the {what} must be {ACCEPTED} (as a PIL image here); got {type(img).__name__}")
    w, h = img.size
    if w < 8 or h < 8:
        raise ValueError(f"the {what} is {w}x{h}; it must be at least 8x8 pixels")
    if w * h > MAX_PIXELS:
        raise ValueError(
            f"the {what} is {w}x{h} ({w * h / 1e6:.1f} MP); the limit is {MAX_PIXELS / 1e6:.1f} MP: downscale it"
        )
    try:
        img.load()  # a truncated or corrupt file fails here, not deep inside the model
    except (OSError, ValueError, SyntaxError) as e:
        raise ValueError(f"the {what} cannot be read ({e}): save it again as PNG or JPEG") from None
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if img.mode == "F" and arr.size and np.nanmax(arr) <= 1.0:  # a float image in [0, 1] (TIFF, EXR-like)
            hi = 1.0
        else:
            hi = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    try:
        return img.convert("RGB")
    except ValueError as e:
        raise ValueError(
            f"the {what} has colour mode {img.mode}, which cannot be converted to RGB ({e}): save it as an RGB "
            "PNG or JPEG"
        ) from None


def snap_size(w: int, h: int, multiple: int) -> tuple[int, int]:
    """Round a size to the nearest multiple (at least one multiple) the model can take."""
    return max(multiple, round(w / multiple) * multiple), max(multiple, round(h / multiple) * multiple)


def size_notes(source: tuple[int, int], target: tuple[int, int], multiple: int) -> list[str]:
    """Notes to give before a run: a large source's expected cost, and any resize or crop that changes an
    image's aspect ratio (the source snapped to the model's size multiple, the target cropped to the source)."""
    notes = []
    (w, h), (tw, th) = source, target
    snapped = snap_size(w, h, multiple)
    if snapped != (w, h):
        change = f"resized to {snapped[0]}x{snapped[1]} (sides that are multiples of {multiple}, as the model needs)"
        if abs(snapped[0] / snapped[1] - w / h) > 0.01 * (w / h):
            change += f", which changes its aspect ratio from {w / h:.3g} to {snapped[0] / snapped[1]:.3g}"
        notes.append(f"the source image {w}x{h} is {change}")
    sw, sh = snapped
    if tw * sh != th * sw:
        notes.append(f"the target image {tw}x{th} is centre-cropped to the source's aspect ratio "
                     f"({sw / sh:.3g}, from {tw / th:.3g}), then resized to {sw}x{sh}: its edges are cut off")
    pixels = sw * sh
    if pixels > LARGE_PIXELS:
        factor = pixels / REFERENCE_SIDE**2
        notes.append(
            f"the source is {sw}x{sh} ({pixels / 1e6:.1f} MP), {factor:.0f}x the pixels of "
            f"{REFERENCE_SIDE}x{REFERENCE_SIDE}: expect every UNet call to take {factor:.0f}x to {factor**2:.0f}x "
            "as long (attention grows with the square of the pixels) and far more memory; downscale the images "
            "for a faster run"
        )
    return notes


def fit_to(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Resize policy for the target (and masks): centre-crop to `size`'s aspect ratio, then resize."""
    w, h = img.size
    tw, th = size
    if w * th != h * tw:
        if w * th > h * tw:  # too wide
            nw = max(1, round(h * tw / th))
            left = (w - nw) // 2
            img = img.crop((left, 0, left + nw, h))
        else:
            nh = max(1, round(w * th / tw))
            top = (h - nh) // 2
            img = img.crop((0, top, w, top + nh))
    if img.size != (tw, th):
        img = img.resize((tw, th), Image.LANCZOS)
    return img


def to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL -> (1, 3, H, W) in [-1, 1]."""
    arr = np.asarray(img, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(arr).permute(2, 0, 1)[None].contiguous()


def to_pil(x: torch.Tensor) -> Image.Image:
    """(1, 3, H, W) in [-1, 1] -> RGB PIL."""
    arr = ((x[0].float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr, "RGB")


def mask_from_image(img: Image.Image) -> torch.Tensor:
    """A mask image (white = transfer) to an (h, w) tensor in [0, 1]. Where the image has transparency
    (an alpha channel, or a palette / greyscale image with a transparent colour) that is not all opaque, the
    alpha is the mask: strokes painted on a transparent layer. Otherwise its grey level."""
    if isinstance(img, Image.Image) and (img.mode in ("P", "L", "RGB") and "transparency" in img.info
                                         or img.mode == "PA"):
        img = img.convert("RGBA")
    rgb = to_rgb(img, "mask")  # the type, size and readability checks
    if img.mode in ("RGBA", "LA") and np.asarray(img.getchannel("A")).min() < 255:
        arr = np.asarray(img.getchannel("A"), dtype=np.float32)
    else:
        arr = np.asarray(rgb.convert("L"), dtype=np.float32)
    return torch.from_numpy(arr / 255.0)
