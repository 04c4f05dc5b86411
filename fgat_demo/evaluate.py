"""Measure FGAT on the demo world against its ground truth: ablations, baselines, a table and a figure.

    python -m fgat_demo.evaluate                     # 50 held-out pairs, 20 steps, the bundled demo model
    python -m fgat_demo.evaluate --pairs 8 --steps 10 --methods "FGAT (defaults)" "global colour transfer"

Pairs are `world.render_pair(seed)` for seeds F..F+N-1 (`--first-pair F`, default 0; scene seeds below
world.TRAIN_SEED0: never trained on). Tune on one range, confirm on a disjoint one (e.g. `--first-pair 30000`).
Per pair and method (metrics in fgat_demo/metrics.py; images in [0, 1]):
- appearance: mean absolute error inside each of the source's parts against the ground truth (the source's
  geometry and background in the target's per-part appearance), averaged over parts; `colour`: the same on
  each part's mean colour (pattern placement ignored);
- structure: IoU of where the output differs (by > 0.15 in a channel) from the source's empty background, as the
  method renders it (through the model's VAE; for the colour transfer, under its colour map), with the source's
  object mask;
- background: mean absolute error against the source outside the object (mask grown by 2 px);
- attention-mask IoU: FGAT's mask (latent grid, nearest-upsampled) against the source's object mask; with
  target-side masking also the target's mask against the target's object mask.
Writes <out>/results.json, <out>/table.md and <out>/figure.png (and prints the table)."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fgat_core import engine, settings
from fgat_core.cache import InversionCache
from fgat_core.config import FGATConfig
from fgat_core.inversion import ddim_invert, guided
from fgat_core.presets import PAPER_SETTINGS
from fgat_core.schedule import Schedule, ddim_step, predict_x0
from fgat_core.settings import SETTING, Inversion, MaskLayers, MaskSource, Matching
from fgat_demo.metrics import global_colour_transfer, iou, score_pair
from fgat_demo.world import background_image, pair_scenes, part_labels, render_pair, to_uint8

ROOT = Path(__file__).resolve().parents[1]

FIGURE_METHODS = ("FGAT (defaults)", "FGAT, paper settings (previous defaults)", "FGAT, ground-truth mask",
                  "no transfer (reconstruction)", "SDEdit, strength 0.5", "SDEdit, strength 0.75",
                  "global colour transfer")
PAPER = "FGAT, paper settings (previous defaults)"
EXACT = "no transfer, direct inversion (the source through the VAE)"
FINER_MASK = {"mask_layers": MaskLayers.FULL, "mask_levels": settings.MaskLevels.ALL, "mask_threshold": 0.5,
              "mask_dilate": 0}
FINER = "FGAT, paper settings + finer mask (full-size layers, all levels, threshold 0.5, no dilation)"


def methods(steps: int, null_text_steps: int, tries: list[str] = ()) -> dict[str, tuple[str, object]]:
    """Name -> (kind, setting). FGAT kinds take an FGATConfig. `tries`: extra rows "FGAT, k=v,k=v"."""
    base = FGATConfig(steps=steps)
    paper = FGATConfig.from_dict({**PAPER_SETTINGS, "steps": steps})
    gate, restrict, lock = settings.TargetMask.GATE, settings.TargetMask.RESTRICT, settings.BackgroundLock.ON
    out: dict[str, tuple[str, object]] = {
        "FGAT (defaults)": ("fgat", base),
        PAPER: ("fgat", paper),
        "FGAT, paper settings + target mask (gate)": ("fgat", paper.replace(target_mask=gate)),
        "FGAT, paper settings + target mask (restrict)": ("fgat", paper.replace(target_mask=restrict)),
        "FGAT, paper settings + background lock": ("fgat", paper.replace(background_lock=lock)),
        "FGAT, paper settings + otsu mask threshold": (
            "fgat", paper.replace(mask_threshold_mode=settings.MaskThresholdMode.OTSU)),
        FINER: ("fgat", paper.replace(**FINER_MASK)),
        "FGAT, paper settings + restrict + lock": ("fgat", paper.replace(target_mask=restrict, background_lock=lock)),
        "FGAT, paper settings + gate + lock": ("fgat", paper.replace(target_mask=gate, background_lock=lock)),
        "FGAT, no latent deviation (lam=0, gamma=1: transfer on x0 only)": ("fgat", base.replace(lam=0.0, gamma=1.0)),
        "FGAT, initial matching": ("fgat", base.replace(matching=Matching.INITIAL)),
        "FGAT, ddim inversion": ("fgat", base.replace(inversion=Inversion.DDIM)),
        "FGAT, negative-prompt inversion": ("fgat", base.replace(inversion=Inversion.NEGATIVE_PROMPT)),
        f"FGAT, null-text inversion ({null_text_steps} steps)": (
            "fgat", base.replace(inversion=Inversion.NULL_TEXT, null_text_steps=null_text_steps)),
    }
    for d in (0.3, 0.9):
        out[f"FGAT, delta={d}"] = ("fgat", base.replace(delta=d))
    out["FGAT, lam=0.5"] = ("fgat", base.replace(lam=0.5))
    out["FGAT, gamma=0.5"] = ("fgat", base.replace(gamma=0.5))
    out["FGAT, inversion at the next timestep (direct)"] = ("fgat-next", base)
    out["FGAT, inversion at the next timestep (ddim)"] = ("fgat-next", base.replace(inversion=Inversion.DDIM))
    out["FGAT, ground-truth mask"] = ("fgat-gtmask", base.replace(mask_source=MaskSource.USER))
    out["FGAT, mask from all attention layers"] = ("fgat", base.replace(mask_layers=MaskLayers.ALL))
    out["FGAT, mask from the layers at 1/2 of the latent (8x8 grid)"] = ("fgat-mask8", base)
    out["FGAT, mask threshold 0.5"] = ("fgat", base.replace(mask_threshold=0.5))
    out["FGAT, mask not dilated"] = ("fgat", base.replace(mask_dilate=0))
    out["FGAT, guidance scale 3"] = ("fgat", base.replace(guidance_scale=3.0))
    out["FGAT, guidance scale 1 (no guidance)"] = ("fgat", base.replace(guidance_scale=1.0))
    out["FGAT, window 0.12-0.44 (longer)"] = ("fgat", base.replace(window_start=0.12))
    out["FGAT, window 0.24-0.64 (longer)"] = ("fgat", base.replace(window_end=0.64))
    for name in ("target_mask", "background_lock", "mask_threshold_mode"):  # each new setting off / other
        for value in SETTING[name].choices:
            if value != getattr(base, name):
                out[f"FGAT, {name}={value}"] = ("fgat", base.replace(**{name: value}))
    out["no transfer (reconstruction)"] = ("none", base)
    out[EXACT] = ("none", base.replace(inversion=Inversion.DIRECT))
    out["SDEdit, strength 0.5"] = ("sdedit", 0.5)
    out["SDEdit, strength 0.75"] = ("sdedit", 0.75)
    out["global colour transfer"] = ("colour", None)
    out["ground truth through the VAE (floor)"] = ("vae", None)
    for t in tries:
        out[f"FGAT, {t}"] = ("fgat", base.replace(**parse_try(t)))
    return out


def parse_try(text: str) -> dict[str, object]:
    """`k=v,k=v` -> settings, numbers as numbers."""
    out: dict[str, object] = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value.strip()
    return out


# ---------------------------------------------------------------------------------------------- conventions
class NextTimestepHost:
    """A host whose UNet sees, at level k, the next (noisier) level's timestep tau_{k-1} instead of tau_k
    (diffusers' DDIMInverseScheduler and the null-text authors' code); level N (clean) sees tau_{N-1}."""

    def __init__(self, host, sched: Schedule) -> None:
        self.host = host
        ts = [int(t) for t in sched.timesteps]
        self.next = {ts[k]: ts[k - 1] for k in range(1, len(ts))}

    def eps(self, x, t, cond):
        return self.host.eps(x, torch.tensor([self.next[int(v)] for v in t], dtype=t.dtype, device=t.device), cond)

    def __getattr__(self, name):
        return getattr(self.host, name)


@contextlib.contextmanager
def next_timestep_inversion():
    """Inside: the engine's DDIM inversions evaluate the UNet at the next level's timestep."""
    if not hasattr(engine, "ddim_invert"):
        raise RuntimeError("fgat_core.engine no longer calls ddim_invert by that name: update this experiment")
    original = engine.ddim_invert

    def shifted(host, latents, conds, sched, *args, **kwargs):
        return original(NextTimestepHost(host, sched), latents, conds, sched, *args, **kwargs)

    engine.ddim_invert = shifted
    try:
        yield
    finally:
        engine.ddim_invert = original


@contextlib.contextmanager
def half_mask_grid():
    """Inside: the attention mask averages the layers at 1/2 of the latent (8x8 at 64 px) instead of 1/4."""
    from fgat_core.mask import AttentionRecorder, downsampled_size

    original = AttentionRecorder.__init__

    def init(self, layers, tokens, latent_size, which=MaskLayers.QUARTER):
        original(self, layers, tokens, latent_size, which)
        if which == MaskLayers.QUARTER:
            self.grids = [downsampled_size(latent_size, 2)]

    AttentionRecorder.__init__ = init
    try:
        yield
    finally:
        AttentionRecorder.__init__ = original


# ---------------------------------------------------------------------------------------------- baselines
@torch.no_grad()
def sdedit(pipe, source: Image.Image, prompt: str, strength: float, steps: int, seed: int) -> Image.Image:
    """Plain img2img: the source noised to `strength` of the schedule, then CFG DDIM with the prompt."""
    sched = Schedule.ddim(pipe.host.alphas_cumprod, steps)
    first = steps - round(strength * steps)
    z0 = pipe.encode_image(source)
    noise = torch.randn(z0.shape, generator=torch.Generator().manual_seed(seed)).to(z0)
    x = math.sqrt(sched.a(first)) * z0 + math.sqrt(1 - sched.a(first)) * noise
    cond, uncond = pipe.encode_prompt(prompt), pipe.encode_prompt("")
    both = {k: torch.cat([uncond[k], cond[k]]) for k in cond}
    for i in range(first, steps):
        t = torch.full((2,), int(sched.timesteps[i]), dtype=torch.long)
        eps = pipe.host.eps(torch.cat([x, x]), t, both)
        x = ddim_step(x, guided(eps[:1], eps[1:], 7.5), sched.a(i), sched.a(i + 1))
    return pipe.decode(x)


@torch.no_grad()
def target_x0_error(pipe, target: Image.Image, prompt: str, cfg: FGATConfig, next_timestep: bool) -> float:
    """The target's x0 prediction along its inversion, at each window level, decoded, against the target."""
    sched = Schedule.ddim(pipe.host.alphas_cumprod, cfg.steps)
    start, end = cfg.window(cfg.steps)
    host = NextTimestepHost(pipe.host, sched) if next_timestep else pipe.host
    x0s = {}

    def observe(k, eps, x, active):
        if start <= k < end:
            x0s[k] = predict_x0(x, eps, sched.a(k))

    ddim_invert(host, [pipe.encode_image(target)], [pipe.encode_prompt(prompt)], sched, [start], observer=observe)
    ref = np.asarray(target, dtype=np.float64) / 255
    return float(np.mean([np.abs(np.asarray(pipe.decode(z), dtype=np.float64) / 255 - ref).mean()
                          for z in x0s.values()]))


# ---------------------------------------------------------------------------------------------- one pair
def _pil(img: np.ndarray) -> Image.Image:
    return Image.fromarray(to_uint8(img))


def _arr(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.float64) / 255


def run_method(pipe, kind: str, setting, pair, caches: dict, seed: int):
    """(output image array, FGAT result or None)."""
    src, tar = _pil(pair.source), _pil(pair.target)
    if kind == "colour":
        return global_colour_transfer(pair.source, pair.target), None
    if kind == "vae":
        return _arr(pipe.decode(pipe.encode_image(_pil(pair.truth)))), None
    if kind == "sdedit":
        return _arr(sdedit(pipe, src, pair.prompt, setting, caches["steps"], seed)), None
    mask = _pil(np.repeat((pair.labels > 0)[..., None].astype(float), 3, 2)) if kind == "fgat-gtmask" else None
    ctx = {"fgat-next": next_timestep_inversion, "fgat-mask8": half_mask_grid}.get(kind, contextlib.nullcontext)()
    cache = caches.setdefault("next" if kind == "fgat-next" else "own", InversionCache(8))
    with ctx:
        out = pipe.transfer(src, tar, pair.prompt, pair.prompt, setting, mask=mask, transfer=kind != "none",
                            cache=cache)
    return _arr(out.image), out.result


def mask_iou(mask: torch.Tensor, truth: np.ndarray) -> float:
    """IoU of a latent-grid mask (nearest-upsampled to the image) with a pixel mask."""
    m = mask.float().cpu().numpy()
    return iou(np.kron(m, np.ones((truth.shape[0] // m.shape[0],) * 2)) > 0.5, truth)


def evaluate_pair(pipe, seed: int, names: list[str], table: dict, keep_images: bool) -> dict:
    pair = render_pair(seed)
    src_scene, _ = pair_scenes(seed)
    bg = background_image(src_scene)
    bg_model = _arr(pipe.decode(pipe.encode_image(_pil(bg))))  # the empty background as the model renders it
    caches: dict = {"steps": table["steps"]}
    row: dict = {"seed": seed, "category": src_scene.category, "scores": {}, "images": {}}
    for name in names:
        kind, setting = table["methods"][name]
        t0 = time.perf_counter()
        img, result = run_method(pipe, kind, setting, pair, caches, seed)
        ref = global_colour_transfer(pair.source, pair.target, bg) if kind == "colour" else bg_model
        score = vars(score_pair(img, pair.truth, pair.source, ref, pair.labels, len(pair.parts)))
        score["seconds"] = time.perf_counter() - t0
        if result is not None and kind.startswith("fgat") and setting.mask_source is MaskSource.ATTENTION:
            score["attention_iou"] = mask_iou(result.mask, pair.labels > 0)
        if result is not None and result.target_mask is not None:
            score["target_attention_iou"] = mask_iou(result.target_mask, part_labels(pair_scenes(seed)[1]) > 0)
        row["scores"][name] = score
        if keep_images and name in FIGURE_METHODS:
            row["images"][name] = to_uint8(img).tolist()
    if keep_images:
        row["images"].update({k: to_uint8(getattr(pair, k)).tolist() for k in ("source", "target", "truth")})
    cfg = table["methods"]["FGAT (defaults)"][1] if "FGAT (defaults)" in table["methods"] else FGATConfig(
        steps=table["steps"])
    tar = _pil(pair.target)
    row["target_x0"] = {conv: target_x0_error(pipe, tar, pair.prompt, cfg, conv == "next") for conv in ("own", "next")}
    return row


# ---------------------------------------------------------------------------------------------- workers
_PIPE = None


def _worker_init(model: str | None, threads: int) -> None:
    global _PIPE
    torch.set_num_threads(threads)
    from fgat_cli.loading import load_pipeline

    _PIPE = load_pipeline(model, "cpu", "fp32")


def _worker(job) -> dict:
    seed, names, steps, null_text_steps, figure_end, tries = job
    table = {"steps": steps, "methods": methods(steps, null_text_steps, tries)}
    return evaluate_pair(_PIPE, seed, names, table, seed < figure_end)


# ---------------------------------------------------------------------------------------------- report
def summarise(rows: list[dict], names: list[str]) -> dict[str, dict[str, float]]:
    out = {}
    for name in names:
        cols = {}
        for key in ("appearance", "colour", "iou", "background", "attention_iou", "target_attention_iou", "seconds"):
            vals = [r["scores"][name][key] for r in rows if key in r["scores"][name]]
            if vals:
                cols[key] = float(np.nanmean(vals))
        out[name] = cols
    return out


def markdown_table(summary: dict, n: int, steps: int) -> str:
    lines = [f"| Method ({n} pairs, {steps} steps) | appearance err ↓ | part colour err ↓ | structure IoU ↑ | "
             "background err ↓ | attention-mask IoU (source / target) | s/pair |", "|---|---|---|---|---|---|---|"]
    for name, c in summary.items():
        att = " / ".join(f"{c[k]:.2f}" for k in ("attention_iou", "target_attention_iou") if k in c) or "—"
        lines.append(f"| {name} | {c['appearance']:.3f} | {c['colour']:.3f} | {c['iou']:.2f} | "
                     f"{c['background']:.3f} | {att} | {c['seconds']:.1f} |")
    return "\n".join(lines)


def paired(rows: list[dict], names: list[str], base: str, key: str = "appearance") -> str:
    """Per method, the per-pair difference of `key` against `base`: mean ± standard error, share of pairs lower."""
    if base not in names:
        return ""
    lines = [f"| Method | Δ {key} vs {base} (mean ± s.e.) | pairs lower |", "|---|---|---|"]
    for name in names:
        if name == base:
            continue
        d = np.array([r["scores"][name][key] - r["scores"][base][key] for r in rows
                      if key in r["scores"][name] and key in r["scores"][base]], dtype=np.float64)
        d = d[np.isfinite(d)]
        if len(d) < 2:
            continue
        lines.append(f"| {name} | {d.mean():+.4f} ± {d.std(ddof=1) / math.sqrt(len(d)):.4f} | "
                     f"{(d < 0).mean() * 100:.0f} % |")
    return "\n".join(lines)


def figure(rows: list[dict], path: Path, scale: int = 2) -> None:
    cols = ["source", "target", "truth", *[m for m in FIGURE_METHODS if m in rows[0]["images"]]]
    tiles = [[np.asarray(r["images"][c], dtype=np.uint8) for c in cols] for r in rows if r["images"]]
    sheet = np.concatenate([np.concatenate(t, 1) for t in tiles], 0)
    img = Image.fromarray(sheet)
    img.resize((img.width * scale, img.height * scale), Image.NEAREST).save(path)
    path.with_suffix(".txt").write_text("columns: " + " | ".join(cols) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pairs", type=int, default=50)
    p.add_argument("--first-pair", type=int, default=0, help="seed of the first pair (a disjoint range to confirm)")
    p.add_argument("--try", dest="tries", nargs="*", default=[], metavar="K=V,K=V",
                   help="extra FGAT rows: settings over the defaults, e.g. inversion=ddim,target_mask=gate")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--null-text-steps", type=int, default=3)
    p.add_argument("--methods", nargs="*", help="method names (default: all)")
    p.add_argument("--model", default=None, help="default: the bundled demo model")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (one torch thread each)")
    p.add_argument("--figure-pairs", type=int, default=4)
    p.add_argument("--out", type=Path, default=ROOT / "outputs" / "eval_demo")
    args = p.parse_args(argv)
    table = methods(args.steps, args.null_text_steps, args.tries)
    names = (args.methods or list(table)) + [f"FGAT, {t}" for t in args.tries]
    unknown = [n for n in names if n not in table]
    if unknown:
        raise SystemExit(f"unknown method(s) {unknown}: pick from {list(table)}")
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    seeds = range(args.first_pair, args.first_pair + args.pairs)
    jobs = [(s, names, args.steps, args.null_text_steps, args.first_pair + args.figure_pairs, args.tries)
            for s in seeds]
    t0 = time.time()
    rows = []
    with ProcessPoolExecutor(args.jobs, initializer=_worker_init, initargs=(args.model, 1)) as ex:
        for i, row in enumerate(ex.map(_worker, jobs), 1):
            rows.append(row)
            print(f"pair {i}/{args.pairs} ({row['category']}) {time.time() - t0:.0f} s", flush=True)
            if i % 5 == 0 and i < args.pairs:  # a partial report, in case the run is stopped
                write_report(rows, names, args, t0)
    md = write_report(rows, names, args, t0)
    print(md)
    print(f"wrote {args.out}/table.md, results.json, figure.png ({time.time() - t0:.0f} s)")
    return 0


def write_report(rows: list[dict], names: list[str], args, t0: float) -> str:
    summary = summarise(rows, names)
    x0 = {c: float(np.mean([r["target_x0"][c] for r in rows])) for c in ("own", "next")}
    md = markdown_table(summary, len(rows), args.steps)
    md += (f"\n\nTarget x0 along its inversion (window levels, decoded), mean abs error against the target: "
           f"own timestep {x0['own']:.3f}, next timestep {x0['next']:.3f}.\n")
    for base in ("no transfer (reconstruction)", EXACT, "FGAT (defaults)", PAPER):
        table = paired(rows, names, base)
        md += f"\nPaired over the pairs, appearance error against {base}:\n\n{table}\n" if table else ""
    (args.out / "table.md").write_text(md)
    (args.out / "results.json").write_text(json.dumps(
        {"pairs": len(rows), "first_pair": args.first_pair, "steps": args.steps, "summary": summary, "target_x0": x0,
         "wall_seconds": time.time() - t0,
         "per_pair": [{k: v for k, v in r.items() if k != "images"} for r in rows]}, indent=1))
    shown = sorted(rows, key=lambda r: r["seed"])[: args.figure_pairs]
    if shown and shown[0]["images"]:
        figure(shown, args.out / "figure.png")
    return md


if __name__ == "__main__":
    raise SystemExit(main())
