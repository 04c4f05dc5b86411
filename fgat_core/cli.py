"""`python -m fgat_core`: transfer one pair, run a batch of pairs, list presets.

Exit codes: 0 done, 2 bad input (the message says what to change), 1 a failure while running,
130 interrupted."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from .config import CHOICES, FGATConfig

FIELD_HELP = {
    "delta": "transfer weight (delta, Eq. 3)",
    "lam": "balance between x_t and the deviated x'_t (lambda, Eq. 6)",
    "gamma": "mix of eps(x_t) and eps(x'_t) (gamma, Eq. 7)",
    "window_start": "window start as a fraction of the steps (first window step = ceil(f * steps))",
    "window_end": "window end as a fraction of the steps (the window stops before ceil(f * steps))",
    "steps": "DDIM steps",
    "guidance_scale": "classifier-free guidance scale",
    "inversion": "how the source is inverted",
    "matching": "progressive: DIFT matching at every window step; initial: once, on the clean images",
    "mask_source": "attention: cross-attention of the mask word; user: the --mask image; none: whole image",
    "mask_word": "source-prompt word the attention mask follows (default: the prompt's last word)",
    "mask_threshold": "attention mask threshold, after dividing the map by its maximum",
    "dift_timestep": "timestep of the DIFT features",
    "dift_ensemble": "DIFT noise draws averaged per feature map",
    "gamma_on": "guided: mix the guided noise; uncond: mix only the unconditional branch",
    "seed": "seed of the DIFT noise",
    "mask_layers": "attention layers averaged for the mask: quarter (1/4 latent size) or all",
    "mask_dilate": "latent pixels of mask dilation",
    "dift_prompt": "DIFT conditioning: each image's own prompt, or the empty prompt",
    "null_text_steps": "null-text inversion: Adam iterations per step",
    "null_text_lr": "null-text inversion: learning rate",
    "null_text_epsilon": "null-text inversion: early-stop loss",
    "match_chunk": "source positions per chunk of the similarity matrix (bounds its memory)",
}
_PY_TYPES = {"float": float, "int": int, "str": str}


def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def cli_message(message: str) -> str:
    """Config errors name the flag: `FGATConfig.window_end` -> `--window-end`."""
    return re.sub(r"FGATConfig\.(\w+)", lambda m: flag_name(m.group(1)), message)


def presets_folder() -> Path:
    """User presets live in $FGAT_PRESETS_DIR, else ~/.config/fgat (the file presets.json)."""
    env = os.environ.get("FGAT_PRESETS_DIR")
    return Path(env).expanduser() if env else Path.home() / ".config" / "fgat"


# ---------------------------------------------------------------------------------------------- parser
def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per FGATConfig field (default: not given, so presets and files can fill it in)."""
    group = parser.add_argument_group("FGAT settings (defaults < --preset < these flags)")
    defaults = FGATConfig()
    for f in fields(FGATConfig):
        kind = _PY_TYPES[str(f.type)]
        default = getattr(defaults, f.name)
        group.add_argument(
            flag_name(f.name), dest=f"cfg_{f.name}", type=kind, default=None, choices=CHOICES.get(f.name),
            metavar=None if f.name in CHOICES else {"float": "X", "int": "N", "str": "TEXT"}[str(f.type)],
            help=f"{FIELD_HELP.get(f.name, f.name)} (default: {default!r})",
        )


def explicit_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The FGAT settings given on the command line."""
    out = {}
    for f in fields(FGATConfig):
        v = getattr(args, f"cfg_{f.name}", None)
        if v is not None:
            out[f.name] = v
    return out


def _add_model_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="a .safetensors checkpoint, a diffusers folder or a hub id "
                   "(default: $FGAT_MODEL, else the bundled tiny demo model)")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when present, else cpu)")
    p.add_argument("--dtype", choices=("fp16", "bf16", "fp32"), help="default: fp16 on CUDA, fp32 on CPU")
    p.add_argument("--prediction-type", choices=("epsilon", "v_prediction"),
                   help="override the detected prediction type of the model (default: detected; "
                   "$FGAT_PREDICTION_TYPE)")
    p.add_argument("--preset", help="start from this preset (see `python -m fgat_core presets`)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fgat_core",
        description="Fine-grained Appearance Transfer (Ye et al.): give the source image the target "
        "image's fine-grained appearance.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser("transfer", help="transfer the appearance of one target onto one source",
                       description="Transfer the target image's appearance onto the source image.")
    t.add_argument("--source", required=True, help="the image whose structure is kept")
    t.add_argument("--target", required=True, help="the image whose appearance is taken")
    t.add_argument("--source-prompt", required=True, help="a prompt describing the source image")
    t.add_argument("--target-prompt", help="a prompt describing the target image (default: the source prompt)")
    t.add_argument("--negative-prompt", default="", help="negative prompt for sampling (default: empty)")
    t.add_argument("--mask", help="mask image, white = transfer (implies --mask-source user)")
    t.add_argument("--out", default=None, help="output PNG (default: outputs/<source name>-fgat.png); "
                   "the settings go into its text chunk and <out>.json")
    t.add_argument("--diagnostics", action="store_true",
                   help="also write <out>-diagnostics.png: mask, matching and x0 across the window")
    t.add_argument("--no-transfer", action="store_true",
                   help="reconstruct the source along the same path, without transfer (a reference)")
    _add_model_flags(t)
    add_config_flags(t)

    b = sub.add_parser("batch", help="run many pairs from a CSV or YAML file, inverting each image once",
                       description="Run the pairs listed in a CSV or YAML file (the README documents the format).")
    b.add_argument("--pairs", required=True, help="CSV or YAML file of pairs")
    b.add_argument("--out-dir", default=None, help="folder for the results (default: outputs/<pairs file name>)")
    b.add_argument("--diagnostics", action="store_true", help="write a diagnostics sheet per pair")
    b.add_argument("--cache-size", type=int, default=64, help="inversions kept in memory (default: 64)")
    _add_model_flags(b)
    add_config_flags(b)

    p = sub.add_parser("presets", help="list presets, or show one", description="List the presets.")
    p.add_argument("--show", metavar="NAME", help="print this preset's settings as JSON")
    return parser


# ---------------------------------------------------------------------------------------------- commands
def base_config(preset: str | None, settings: dict[str, Any]) -> FGATConfig:
    """Defaults < preset < explicit settings."""
    cfg = FGATConfig()
    if preset:
        from .presets import PresetStore

        cfg = PresetStore(presets_folder()).get(preset)
    return cfg.replace(**settings) if settings else cfg


def _load(args: argparse.Namespace):
    from .loading import load_pipeline, pick_device

    pick_device(args.device, args.dtype)  # a bad device or dtype fails here, before loading anything
    return load_pipeline(args.model, args.device, args.dtype, prediction_type=args.prediction_type)


def cmd_transfer(args: argparse.Namespace) -> int:
    from .runner import Job, StageBars, check_job, output_path, prompt_notes, run_job, timing_summary

    settings = explicit_settings(args)
    if args.mask and "mask_source" not in settings:
        settings["mask_source"] = "user"
    cfg = base_config(args.preset, settings)
    source = Path(args.source)
    out = output_path(args.out or Path("outputs") / f"{source.stem}-fgat.png", source)
    job = Job(
        source=source, target=Path(args.target), source_prompt=args.source_prompt,
        target_prompt=args.source_prompt if args.target_prompt is None else args.target_prompt,
        config=cfg, out=out, negative_prompt=args.negative_prompt,
        mask=Path(args.mask) if args.mask else None, transfer=not args.no_transfer, diagnostics=args.diagnostics,
    )
    check_job(job)  # files and settings, before the (slow) model load
    pipe = _load(args)
    check_job(job, pipe)
    for note in prompt_notes(job, pipe):
        print(f"note: {note}", file=sys.stderr)
    bars = StageBars(enabled=not args.quiet)
    try:
        result = run_job(pipe, job, progress=bars)
    finally:
        bars.close()
    for m in result.output.messages:
        print(f"note: {m}", file=sys.stderr)
    start, end = result.output.result.window
    w, h = result.output.source.size
    print(f"FGAT: {pipe.name}, {w}x{h}, {cfg.steps} steps, window {start}-{end - 1}, {cfg.inversion} inversion")
    print(timing_summary(result))
    for kind, path in result.files.items():
        print(f"wrote {kind}: {path}")
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from .batch import read_pairs, run_batch

    if args.cache_size < 1:
        raise ValueError(f"--cache-size must be at least 1 (got {args.cache_size}): it is how many inversions "
                         "are kept in memory")
    settings = explicit_settings(args)
    pairs_path = Path(args.pairs)
    out_dir = Path(args.out_dir) if args.out_dir else Path("outputs") / pairs_path.stem
    jobs = read_pairs(pairs_path, out_dir, preset=args.preset, settings=settings, diagnostics=args.diagnostics,
                      presets_folder=presets_folder())
    pipe = _load(args)
    return run_batch(pipe, jobs, out_dir, cache_size=args.cache_size, progress_bars=not args.quiet)


def cmd_presets(args: argparse.Namespace) -> int:
    from .presets import BUILTIN, PresetStore

    store = PresetStore(presets_folder())
    if args.show:
        print(json.dumps(store.get(args.show).to_dict(), indent=2))
    else:
        for name in store.names():
            print(f"{name}{'  (built-in)' if name in BUILTIN else ''}")
    for e in store.errors:
        print(f"warning: {e}", file=sys.stderr)
    return 0


COMMANDS = {"transfer": cmd_transfer, "batch": cmd_batch, "presets": cmd_presets}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    from .engine import FGATInterrupted

    try:
        return COMMANDS[args.command](args)
    except ValueError as e:
        print(f"error: {cli_message(str(e))}", file=sys.stderr)
        return 2
    except NotImplementedError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, FGATInterrupted):
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as e:  # a file that cannot be written, a full disk
        print(f"error: {e}", file=sys.stderr)
        return 1
    except RuntimeError as e:
        if "out of memory" in str(e).lower():
            print("error: out of memory: use smaller images, --dtype fp16 on a GPU, or --device cpu",
                  file=sys.stderr)
            return 1
        raise
