"""The demo world: seeded procedural pictures of one object with named parts, and their ground truth.

Every scene is one object of a category (its prompt word: cat, fish, bird, car, flower) made of named parts,
with a pose (centre, scale, horizontal flip) on a background (a two-colour gradient with a soft wave).
Each part has its own appearance: a base colour, a second colour and a pattern (solid, stripes, spots,
checks) drawn in the object's own coordinates, so a pattern follows the part it is painted on.

The ground truth of appearance transfer for a (source, target) pair of one category is exact:
`render(source, appearance=target.appearance)` -- the source's geometry and background with the target's
per-part appearance. Parts are drawn with hard edges, so the part labels and the mask are exact too.
Pure numpy: no downloads, no torch."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

CATEGORIES: dict[str, tuple[str, ...]] = {
    "cat": ("body", "head", "tail"),
    "fish": ("body", "tail", "fin"),
    "bird": ("body", "head", "wing"),
    "car": ("body", "cabin", "wheels"),
    "flower": ("stem", "petals", "centre"),
}
PATTERNS = ("solid", "stripes", "spots", "checks")
IMAGE_SIZE = 64
TRAIN_SEED0 = 10**7  # training scenes use seeds from here on; evaluation pairs use scene seeds below it


@dataclass(frozen=True)
class Appearance:
    """How one part is painted: colours in [0, 1], a pattern, its period (object units), angle and phase."""

    base: tuple[float, float, float]
    second: tuple[float, float, float]
    pattern: str
    period: float
    angle: float
    phase: tuple[float, float]


@dataclass(frozen=True)
class Scene:
    category: str
    center: tuple[float, float]  # pixels (x, y)
    scale: float  # pixels per object unit
    flip: bool  # True: faces left
    appearance: tuple[Appearance, ...]  # one per part, in CATEGORIES order
    background: tuple[tuple[float, float, float], tuple[float, float, float], float, float]  # c1, c2, angle, wave
    size: int = IMAGE_SIZE

    @property
    def parts(self) -> tuple[str, ...]:
        return CATEGORIES[self.category]

    @property
    def prompt(self) -> str:
        return f"a photo of a {self.category}"


# ---------------------------------------------------------------------------------------------- sampling
def _colour(rng: np.random.Generator) -> tuple[float, float, float]:
    return tuple(float(c) for c in rng.uniform(0.03, 0.97, 3))


def sample_appearance(rng: np.random.Generator) -> Appearance:
    base = _colour(rng)
    second = _colour(rng)
    while np.abs(np.subtract(base, second)).sum() < 0.6:  # patterns must be visible
        second = _colour(rng)
    return Appearance(base, second, PATTERNS[int(rng.integers(len(PATTERNS)))], float(rng.uniform(0.28, 0.45)),
                      float(rng.uniform(0, np.pi)), (float(rng.uniform(0, 1)), float(rng.uniform(0, 1))))


def sample_scene(seed: int, category: str | None = None, size: int = IMAGE_SIZE) -> Scene:
    """The scene of a seed (and of a category, if given: same seed, same pose and colours)."""
    rng = np.random.default_rng(seed)
    cats = sorted(CATEGORIES)
    pick = cats[int(rng.integers(len(cats)))]
    category = category or pick
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}: pick one of {', '.join(cats)}")
    scale = float(rng.uniform(0.2, 0.28) * size)
    margin = 1.35 * scale
    center = (float(rng.uniform(margin, size - margin)), float(rng.uniform(margin * 0.8, size - margin * 0.9)))
    flip = bool(rng.integers(2))
    appearance = tuple(sample_appearance(rng) for _ in CATEGORIES[category])
    background = (_colour(rng), _colour(rng), float(rng.uniform(0, 2 * np.pi)), float(rng.uniform(0, 0.08)))
    return Scene(category, center, scale, flip, appearance, background, size)


def pair_scenes(seed: int, category: str | None = None) -> tuple[Scene, Scene]:
    """A (source, target) pair of one category: independent poses, appearances and backgrounds."""
    src = sample_scene(2 * seed, category)
    return src, sample_scene(2 * seed + 1, src.category)


def transferred(source: Scene, target: Scene) -> Scene:
    """The ground-truth scene: the source's geometry and background with the target's part appearances."""
    if source.category != target.category:
        raise ValueError(f"source is a {source.category} and target a {target.category}: the ground truth of "
                         "a transfer is defined for one category")
    return replace(source, appearance=target.appearance)


# ---------------------------------------------------------------------------------------------- geometry
def object_coords(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """Object coordinates (u right along the facing direction, v down) of every pixel centre."""
    y, x = np.mgrid[0 : scene.size, 0 : scene.size].astype(np.float64) + 0.5
    u = (x - scene.center[0]) / scene.scale
    return (-u if scene.flip else u), (y - scene.center[1]) / scene.scale


def _ellipse(u, v, cu, cv, ru, rv, angle=0.0):
    c, s = np.cos(angle), np.sin(angle)
    du, dv = u - cu, v - cv
    a, b = c * du + s * dv, -s * du + c * dv
    return (a / ru) ** 2 + (b / rv) ** 2 <= 1.0


def _triangle(u, v, p1, p2, p3):
    def side(a, b):
        return (u - b[0]) * (a[1] - b[1]) - (a[0] - b[0]) * (v - b[1])

    d1, d2, d3 = side(p1, p2), side(p2, p3), side(p3, p1)
    neg = (d1 < 0) | (d2 < 0) | (d3 < 0)
    pos = (d1 > 0) | (d2 > 0) | (d3 > 0)
    return ~(neg & pos)


def _box(u, v, u0, u1, v0, v1):
    return (u >= u0) & (u <= u1) & (v >= v0) & (v <= v1)


def _part_shapes(category: str, u: np.ndarray, v: np.ndarray) -> list[np.ndarray]:
    """Boolean maps of the parts in CATEGORIES order; later parts are drawn over earlier ones."""
    if category == "cat":
        head = _ellipse(u, v, 0.8, -0.45, 0.4, 0.38) | _triangle(u, v, (0.45, -0.6), (0.6, -1.0), (0.8, -0.7)) \
            | _triangle(u, v, (0.85, -0.72), (1.05, -1.02), (1.15, -0.55))
        return [_ellipse(u, v, 0, 0.2, 0.9, 0.55), head, _ellipse(u, v, -1.0, -0.25, 0.55, 0.14, 1.1)]
    if category == "fish":
        return [_ellipse(u, v, 0.15, 0, 0.95, 0.55), _triangle(u, v, (-0.6, 0), (-1.3, -0.6), (-1.3, 0.6)),
                _triangle(u, v, (-0.25, -0.35), (0.45, -0.4), (-0.35, -0.9))]
    if category == "bird":
        head = _ellipse(u, v, 0.75, -0.45, 0.33, 0.33) | _triangle(u, v, (1.0, -0.55), (1.35, -0.42), (1.0, -0.32))
        return [_ellipse(u, v, 0, 0.1, 0.85, 0.5) | _triangle(u, v, (-0.6, 0), (-1.3, -0.35), (-1.2, 0.2)), head,
                _ellipse(u, v, -0.15, 0.02, 0.55, 0.26, -0.35)]
    if category == "car":
        cabin = _triangle(u, v, (-0.75, -0.05), (-0.45, -0.6), (0.55, -0.6)) | _box(u, v, -0.45, 0.55, -0.6, -0.05) \
            | _triangle(u, v, (0.55, -0.6), (0.55, -0.05), (0.95, -0.05))
        wheels = _ellipse(u, v, -0.7, 0.5, 0.3, 0.3) | _ellipse(u, v, 0.75, 0.5, 0.3, 0.3)
        return [_box(u, v, -1.25, 1.25, -0.1, 0.5), cabin, wheels]
    stem = _box(u, v, -0.08, 0.08, -0.3, 1.3) | _ellipse(u, v, 0.3, 0.75, 0.3, 0.11, -0.5)
    petals = np.zeros_like(u, dtype=bool)
    for k in range(6):
        a = k * np.pi / 3 + 0.3
        petals |= _ellipse(u, v, 0.45 * np.cos(a), -0.35 + 0.45 * np.sin(a), 0.3, 0.2, a)
    return [stem, petals, _ellipse(u, v, 0, -0.35, 0.25, 0.25)]


def part_labels(scene: Scene) -> np.ndarray:
    """(size, size) int: 0 background, k the k-th part (1-based, CATEGORIES order) on top at that pixel."""
    u, v = object_coords(scene)
    labels = np.zeros(u.shape, dtype=np.int64)
    for k, shape in enumerate(_part_shapes(scene.category, u, v), start=1):
        labels[shape] = k
    return labels


def object_mask(scene: Scene) -> np.ndarray:
    return part_labels(scene) > 0


# ---------------------------------------------------------------------------------------------- painting
def pattern_map(app: Appearance, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean: where the second colour goes."""
    pu, pv = u / app.period + app.phase[0], v / app.period + app.phase[1]
    if app.pattern == "solid":
        return np.zeros(u.shape, dtype=bool)
    if app.pattern == "stripes":
        return np.sin(2 * np.pi * (pu * np.cos(app.angle) + pv * np.sin(app.angle))) > 0
    if app.pattern == "checks":
        return (np.floor(pu) + np.floor(pv)) % 2 == 1
    if app.pattern == "spots":
        return (pu % 1 - 0.5) ** 2 + (pv % 1 - 0.5) ** 2 < 0.3**2
    raise ValueError(f"unknown pattern {app.pattern!r}: pick one of {', '.join(PATTERNS)}")


def background_image(scene: Scene) -> np.ndarray:
    c1, c2, angle, wave = scene.background
    y, x = np.mgrid[0 : scene.size, 0 : scene.size].astype(np.float64) / scene.size
    ramp = np.clip(0.5 + (x - 0.5) * np.cos(angle) + (y - 0.5) * np.sin(angle), 0, 1)
    img = (1 - ramp)[..., None] * np.asarray(c1) + ramp[..., None] * np.asarray(c2)
    img = img + wave * np.sin(2 * np.pi * (x + 1.5 * y))[..., None]
    return np.clip(img, 0, 1)


def render(scene: Scene) -> np.ndarray:
    """(size, size, 3) float64 image in [0, 1]."""
    img = background_image(scene)
    labels = part_labels(scene)
    u, v = object_coords(scene)
    for k, app in enumerate(scene.appearance, start=1):
        where = labels == k
        second = pattern_map(app, u, v)
        img[where & ~second] = app.base
        img[where & second] = app.second
    return img


def to_uint8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


@dataclass
class PairTruth:
    source: np.ndarray  # images (size, size, 3) in [0, 1]
    target: np.ndarray
    truth: np.ndarray  # the source's geometry and background with the target's appearance
    labels: np.ndarray  # the source's part labels (0 = background)
    parts: tuple[str, ...]
    prompt: str


def render_pair(seed: int, category: str | None = None) -> PairTruth:
    """The images of pair `seed`, its ground truth and the source's part labels."""
    src, tar = pair_scenes(seed, category)
    return PairTruth(render(src), render(tar), render(transferred(src, tar)), part_labels(src), src.parts, src.prompt)
