"""`python -m fgat_cli batch`: many pairs from a CSV or YAML file, each distinct inversion done once.

A row names `source`, `target`, `source_prompt` and optionally `target_prompt` (default: the source
prompt), `negative_prompt`, `mask`, `out`, `preset`, `transfer` and any FGATConfig field (`delta`,
`window_end`, ...; dashes or underscores). Empty CSV cells are "not set". A YAML file is a list of rows,
or `{defaults: {...}, pairs: [...]}`. Paths are relative to the pairs file; `out` to the output folder.

Settings, lowest first: FGATConfig defaults < preset (the row's, the file defaults', or --preset) <
the file's `defaults` < command-line flags < the row's own columns."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fgat_core.atomic import write_text_atomic
from fgat_core.cache import InversionCache
from fgat_core.config import FGATConfig
from fgat_core.errors import INPUT_WORDS, ConfigError, InputError, plain_name
from fgat_core.prepare import LENIENT_BOOLS, parse_bool, parse_number, parse_text
from fgat_core.settings import SETTING, MaskSource

from .pipeline import FGATPipeline
from .progress import StageBars
from .runner import (
    Job,
    check_job,
    check_mask_word,
    check_target_word,
    decode_inputs,
    file_keys,
    job_inputs,
    job_notes,
    job_outputs,
    out_of_memory_message,
    output_path,
    render_job,
    write_job_files,
)

JOB_KEYS = ("source", "target", "source_prompt", "target_prompt", "negative_prompt", "mask", "out", "preset",
            "transfer")
KNOWN_KEYS = (*JOB_KEYS, *SETTING)
SUMMARY = "batch.json"  # the batch's summary, in the output folder
MAX_YAML_NODES = 100_000  # values a YAML pairs file may stand for, its aliases expanded (10,000 rows of 10)
MESSAGE_CHARS = 400  # a row's message is cut here


def _key(name: Any) -> str:
    return str(name).strip().lower().replace("-", "_").replace(" ", "_")


def _is_unset(v: Any) -> bool:
    return v is None or (isinstance(v, str) and v.strip() == "")


def parse_setting(name: str, value: Any) -> Any:
    """A CSV cell or YAML value for an FGATConfig field, as the field's type (`prepare`'s value parsers)."""
    kind = SETTING[name].kind
    if kind not in (float, int):  # text and choices (FGATConfig checks the choice)
        return parse_text(value, name).strip()
    return parse_number(value, name, integer=kind is int)


def _normalise(row: Any, where: str) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise ValueError(f"{where}: a row must be a mapping of column names to values, got {type(row).__name__}")
    out: dict[str, Any] = {}
    for k, v in row.items():
        if k is None:  # csv.DictReader puts extra cells under None
            if any(not _is_unset(x) for x in v):
                raise ValueError(f"{where}: the row has more cells than the header has columns")
            continue
        key = _key(k)
        if key not in KNOWN_KEYS:
            raise ValueError(f"{where}: unknown column {k!r}; known columns: {', '.join(KNOWN_KEYS)}")
        if not _is_unset(v):
            out[key] = v
    return out


def read_rows(path: Path) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, Any], list[str]]:
    """(label, row) pairs, the file-wide defaults (keys normalised; empty cells dropped) and the rows'
    problems, each labelled with its line; a file that cannot be read as a whole raises ValueError."""
    if not path.exists():
        raise ValueError(f"the pairs file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"the pairs file {str(path)!r} cannot be read ({e})") from None
    if suffix == ".csv":
        raw_rows, defaults = _csv_rows(path, text), {}
    elif suffix in (".yaml", ".yml"):
        raw_rows, defaults = _yaml_rows(path, text)
    else:
        raise ValueError(f"the pairs file {path.name} must be .csv, .yaml or .yml")
    if not raw_rows:
        raise ValueError(f"the pairs file {path.name} lists no pairs")
    rows, errors = [], []
    for where, raw in raw_rows:
        try:
            rows.append((where, _normalise(raw, where)))
        except ValueError as e:
            errors.append(clip(str(e)))
    return rows, defaults, errors


def _csv_rows(path: Path, text: str) -> list[tuple[str, Any]]:
    lines = text.splitlines()
    skipped = 0
    while skipped < len(lines) and (not lines[skipped].strip() or lines[skipped].lstrip().startswith("#")):
        skipped += 1  # comments and blank lines above the header
    reader = csv.DictReader(lines[skipped:])
    if not reader.fieldnames:
        raise ValueError(f"the pairs file {path.name} is empty: it needs a header row (source,target,...)")
    names = [n.strip() for n in reader.fieldnames]
    for sep, called in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars")):
        if len(names) == 1 and sep in names[0]:  # a spreadsheet's export in a locale with decimal commas
            raise ValueError(f"the pairs file {path.name} separates its columns with {called} ({clip(names[0], 80)!r})"
                             ": separate them with commas (in a spreadsheet: export as CSV with ',' as the "
                             "delimiter), or write a .yaml pairs file")
    twice = sorted({n for n in names if n and names.count(n) > 1})
    if twice:
        raise ValueError(f"the pairs file {path.name} names the column(s) {', '.join(twice)} twice in its "
                         "header: keep one of each")
    rows = []
    for raw in reader:
        first = next(iter(raw.values()), "") or ""
        if all(_is_unset(v) for k, v in raw.items() if k is not None) or str(first).lstrip().startswith("#"):
            continue
        rows.append((f"{path.name} line {reader.line_num + skipped}", raw))
    return rows


def _yaml_rows(path: Path, text: str) -> tuple[list[tuple[str, Any]], dict[str, Any]]:
    """A YAML pairs file's rows, each labelled with the line it starts on, and its defaults."""
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        try:
            expanded = expanded_size(node)
        except ValueError as e:
            raise ValueError(f"the pairs file {path.name} {e}: a pairs file is a list of flat rows") from None
        if expanded > MAX_YAML_NODES:  # aliases of aliases: a "billion laughs" of a few hundred bytes
            raise ValueError(f"the pairs file {path.name} expands to more than {MAX_YAML_NODES} values through its "
                             "aliases (*name): write the rows out, or use 'defaults' for what they share")
        data = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError) as e:
        raise ValueError(f"the pairs file {path.name} is not valid YAML: {clip(str(e))}") from None
    defaults: dict[str, Any] = {}
    if isinstance(data, dict):
        unknown = sorted(set(data) - {"defaults", "pairs"})
        if unknown:
            raise ValueError(f"{path.name}: unknown top-level key(s) {', '.join(map(str, unknown))}: "
                             "use 'pairs' (a list of rows) and optionally 'defaults'")
        defaults = _normalise(data.get("defaults") or {}, f"{path.name} defaults")
        data = data.get("pairs")
        node = next((v for k, v in node.value if k.value == "pairs"), None)
    if not isinstance(data, list):
        raise ValueError(f"{path.name}: expected a list of pairs (or a mapping with 'pairs'), "
                         f"got {type(data).__name__}")
    lines = [item.start_mark.line + 1 for item in node.value]
    rows = [(f"{path.name} line {line} (pair {i})", r) for i, (line, r) in enumerate(zip(lines, data, strict=True), 1)]
    return rows, defaults


def expanded_size(node: Any) -> int:
    """How many values a composed YAML node stands for once its aliases are expanded (an alias is the very
    node it names, so shared subtrees are counted once per use without being expanded)."""
    import yaml

    sizes: dict[int, int] = {}

    def size(n: Any, depth: int = 0) -> int:
        if id(n) not in sizes:
            if depth > 200:
                raise ValueError("nests deeper than 200 levels")
            children = [c for pair in n.value for c in pair] if isinstance(n, yaml.MappingNode) else (
                n.value if isinstance(n, yaml.SequenceNode) else [])
            sizes[id(n)] = 1 + sum(size(c, depth + 1) for c in children)
        return sizes[id(n)]
    return 0 if node is None else size(node)


def clip(text: str, limit: int = MESSAGE_CHARS) -> str:
    """A message cut to `limit` characters: no value, however large, is ever put whole into a message."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit} more characters)"


def _settings(values: dict[str, Any]) -> dict[str, Any]:
    return {k: parse_setting(k, v) for k, v in values.items() if k in SETTING}


def read_pairs(
    path: str | Path, out_dir: str | Path, *, preset: str | None = None, settings: dict[str, Any] | None = None,
    diagnostics: bool = False, presets_folder: str | Path | None = None, tokenizer=None,
) -> list[tuple[str, Job]]:
    """Read and check a pairs file into (label, Job) pairs. All problems are reported at once, as one
    ValueError listing each row's with its line, before anything runs. With `tokenizer` (the model's, loaded
    without its weights) the mask words are checked against the prompts in the same pass."""
    from fgat_core.presets import PresetStore

    path, out_dir = Path(path), Path(out_dir)
    rows, defaults, errors = read_rows(path)
    context = {"base": path.resolve().parent, "out_dir": out_dir, "store": PresetStore(presets_folder),
               "preset": preset, "cli": dict(settings or {}), "defaults": defaults, "diagnostics": diagnostics}
    jobs: list[tuple[str, Job]] = []
    for index, (where, row) in enumerate(rows, 1):
        try:
            job = _job_from_row(row, index, context)
            checked = check_job(job, tokenizer)
            job = dataclasses.replace(job, mask_tokens=checked.mask_tokens,
                                      target_mask_tokens=checked.target_mask_tokens)
            jobs.append((where, job))
        except ValueError as e:
            errors.append(f"{where}: {clip(column_message(e))}")
    errors += output_clashes(jobs, out_dir)
    if errors:
        errors.sort(key=_line_order)
        raise ValueError("the pairs file has problems (nothing was run):\n  " + "\n  ".join(errors))
    return jobs


def output_clashes(jobs: list[tuple[str, Job]], out_dir: Path) -> list[str]:
    """Every file the batch will write (each row's image, sidecar and diagnostics sheet; the summary), checked
    together: inside `out_dir`, none written twice, none an input of any row. A message for each row's first
    clash, with its line."""
    root = out_dir.resolve()
    taken: dict[Path, tuple[str, str]] = {(out_dir / SUMMARY).resolve(): ("", "the batch summary")}
    inputs = {key: f"the {what} image of {where}" for where, job in jobs for what, path in job_inputs(job).items()
              for key in file_keys(path)}
    errors = []
    for where, job in jobs:
        problems = []
        for kind, path in job_outputs(job).items():
            key, name = path.resolve(), _OUTPUT_NAMES[kind]
            if not key.is_relative_to(root):
                problems.append(f"its {name} {str(path)!r} is outside the output folder {str(out_dir)!r}: give an "
                                "'out' inside it (a name or a subfolder, no '..' or absolute path)")
            elif key in taken:
                other, other_name = taken[key]
                problems.append(f"writes the same {name} {str(path)!r} as {other}" if other_name == name else
                                f"its {name} {str(path)!r} is {other_name}{' of ' + other if other else ''}")
            elif any(k in inputs for k in file_keys(path)):
                hit = next(inputs[k] for k in file_keys(path) if k in inputs)
                problems.append(f"its {name} {str(path)!r} would overwrite {hit}")
            taken.setdefault(key, (where, name))
        if problems:
            errors.append(f"{where}: {problems[0]}: give it its own 'out'")
    return errors


_OUTPUT_NAMES = {"image": "output", "sidecar": "sidecar file", "diagnostics": "diagnostics sheet"}


def column_message(err: ValueError) -> str:
    """A row's error naming settings as the file's columns (`window_end`, not `FGATConfig.window_end`); inputs
    in words (`the source image`)."""
    if isinstance(err, ConfigError):
        return err.render(plain_name)
    if isinstance(err, InputError):
        return err.render(lambda f: "'out' value" if f == "out" else INPUT_WORDS.get(f, plain_name(f)))
    return str(err)


def _line_order(error: str) -> int:
    found = re.search(r" line (\d+)", error)
    return int(found.group(1)) if found else 0


def _job_from_row(row: dict[str, Any], index: int, ctx: dict[str, Any]) -> Job:
    """One row merged with the file's defaults, the preset and the command-line settings, as a Job."""
    merged = {**ctx["defaults"], **row}
    missing = [k for k in ("source", "target", "source_prompt") if k not in merged]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    name = merged.get("preset") or ctx["preset"]
    cfg = ctx["store"].get(str(name)) if name else FGATConfig()
    explicit = {**_settings(ctx["defaults"]), **ctx["cli"], **_settings(row)}
    base = ctx["base"]
    source, target = base / str(merged["source"]), base / str(merged["target"])
    mask = base / str(merged["mask"]) if "mask" in merged else None
    if mask is not None and "mask_source" not in explicit:
        explicit["mask_source"] = MaskSource.USER
    cfg = cfg.replace(**explicit)
    out = ctx["out_dir"] / str(merged["out"]) if "out" in merged else (
        ctx["out_dir"] / f"{index:03d}-{source.stem}-{target.stem}.png")
    prompt = str(merged["source_prompt"])
    return Job(
        source=source, target=target, source_prompt=prompt, target_prompt=str(merged.get("target_prompt", prompt)),
        negative_prompt=str(merged.get("negative_prompt", "")), config=cfg, out=output_path(out), mask=mask,
        transfer=parse_bool(merged.get("transfer", True), "transfer", LENIENT_BOOLS), diagnostics=ctx["diagnostics"],
        preset=str(name) if name else None,
    )


def run_batch(
    pipe: FGATPipeline, jobs: list[tuple[str, Job]], out_dir: str | Path, *, cache_size: int = 64,
    progress_bars: bool = True,
) -> int:
    """Run every job, sharing one inversion cache; write <out_dir>/batch.json. Returns the exit code
    (2 when a pair failed with a bad-input error, 1 when one ran out of memory; the other pairs still run)."""
    jobs, problems = locate_mask_words(jobs, pipe.tokenizer)
    if problems:
        raise ValueError("the pairs file has problems (nothing was run):\n  " + "\n  ".join(problems))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = InversionCache(cache_size)
    t0 = time.perf_counter()
    summary: list[dict[str, Any]] = []
    n = len(jobs)
    for i, (where, job) in enumerate(jobs, 1):
        bars, tag = StageBars(enabled=progress_bars, prefix=f"[{i}/{n}] "), f"[{i}/{n}] {where}"
        tell = lambda note, tag=tag: print(f"{tag}: note: {note}", file=sys.stderr)  # before the row runs
        summary.append(finish_row(render_row(pipe, job, where, cache, bars, tell=tell), tag))
    return finish_batch(out_dir, summary, time.perf_counter() - t0, pipe.name,
                        {"hits": cache.hits, "misses": cache.misses})


def locate_mask_words(jobs: list[tuple[str, Job]], tokenizer: Any) -> tuple[list[tuple[str, Job]], list[str]]:
    """Each row's mask word located with the model's own tokenizer where the check before the load could not
    (no tokenizer then: a hub id), so that it is located once per row: the jobs with their positions, and a
    message per row whose word is not in its prompt, with its line."""
    located, problems = [], []
    for where, job in jobs:
        try:
            tokens = job.mask_tokens if job.mask_tokens is not None else check_mask_word(job, tokenizer)
            target = job.target_mask_tokens
            target = target if target is not None else check_target_word(job, tokenizer)
            located.append((where, dataclasses.replace(job, mask_tokens=tokens, target_mask_tokens=target)))
        except ValueError as e:
            problems.append(f"{where}: {column_message(e)}")
    return located, problems


def mask_word_problems(jobs: list[tuple[str, Job]], tokenizer: Any) -> list[str]:
    """The rows whose mask word is not in their prompt as `tokenizer` splits it (`locate_mask_words`)."""
    return locate_mask_words(jobs, tokenizer)[1]


def finish_batch(out_dir: Path, summary: list[dict[str, Any]], seconds: float, model: str,
                 cache: dict[str, int], extra: dict[str, Any] | None = None) -> int:
    """Write the summary <out_dir>/batch.json (`extra`: more top-level entries), say how the batch went and
    return its exit code (1 when a row ran out of memory or crashed, else 2 when a row failed, else 0)."""
    n = len(summary)
    failed = [row for row in summary if "error" in row]
    report = {"pairs": n, "failed": len(failed), "seconds": round(seconds, 3), "model": model,
              "inversion_cache": cache, **(extra or {}), "rows": summary}
    write_text_atomic(out_dir / SUMMARY, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"{n - len(failed)}/{n} pairs done in {seconds:.1f} s; inversion cache: {cache['hits']} hits, "
          f"{cache['misses']} misses; summary: {out_dir / SUMMARY}")
    if any(row.get("out_of_memory") or row.get("crashed") for row in failed):
        return 1
    return 2 if failed else 0


@dataclass
class RowOutcome:
    """One row run but not yet written (`render_row`): its summary entry, its files' contents (none when it
    failed), the notes to print and its line for the log. Small and picklable (a Ray actor returns it)."""

    entry: dict[str, Any]
    data: dict[Path, bytes] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    line: str = ""


def render_row(pipe: FGATPipeline, job: Job, where: str, cache: InversionCache, bars: StageBars,
               blobs: dict[str, bytes] | None = None, tell: Callable[[str], None] | None = None) -> RowOutcome:
    """Run one row without writing its files (its images decoded once more: `read_pairs` keeps no pixels;
    `blobs`: their bytes, read elsewhere). The notes before the run go to `tell` (else into the outcome). An
    input, output or memory error is recorded in the outcome, and the batch goes on."""
    size, notes = None, []
    try:
        inputs = dataclasses.replace(decode_inputs(job, blobs), mask_tokens=job.mask_tokens,
                                     target_mask_tokens=job.target_mask_tokens)
        size = inputs.sizes[0]
        for note in job_notes(job, pipe.tokenizer, inputs.sizes, pipe.size_multiple):
            (tell or notes.append)(note)
        res = render_job(pipe, job, cache=cache, progress=bars, inputs=inputs)
    except (ValueError, OSError, RuntimeError, MemoryError) as e:  # this row's input, output or memory
        oom = out_of_memory_message(e, size, str(pipe.device), str(pipe.dtype).replace("torch.", ""))
        if oom is None and not isinstance(e, (ValueError, OSError)):
            raise
        message = oom or (column_message(e) if isinstance(e, ValueError) else f"cannot read its input: {e}")
        return RowOutcome({"row": where, "error": message, **({"out_of_memory": True} if oom else {})}, notes=notes)
    finally:
        bars.close()
    inv = res.output.result.stats["inversion"]
    hits = res.record["inversion_cache"]["hits"]
    line = (f"{job.source.name} + {job.target.name} -> {res.files['image']} ({res.timings['total']:.1f} s; "
            f"inversion: {inv.calls} UNet calls, {hits} from cache)")
    entry = {"row": where, "files": {k: str(v) for k, v in res.files.items()},
             "seconds": round(res.timings["total"], 3), "inversion_unet_calls": inv.calls,
             "inversion_unet_rows": inv.rows, "unet_calls": res.record["unet_calls"], "inversion_cache_hits": hits}
    return RowOutcome(entry, res.data, [*notes, *res.output.messages], line)


def finish_row(outcome: RowOutcome, tag: str) -> dict[str, Any]:
    """Write a rendered row's files (atomically, the sidecar last), print its notes and its line or error;
    its summary entry (a file that cannot be written makes the row fail, and the batch goes on)."""
    for m in outcome.notes:
        print(f"{tag}: note: {m}", file=sys.stderr)
    entry = outcome.entry
    if "error" not in entry:
        try:
            write_job_files(outcome.data)
        except OSError as e:
            entry = {"row": entry["row"], "error": f"cannot write its output: {e}"}
    if "error" in entry:
        print(f"{tag}: error: {entry['error']}", file=sys.stderr)
    else:
        print(f"{tag}: {outcome.line}")
    return entry
