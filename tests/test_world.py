"""The demo world (fgat_demo/world.py): its ground truth, masks, poses, patterns and seeding."""

from dataclasses import replace

import numpy as np
import pytest

from fgat_demo.world import (
    CATEGORIES,
    PATTERNS,
    Appearance,
    background_image,
    object_mask,
    pair_scenes,
    part_labels,
    pattern_map,
    render,
    render_pair,
    sample_scene,
    transferred,
)

SEEDS = range(12)


@pytest.mark.parametrize("seed", SEEDS)
def test_ground_truth_is_the_source_outside_the_object(seed):
    pair = render_pair(seed)
    outside = pair.labels == 0
    assert outside.any() and (~outside).any()
    np.testing.assert_array_equal(pair.truth[outside], pair.source[outside])


@pytest.mark.parametrize("seed", SEEDS)
def test_ground_truth_parts_wear_only_the_target_parts_colours(seed):
    """Inside source part k the ground truth shows exactly target part k's two colours, each where the
    target's pattern (placed in the source's object frame) says; solid target parts are one colour."""
    src, tar = pair_scenes(seed)
    truth = render(transferred(src, tar))
    labels = part_labels(src)
    for k, app in enumerate(tar.appearance, start=1):
        pix = truth[labels == k]
        if not len(pix):
            continue
        is_base = np.all(pix == np.asarray(app.base), axis=1)
        is_second = np.all(pix == np.asarray(app.second), axis=1)
        assert np.all(is_base | is_second), (seed, k)
        if app.pattern == "solid":
            assert is_base.all()


def test_transfer_onto_itself_is_the_identity_and_categories_must_match():
    src, tar = pair_scenes(3)
    np.testing.assert_array_equal(render(transferred(src, src)), render(src))
    assert src.category == tar.category
    other = sample_scene(5, next(c for c in CATEGORIES if c != src.category))
    with pytest.raises(ValueError, match="one category"):
        transferred(src, other)


@pytest.mark.parametrize("category", sorted(CATEGORIES))
def test_mask_is_where_the_image_is_not_background(category):
    """Pixels outside the mask are the background image exactly; inside, every pixel is a part colour."""
    scene = sample_scene(11, category)
    img, bg, mask = render(scene), background_image(scene), object_mask(scene)
    np.testing.assert_array_equal(img[~mask], bg[~mask])
    labels = part_labels(scene)
    assert set(np.unique(labels)) == set(range(len(scene.parts) + 1))  # every part is visible
    for k, app in enumerate(scene.appearance, start=1):
        pix = img[labels == k]
        assert np.all(np.all(pix == app.base, 1) | np.all(pix == app.second, 1))


@pytest.mark.parametrize("category", sorted(CATEGORIES))
def test_flip_mirrors_and_scale_stretches_the_geometry(category):
    """Centred at the image centre, a flipped scene's labels are the mirror image; twice the scale gives
    twice the object's width and four times its area (to the pixel grid's rounding)."""
    base = replace(sample_scene(0, category), center=(32.0, 32.0), scale=8.0, flip=False)
    np.testing.assert_array_equal(part_labels(replace(base, flip=True)), part_labels(base)[:, ::-1])
    small, big = object_mask(base), object_mask(replace(base, scale=16.0))
    width = lambda m: np.ptp(np.nonzero(m.any(0))[0]) + 1  # noqa: E731
    assert abs(width(big) - 2 * width(small)) <= 2
    assert big.sum() / small.sum() == pytest.approx(4.0, rel=0.12)


def test_seeding_is_reproducible_and_seeds_differ():
    a, b = render_pair(7), render_pair(7)
    for field in ("source", "target", "truth", "labels"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(render_pair(8).source, a.source)
    assert sample_scene(4, "car").category == "car" and sample_scene(4, "car").prompt == "a photo of a car"
    with pytest.raises(ValueError, match="unknown category"):
        sample_scene(0, "dog")


@pytest.mark.parametrize("pattern, fraction", [("solid", 0.0), ("stripes", 0.5), ("checks", 0.5),
                                               ("spots", np.pi * 0.3**2)])
def test_pattern_cover_fractions(pattern, fraction):
    """Over many periods: stripes and checks cover half, spots (radius 0.3 period) pi * 0.09."""
    v, u = np.mgrid[0:400, 0:400] / 40.0  # 10 x 10 object units, 40 samples per unit
    app = Appearance((0, 0, 0), (1, 1, 1), pattern, 0.37, 0.4, (0.2, 0.7))
    assert pattern_map(app, u, v).mean() == pytest.approx(fraction, abs=0.02)
    assert set(PATTERNS) == {"solid", "stripes", "checks", "spots"}


def test_every_category_has_two_to_four_named_parts():
    assert set(CATEGORIES) == {"cat", "fish", "bird", "car", "flower"}
    for parts in CATEGORIES.values():
        assert 2 <= len(parts) <= 4 and len(set(parts)) == len(parts)
