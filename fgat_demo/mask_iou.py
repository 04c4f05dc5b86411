"""Attention-mask IoU of mask variants against the demo world's object masks, source and target (issue 21).

    python -m fgat_demo.mask_iou --first-pair 0 --pairs 30      # prints the variants, best first

Each image is DDIM-inverted with its prompt (20 steps, guidance 1, as FGAT's inversions); the object word's
attention is recorded per level and per layer grid (4x4, 8x8, 16x16 at 64 px), then averaged over a level range
and a grid, thresholded (0.3, 0.5 of the max, or Otsu's level), optionally dilated, and compared with the
object mask (IoU at 64 px, the mask nearest-upsampled)."""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fgat_core.inversion import ddim_invert
from fgat_core.mask import AttentionRecorder, threshold_mask, upsample_map, word_token_indices
from fgat_core.schedule import Schedule
from fgat_core.settings import MaskLayers, MaskThresholdMode
from fgat_demo.metrics import iou
from fgat_demo.world import pair_scenes, part_labels, render_pair, to_uint8

LEVELS = {"1-4": range(1, 5), "5-8": range(5, 9), "1-12": range(1, 13), "1-19": range(1, 20), "9-19": range(9, 20)}
GRIDS = {"4x4": (4, 4), "8x8": (8, 8), "16x16": (16, 16)}
THRESHOLDS = ("0.3", "0.5", "otsu")


def level_maps(pipe, image: np.ndarray, prompt: str, steps: int) -> dict[int, AttentionRecorder]:
    """One recorder per inversion level k = 1..steps, each holding that level's maps of every grid."""
    z = pipe.encode_image(Image.fromarray(to_uint8(image)))
    size = tuple(z.shape[-2:])
    tokens = word_token_indices(prompt, "", pipe.tokens)
    layers = pipe.host.attention_layers()
    recs = {k: AttentionRecorder(layers, tokens, size, MaskLayers.ALL) for k in range(1, steps + 1)}
    for r in recs.values():
        r.__enter__()
    try:
        with torch.no_grad():
            ddim_invert(pipe.host, [z], [pipe.encode_prompt(prompt)], Schedule.ddim(pipe.host.alphas_cumprod, steps),
                        [1], around_call=lambda k, _active: recs[k].recording([0]))
    finally:
        for r in recs.values():
            r.remove()
    return recs


def variant_ious(recs: dict[int, AttentionRecorder], truth: np.ndarray) -> dict[str, float]:
    """IoU of every (levels, grid, threshold, dilation) variant with the pixel mask `truth`."""
    out = {}
    size = recs[1].latent_size
    scale = truth.shape[0] // size[0]
    for (lv_name, levels), (g_name, grid) in itertools.product(LEVELS.items(), GRIDS.items()):
        maps = [upsample_map(recs[k].sums[grid] / recs[k].counts[grid], size) for k in levels
                if k in recs and grid in recs[k].sums]
        if not maps:
            continue
        m = torch.stack(maps).mean(0)
        for thr in THRESHOLDS:
            for dil in (0, 1):
                otsu = thr == "otsu"
                mode = MaskThresholdMode.OTSU if otsu else MaskThresholdMode.FIXED
                mask = threshold_mask(m, 0.3 if otsu else float(thr), dil, mode).numpy()
                out[f"levels {lv_name}, grid {g_name}, threshold {thr}, dilate {dil}"] = iou(
                    np.kron(mask, np.ones((scale, scale))) > 0.5, truth)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--first-pair", type=int, default=0)
    p.add_argument("--pairs", type=int, default=30)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--out", type=Path, default=Path("outputs") / "mask_iou.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from fgat_cli.loading import load_pipeline

    pipe = load_pipeline(None, "cpu", "fp32")
    scores: dict[str, list[float]] = {}
    for seed in range(args.first_pair, args.first_pair + args.pairs):
        pair, (_, target) = render_pair(seed), pair_scenes(seed)
        for side, image, truth in (("source", pair.source, pair.labels > 0), ("target", pair.target,
                                                                              part_labels(target) > 0)):
            for name, v in variant_ious(level_maps(pipe, image, pair.prompt, args.steps), truth).items():
                scores.setdefault(f"{side}: {name}", []).append(v)
    summary = {k: (float(np.mean(v)), float(np.std(v, ddof=1) / np.sqrt(len(v)))) for k, v in scores.items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1))
    for k, (mean, se) in sorted(summary.items(), key=lambda kv: -kv[1][0]):
        print(f"{mean:.3f} ± {se:.3f}  {k}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
