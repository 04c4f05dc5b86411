"""Metrics of an appearance transfer against the demo world's ground truth, and a global colour transfer.

Images are (H, W, 3) float arrays in [0, 1]; `labels` are the source's part labels (0 = background, k = part k).
Pure numpy: the evaluation (fgat_demo/evaluate.py) and the tests share these definitions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by a (2r+1)^2 square."""
    out = mask.astype(bool).copy()
    h, w = mask.shape
    padded = np.pad(mask.astype(bool), radius)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            out |= padded[dy : dy + h, dx : dx + w]
    return out


def part_pixel_errors(out: np.ndarray, truth: np.ndarray, labels: np.ndarray, n_parts: int) -> list[float]:
    """Per part: mean absolute error (over pixels and channels) inside the part; NaN for a part not visible."""
    errs = []
    for k in range(1, n_parts + 1):
        where = labels == k
        errs.append(float(np.abs(out[where] - truth[where]).mean()) if where.any() else float("nan"))
    return errs


def part_colour_errors(out: np.ndarray, truth: np.ndarray, labels: np.ndarray, n_parts: int) -> list[float]:
    """Per part: mean absolute difference of the part's mean colours (ignores how the pattern is placed)."""
    errs = []
    for k in range(1, n_parts + 1):
        where = labels == k
        errs.append(float(np.abs(out[where].mean(0) - truth[where].mean(0)).mean()) if where.any() else float("nan"))
    return errs


def changed_mask(out: np.ndarray, background: np.ndarray, threshold: float = 0.15) -> np.ndarray:
    """Where `out` differs from the (object-free) background by more than `threshold` in some channel."""
    return np.abs(out - background).max(-1) > threshold


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def background_error(out: np.ndarray, source: np.ndarray, mask: np.ndarray, margin: int = 2) -> float:
    """Mean absolute error against the source outside the object mask grown by `margin` pixels."""
    outside = ~dilate(mask, margin)
    return float(np.abs(out[outside] - source[outside]).mean())


@dataclass
class PairScore:
    appearance: float  # mean over visible parts of part_pixel_errors
    colour: float  # mean over visible parts of part_colour_errors
    iou: float  # changed_mask(out, the method's rendering of the empty background) against the object mask
    background: float  # background_error against the source


def score_pair(out: np.ndarray, truth: np.ndarray, source: np.ndarray, source_background: np.ndarray,
               labels: np.ndarray, n_parts: int) -> PairScore:
    """All metrics of one output: appearance vs the ground truth, structure and background vs the source."""
    mask = labels > 0
    return PairScore(
        appearance=float(np.nanmean(part_pixel_errors(out, truth, labels, n_parts))),
        colour=float(np.nanmean(part_colour_errors(out, truth, labels, n_parts))),
        iou=iou(changed_mask(out, source_background), mask),
        background=background_error(out, source, mask),
    )


def global_colour_transfer(source: np.ndarray, target: np.ndarray, image: np.ndarray | None = None) -> np.ndarray:
    """Reinhard-style: each RGB channel of the source moved to the target's mean and standard deviation.
    `image` (default: the source) is what the source's per-channel affine map is applied to."""
    mu_s, sd_s = source.reshape(-1, 3).mean(0), source.reshape(-1, 3).std(0) + 1e-6
    mu_t, sd_t = target.reshape(-1, 3).mean(0), target.reshape(-1, 3).std(0)
    return np.clip(((source if image is None else image) - mu_s) / sd_s * sd_t + mu_t, 0, 1)
