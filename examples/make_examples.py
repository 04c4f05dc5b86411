"""Draws the example images in this folder (deterministic; no downloads, so their licence is the project's).

    python examples/make_examples.py

The 64x64 images (the README's main job, with the bundled demo model) are cats of the demo world
(`fgat_demo.world`, the scenes the demo model was trained on; these seeds are not among its training scenes):

- source.png  : world cat scene 102: lavender body, yellow head, brown tail, facing right (structure to keep)
- target.png  : world cat scene 107: striped body, red head, spotted tail, facing left (appearance to take)
- target2.png : world cat scene 108: spotted body and head, striped tail (a second appearance, for the batch example)

The 512x512 images (for a real Stable Diffusion model) are a stylised cat drawn from ellipses and polygons:

- source-512.png  : an orange cat with dark tiger stripes sitting on grass, facing right
- target-512.png  : a white cat with black spots, larger, further left, facing left
- target2-512.png : a grey-blue cat with yellow rings on a table
"""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

HERE = Path(__file__).resolve().parent
BASE = 512


def _cat_shapes(cx: float, cy: float, s: float, facing: int) -> dict[str, list]:
    """Body parts of a sitting cat as PIL shapes (boxes and polygons) around (cx, cy) at scale s."""
    f = facing  # +1 faces right, -1 faces left
    head = (cx + f * 70 * s, cy - 95 * s)
    tail = [(cx - f * (60 + 40 * math.cos(a)) * s, cy + (70 - 90 * math.sin(a)) * s) for a in
            [i * math.pi / 12 for i in range(13)]]
    return {
        "body": [(cx - 75 * s, cy - 60 * s, cx + 75 * s, cy + 95 * s)],
        "head": [(head[0] - 55 * s, head[1] - 48 * s, head[0] + 55 * s, head[1] + 48 * s)],
        "ears": [
            [(head[0] + dx0 * s, head[1] + dy0 * s) for dx0, dy0 in ear]
            for ear in (((-50, -20), (-38, -85), (-5, -42)), ((5, -42), (38, -85), (50, -20)))
        ],
        "paws": [(cx + d * s - 22 * s, cy + 80 * s, cx + d * s + 22 * s, cy + 105 * s) for d in (-35, 35)],
        "tail": tail,
        "eyes": [(head[0] + (d + f * 8) * s - 7 * s, head[1] - 12 * s, head[0] + (d + f * 8) * s + 7 * s,
                  head[1] + 4 * s) for d in (-20, 20)],
        "nose": [(head[0] + f * 8 * s - 6 * s, head[1] + 12 * s, head[0] + f * 8 * s + 6 * s, head[1] + 20 * s)],
    }


def _silhouette(shapes: dict[str, list], size: int) -> Image.Image:
    m = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(m)
    for box in shapes["body"] + shapes["head"] + shapes["paws"]:
        d.ellipse(box, fill=255)
    for ear in shapes["ears"]:
        d.polygon(ear, fill=255)
    d.line(shapes["tail"], fill=255, width=int(size * 0.045), joint="curve")
    return m


def _stripes(size: int, colour, period: int, width: int, angle: float) -> Image.Image:
    img = Image.new("RGB", (size, size), (0, 0, 0))
    d = ImageDraw.Draw(img)
    ca, sa = math.cos(angle), math.sin(angle)
    for k in range(-2 * size, 2 * size, period):
        p0 = (size / 2 + k * ca - 2 * size * sa, size / 2 + k * sa + 2 * size * ca)
        p1 = (size / 2 + k * ca + 2 * size * sa, size / 2 + k * sa - 2 * size * ca)
        d.line([p0, p1], fill=colour, width=width)
    return img


def _dots(size: int, colour, step: int, radius: int, ring: int = 0, jitter_seed: int = 0) -> Image.Image:
    img = Image.new("RGB", (size, size), (0, 0, 0))
    d = ImageDraw.Draw(img)
    state = jitter_seed
    for y in range(0, size + step, step):
        for x in range(0, size + step, step):
            state = (state * 1103515245 + 12345) % (1 << 31)  # fixed LCG: same picture every run
            jx, jy = (state % 17) - 8, ((state >> 8) % 17) - 8
            r = radius + ((state >> 16) % 5) - 2
            box = (x + jx - r, y + jy - r, x + jx + r, y + jy + r)
            if ring:
                d.ellipse(box, outline=colour, width=ring)
            else:
                d.ellipse(box, fill=colour)
    return img


def draw_cat(background, ground, fur, pattern: Image.Image, pattern_mask: Image.Image | None,
             cx: float, cy: float, scale: float, facing: int, size: int = BASE) -> Image.Image:
    """One cat: plain background with a ground band, fur-coloured silhouette, pattern inside it, face."""
    img = Image.new("RGB", (size, size), background)
    d = ImageDraw.Draw(img)
    d.rectangle((0, int(size * 0.78), size, size), fill=ground)
    shapes = _cat_shapes(cx, cy, scale, facing)
    sil = _silhouette(shapes, size)
    img.paste(Image.new("RGB", (size, size), fur), (0, 0), sil)
    pmask = pattern_mask if pattern_mask is not None else pattern.convert("L").point(lambda v: 255 if v else 0)
    inside = Image.composite(pmask, Image.new("L", (size, size), 0), sil)
    img.paste(pattern, (0, 0), inside)
    d = ImageDraw.Draw(img)
    for eye in shapes["eyes"]:
        d.ellipse(eye, fill=(40, 160, 60))
    for nose in shapes["nose"]:
        d.ellipse(nose, fill=(210, 110, 120))
    return img.filter(ImageFilter.SMOOTH)


def make_examples() -> dict[str, Image.Image]:
    s = BASE
    src = draw_cat(
        background=(150, 200, 235), ground=(95, 160, 70), fur=(235, 140, 45),
        pattern=_stripes(s, (70, 40, 20), period=34, width=11, angle=0.35), pattern_mask=None,
        cx=0.52 * s, cy=0.55 * s, scale=s / 512, facing=+1,
    )
    spots = _dots(s, (25, 25, 25), step=46, radius=13, jitter_seed=7)
    tar = draw_cat(
        background=(235, 225, 200), ground=(180, 150, 110), fur=(245, 245, 240),
        pattern=spots, pattern_mask=None, cx=0.45 * s, cy=0.5 * s, scale=1.1 * s / 512, facing=-1,
    )
    rings = _dots(s, (240, 200, 40), step=52, radius=15, ring=5, jitter_seed=3)
    tar2 = draw_cat(
        background=(230, 230, 230), ground=(150, 100, 70), fur=(105, 120, 150),
        pattern=rings, pattern_mask=None, cx=0.55 * s, cy=0.56 * s, scale=0.95 * s / 512, facing=+1,
    )
    return {"source": src, "target": tar, "target2": tar2}


WORLD_SCENES = {"source": 102, "target": 107, "target2": 108}


def world_examples() -> dict[str, Image.Image]:
    import sys

    sys.path.insert(0, str(HERE.parent))
    from fgat_demo.world import render, sample_scene, to_uint8

    return {name: Image.fromarray(to_uint8(render(sample_scene(seed, "cat")))) for name, seed in WORLD_SCENES.items()}


def main() -> None:
    for name, img in world_examples().items():
        img.save(HERE / f"{name}.png", optimize=True)
        print(f"wrote examples/{name}.png (64x64, demo world)")
    for name, img in make_examples().items():
        img.save(HERE / f"{name}-512.png", optimize=True)
        print(f"wrote examples/{name}-512.png (512x512)")


if __name__ == "__main__":
    main()
