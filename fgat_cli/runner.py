"""One FGAT job from files to files: check and load the inputs, run, write the PNG, sidecar and diagnostics.

Shared by `python -m fgat_cli transfer` and `batch`."""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from fgat_core.atomic import write_atomic
from fgat_core.config import FGATConfig
from fgat_core.engine import Progress
from fgat_core.errors import InputError
from fgat_core.images import decode_bytes, decode_file, size_notes, to_rgb, unreadable
from fgat_core.infotext import format_infotext, image_hash
from fgat_core.mask import word_token_indices
from fgat_core.prepare import TARGET_FIELDS, Request, check_request, target_object_tokens
from fgat_core.settings import MaskSource

from .pipeline import FGATPipeline, TransferOutput, check_prompt
from .pnginfo import generation_parameters, png_bytes


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
    preset: str | None = None  # the preset the settings started from (recorded in the sidecar)
    mask_tokens: list[int] | None = None  # the mask word's positions, where a batch's check located them
    target_mask_tokens: list[int] | None = None  # the target-side mask word's, likewise


@dataclass
class JobResult:
    job: Job
    output: TransferOutput
    files: dict[str, Path]
    timings: dict[str, float]
    record: dict[str, Any] = field(default_factory=dict)
    data: dict[Path, bytes] = field(default_factory=dict)  # the files' contents, the sidecar last (render_job)


def load_image(path: str | Path, what: str, field: str | None = None, data: bytes | None = None) -> Image.Image:
    """Open and decode an image file, with an error that names the file and what to do.

    `field` ('source', 'target', 'mask') makes the errors InputErrors a front end can name by its flag;
    `data`: the file's bytes, read elsewhere (a Ray actor decodes what the driver read)."""
    p = Path(path)
    field = field or what.split()[0]
    if data is None and not p.exists():
        raise InputError(field, str(p), "{name} {value!r} does not exist")
    if data is None and p.is_dir():
        raise InputError(field, str(p), "{name} {value!r} is a folder: give an image file (PNG or JPEG)")
    try:
        img = decode_file(p) if data is None else decode_bytes(data)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise InputError(field, str(p), "{name} {value!r} {reason}", reason=unreadable(e)) from None
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


def check_writable(out: Path, *also: Path) -> None:
    """The output and the files written beside it (`also`) can be written: checked before any model work.

    The nearest existing folder must take a new file (tried for real, with a temporary file removed at once:
    permission bits do not show a read-only mount, /proc or /sys), and a file that exists already must open
    for writing (an immutable or read-only file). No folder is created here."""
    if out.is_dir():
        raise InputError("out", str(out), "{name} {value!r} is a folder: give a .png file name")
    folder = out.parent
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise InputError("out", str(out), "cannot create the output folder {folder!r}: {probe!r} is a file; "
                         "choose another {name}", folder=str(folder), probe=str(probe))
    try:
        fd, tmp = tempfile.mkstemp(dir=probe, prefix=".fgat-write-test-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise InputError("out", str(out), "{name} {value!r} cannot be written: the folder {probe!r} takes no new "
                         "files ({reason}); choose another {name}", probe=str(probe), reason=e.strerror or e) from None
    for path in (out, *also):
        if path.is_file():
            try:
                with open(path, "ab"):  # opens for writing without changing a byte
                    pass
            except OSError as e:
                raise InputError("out", str(out), "the existing file {path!r} cannot be overwritten ({reason}): "
                                 "choose another {name} or make it writable", path=str(path),
                                 reason=e.strerror or e) from None


def sidecar_path(out: Path) -> Path:
    return out.with_suffix(".json")


def diagnostics_path(out: Path) -> Path:
    return out.with_name(out.stem + "-diagnostics.png")


def job_outputs(job: Job) -> dict[str, Path]:
    """Every file a job writes, by kind: the image, its sidecar and (with diagnostics) the diagnostics sheet."""
    image = output_path(job.out)
    files = {"image": image, "sidecar": sidecar_path(image)}
    if job.diagnostics:
        files["diagnostics"] = diagnostics_path(image)
    return files


def job_inputs(job: Job) -> dict[str, Path]:
    """The files a job reads, by what they are (`source`, `target`, `mask`)."""
    return {"source": job.source, "target": job.target, **({"mask": job.mask} if job.mask is not None else {})}


def file_keys(path: Path) -> set[Any]:
    """What identifies the file `path` names: its resolved path (symlinks, `..`) and, where it exists, its
    device and inode (a hard link, a case-insensitive file system). Two paths name one file when these meet."""
    keys: set[Any] = {path.resolve()}
    try:
        st = path.stat()
        keys.add((st.st_dev, st.st_ino))
    except OSError:
        pass
    return keys


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (`file_keys`)."""
    return bool(file_keys(a) & file_keys(b))


def check_outputs_spare_inputs(outputs: dict[str, Path], inputs: dict[str, Path]) -> None:
    """Refuse a job whose outputs would overwrite one of its inputs (`--out` equal to the source)."""
    for kind, out in outputs.items():
        for what, path in inputs.items():
            if same_file(out, path):
                what_out = "the output" if kind == "image" else f"the output's {kind} file"
                raise InputError("out", str(out), "{what_out} {value!r} is the {what} image {path!r}: writing it "
                                 "would overwrite that input; choose another {name}", what_out=what_out,
                                 what=what, path=str(path))


@dataclass
class JobInputs:
    """A job's input images, decoded once (as read: the sidecar's target hash is the file's), and their sizes."""

    source: Image.Image
    target: Image.Image
    mask: Image.Image | None
    mask_tokens: list[int] | None = None  # the mask word's token positions, located once by `check_job`
    target_mask_tokens: list[int] | None = None  # the target-side mask word's, likewise

    @property
    def sizes(self) -> tuple[tuple[int, int], tuple[int, int]]:
        return self.source.size, self.target.size


def decode_inputs(job: Job, blobs: dict[str, bytes] | None = None) -> JobInputs:
    """Open and decode the job's images, each once; the source and target must convert to RGB. `blobs`: the
    files' bytes by `job_inputs` kind, read elsewhere (else the files are read here)."""
    blobs = blobs or {}
    source, target = (load_image(path, f"{field} image", field, blobs.get(field))
                      for path, field in ((job.source, "source"), (job.target, "target")))
    for img, path, what in ((source, job.source, "source"), (target, job.target, "target")):
        to_rgb(img, f"{what} image {str(path)!r}")
    mask = load_image(job.mask, "mask image", "mask", blobs.get("mask")) if job.mask is not None else None
    return JobInputs(source, target, mask)


def mask_word_locator(tokenizer: Any, fields: tuple[str, str] = ("source_prompt", "mask_word")) -> Any:
    """`locate(prompt, word)` over `tokenizer` (None without one): the token positions of the mask word
    (`fields`: the inputs its errors name; `prepare.TARGET_FIELDS` for the target-side mask's word)."""
    if tokenizer is None:
        return None

    def locate(prompt: str, word: str) -> list[int]:
        return word_token_indices(prompt, word, tokenizer.tokenize, tokenizer.model_max_length, fields)
    return locate


def check_mask_word(job: Job, tokenizer: Any) -> list[int] | None:
    """The attention mask's word located in the source prompt as `tokenizer` splits it (no image is read):
    its token positions, or None when the job uses no attention mask."""
    if job.transfer and job.config.mask_source is MaskSource.ATTENTION:
        return mask_word_locator(tokenizer)(job.source_prompt, job.config.mask_word)
    return None


def check_target_word(job: Job, tokenizer: Any) -> list[int] | None:
    """The target-side mask's word located in the target prompt as `tokenizer` splits it
    (`prepare.target_object_tokens`): None when the job uses no target-side mask."""
    if not job.transfer:
        return None
    return target_object_tokens(job.config, job.target_prompt, mask_word_locator(tokenizer, TARGET_FIELDS))


def check_job(job: Job, tokenizer: Any = None, inputs: JobInputs | None = None) -> JobInputs:
    """Every check that needs no UNet call: files readable, settings consistent, outputs writable and sparing
    the inputs, and with `tokenizer` (a pipeline's, or one loaded without the weights) the mask word in the
    prompt.

    The checks shared with the other front ends are `prepare.check_request`'s. Raises InputError /
    ConfigError (ValueErrors) naming what to change; returns the decoded inputs (`inputs`, when given, are
    checked instead of decoding the files again)."""
    for name in ("source_prompt", "target_prompt", "negative_prompt"):
        check_prompt(getattr(job, name), name)
    inputs = inputs or decode_inputs(job)
    locate, found = mask_word_locator(tokenizer), []
    check_request(Request(job.config, [job.source_prompt], inputs.target, mask=inputs.mask,
                          mask_value=None if job.mask is None else str(job.mask), mask_frames=[inputs.source.size],
                          transfer=job.transfer), locate and (lambda p, w: found.append(locate(p, w))))
    outputs = job_outputs(job)
    check_outputs_spare_inputs(outputs, job_inputs(job))
    check_writable(*outputs.values())
    target = check_target_word(job, tokenizer) if tokenizer is not None else None
    return dataclasses.replace(inputs, mask_tokens=found[0] if found else None, target_mask_tokens=target)


def job_notes(job: Job, tokenizer, sizes: tuple[tuple[int, int], tuple[int, int]], multiple: int) -> list[str]:
    """Everything to say before a job runs: prompts cut off, a large source's cost, resizes that change an
    image's aspect ratio (`sizes`: the source's and the target's, as `check_job` returns them; `multiple`:
    the model's size multiple)."""
    return [*prompt_notes(job, tokenizer), *size_notes(*sizes, multiple)]


def unused_setting_notes(explicit: dict[str, Any], config: FGATConfig, name: Any) -> list[str]:
    """Notes for settings given that the run does not use (the mask word without the attention mask), each
    named by `name` (the front end's namer, e.g. `errors.flag_name`)."""
    if "mask_word" in explicit and config.mask_source != "attention":
        return [f"{name('mask_word')} is ignored: it picks the word of the attention mask, and "
                f"{name('mask_source')} is {config.mask_source!r} (use {name('mask_source')} attention to use it)"]
    return []


def prompt_notes(job: Job, tokenizer) -> list[str]:
    """Notes for prompts longer than the text encoder reads (CLIP: 75 tokens; the rest is cut off silently).

    `tokenizer`: a tokenizer, or a pipeline (its tokenizer is used)."""
    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)
    limit = tokenizer.model_max_length - 2
    notes = []
    for name, text in (("source", job.source_prompt), ("target", job.target_prompt),
                       ("negative", job.negative_prompt)):
        n = len(tokenizer.tokenize(text)) if text else 0
        if n > limit:
            notes.append(f"the {name} prompt has {n} tokens; the text encoder reads the first {limit}, the rest "
                         "is ignored")
    return notes


def run_job(
    pipe: FGATPipeline, job: Job, *, cache=None, progress: Progress | None = None, inputs: JobInputs | None = None,
) -> JobResult:
    """Run one job and write its PNG (with settings), JSON sidecar and, if asked, diagnostics sheet.

    `inputs`: the images `check_job` decoded and the mask word's positions it located (else the files are
    read and the word located here)."""
    result = render_job(pipe, job, cache=cache, progress=progress, inputs=inputs)
    write_job_files(result.data)
    return result


def write_job_files(data: dict[Path, bytes]) -> None:
    """Write a job's files (`JobResult.data`) atomically, in order: the sidecar, last, marks the job done."""
    for path, blob in data.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, lambda f, blob=blob: f.write(blob))


def render_job(
    pipe: FGATPipeline, job: Job, *, cache=None, progress: Progress | None = None, inputs: JobInputs | None = None,
) -> JobResult:
    """Run one job and encode its files without writing them (`JobResult.data`: path -> bytes): the PNG with
    its settings, the diagnostics sheet if asked, the JSON sidecar. `run_job` writes them; a Ray actor hands
    them to the driver, which writes them."""
    inputs = inputs or decode_inputs(job)
    source, target, mask = inputs.source, inputs.target, inputs.mask
    hits0, misses0 = (cache.hits, cache.misses) if cache is not None else (0, 0)
    out = pipe.transfer(
        source, target, job.source_prompt, job.target_prompt, job.config,
        negative_prompt=job.negative_prompt, mask=mask, progress=progress, transfer=job.transfer, cache=cache,
        mask_tokens=inputs.mask_tokens, target_mask_tokens=inputs.target_mask_tokens,
    )
    timings = dict(out.timings)
    t0 = time.perf_counter()
    files = {"image": output_path(job.out)}
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
    data = {files["image"]: png_bytes(out.image, parameters, value)}
    timings["save"] = time.perf_counter() - t0
    if job.diagnostics:
        t1 = time.perf_counter()
        files["diagnostics"] = diagnostics_path(files["image"])
        data[files["diagnostics"]] = diagnostics_png(pipe, job, out, parameters, value)
        timings["diagnostics"] = time.perf_counter() - t1
    cache_info = None
    if cache is not None:
        cache_info = {"hits": cache.hits - hits0, "misses": cache.misses - misses0}
    files["sidecar"] = sidecar_path(files["image"])
    record = sidecar_record(job, out, pipe, value, parameters, timings, files, cache_info)
    data[files["sidecar"]] = (json.dumps(record, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    return JobResult(job, out, files, timings, record, data)


def diagnostics_png(pipe: FGATPipeline, job: Job, out: TransferOutput, parameters: str, value: str) -> bytes:
    """The diagnostics sheet as PNG bytes, captioned with the prompts and the mask's coverage, its PNG text holding the
    run's settings (as the result's)."""
    from fgat_core.diagnostics import diagnostics_sheet, mask_summary

    res = out.result
    caption = [f"source prompt: {job.source_prompt}", f"target prompt: {job.target_prompt}",
               mask_summary(res.mask, job.config, job.transfer)]
    if job.preset:
        caption.append(f"preset: {job.preset}")
    sheet = diagnostics_sheet(
        out.source, out.target, out.image, res.mask, res.correspondence, res.x0_window, res.window,
        decode=lambda z: pipe.decode(z.to(pipe.device)), caption=caption,
    )
    return png_bytes(sheet, parameters, value)


def sidecar_record(
    job: Job, out: TransferOutput, pipe: FGATPipeline, value: str, parameters: str,
    timings: dict[str, float], files: dict[str, Path], cache_info: dict[str, int] | None,
) -> dict[str, Any]:
    """Everything about a run, JSON-ready: inputs, prompts, model, settings, timings, UNet calls, messages."""
    from fgat_core import __version__
    from fgat_core.diagnostics import mask_coverage

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
        "preset": job.preset,
        "config": job.config.to_dict(),
        "mask_coverage": mask_coverage(res.mask),
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


def out_of_memory_message(err: BaseException, size: tuple[int, int] | None, device: str, dtype: str) -> str | None:
    """What to say when `err` is an out-of-memory error (CUDA's, the CPU allocator's, Python's MemoryError,
    an MPS or ROCm allocator's), naming the size that ran out and what to do; None for other errors."""
    text = str(err)
    lowered = text.lower()
    oom = isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError" or any(
        s in lowered for s in ("out of memory", "can't allocate memory", "cannot allocate memory",
                               "failed to allocate", "not enough memory", "bad_alloc"))
    if not oom:
        return None
    wanted = re.search(r"(?:tried to allocate|allocate)\s+([\d.]+)\s*(bytes|[KMGT]i?B)", text, re.I)
    amount = ""
    if wanted:
        number, unit = float(wanted.group(1)), wanted.group(2)
        gib = number / 2**30 if unit.lower() == "bytes" else number / {"k": 2**20, "m": 2**10, "g": 1, "t": 2**-10}[
            unit[0].lower()]
        amount = f" (one allocation asked for {gib:.2f} GiB)"
    at = f" at {size[0]}x{size[1]} px" if size else ""
    advice = ("downscale the source and target (each halving of the sides needs about 4x less memory)"
              + (", or use --dtype fp16 on a GPU" if dtype == "float32" and device.startswith("cuda") else "")
              + (", or --device cpu (slower, but the machine's RAM)" if device.startswith("cuda") else "")
              + (", or close other programs / raise the memory limit" if device == "cpu" else ""))
    return f"out of memory on {device} ({dtype}){at}{amount}: {advice}"
