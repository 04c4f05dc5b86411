"""Core benchmark (CPU, tiny model): plain CFG DDIM sampling vs FGAT, per stage, in one process.

    python bench/bench_core.py [--steps 50] [--repeats 3] [--inversion direct]

Prints wall times, UNet calls and rows per stage, and the ratios FGAT / plain in time and in UNet work
next to the floor in docs/DESIGN.md §2.7 (about 2.35x in UNet work with `direct` inversion at 50 steps)."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fgat_core import FGATConfig, FGATInputs, run_fgat  # noqa: E402
from fgat_core.engine import ddim_sample  # noqa: E402
from fgat_core.mask import word_token_indices  # noqa: E402
from fgat_core.schedule import Schedule  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--inversion", default="direct")
    ap.add_argument("--size", type=int, default=128, help="image size in pixels (latent = size / 8)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from PIL import Image

    from fgat_cli.pipeline import tiny_pipeline

    t0 = time.perf_counter()
    pipe = tiny_pipeline()
    build = time.perf_counter() - t0
    g = torch.Generator().manual_seed(0)
    img = lambda: Image.fromarray((torch.rand(args.size, args.size, 3, generator=g) * 255).byte().numpy())  # noqa: E731
    src_img, tar_img = pipe.prepare_images(img(), img())
    sp, tp = "a photo of a cat", "a photo of a dog"
    inputs = FGATInputs(
        source_latent=pipe.encode_image(src_img), target_latent=pipe.encode_image(tar_img),
        source_cond=pipe.encode_prompt(sp), target_cond=pipe.encode_prompt(tp), uncond=pipe.encode_prompt(""),
        mask_tokens=word_token_indices(sp, "cat", pipe.tokens),
    )
    cfg = FGATConfig(steps=args.steps, inversion=args.inversion)
    sched = Schedule.ddim(pipe.host.alphas_cumprod, args.steps)
    noise = torch.randn(inputs.source_latent.shape, generator=g)

    # warm-up, then alternate plain / FGAT so both see the same machine load
    ddim_sample(pipe.host, noise, inputs.source_cond, inputs.uncond, sched, cfg.guidance_scale)
    run_fgat(pipe.host, inputs, cfg)
    plain_t, fgat_t, res = [], [], None
    for _ in range(args.repeats):
        t = time.perf_counter()
        ddim_sample(pipe.host, noise, inputs.source_cond, inputs.uncond, sched, cfg.guidance_scale)
        plain_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        res = run_fgat(pipe.host, inputs, cfg)
        fgat_t.append(time.perf_counter() - t)
    plain, fgat = statistics.median(plain_t), statistics.median(fgat_t)

    print(f"tiny model built in {build:.2f} s (offline, seeded); latent {tuple(inputs.source_latent.shape)}")
    print(f"steps {args.steps}, inversion {args.inversion}, window {res.window}, threads {args.threads}")
    print(f"{'stage':<10} {'seconds':>8} {'calls':>6} {'rows':>6} {'feat calls':>10} {'feat rows':>9}")
    for name, s in res.stats.items():
        print(f"{name:<10} {s.seconds:8.3f} {s.calls:6d} {s.rows:6d} {s.feature_calls:10d} {s.feature_rows:9d}")
    rows = sum(s.rows for s in res.stats.values())
    feat_rows = sum(s.feature_rows for s in res.stats.values())
    calls = sum(s.calls + s.feature_calls for s in res.stats.values())
    plain_rows, plain_calls = 2 * args.steps, args.steps
    print(f"plain CFG DDIM: {plain:.3f} s, {plain_calls} calls, {plain_rows} rows")
    print(f"FGAT:           {fgat:.3f} s, {calls} calls (incl. {feat_rows // 2} partial DIFT calls), {rows} full rows")
    print(f"ratio FGAT/plain, time:               {fgat / plain:.2f}x")
    print(f"ratio FGAT/plain, serial UNet calls:  {calls / plain_calls:.2f}x  (docs/DESIGN.md §2.7: ~2.2x on a GPU)")
    print(f"ratio FGAT/plain, UNet work (rows):   {rows / plain_rows:.2f}x  + DIFT partial rows {feat_rows} "
          f"(docs/DESIGN.md §2.7: ~2.35x incl. DIFT)")


if __name__ == "__main__":
    main()
