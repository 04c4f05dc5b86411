"""Mirrors modules/masking.py (A1111 1.10.1): the crop region of 'Inpaint area: Only masked'.

- `get_crop_region_v2` (l.4-20): the bounding box of the non-black mask pixels, grown by `pad` on each side
  and clipped to the image; None for a blank mask.
- `expand_crop_region` (l.39-81): grows the box (centred, shifted back inside the image) until its aspect
  ratio is the generation's; clipping at the image border can leave it off by a few pixels."""
from PIL import Image


def get_crop_region_v2(mask, pad=0):
    mask = mask if isinstance(mask, Image.Image) else Image.fromarray(mask)
    box = mask.getbbox()
    if not box:
        return None
    if not pad:
        return box
    w, h = mask.size
    return max(box[0] - pad, 0), max(box[1] - pad, 0), min(box[2] + pad, w), min(box[3] + pad, h)


def _grow(lo, hi, want, limit):
    """One axis of `expand_crop_region`: widen [lo, hi) by `want` pixels, centred, kept inside [0, limit]."""
    lo, hi = lo - want // 2, hi + want - want // 2
    if hi >= limit:
        lo, hi = lo - (hi - limit), limit
    if lo < 0:
        lo, hi = 0, hi - lo
    return lo, min(hi, limit)


def expand_crop_region(crop_region, processing_width, processing_height, image_width, image_height):
    x1, y1, x2, y2 = crop_region
    ratio = processing_width / processing_height
    if (x2 - x1) / (y2 - y1) > ratio:
        y1, y2 = _grow(y1, y2, int((x2 - x1) / ratio - (y2 - y1)), image_height)
    else:
        x1, x2 = _grow(x1, x2, int((y2 - y1) * ratio - (x2 - x1)), image_width)
    return x1, y1, x2, y2
