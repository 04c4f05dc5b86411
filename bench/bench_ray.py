"""The batch on Ray against the local batch: rows/s and Ray's overhead per row, in one run.

    python bench/bench_ray.py [--pairs 16] [--steps 4] [--size 64] [--model tiny|demo]

Needs Ray (pip install "fgat[ray]"). Builds N pairs (every source its own image, four targets, so the rows
fall into four groups that share a target), then, on one machine:

1. the local batch (`batch.run_batch`, one process, torch on one thread);
2. a local Ray of 2 CPUs (started once) with a pool of 1 actor, then of 2 actors (one thread each), each
   running the same pairs (`ray_batch.run_on_pool`, every row run again).

It prints the time to start Ray and the actors (paid once per batch), the rows/s of each run, the overhead
of Ray per row (1 actor against the local batch, the same work on one thread each) and the speed-up of 2
actors over 1, as ratios; and the driver's serial work per row (checking the pairs file, writing the files),
which bounds the rows/s of any number of actors. Nothing is asserted; the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]


def make_pairs(folder: Path, n: int, size: int) -> Path:
    """N rows: source i is the example source shifted by i pixels; target i % 4 one of four variants."""
    from PIL import Image, ImageChops, ImageOps

    src = Image.open(ROOT / "examples" / "source.png").convert("RGB").resize((size, size), Image.LANCZOS)
    tar = Image.open(ROOT / "examples" / "target.png").convert("RGB").resize((size, size), Image.LANCZOS)
    for k, img in enumerate((tar, ImageOps.mirror(tar), ImageOps.flip(tar), ImageOps.flip(ImageOps.mirror(tar)))):
        img.save(folder / f"t{k}.png")
    lines = ["source,target,source_prompt,out"]
    for i in range(n):
        ImageChops.offset(src, i, 0).save(folder / f"s{i}.png")
        lines.append(f"s{i}.png,t{i % 4}.png,a photo of a cat,r{i:04d}")
    (folder / "pairs.csv").write_text("\n".join(lines) + "\n")
    return folder / "pairs.csv"


def timed_writes(ray_batch) -> list[float]:
    """Times each call of the driver's writer (`finish_row`) from here on."""
    real, spent = ray_batch.finish_row, []

    def finish_row(outcome, tag):
        t0 = time.perf_counter()
        try:
            return real(outcome, tag)
        finally:
            spent.append(time.perf_counter() - t0)
    ray_batch.finish_row = finish_row
    return spent


def run_pools(ray, ray_batch, load, pairs: Path, steps: int, steps_out: dict) -> None:
    """On one local Ray of 2 CPUs: a pool of 1 actor, then of 2, each running every row."""
    from contextlib import redirect_stdout
    from io import StringIO

    from fgat_cli.batch import read_pairs

    options = ray_batch.RayOptions(actors=2)
    t0 = time.perf_counter()
    with ray_batch.ray_session(ray, options):
        steps_out["ray_start"] = time.perf_counter() - t0
        for count in (1, 2):
            t0 = time.perf_counter()
            pool = ray_batch.start_pool(ray, load, (count, 0.0), options, threads=1)
            steps_out[f"actors{count}_start"] = time.perf_counter() - t0
            out = pairs.parent / f"ray{count}"
            jobs = read_pairs(pairs, out, settings={"steps": steps})
            t0 = time.perf_counter()
            with redirect_stdout(StringIO()):
                code = ray_batch.run_on_pool(ray, pool, jobs, out, resume=False, progress_bars=False)
            steps_out[f"ray{count}"] = time.perf_counter() - t0
            assert code == 0, code
            for actor in pool.actors:
                ray.kill(actor)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=16, help="rows (default 16)")
    ap.add_argument("--steps", type=int, default=4, help="steps (default 4)")
    ap.add_argument("--size", type=int, default=64, help="image size in pixels (default 64)")
    ap.add_argument("--model", choices=("tiny", "demo"), default="tiny", help="the tiny test model (default) or "
                    "the bundled demo model")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from contextlib import redirect_stdout
    from io import StringIO

    from fgat_cli import ray_batch
    from fgat_cli.batch import read_pairs, run_batch
    from fgat_cli.loading import load_pipeline
    from fgat_cli.pipeline import tiny_pipeline

    ray = ray_batch.import_ray()
    load = functools.partial(tiny_pipeline, seed=0) if args.model == "tiny" else functools.partial(load_pipeline)
    n, t = args.pairs, {}
    with tempfile.TemporaryDirectory(prefix="fgat-bench-ray-") as tmp:
        folder = Path(tmp)
        pairs = make_pairs(folder, n, args.size)
        t0 = time.perf_counter()
        jobs = read_pairs(pairs, folder / "local", settings={"steps": args.steps})
        t["check"] = time.perf_counter() - t0
        pipe = load()
        t0 = time.perf_counter()
        with redirect_stdout(StringIO()):
            assert run_batch(pipe, jobs, folder / "local", progress_bars=False) == 0
        t["local"] = time.perf_counter() - t0
        writes = timed_writes(ray_batch)
        run_pools(ray, ray_batch, load, pairs, args.steps, t)
        same = all((folder / "ray2" / p.name).read_bytes() == p.read_bytes() for p in (folder / "local").glob("*.png"))
    report(args, n, t, writes, same)
    return 0


def report(args, n: int, t: dict, writes: list[float], same: bool) -> None:
    """The figures, as rows/s and ratios."""
    rate = {k: n / t[k] for k in ("local", "ray1", "ray2")}
    print(f"{n} pairs, {args.size} px, {args.steps} steps, {args.model} model, CPU, one torch thread per process")
    print(f"  start a local Ray (2 CPUs): {t['ray_start']:.1f} s; start 1 actor (loads the model): "
          f"{t['actors1_start']:.1f} s; 2 actors: {t['actors2_start']:.1f} s")
    for key, label in (("local", "local batch"), ("ray1", "Ray, 1 actor"), ("ray2", "Ray, 2 actors")):
        print(f"  {label:<14} {t[key]:7.2f} s  {rate[key]:6.2f} rows/s")
    print(f"  Ray's overhead per row (1 actor vs local): {(t['ray1'] - t['local']) / n * 1000:+.1f} ms "
          f"(ray1 / local time = {t['ray1'] / t['local']:.2f}x)")
    print(f"  2 actors / 1 actor rows/s = {rate['ray2'] / rate['ray1']:.2f}x; 2 actors / local = "
          f"{rate['ray2'] / rate['local']:.2f}x")
    serial = t["check"] / n + sum(writes) / len(writes)
    print(f"  driver's serial work per row: check {t['check'] / n * 1000:.1f} ms + write "
          f"{sum(writes) / len(writes) * 1000:.1f} ms = {serial * 1000:.1f} ms -> at most {1 / serial:.0f} rows/s "
          "for any number of actors")
    print(f"  images of 2 actors byte-identical to the local batch's: {same}")


if __name__ == "__main__":
    sys.exit(main())
