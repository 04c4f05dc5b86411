"""Memory growth over many generations through the (fake) A1111 WebUI API, FGAT and plain alternating.

    python bench/bench_load.py [--generations 200] [--steps 4] [--size 64]

Runs on the tiny seeded model (offline, CPU). After a warm-up it makes N plain generations (the baseline),
then N generations alternating FGAT and plain, and reports the resident set size (RSS), live Python
objects and live tensors at each quarter of both phases, in the same process. A leak shows up as RSS and
object counts that keep rising through the quarters of the alternating phase while the plain phase stays
flat; allocator noise shows up in both. Nothing here is asserted (tests/test_reliability_webui.py checks
the counts); this prints numbers.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def rss_mb() -> float:
    """Current resident set size (Linux /proc), else the peak from getrusage."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def census() -> tuple[int, int]:
    import torch

    gc.collect()
    objects = gc.get_objects()
    tensors = sum(1 for o in objects if type(o) in (torch.Tensor, torch.nn.Parameter))
    return len(objects), tensors


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--generations", type=int, default=200, help="generations per phase (default 200)")
    ap.add_argument("--steps", type=int, default=4, help="sampling steps (default 4)")
    ap.add_argument("--size", type=int, default=64, help="image size in pixels (default 64)")
    args = ap.parse_args(argv)
    if args.generations < 4:
        ap.error("--generations must be at least 4")

    import base64
    import io

    import numpy as np
    import torch
    from PIL import Image

    from fgat_cli.pipeline import tiny_pipeline

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    from fake_webui.harness import fake_webui

    def b64(img: Image.Image) -> str:
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return base64.b64encode(buf.getvalue()).decode()

    rng = np.random.default_rng(0)
    src = Image.fromarray(rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8))
    tar = Image.fromarray(rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8))

    def payload(fgat: bool) -> dict:
        fgat_args = [{"target_image": b64(tar), "target_prompt": "a photo of a dog"}] if fgat else []
        return dict(init_images=[b64(src)], prompt="a photo of a cat", steps=args.steps, cfg_scale=7.5, seed=1,
                    sampler_name="Euler", denoising_strength=0.75, width=args.size, height=args.size,
                    alwayson_scripts={"Fine-grained Appearance Transfer": {"args": fgat_args}})

    fgat_req, plain_req = payload(True), payload(False)
    with fake_webui(tiny_pipeline()) as webui:
        # A1111 builds the scripts' default args once per API (modules/api/api.py, `default_script_arg_img2img`);
        # the fake rebuilds them, UIs included, for every request, which grows gradio's state by itself
        from modules.api import api

        build_defaults, defaults = api.init_default_script_args, {}

        def default_script_args(runner):
            if id(runner) not in defaults:
                defaults[id(runner)] = build_defaults(runner)
            return defaults[id(runner)]

        api.init_default_script_args = default_script_args
        for i in range(4):  # warm-up: first-call allocations, caches of torch and gradio
            status, body = webui.api_img2img(fgat_req if i % 2 == 0 else plain_req)
            if status != 200:
                print(f"generation failed: {body}", file=sys.stderr)
                return 1

        def phase(name: str, alternate: bool) -> list[tuple[int, float, int, int]]:
            rows = [(0, rss_mb(), *census())]
            t0 = time.perf_counter()
            for i in range(args.generations):
                status, body = webui.api_img2img(fgat_req if alternate and i % 2 == 0 else plain_req)
                if status != 200:
                    raise RuntimeError(f"{name}: generation {i} failed: {body}")
                if (i + 1) % max(1, args.generations // 4) == 0 or i + 1 == args.generations:
                    rows.append((i + 1, rss_mb(), *census()))
            seconds = time.perf_counter() - t0
            print(f"\n{name}: {args.generations} generations in {seconds:.1f} s")
            print(f"{'after':>8} {'RSS MB':>9} {'objects':>9} {'tensors':>8}")
            for n, rss, objs, tens in rows:
                print(f"{n:>8} {rss:>9.1f} {objs:>9} {tens:>8}")
            return rows

        plain = phase("plain only (baseline)", alternate=False)
        mixed = phase("FGAT and plain alternating", alternate=True)
        callbacks = sum(webui.callback_counts().values())
        hooks = webui.hook_count()

    def growth(rows):  # from the first quarter on, so one-off allocations of the first runs do not count
        (n0, r0, o0, t0), (n1, r1, o1, t1) = rows[1], rows[-1]
        return r1 - r0, o1 - o0, t1 - t0, n1 - n0

    pr, po, pt, pn = growth(plain)
    mr, mo, mt, mn = growth(mixed)
    print("\ngrowth from the first quarter to the end of each phase:")
    print(f"  plain only : RSS {pr:+.1f} MB ({1024 * pr / pn:+.1f} KB/generation), objects {po:+d}, tensors {pt:+d}")
    print(f"  alternating: RSS {mr:+.1f} MB ({1024 * mr / mn:+.1f} KB/generation), objects {mo:+d}, tensors {mt:+d}")
    print(f"  alternating minus plain: RSS {mr - pr:+.1f} MB over {mn} generations")
    print(f"  registered callbacks {callbacks}, forward hooks on the model {hooks} after both phases")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
