"""One FGAT job from files to files: check and load the inputs, run, write the PNG, sidecar and diagnostics.

Shared by `python -m fgat_core transfer` and `batch`."""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from .config import FGATConfig
from .engine import Progress
from .images import mask_from_image, to_rgb
from .infotext import format_infotext, image_hash
from .mask import prepare_user_mask, word_token_indices
from .pipeline import FGATPipeline, TransferOutput
from .pnginfo import generation_parameters, save_png


@dataclass
class Job:
    """One source/target pair with its settings and output path."""

    source: Path
    target: Path
    source_prompt: str
    target_prompt: str
    config: FGATConfig
    out: Path
    negative_prompt: str = ""
    mask: Path | None = None
    transfer: bool = True
    diagnostics: bool = False


@dataclass
class JobResult:
    job: Job
    output: TransferOutput
    files: dict[str, Path]
    timings: dict[str, float]
    record: dict[str, Any] = field(default_factory=dict)


def load_image(path: str | Path, what: str) -> Image.Image:
    """Open and decode an image file, with an error that names the file and what to do."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"the {what} {str(p)!r} does not exist")
    if p.is_dir():
        raise ValueError(f"the {what} {str(p)!r} is a folder: give an image file (PNG or JPEG)")
    try:
        img = Image.open(p)
        img.load()
        # upright as viewers show it: a phone JPEG stores its rotation in EXIF (the WebUI's browser does this)
        img = ImageOps.exif_transpose(img)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ValueError(f"the {what} {str(p)!r} cannot be read as an image ({e}): use a PNG or JPEG file") from None
    return img


def output_path(out: str | Path, source: str | Path | None = None) -> Path:
    """`--out` as a .png path (a missing suffix gets .png; another suffix is an error). A folder (one that
    exists, or a path ending in '/') gets `<source stem>-fgat.png` inside it."""
    text = str(out)
    p = Path(out)
    if text.endswith(("/", os.sep)) or p.is_dir():
        stem = Path(source).stem if source is not None else "result"
        return p / f"{stem}-fgat.png"
    if p.suffix == "":
        return p.with_suffix(".png")
    if p.suffix.lower() != ".png":
        raise ValueError(
            f"the output {str(p)!r} must be a .png file: the settings are stored in PNG text chunks"
        )
    return p


def check_writable(out: Path) -> None:
    """The output's folder exists or could be made, and takes files: checked before any model work (nothing
    is created here)."""
    if out.is_dir():
        raise ValueError(f"the output {str(out)!r} is a folder: give a .png file name")
    folder = out.parent
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ValueError(f"cannot create the output folder {str(folder)!r}: {str(probe)!r} is a file; choose "
                         "another --out")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(f"the output folder {str(probe)!r} is not writable: choose another --out")


def sidecar_path(out: Path) -> Path:
    return out.with_suffix(".json")


def diagnostics_path(out: Path) -> Path:
    return out.with_name(out.stem + "-diagnostics.png")


def check_job(job: Job, pipe: FGATPipeline | None = None) -> None:
    """Every check that needs no UNet call: files readable, settings consistent, mask word in the prompt.

    Raises ValueError naming what to change."""
    source, _ = (to_rgb(load_image(path, what), f"{what} {str(path)!r}")  # size and colour-mode checks too
                 for path, what in ((job.source, "source image"), (job.target, "target image")))
    cfg = job.config
    if job.mask is not None:
        mask = mask_from_image(load_image(job.mask, "mask image"))
        w, h = source.size
        try:
            prepare_user_mask(mask, (max(1, h // 8), max(1, w // 8)))  # its values and its aspect ratio
        except ValueError as e:
            raise ValueError(f"the mask image {str(job.mask)!r}: {e}") from None
        if cfg.mask_source != "user":
            raise ValueError(
                f"a mask image was given but mask_source is {cfg.mask_source!r}: drop the mask or set "
                "mask_source to 'user'"
            )
    elif cfg.mask_source == "user" and job.transfer:
        raise ValueError("mask_source is 'user' but no mask image was given: add a mask image (white = transfer)")
    cfg.window()  # an empty window, or an attention mask without steps before the window
    if pipe is not None and job.transfer and cfg.mask_source == "attention":
        word_token_indices(job.source_prompt, cfg.mask_word, pipe.tokens, pipe.tokenizer.model_max_length)
    check_writable(output_path(job.out))


def prompt_notes(job: Job, pipe: FGATPipeline) -> list[str]:
    """Notes for prompts longer than the text encoder reads (CLIP: 75 tokens; the rest is cut off silently)."""
    limit = pipe.tokenizer.model_max_length - 2
    notes = []
    for name, text in (("source", job.source_prompt), ("target", job.target_prompt),
                       ("negative", job.negative_prompt)):
        n = len(pipe.tokens(text)) if text else 0
        if n > limit:
            notes.append(f"the {name} prompt has {n} tokens; the text encoder reads the first {limit}, the rest "
                         "is ignored")
    return notes


def run_job(
    pipe: FGATPipeline, job: Job, *, cache=None, progress: Progress | None = None,
) -> JobResult:
    """Run one job and write its PNG (with settings), JSON sidecar and, if asked, diagnostics sheet."""
    source = load_image(job.source, "source image")
    target = load_image(job.target, "target image")
    mask = load_image(job.mask, "mask image") if job.mask is not None else None
    hits0, misses0 = (cache.hits, cache.misses) if cache is not None else (0, 0)
    out = pipe.transfer(
        source, target, job.source_prompt, job.target_prompt, job.config,
        negative_prompt=job.negative_prompt, mask=mask, progress=progress, transfer=job.transfer, cache=cache,
    )
    timings = dict(out.timings)
    t0 = time.perf_counter()
    files = {"image": output_path(job.out)}
    files["image"].parent.mkdir(parents=True, exist_ok=True)
    # the same extras as the WebUI extension's infotext (fgat_webui/run.py)
    extras: dict[str, Any] = {"target_prompt": job.target_prompt, "target_hash": image_hash(target)}
    if job.diagnostics:
        extras["diagnostics"] = True
    if not job.transfer:
        extras["transfer"] = False
    value = format_infotext(job.config, **extras)
    parameters = generation_parameters(
        job.source_prompt, job.negative_prompt, job.config, out.source.size, pipe.name, value
    )
    save_png(out.image, files["image"], parameters, value)
    timings["save"] = time.perf_counter() - t0
    if job.diagnostics:
        from .diagnostics import diagnostics_sheet

        t1 = time.perf_counter()
        res = out.result
        sheet = diagnostics_sheet(
            out.source, out.target, out.image, res.mask, res.correspondence, res.x0_window, res.window,
            decode=lambda z: pipe.decode(z.to(pipe.device)),
        )
        files["diagnostics"] = diagnostics_path(files["image"])
        sheet.save(files["diagnostics"], format="PNG")
        timings["diagnostics"] = time.perf_counter() - t1
    cache_info = None
    if cache is not None:
        cache_info = {"hits": cache.hits - hits0, "misses": cache.misses - misses0}
    files["sidecar"] = sidecar_path(files["image"])
    record = sidecar_record(job, out, pipe, value, parameters, timings, files, cache_info)
    files["sidecar"].write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return JobResult(job, out, files, timings, record)


def sidecar_record(
    job: Job, out: TransferOutput, pipe: FGATPipeline, value: str, parameters: str,
    timings: dict[str, float], files: dict[str, Path], cache_info: dict[str, int] | None,
) -> dict[str, Any]:
    """Everything about a run, JSON-ready: inputs, prompts, model, settings, timings, UNet calls, messages."""
    from . import __version__

    res = out.result
    return {
        "fgat_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "source": str(job.source),
        "target": str(job.target),
        "mask": None if job.mask is None else str(job.mask),
        "source_prompt": job.source_prompt,
        "target_prompt": job.target_prompt,
        "negative_prompt": job.negative_prompt,
        "transfer": job.transfer,
        "model": pipe.name,
        "device": str(pipe.device),
        "dtype": str(pipe.dtype).replace("torch.", ""),
        "size": list(out.source.size),
        "window": list(res.window),
        "config": job.config.to_dict(),
        "infotext": value,
        "parameters": parameters,
        "timings": {k: round(v, 4) for k, v in timings.items()},
        "stats": {k: dataclasses.asdict(s) for k, s in res.stats.items()},
        "unet_calls": sum(s.calls for s in res.stats.values()),
        "inversion_cache": cache_info,
        "messages": list(res.messages),
        "files": {k: str(v) for k, v in files.items()},
    }


def timing_summary(result: JobResult) -> str:
    """A table of seconds and UNet calls per stage, then the total."""
    t = result.timings
    stats = result.output.result.stats
    lines = [f"{'stage':<12}{'seconds':>9}{'UNet calls':>12}{'UNet rows':>11}{'DIFT calls':>12}"]
    order = ["encode", *stats.keys(), "decode", "save", "diagnostics"]
    for name in order:
        if name not in t and name not in stats:
            continue
        secs = t.get(name, stats[name].seconds if name in stats else 0.0)
        if name in stats:
            s = stats[name]
            lines.append(f"{name:<12}{secs:>9.2f}{s.calls:>12d}{s.rows:>11d}{s.feature_calls:>12d}")
        else:
            lines.append(f"{name:<12}{secs:>9.2f}")
    total = sum(t.get(k, 0.0) for k in ("total", "save", "diagnostics"))
    calls = sum(s.calls for s in stats.values())
    rows = sum(s.rows for s in stats.values())
    feats = sum(s.feature_calls for s in stats.values())
    lines.append(f"{'total':<12}{total:>9.2f}{calls:>12d}{rows:>11d}{feats:>12d}")
    return "\n".join(lines)


class StageBars:
    """One tqdm bar per engine stage, fed by the engine's progress(stage, done, total) callback."""

    def __init__(self, enabled: bool = True, prefix: str = "") -> None:
        self.enabled, self.prefix = enabled, prefix
        self.bar = None
        self.key: tuple[str, int] | None = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None or self.key != (stage, total) or done < self.bar.n:
            self.close()
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=f"{self.prefix}{stage}", unit="step", file=sys.stderr,
                            dynamic_ncols=True, leave=True)
            self.key = (stage, total)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
            self.key = None
