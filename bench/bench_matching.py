"""Memory benchmark of the semantic matching (`fgat_core.matching.correspondence`) at SDXL 1024² size.

SDXL's DIFT features (ldm output_blocks[5] = diffusers up_blocks[1]) have 640 channels at 1/8 of the
image, so a 1024² image gives a 128x128 grid: 16384 positions on each side. The full cosine-similarity
matrix would be 16384² float32 = 1 GiB; `correspondence` builds it `match_chunk` source rows at a time.

Each measurement runs in a fresh child process, so its peak is not hidden by an earlier one:
  * CUDA (when available): `torch.cuda.max_memory_allocated()` after the features exist, minus before;
  * CPU: the growth of the process's peak resident set (`ru_maxrss`) over the call (the features are
    allocated and touched first). RSS counts pages, so small allocations may round up or hide in pages
    the allocator already holds; the analytic figure is printed beside it.
Prints the extra peak memory per chunk size, its ratio to the unchunked matrix measured the same way,
and the time per call. Asserts nothing.

    python bench/bench_matching.py                       # 128x128 grid, 640 ch, chunks 1024 (default) and none
    python bench/bench_matching.py --grid 64 --chunks 256,1024,none --device cpu
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MIB = 1 << 20


def analytic_extra_bytes(channels: int, positions: int, chunk: int | None) -> int:
    """What `correspondence` allocates beyond its inputs (float32 features): two L2-normalised (P, C)
    copies, one (chunk, Q) block of similarities and its argmax, and the (P,) int64 result."""
    rows = positions if chunk is None else min(chunk, positions)
    return 2 * channels * positions * 4 + rows * positions * 4 + rows * 8 + positions * 8


def measure(device: str, channels: int, grid: int, chunk: int | None, repeats: int) -> dict:
    """Runs in the child process: one warm-up call, then the measured ones."""
    import torch

    from fgat_core.matching import correspondence

    dev = torch.device(device)
    g = torch.Generator().manual_seed(0)
    fs = torch.randn(channels, grid, grid, generator=g).to(dev)
    ft = torch.randn(channels, grid, grid, generator=g).to(dev)
    fs.add_(0), ft.add_(0)  # touch every page before the baseline
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    out = correspondence(fs, ft, chunk)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        extra = torch.cuda.max_memory_allocated(dev) - base
    else:
        extra = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        again = correspondence(fs, ft, chunk)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        times.append(time.perf_counter() - t0)
        assert torch.equal(again, out)
    return {"extra_bytes": int(extra), "seconds": min(times) if times else first, "checksum": int(out.sum())}


def run_child(args: argparse.Namespace, chunk: int | None) -> dict:
    cmd = [
        sys.executable, __file__, "--child", "--device", args.device, "--channels", str(args.channels),
        "--grid", str(args.grid), "--chunks", "none" if chunk is None else str(chunk),
        "--repeats", str(args.repeats),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"measurement for chunk={chunk} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--channels", type=int, default=640, help="feature channels (SDXL: 640)")
    p.add_argument("--grid", type=int, default=128, help="feature grid side (SDXL 1024²: 128)")
    p.add_argument("--chunks", default="default,none",
                   help="comma-separated chunk sizes; 'default' = FGATConfig.match_chunk, 'none' = unchunked")
    p.add_argument("--repeats", type=int, default=2, help="timed calls after the measured first one")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def chunk_list(text: str) -> list[int | None]:
    from fgat_core import FGATConfig

    out: list[int | None] = []
    for item in text.split(","):
        item = item.strip().lower()
        out.append(None if item == "none" else FGATConfig().match_chunk if item == "default" else int(item))
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    chunks = chunk_list(args.chunks)
    if args.child:
        print(json.dumps(measure(args.device, args.channels, args.grid, chunks[0], args.repeats)))
        return 0
    positions = args.grid**2
    print(f"matching memory: {args.channels} ch, {args.grid}x{args.grid} grid ({positions} positions), "
          f"device {args.device}; method: {'CUDA allocator peak' if args.device.startswith('cuda') else 'peak RSS'}")
    results = {c: run_child(args, c) for c in chunks}
    if len({r["checksum"] for r in results.values()}) != 1:
        print("WARNING: chunk sizes gave different correspondences")
    full = results.get(None)
    print(f"{'chunk':>8} {'measured MiB':>13} {'analytic MiB':>13} {'vs unchunked':>13} {'seconds':>9}")
    for c, r in results.items():
        ratio = f"{r['extra_bytes'] / full['extra_bytes']:.3f}x" if full and full["extra_bytes"] > 0 else "-"
        print(f"{'none' if c is None else c:>8} {r['extra_bytes'] / MIB:>13.1f} "
              f"{analytic_extra_bytes(args.channels, positions, c) / MIB:>13.1f} {ratio:>13} {r['seconds']:>9.3f}")
    limit = 1 << 30
    for c, r in results.items():
        if c is not None:
            verdict = "within" if r["extra_bytes"] <= limit else "OVER"
            print(f"chunk {c}: extra peak {r['extra_bytes'] / MIB:.0f} MiB, {verdict} the 1 GiB budget")
    return 0


if __name__ == "__main__":
    sys.exit(main())
