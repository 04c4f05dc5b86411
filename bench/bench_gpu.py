"""GPU benchmark: FGAT against plain CFG sampling of the same steps, in one process, image in to image out.

Full-size SD 1.5 / SD 2 (768 v) / SDXL networks are built from the shipped configs
(fgat_cli/model_configs) with seeded random weights: the speed of the real architectures without their
weights (no download). Prints per-stage times, UNet calls, totals, FGAT/plain ratios and peak memory; it
asserts nothing about timings.

    python bench/bench_gpu.py                                  # all models, 512 px (+1024 px SDXL), 50 steps
    python bench/bench_gpu.py --models sd15 --no-null-text     # one model, default settings only
    python bench/bench_gpu.py --tiny --device cpu --steps 10   # smoke run on the CPU with the tiny models

Targets (docs/DESIGN.md §2.7, issue 3) at 512 px, 50 steps, default settings, one H100/H200:
FGAT <= 2.3x plain sampling, FGAT <= 3.5 s in total, null-text mode <= 30 s.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fgat_core import FGATConfig  # noqa: E402
from fgat_core.host import cond_cat  # noqa: E402
from fgat_core.inversion import guided  # noqa: E402
from fgat_core.schedule import Schedule, ddim_step  # noqa: E402

FAMILIES = {"sd15": "sd15", "sd2": "sd2-v", "sdxl": "sdxl"}  # benchmark name -> shipped config folder
SOURCE_PROMPT, TARGET_PROMPT = "a photo of a cat", "a photo of a dog"
TARGET_RATIO, TARGET_SECONDS, TARGET_NULL_TEXT = 2.3, 3.5, 30.0


@dataclass
class Run:
    name: str
    total: float
    stages: dict[str, float]
    calls: int  # serial full UNet calls
    rows: int  # UNet batch rows of those calls
    feature_calls: int = 0  # partial calls (DIFT features, to up_blocks[1])
    peak_gib: float | None = None
    finite: bool = True
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- helpers
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def test_images(size: int) -> tuple[Image.Image, Image.Image]:
    """A structured source and target (gradients + noise); random weights make their content irrelevant."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] * (256 / size)
    src = np.stack([xx, yy, (xx + yy) / 2], -1)
    tar = np.stack([255 - yy, (xx * 3) % 256, np.full_like(xx, 90)], -1)
    out = [(a + rng.integers(0, 30, a.shape)).clip(0, 255).astype(np.uint8) for a in (src, tar)]
    return Image.fromarray(out[0]), Image.fromarray(out[1])


def build(name: str, device: torch.device, dtype: torch.dtype, tiny: bool):
    if tiny:
        from fgat_cli.pipeline import cast, tiny_pipeline

        pipe = tiny_pipeline(seed=0, prediction_type="v_prediction" if name == "sd2" else "epsilon",
                             sdxl=name == "sdxl")
        for m in pipe._modules():
            cast(m.to(device), dtype)
        pipe.device, pipe.dtype = device, dtype
        return pipe
    from fgat_cli.loading import random_pipeline

    return random_pipeline(FAMILIES[name], device, dtype, seed=0)


# ---------------------------------------------------------------------------------------------- runs
@torch.no_grad()
def plain_sampling(pipe, source: Image.Image, steps: int, guidance: float, device: torch.device) -> Run:
    """The baseline: img2img at strength 1 with CFG DDIM, `steps` steps, batch [cond, uncond] per call:
    encode the image and prompts, noise to tau_0, sample, decode."""
    sync(device)
    t0 = time.perf_counter()
    src, _ = pipe.prepare_images(source, source)
    h, w = src.size[1], src.size[0]
    z = pipe.encode_image(src)
    cond, uncond = pipe.encode_prompt(SOURCE_PROMPT, (h, w)), pipe.encode_prompt("", (h, w))
    both = cond_cat([cond, uncond])
    sched = Schedule.ddim(pipe.host.alphas_cumprod, steps)
    gen = torch.Generator(device="cpu").manual_seed(0)
    noise = torch.randn(z.shape, generator=gen).to(z)
    a0 = sched.a(0)
    x = a0**0.5 * z + (1 - a0) ** 0.5 * noise
    sync(device)
    t1 = time.perf_counter()
    for i in range(steps):
        t = torch.full((2,), int(sched.timesteps[i]), dtype=torch.long, device=x.device)
        eps2 = pipe.host.eps(torch.cat([x, x]), t, both)
        x = ddim_step(x, guided(eps2[1:], eps2[:1], guidance), sched.a(i), sched.a(i + 1))
    sync(device)
    t2 = time.perf_counter()
    finite = bool(torch.isfinite(x).all())
    pipe.decode(x)
    sync(device)
    t3 = time.perf_counter()
    return Run("plain", t3 - t0, {"encode": t1 - t0, "sampling": t2 - t1, "decode": t3 - t2},
               calls=steps, rows=2 * steps, finite=finite)


def fgat_run(pipe, images, cfg: FGATConfig, name: str, device: torch.device) -> Run:
    source, target = images
    # synchronise at every progress report, so that stage boundaries are real GPU times
    progress = lambda stage, done, total: sync(device)  # noqa: E731
    sync(device)
    t0 = time.perf_counter()
    out = pipe.transfer(source, target, SOURCE_PROMPT, TARGET_PROMPT, cfg, progress=progress)
    sync(device)
    total = time.perf_counter() - t0
    stats = out.result.stats
    stages = {k: v for k, v in out.timings.items() if k != "total"}
    return Run(
        name, total, stages, calls=sum(s.calls for s in stats.values()), rows=sum(s.rows for s in stats.values()),
        feature_calls=sum(s.feature_calls for s in stats.values()), finite=bool(torch.isfinite(out.latent).all()),
        notes=list(out.messages),
    )


def measured(fn, device: torch.device, repeats: int) -> Run:
    """The run with the median total of `repeats` runs, with the peak memory over all of them."""
    reset_peak(device)
    runs = [fn() for _ in range(repeats)]
    runs.sort(key=lambda r: r.total)
    best = runs[len(runs) // 2]
    best.peak_gib = peak_gib(device)
    return best


# ---------------------------------------------------------------------------------------------- report
STAGE_ORDER = ("encode", "inversion", "mask", "matching", "sampling", "decode")


def print_table(title: str, runs: list[Run]) -> None:
    print(f"\n== {title}")
    head = f"{'run':<16}{'total s':>9}" + "".join(f"{s:>11}" for s in STAGE_ORDER)
    head += f"{'UNet calls':>12}{'rows':>7}{'DIFT calls':>12}{'peak GiB':>10}"
    print(head)
    for r in runs:
        line = f"{r.name:<16}{r.total:>9.3f}"
        line += "".join(f"{r.stages[s]:>11.3f}" if s in r.stages else f"{'-':>11}" for s in STAGE_ORDER)
        peak = f"{r.peak_gib:>10.2f}" if r.peak_gib is not None else f"{'-':>10}"
        line += f"{r.calls:>12}{r.rows:>7}{r.feature_calls:>12}{peak}"
        print(line)
        if not r.finite:
            print(f"   note: {r.name} produced non-finite latents (random weights); its timing still counts")


def verdict(ok: bool) -> str:
    return "yes" if ok else "NO"


def report(plain: Run, fgat: Run, null_text: Run | None, on_target: bool) -> dict:
    ratio = fgat.total / plain.total
    loop_ratio = (fgat.total - fgat.stages.get("encode", 0) - fgat.stages.get("decode", 0)) / plain.stages["sampling"]
    print(f"ratio FGAT / plain, image in to image out: {ratio:.2f}x   (denoising loops only: {loop_ratio:.2f}x; "
          f"serial UNet calls {fgat.calls} / {plain.calls} = {fgat.calls / plain.calls:.2f}x)")
    out = {"ratio": ratio, "loop_ratio": loop_ratio, "fgat_total_s": fgat.total, "plain_total_s": plain.total}
    if null_text is not None:
        print(f"null-text FGAT: {null_text.total:.2f} s = {null_text.total / plain.total:.1f}x plain")
        out["null_text_total_s"] = null_text.total
    if on_target:
        print(f"targets: FGAT/plain <= {TARGET_RATIO}x: {verdict(ratio <= TARGET_RATIO)}; FGAT <= {TARGET_SECONDS} s: "
              f"{verdict(fgat.total <= TARGET_SECONDS)}"
              + (f"; null-text <= {TARGET_NULL_TEXT:.0f} s: {verdict(null_text.total <= TARGET_NULL_TEXT)}"
                 if null_text is not None else ""))
    return out


# ---------------------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="sd15,sd2,sdxl", help="comma-separated: sd15, sd2 (768 v), sdxl")
    p.add_argument("--size", type=int, default=None, help="square image size in px (default 512; --tiny: 64)")
    p.add_argument("--sdxl-size", type=int, default=None,
                   help="a second size for SDXL (default 1024; --tiny: none); 0 turns it off")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--device", default=None, help="default: cuda when present, else cpu")
    p.add_argument("--dtype", default=None, help="fp16 (CUDA default), bf16 or fp32 (CPU default)")
    p.add_argument("--tiny", action="store_true", help="the tiny random models (a CPU smoke run)")
    p.add_argument("--no-null-text", action="store_true", help="skip the (slow) null-text inversion mode")
    p.add_argument("--repeats", type=int, default=1, help="timed runs per setting; the median is shown")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    unknown = sorted(set(args.models.split(",")) - set(FAMILIES))
    if unknown:
        p.error(f"unknown model(s) {', '.join(unknown)}: choose from {', '.join(FAMILIES)}")
    if args.steps < 4:
        p.error("--steps must be at least 4 (the FGAT window needs steps before and inside it)")
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    return args


def bench_model(name: str, args: argparse.Namespace, device: torch.device, dtype: torch.dtype, size: int,
                sdxl_size: int) -> list[dict]:
    """All timed runs of one model: plain, FGAT (default), FGAT (null-text), per size."""
    t_build = time.perf_counter()
    pipe = build(name, device, dtype, args.tiny)
    sync(device)
    print(f"\n[{name}] built in {time.perf_counter() - t_build:.1f} s ({pipe.name}, {pipe.prediction_type})")
    default_cfg = FGATConfig(steps=args.steps)
    null_cfg = default_cfg.replace(inversion="null-text")
    guidance = default_cfg.guidance_scale
    figures = []
    sizes = [size] + ([sdxl_size] if name == "sdxl" and sdxl_size and sdxl_size != size else [])
    for px in sizes:
        images = test_images(px)
        # warm-up: every kernel and shape of the timed runs (batch sizes do not depend on the step count)
        plain_sampling(pipe, images[0], 4, guidance, device)
        fgat_run(pipe, images, FGATConfig(steps=10), "warm-up", device)
        if not args.no_null_text:
            fgat_run(pipe, images, FGATConfig(steps=4, inversion="null-text", null_text_steps=2), "warm-up", device)
        plain = measured(lambda im=images: plain_sampling(pipe, im[0], args.steps, guidance, device), device,
                         args.repeats)
        fgat = measured(lambda im=images: fgat_run(pipe, im, default_cfg, "fgat (default)", device), device,
                        args.repeats)
        runs = [plain, fgat]
        null_text = None
        if not args.no_null_text:
            null_text = measured(lambda im=images: fgat_run(pipe, im, null_cfg, "fgat null-text", device), device,
                                 args.repeats)
            runs.append(null_text)
        print_table(f"{name} {px}x{px}, {args.steps} steps", runs)
        on_target = px == 512 and args.steps == 50 and device.type == "cuda" and not args.tiny
        figures.append({
            "model": name, "size": px, **report(plain, fgat, null_text, on_target),
            "stages": {r.name: {"total": r.total, **r.stages, "calls": r.calls, "rows": r.rows,
                                "feature_calls": r.feature_calls, "peak_gib": r.peak_gib} for r in runs},
        })
    return figures


def main(argv: list[str] | None = None) -> int:
    from fgat_cli.loading import pick_device

    args = parse_args(argv)
    device, dtype = pick_device(args.device, args.dtype)
    size = args.size or (64 if args.tiny else 512)
    sdxl_size = args.sdxl_size if args.sdxl_size is not None else (0 if args.tiny else 1024)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {gpu} ({device}), dtype {str(dtype).removeprefix('torch.')}, torch {torch.__version__}, "
          f"{'tiny' if args.tiny else 'full-size'} models with random weights, {args.steps} steps, "
          f"repeats {args.repeats}")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    results = {"device": gpu, "dtype": str(dtype), "steps": args.steps, "tiny": args.tiny, "runs": []}
    for name in args.models.split(","):
        results["runs"] += bench_model(name, args, device, dtype, size, sdxl_size)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
        print(f"\nwrote {args.json}")
    if len(results["runs"]) > 1:
        print("\nsummary: " + "; ".join(f"{r['model']} {r['size']}px {r['ratio']:.2f}x ({r['fgat_total_s']:.2f} s)"
                                         for r in results["runs"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
