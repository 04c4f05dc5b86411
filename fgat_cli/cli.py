"""`python -m fgat_cli`: transfer one pair, run a batch of pairs, list, show and save presets.

Exit codes: 0 done, 2 bad input (the message says what to change), 1 a failure while running,
130 interrupted."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from fgat_core.config import FGATConfig
from fgat_core.errors import flag_name, render_error
from fgat_core.settings import SETTINGS, MaskSource, Setting


def cli_message(err: BaseException | str) -> str:
    """An error in the command line's words: typed errors name the flags (`--window-end`, `--source`)."""
    return err if isinstance(err, str) else render_error(err, flag_name)


class ShortErrorParser(argparse.ArgumentParser):
    """Argument errors in one line plus a pointer to --help, not argparse's usage block of every flag."""

    def error(self, message: str):  # noqa: D102 (argparse's hook)
        self.exit(2, f"error: {message}\n(`{self.prog} --help` lists the options)\n")


def presets_folder() -> Path:
    """User presets live in $FGAT_PRESETS_DIR, else ~/.config/fgat (the file presets.json)."""
    env = os.environ.get("FGAT_PRESETS_DIR")
    return Path(env).expanduser() if env else Path.home() / ".config" / "fgat"


# ---------------------------------------------------------------------------------------------- parser
def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per setting of `fgat_core.settings.SETTINGS` (default: not given, so presets and files can
    fill it in)."""
    group = parser.add_argument_group("FGAT settings (defaults < --preset < these flags)")
    for s in SETTINGS:
        group.add_argument(s.flag, dest=f"cfg_{s.name}", type=_flag_type(s), default=None,
                           choices=s.choices or None, metavar=None if s.choices else _METAVARS[s.kind],
                           help=f"{s.help} (default: {_plain_default(s)!r})")


_METAVARS = {float: "X", int: "N", str: "TEXT"}


def _flag_type(setting: Setting) -> type:
    """What argparse converts a flag's text to: the number types, text for words and choices."""
    return setting.kind if setting.kind in (float, int) else str


def _plain_default(setting: Setting) -> Any:
    return str(setting.default) if setting.choices else setting.default


def explicit_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The FGAT settings given on the command line."""
    out = {}
    for s in SETTINGS:
        v = getattr(args, f"cfg_{s.name}", None)
        if v is not None:
            out[s.name] = v
    return out


def _add_model_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="a .safetensors checkpoint, a diffusers folder or a hub id "
                   "(default: $FGAT_MODEL, else the bundled tiny demo model)")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when present, else cpu)")
    p.add_argument("--dtype", choices=("fp16", "bf16", "fp32"), help="default: fp16 on CUDA, fp32 on CPU")
    p.add_argument("--prediction-type", choices=("epsilon", "v_prediction"),
                   help="override the detected prediction type of the model (default: detected; "
                   "$FGAT_PREDICTION_TYPE)")
    p.add_argument("--preset", help="start from this preset (see `python -m fgat_cli presets`)")
    p.add_argument("--quiet", action="store_true", help="no progress bars, model-loading lines or library warnings")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads torch may use (default: torch's, one "
                   "per core; on a busy or shared machine --threads 1 or 2 can be many times faster)")


def _add_ray_flags(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("Ray (pip install \"fgat[ray]\"): the rows on a pool of actors, each holding the "
                                 "model once; see docs/cli.md")
    group.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                       help="run the rows on Ray: alone, a local Ray started for this batch; with ADDRESS, the "
                       "cluster there ('auto', or ray://HOST:10001). A rerun skips the rows already done")
    group.add_argument("--actors", type=int, metavar="N", help="with --ray: actors, each loading the model once "
                       "(default: one per --gpus-per-actor GPUs of the cluster, else 1)")
    group.add_argument("--gpus-per-actor", type=float, metavar="X", help="with --ray: GPUs per actor, 0.5 puts two "
                       "on a GPU (default: 1 where the cluster has GPUs, else 0: CPU)")
    group.add_argument("--cpus-per-actor", type=float, metavar="X", help="with --ray: CPUs per actor (default: 1)")
    group.add_argument("--no-resume", action="store_true", help="with --ray: run every row again, also those an "
                       "earlier run finished")


def build_parser() -> argparse.ArgumentParser:
    parser = ShortErrorParser(
        prog="python -m fgat_cli",
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
                       description="Run the pairs listed in a CSV or YAML file (docs/cli.md documents the format).")
    b.add_argument("--pairs", required=True, help="CSV or YAML file of pairs")
    b.add_argument("--out-dir", default=None, help="folder for the results (default: outputs/<pairs file name>)")
    b.add_argument("--diagnostics", action="store_true", help="write a diagnostics sheet per pair")
    b.add_argument("--cache-size", type=int, default=64, help="inversions kept in memory (default: 64)")
    _add_ray_flags(b)
    _add_model_flags(b)
    add_config_flags(b)

    p = sub.add_parser("presets", help="list presets, show one, or save settings as one",
                       description="List the presets, show one, or save settings as a preset: those of a run "
                       "(--from its PNG or JSON sidecar) and/or the setting flags given (defaults < --preset < "
                       "--from < flags). Names are case-insensitive.")
    p.add_argument("--show", metavar="NAME", help="print this preset's settings as JSON")
    p.add_argument("--save", metavar="NAME", help="save settings as the user preset NAME (replacing one so named)")
    p.add_argument("--from", dest="from_run", metavar="FILE",
                   help="with --save: the settings of a run, read from its result PNG or JSON sidecar")
    p.add_argument("--preset", help="with --save: start from this preset")
    add_config_flags(p)
    return parser


# ---------------------------------------------------------------------------------------------- commands
def base_config(preset: str | None, settings: dict[str, Any]) -> FGATConfig:
    """Defaults < preset < explicit settings."""
    cfg = FGATConfig()
    if preset:
        from fgat_core.presets import PresetStore

        cfg = PresetStore(presets_folder()).get(preset)
    return cfg.replace(**settings) if settings else cfg


class RunFailure(Exception):
    """A failure while running that the user can act on (out of memory): exit 1 with its message."""


def model_spec(args: argparse.Namespace) -> tuple[str | None, bool]:
    """The model to load (--model, else $FGAT_MODEL, else None: the demo model) and whether it came from
    FGAT_MODEL. A FGAT_MODEL that names no file, folder or hub id is refused here, naming the variable."""
    from .loading import is_hub_id

    if args.model:
        return args.model, False
    raw = os.environ.get("FGAT_MODEL", "")
    env = raw.strip()
    if raw and not env:
        raise ValueError(f"the environment variable FGAT_MODEL is {raw!r} (only spaces): unset it for the demo "
                         "model, or set it to a .safetensors checkpoint, a diffusers folder or a hub id")
    if not env:
        return None, False
    if not Path(env).expanduser().exists() and not is_hub_id(env):
        raise ValueError(f"the environment variable FGAT_MODEL is {env!r}, which is neither an existing file or "
                         "folder nor a Hugging Face hub id (owner/name): set FGAT_MODEL to a .safetensors "
                         "checkpoint, a diffusers folder or a hub id, unset it for the demo model, or pass --model")
    return env, True


def _load(args: argparse.Namespace):
    """Load the model, saying so on stderr (a real checkpoint takes a while), with FGAT_MODEL named in errors."""
    from .loading import load_pipeline, pick_device

    model, from_env = model_spec(args)
    pick_device(args.device, args.dtype)  # a bad device or dtype fails here, before loading anything
    if args.quiet:
        quiet_libraries()
    say = (lambda text: None) if args.quiet else (lambda text: print(text, file=sys.stderr, flush=True))
    say(f"loading the model {model} ..." if model else "building the demo model ...")
    t0 = time.perf_counter()
    try:
        pipe = load_pipeline(model, args.device, args.dtype, prediction_type=args.prediction_type)
    except ValueError as e:
        if from_env:
            raise ValueError(f"FGAT_MODEL ({model!r}, from the environment): {e}") from None
        raise
    say(f"model ready: {pipe.name} on {pipe.device} ({str(pipe.dtype).replace('torch.', '')}) "
        f"in {time.perf_counter() - t0:.1f} s")
    return pipe


def quiet_libraries() -> None:
    """--quiet: diffusers' and transformers' warnings and loading bars off (errors still reach the user)."""
    import diffusers.utils.logging as diffusers_logging
    import transformers.utils.logging as transformers_logging

    for lib in (diffusers_logging, transformers_logging):
        lib.set_verbosity_error()
        lib.disable_progress_bar()
    try:  # the hub's download bars (a hub id)
        from huggingface_hub.utils import disable_progress_bars
    except ImportError:
        return
    disable_progress_bars()


def set_threads(threads: int | None) -> None:
    """--threads N: torch's CPU threads (intra-op; inter-op too where torch still allows it)."""
    if threads is None:
        return
    if threads < 1:
        raise ValueError(f"--threads must be at least 1 (got {threads}): the number of CPU threads torch uses")
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # only settable before torch's first parallel work
        pass


def _transfer_job(args: argparse.Namespace):
    from .runner import Job, output_path

    settings = explicit_settings(args)
    if args.mask and "mask_source" not in settings:
        settings["mask_source"] = MaskSource.USER
    cfg = base_config(args.preset, settings)
    source = Path(args.source)
    if args.out is not None and not args.out.strip():
        raise ValueError("--out is empty: give a .png file name (e.g. --out result.png) or a folder ending in '/', "
                         "or leave --out out for outputs/<source name>-fgat.png")
    out = output_path(args.out or Path("outputs") / f"{source.stem}-fgat.png", source)
    return Job(
        source=source, target=Path(args.target), source_prompt=args.source_prompt,
        target_prompt=args.source_prompt if args.target_prompt is None else args.target_prompt,
        config=cfg, out=out, negative_prompt=args.negative_prompt, mask=Path(args.mask) if args.mask else None,
        transfer=not args.no_transfer, diagnostics=args.diagnostics, preset=args.preset,
    )


def cmd_transfer(args: argparse.Namespace) -> int:
    from .progress import StageBars
    from .runner import (
        check_job,
        check_mask_word,
        check_target_word,
        job_notes,
        out_of_memory_message,
        run_job,
        timing_summary,
        unused_setting_notes,
    )

    model, _ = model_spec(args)
    job = _transfer_job(args)
    from .loading import tokenizer_without_weights

    tokenizer = tokenizer_without_weights(model)
    # files (decoded once, here), settings, outputs and mask word, before the (slow) model load
    inputs = check_job(job, tokenizer)
    pipe = _load(args)
    if tokenizer is None:  # no tokenizer before the load (a hub id): the word is located with the model's
        inputs = dataclasses.replace(inputs, mask_tokens=check_mask_word(job, pipe.tokenizer),
                                     target_mask_tokens=check_target_word(job, pipe.tokenizer))
    for note in [*job_notes(job, pipe.tokenizer, inputs.sizes, pipe.size_multiple),
                 *unused_setting_notes(explicit_settings(args), job.config, flag_name)]:
        print(f"note: {note}", file=sys.stderr)
    bars = StageBars(enabled=not args.quiet)
    try:
        result = run_job(pipe, job, progress=bars, inputs=inputs)
    except (RuntimeError, MemoryError) as e:
        message = out_of_memory_message(e, inputs.sizes[0], str(pipe.device),
                                        str(pipe.dtype).replace("torch.", ""))
        if message is None:
            raise
        raise RunFailure(message) from None
    finally:
        bars.close()
    for m in result.output.messages:
        print(f"note: {m}", file=sys.stderr)
    start, end = result.output.result.window
    w, h = result.output.source.size
    cfg = job.config
    print(f"FGAT: {pipe.name}, {w}x{h}, {cfg.steps} steps, window {start}-{end - 1}, {cfg.inversion} inversion")
    print(timing_summary(result))
    for kind, path in result.files.items():
        print(f"wrote {kind}: {path}")
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from .batch import read_pairs, run_batch
    from .loading import tokenizer_without_weights
    from .runner import unused_setting_notes

    if args.cache_size < 1:
        raise ValueError(f"--cache-size must be at least 1 (got {args.cache_size}): it is how many inversions "
                         "are kept in memory")
    ray_options = _ray_options(args)
    model, _ = model_spec(args)
    settings = explicit_settings(args)
    pairs_path = Path(args.pairs)
    out_dir = Path(args.out_dir) if args.out_dir else Path("outputs") / pairs_path.stem
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out-dir {str(out_dir)!r} is a file: give a folder for the results (it is created if "
                         "missing)")
    # every row's problems in one pass, the mask words included (the model's tokenizer, without its weights)
    jobs = read_pairs(pairs_path, out_dir, preset=args.preset, settings=settings, diagnostics=args.diagnostics,
                      presets_folder=presets_folder(), tokenizer=tokenizer_without_weights(model))
    for where, job in jobs:
        for note in unused_setting_notes(settings, job.config, flag_name):
            print(f"{where}: note: {note}", file=sys.stderr)
    if ray_options is not None:
        from .ray_batch import PoolFailure, run_ray_batch

        try:
            return run_ray_batch(_loader(args), jobs, out_dir, ray_options, cache_size=args.cache_size,
                                 progress_bars=not args.quiet, threads=args.threads)
        except PoolFailure as e:
            raise RunFailure(str(e)) from None
    pipe = _load(args)
    return run_batch(pipe, jobs, out_dir, cache_size=args.cache_size, progress_bars=not args.quiet)


def _ray_options(args: argparse.Namespace):
    """--ray and its options as `ray_batch.RayOptions` (None without --ray); Ray's absence is reported here,
    before the pairs file is read."""
    flags = {"--actors": args.actors, "--gpus-per-actor": args.gpus_per_actor, "--cpus-per-actor": args.cpus_per_actor,
             "--no-resume": args.no_resume or None}
    if args.ray is None:
        given = [flag for flag, value in flags.items() if value is not None]
        if given:
            raise ValueError(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} for a batch on Ray: add --ray")
        return None
    from .ray_batch import RayOptions, import_ray

    import_ray()
    options = RayOptions(address=args.ray.strip() or None, actors=args.actors, gpus_per_actor=args.gpus_per_actor,
                         cpus_per_actor=1.0 if args.cpus_per_actor is None else args.cpus_per_actor,
                         resume=not args.no_resume)
    options.check()
    return options


def _loader(args: argparse.Namespace):
    """What each Ray actor calls to load the model: `load_pipeline` with the resolved model and the flags."""
    import functools

    from .loading import load_pipeline

    model, _ = model_spec(args)
    return functools.partial(load_pipeline, model, args.device, args.dtype, prediction_type=args.prediction_type)


def settings_to_save(args: argparse.Namespace) -> FGATConfig:
    """`presets --save`: defaults < --preset < the run's settings (--from PNG or sidecar) < setting flags."""
    cfg = base_config(args.preset, {})
    if args.from_run:
        cfg = run_settings(Path(args.from_run))
    settings = explicit_settings(args)
    return cfg.replace(**settings) if settings else cfg


def run_settings(path: Path) -> FGATConfig:
    """The settings a run recorded: its result PNG's text chunks, or its JSON sidecar's `config`."""
    from .pnginfo import read_png_settings

    if not path.is_file():
        raise ValueError(f"--from {str(path)!r} does not exist: give a result PNG or its .json sidecar")
    if path.suffix.lower() == ".json":
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"--from {str(path)!r} cannot be read as a JSON sidecar ({e})") from None
        if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
            raise ValueError(f"--from {str(path)!r} is not a FGAT sidecar: it has no 'config' object")
        return _recorded(path, lambda: FGATConfig.from_dict(record["config"]))
    return _recorded(path, lambda: read_png_settings(path)[0])


def _recorded(path: Path, read) -> FGATConfig:
    """The settings `read()` finds in a run's file; a setting out of range is the file's, not a flag's."""
    from fgat_core.errors import ConfigError, plain_name

    try:
        return read()
    except ConfigError as e:
        raise ValueError(f"--from {str(path)!r} records a setting FGAT cannot use: {e.render(plain_name)}; fix "
                         "that entry in the file, or save without --from") from None


def cmd_presets(args: argparse.Namespace) -> int:
    from fgat_core.presets import BUILTIN, PresetStore

    store = PresetStore(presets_folder())
    if args.save is not None:
        given = args.from_run or args.preset or explicit_settings(args)
        replaced = store.save(args.save, settings_to_save(args))
        print(f"{'replaced' if replaced else 'saved'} preset {args.save.strip()!r} in {store.path}"
              + ("" if given else " (the default settings: no --from, --preset or setting flags were given)"))
    elif args.from_run or args.preset or explicit_settings(args):
        raise ValueError("--from, --preset and the setting flags are for --save NAME: add it to save them")
    elif args.show:
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
        print("error: give a command: transfer, batch or presets (`python -m fgat_cli --help` describes them)",
              file=sys.stderr)
        return 2
    from fgat_core.engine import FGATInterrupted

    try:
        set_threads(getattr(args, "threads", None))
        return COMMANDS[args.command](args)
    except (ValueError, NotImplementedError) as e:
        print(f"error: {cli_message(e)}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, FGATInterrupted):
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except RunFailure as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (OSError, RuntimeError, MemoryError) as e:  # a file that cannot be written, a full disk; memory
        return _failure(e, args)


def _failure(err: BaseException, args: argparse.Namespace) -> int:
    """Exit 1 with one line for an OS error or an out-of-memory anywhere (the model load included); other
    errors are bugs and keep their traceback."""
    from .runner import out_of_memory_message

    if isinstance(err, OSError):
        print(f"error: {err}", file=sys.stderr)
        return 1
    device = getattr(args, "device", None) or "the device"
    message = out_of_memory_message(err, None, device, getattr(args, "dtype", None) or "default dtype")
    if message is None:
        raise err
    print(f"error: {message}", file=sys.stderr)
    return 1
