"""The diagnostics sheet of one FGAT run: what the method saw and did, panel by panel.

Panels: source, target, mask overlay, the target warped onto the source by the semantic correspondence,
the result, then the source's x0 prediction at each window step; under them a caption (the prompts, the
mask's coverage, and a warning when the mask covers the whole image)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from .settings import MaskSource

MASK_COLOUR = (255, 40, 40)
LABEL_HEIGHT = 14
MAX_PANEL = 256  # panels are shrunk to at most this many pixels on their long side
COLUMNS = 5
CAPTION_LINE = 12  # pixels per caption line (PIL's default bitmap font is 11 px high)
CHAR_WIDTH = 6  # pixels per character of that font


def mask_overlay(image: Image.Image, mask: Tensor, colour: tuple[int, int, int] = MASK_COLOUR,
                 opacity: float = 0.5) -> Image.Image:
    """`image` with `mask` (h, w) in [0, 1] tinted in `colour`: out = img (1 - o m) + colour o m.

    The mask is upsampled to the image size by nearest neighbour (one latent cell = one block)."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    m = F.interpolate(mask.float()[None, None], size=rgb.shape[:2], mode="nearest")[0, 0].clamp(0, 1).numpy()
    a = (opacity * m)[..., None]
    out = rgb * (1 - a) + np.asarray(colour, dtype=np.float32) * a
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8), "RGB")


def warp_by_correspondence(target: Image.Image, corr: Tensor, latent_size: tuple[int, int]) -> Image.Image:
    """The target rearranged onto the source grid: source latent cell p shows target cell corr[p].

    `corr` is the flat source->target map (h*w,) on the latent grid (h, w); each cell covers an
    (H/h) x (W/w) block of pixels, moved whole."""
    arr = np.asarray(target.convert("RGB"))
    big_h, big_w = arr.shape[:2]
    h, w = latent_size
    if big_h % h or big_w % w:
        raise ValueError(f"the image size {big_w}x{big_h} is not a multiple of the latent grid {w}x{h}")
    if corr.numel() != h * w:
        raise ValueError(f"the correspondence has {corr.numel()} entries; the latent grid has {h * w}")
    fy, fx = big_h // h, big_w // w
    c = corr.detach().cpu().long().numpy().reshape(h, w)
    ys, xs = np.arange(big_h), np.arange(big_w)
    cells = c[(ys // fy)[:, None], (xs // fx)[None, :]]  # (H, W) target cell of each pixel
    ty = (cells // w) * fy + (ys % fy)[:, None]
    tx = (cells % w) * fx + (xs % fx)[None, :]
    return Image.fromarray(arr[ty, tx], "RGB")


def _fit(img: Image.Image, limit: int = MAX_PANEL) -> Image.Image:
    w, h = img.size
    scale = min(1.0, limit / max(w, h))
    if scale < 1.0:
        return img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.LANCZOS)
    return img


def _placeholder(size: tuple[int, int], text: str) -> Image.Image:
    img = Image.new("RGB", size, (60, 60, 60))
    ImageDraw.Draw(img).text((4, size[1] // 2 - 5), text, fill=(230, 230, 230), font=ImageFont.load_default())
    return img


def mask_coverage(mask: Tensor) -> float:
    """The mask's share of the image, in [0, 1]: its mean over the latent grid (a soft mask counts partly)."""
    return round(float(mask.float().clamp(0, 1).mean()), 4)


def mask_summary(mask: Tensor, config, transfer: bool = True) -> str:
    """One line on the mask: its coverage, and why the transfer is not localised when it covers everything."""
    share = mask_coverage(mask)
    if not transfer:
        return "mask: none (a reconstruction without transfer)"
    if float(mask.min()) < 1.0:
        return f"mask: {share:.0%} of the image ({config.mask_source})"
    why = {MaskSource.NONE: "mask_source is 'none'",
           MaskSource.USER: "the mask image is white everywhere",
           MaskSource.ATTENTION: "the attention mask covers everything or thresholded to nothing (see the notes)"}
    return (f"mask: the WHOLE image (100%): {why.get(config.mask_source, config.mask_source)}, so the transfer is "
            "not limited to the object")


def label_height(lines: int) -> int:
    """Pixels above each panel for labels of `lines` lines (one line: LABEL_HEIGHT)."""
    return LABEL_HEIGHT + CAPTION_LINE * (max(1, lines) - 1)


def _caption_lines(caption: Sequence[str], width: int) -> list[str]:
    """`caption` wrapped to `width` pixels of the default font."""
    import textwrap

    per_line = max(8, (width - 4) // CHAR_WIDTH)
    return [piece for line in caption for piece in (textwrap.wrap(line, per_line) or [""])]


def contact_sheet(panels: Sequence[tuple[str, Image.Image]], columns: int = COLUMNS,
                  caption: Sequence[str] = ()) -> Image.Image:
    """Labelled panels in a grid, `columns` per row; every cell is as large as the largest panel; `caption`
    lines (wrapped to the sheet's width) below the grid."""
    if not panels:
        raise ValueError("no panels to draw")
    panels = [(label, _fit(img)) for label, img in panels]
    cw = max(img.size[0] for _, img in panels)
    labels = [_caption_lines([label], cw) for label, _ in panels]  # wrapped to the cell: never into the next
    band = label_height(max(len(lines) for lines in labels))
    ch = max(img.size[1] for _, img in panels) + band
    cols = min(columns, len(panels))
    rows = (len(panels) + cols - 1) // cols
    lines = _caption_lines(caption, cols * cw)
    sheet = Image.new("RGB", (cols * cw, rows * ch + CAPTION_LINE * len(lines) + (2 if lines else 0)),
                      (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for i, ((_, img), lines) in enumerate(zip(panels, labels, strict=True)):
        x, y = (i % cols) * cw, (i // cols) * ch
        for j, line in enumerate(lines):
            draw.text((x + 2, y + 1 + j * CAPTION_LINE), line, fill=(0, 0, 0), font=font)
        sheet.paste(img, (x, y + band))
    for j, line in enumerate(lines):
        draw.text((2, rows * ch + 1 + j * CAPTION_LINE), line, fill=(0, 0, 0), font=font)
    return sheet


def diagnostics_sheet(
    source: Image.Image,
    target: Image.Image,
    result: Image.Image,
    mask: Tensor,
    correspondence: Tensor | None,
    x0_window: Sequence[Tensor],
    window: tuple[int, int],
    decode: Callable[[Tensor], Image.Image],
    caption: Sequence[str] = (),
) -> Image.Image:
    """One sheet for a run: source, target, mask overlay, warped target, result, x0 per window step, then the
    `caption` lines (prompts, mask coverage).

    `source`/`target` are the images as the model saw them (same size); `decode` turns a latent into an
    image (the pipeline's VAE)."""
    latent_size = tuple(mask.shape[-2:])
    panels = [
        ("source", source),
        ("target", target),
        ("mask" if float(mask.min()) < 1.0 else "mask (whole)", mask_overlay(source, mask)),
    ]
    if correspondence is not None:
        warped = warp_by_correspondence(target, correspondence, latent_size)
        panels.append(("target warped by matching", warped))
    else:
        panels.append(("no matching (no transfer)", _placeholder(source.size, "no correspondence")))
    panels.append(("result", result))
    start = window[0]
    for j, x0 in enumerate(x0_window):
        with torch.no_grad():
            panels.append((f"x0 at step {start + j}", decode(x0)))
    return contact_sheet(panels, caption=caption)
