"""FGAT img2img vs plain img2img through the fake A1111 WebUI, same steps, one process (CPU, tiny model).

    python bench/bench_webui.py [--steps 50] [--size 64] [--repeats 3] [--threads 1]

plain = the WebUI's Euler sampler at denoising strength 1.0 (all N steps, CFG: 2 UNet rows per step);
FGAT = the script with its default settings (direct inversion, progressive matching, attention mask).
Both run through the same script hooks, sampler and VAE. Runs are interleaved and the median is reported,
so background load hits both alike. Target: FGAT / plain <= 2.5 at N = 50.

UNet work is counted with hooks on the WebUI's diffusion model: calls and rows of full forwards, plus the
partial forwards of the DIFT features (which stop at output_blocks[5]).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


class UNetCounter:
    """Counts forwards of the WebUI's diffusion model: started (pre-hook) and finished (hook)."""

    def __init__(self, module) -> None:
        self.started = self.finished = self.rows = self.partial_rows = 0
        self._open: list[int] = []
        self.handles = [module.register_forward_pre_hook(self._pre), module.register_forward_hook(self._post)]

    def _pre(self, module, args):
        self.started += 1
        self._open.append(args[0].shape[0])

    def _post(self, module, args, output):
        self.finished += 1
        self.rows += args[0].shape[0]
        self._open.pop()

    def close(self) -> None:
        self.partial_rows = sum(self._open)
        for h in self.handles:
            h.remove()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--size", type=int, default=64, help="image side in pixels (multiple of 64)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    from fake_webui.harness import fake_webui
    from PIL import Image

    from fgat_cli.pipeline import tiny_pipeline

    pipe = tiny_pipeline(seed=0)
    gen = torch.Generator().manual_seed(0)
    source = Image.fromarray((torch.rand(args.size, args.size, 3, generator=gen) * 255).byte().numpy())
    target = Image.fromarray((torch.rand(args.size, args.size, 3, generator=gen) * 255).byte().numpy())
    prompt = "a photo of a cat"

    with fake_webui(pipe) as webui:
        torch.set_num_threads(args.threads)
        fgat_args = webui.fgat_args({"enabled": True, "target_image": target, "target_prompt": "a photo of a dog"})

        def plain():
            return webui.img2img(source, prompt, None, steps=args.steps, sampler_name="Euler", denoising_strength=1.0)

        def fgat():
            return webui.img2img(source, prompt, fgat_args, steps=args.steps, sampler_name="Euler",
                                 denoising_strength=1.0)

        plain(), fgat()  # warm-up (allocator, first-call paths)
        times: dict[str, list[float]] = {"plain": [], "fgat": []}
        for _ in range(args.repeats):
            for name, run in (("plain", plain), ("fgat", fgat)):
                t0 = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - t0)

        counts = {}
        for name, run in (("plain", plain), ("fgat", fgat)):
            counter = UNetCounter(webui.sd_model.model.diffusion_model)
            try:
                run()
            finally:
                counter.close()
            counts[name] = counter

    t_plain, t_fgat = statistics.median(times["plain"]), statistics.median(times["fgat"])
    print(f"fake A1111 WebUI img2img, tiny SD1 model, {args.size}x{args.size}, {args.steps} steps, "
          f"{args.threads} thread(s), median of {args.repeats}")
    for name, t in (("plain", t_plain), ("fgat", t_fgat)):
        c = counts[name]
        print(f"  {name:5s} {t:8.3f} s   UNet: {c.finished} full calls / {c.rows} rows, "
              f"{c.started - c.finished} partial (DIFT) calls / {c.partial_rows} rows")
    print(f"  ratio FGAT / plain: {t_fgat / t_plain:.2f} (target <= 2.5); "
          f"full-forward rows {counts['fgat'].rows / counts['plain'].rows:.2f}x, "
          f"serial calls {counts['fgat'].started / counts['plain'].started:.2f}x")


if __name__ == "__main__":
    main()
