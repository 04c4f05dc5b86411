"""`python -m fgat_cli batch --ray [ADDRESS]`: a batch's rows on a pool of Ray actors, each holding the model
once and an inversion cache. The only module of FGAT that imports Ray, and only when a Ray batch runs
(`pip install "fgat[ray]"`).

The driver does all the checking and all the writing; the actors only compute. Before any work the pairs file
is checked as the local batch checks it (`batch.read_pairs`: every row in one pass, outputs' clashes
included). The driver then sends each row with its input files' bytes to an actor, the actor runs it
(`batch.render_row`) and returns the row's files as bytes, and the driver writes them with the local batch's
writer (`batch.finish_row`: atomic, the sidecar last) and writes the summary (`batch.finish_batch`). So the
images, sidecars and summary are the local batch's, one process writes every file, and no file system needs
to be shared between the nodes.

Rows that share a source or a target file go to one actor, in the file's order, so that its cache reuses the
inversion as the local batch's does; a group larger than its share of the rows (one target for every row) is
cut into consecutive parts, each of which inverts the shared image once more. A rerun skips the rows an
earlier run finished: the sidecar (written last) records the same row (files, prompts, settings, model), the
row's files exist and no input is newer than the sidecar."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fgat_core.cache import InversionCache

from .batch import RowOutcome, clip, finish_batch, finish_row, mask_word_problems, render_row
from .pipeline import FGATPipeline
from .progress import StageBars
from .runner import Job, job_inputs, job_outputs

INSTALL = ('the Ray backend needs Ray, which is not installed here: pip install "fgat[ray]" (or pip install '
           '"ray>=2.9"), or run the batch without --ray')
IN_FLIGHT = 2  # rows queued on each actor: the next one is there when a row finishes
RESTARTS = 2  # an actor whose process dies (a preempted node) is restarted, and its rows retried, this often


class PoolFailure(RuntimeError):
    """The actors could not start (not a bad input): the command line exits 1 with the message."""


def import_ray() -> Any:
    """The `ray` module, or a ValueError that says how to install it."""
    try:
        import ray
    except ImportError:
        raise ValueError(INSTALL) from None
    return ray


@dataclass(frozen=True)
class RayOptions:
    """How to run a batch on Ray (the command line's --ray, --actors, --gpus-per-actor, --cpus-per-actor)."""

    address: str | None = None  # a cluster to join ("auto", "ray://host:10001"); None: start a local Ray
    actors: int | None = None  # default: one per `gpus_per_actor` GPUs of the cluster, else 1
    gpus_per_actor: float | None = None  # default: 1 where the cluster has a GPU, else 0 (CPU)
    cpus_per_actor: float = 1.0
    resume: bool = True  # skip the rows an earlier run finished

    def check(self) -> None:
        """Refuse counts that cannot make a pool, naming the flag."""
        if self.actors is not None and self.actors < 1:
            raise ValueError(f"--actors must be at least 1 (got {self.actors}): the number of Ray actors, each "
                             "holding the model once")
        if self.gpus_per_actor is not None and self.gpus_per_actor < 0:
            raise ValueError(f"--gpus-per-actor must be 0 (CPU) or more (got {self.gpus_per_actor}); 0.5 puts "
                             "two actors on one GPU")
        if self.cpus_per_actor <= 0:
            raise ValueError(f"--cpus-per-actor must be more than 0 (got {self.cpus_per_actor})")


def pool_shape(options: RayOptions, cpus: float, gpus: float) -> tuple[int, float]:
    """(actors, GPUs per actor) for a cluster of `cpus` CPUs and `gpus` GPUs; refuses a pool the cluster
    cannot hold (Ray would wait for it forever)."""
    per_gpu = options.gpus_per_actor if options.gpus_per_actor is not None else (1.0 if gpus >= 1 else 0.0)
    actors = options.actors or (max(1, int(gpus // per_gpu)) if per_gpu > 0 else 1)
    if per_gpu > 0 and actors * per_gpu > gpus + 1e-9:
        raise ValueError(f"{actors} actors with {per_gpu:g} GPU each need {actors * per_gpu:g} GPUs; the Ray "
                         f"cluster has {gpus:g}: lower --actors or --gpus-per-actor (0 runs on the CPU)")
    if actors * options.cpus_per_actor > cpus + 1e-9:
        raise ValueError(f"{actors} actors with {options.cpus_per_actor:g} CPU each need "
                         f"{actors * options.cpus_per_actor:g} CPUs; the Ray cluster has {cpus:g}: lower --actors "
                         "or --cpus-per-actor")
    return actors, per_gpu


def local_gpus() -> int:
    """The GPUs of this machine that a local Ray can give its actors."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@contextlib.contextmanager
def ray_session(ray: Any, options: RayOptions) -> Iterator[tuple[int, float]]:
    """Join the cluster at `options.address`, use the Ray this process already runs, or start a local Ray
    sized for the pool (its temporary folder removed afterwards); yields the pool's shape (`pool_shape`).
    What this starts or joins is shut down or left when the block ends."""
    if ray.is_initialized():
        resources = ray.cluster_resources()
        yield pool_shape(options, resources.get("CPU", 0), resources.get("GPU", 0))
        return
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    temp = None
    if options.address:
        try:
            ray.init(address=options.address, log_to_driver=False, logging_level=logging.ERROR)
        except ConnectionError as e:
            raise ValueError(f"--ray {options.address!r}: no Ray cluster answers there ({clip(str(e), 200)}); start "
                             "one (`ray start --head` on its head node), correct the address, or give --ray alone "
                             "for a local Ray on this machine") from None
    else:
        gpus = local_gpus()
        actors, per_gpu = pool_shape(options, math.inf, gpus)
        temp = tempfile.mkdtemp(prefix="fgat-ray-")  # Ray's sockets and logs, removed below
        ray.init(address="local", num_cpus=max(1, math.ceil(actors * options.cpus_per_actor)), num_gpus=gpus,
                 _temp_dir=temp, **quiet)
    try:
        resources = ray.cluster_resources()
        yield pool_shape(options, resources.get("CPU", 0), resources.get("GPU", 0))
    finally:
        ray.shutdown()
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


class RowWorker:
    """A Ray actor's state: the model, loaded once (on first use: a load that fails then reaches the driver
    as the load's own error, and a restarted actor loads it again), and an inversion cache kept across the
    rows it runs."""

    def __init__(self, load: Callable[[], FGATPipeline], cache_size: int, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.load, self.loaded = load, None
        self.cache = InversionCache(cache_size)

    @property
    def pipe(self) -> FGATPipeline:
        if self.loaded is None:
            self.loaded = self.load()
        return self.loaded

    def info(self) -> dict[str, str]:
        """Where this actor runs and what it loaded (loading it)."""
        import ray

        return {"model": self.pipe.name, "device": str(self.pipe.device), "node": socket.gethostname(),
                "node_id": ray.get_runtime_context().get_node_id()}

    def check(self, jobs: list[tuple[str, Job]]) -> list[str]:
        """The rows' mask words against this model's tokenizer (`batch.mask_word_problems`)."""
        return mask_word_problems(jobs, self.pipe.tokenizer)

    def run(self, where: str, job: Job, kinds: list[str], *blobs: bytes) -> tuple[RowOutcome, dict[str, str]]:
        """One row, its files returned as bytes (`batch.render_row`), and where it ran (`info`: a restarted
        actor may run elsewhere); `blobs`: the input files, by `kinds`."""
        blobs_by_kind = dict(zip(kinds, blobs, strict=True))
        outcome = render_row(self.pipe, job, where, self.cache, StageBars(enabled=False), blobs_by_kind)
        return outcome, self.info()

    def start_batch(self) -> None:
        """An empty cache and counters for a new batch (a pool may run several)."""
        self.cache = InversionCache(self.cache.max_entries)

    def cache_counts(self) -> dict[str, int]:
        return {"hits": self.cache.hits, "misses": self.cache.misses}


def row_groups(jobs: list[tuple[str, Job]], actors: int) -> list[list[int]]:
    """The rows' indices grouped so that rows sharing a source or target file are in one group, each in the
    file's order; a group of more than ceil(rows / actors) rows is cut into consecutive parts of that size (so
    that every actor has work); the largest first (equal sizes in the file's order)."""
    parent = list(range(len(jobs)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[Path, int] = {}
    for i, (_, job) in enumerate(jobs):
        for path in (job.source, job.target):
            parent[root(i)] = root(first.setdefault(path.resolve(), i))
    groups: dict[int, list[int]] = {}
    for i in range(len(jobs)):
        groups.setdefault(root(i), []).append(i)
    size = max(1, math.ceil(len(jobs) / actors))
    parts = [group[k:k + size] for group in groups.values() for k in range(0, len(group), size)]
    return sorted(parts, key=len, reverse=True)


def recorded_row(job: Job, model: str) -> dict[str, Any]:
    """What a finished row's sidecar records about the row itself (`runner.sidecar_record`'s fields), as the
    JSON file reads back."""
    row = {"source": str(job.source), "target": str(job.target), "mask": None if job.mask is None else str(job.mask),
           "source_prompt": job.source_prompt, "target_prompt": job.target_prompt,
           "negative_prompt": job.negative_prompt, "transfer": job.transfer, "preset": job.preset,
           "config": job.config.to_dict(), "model": model}
    return json.loads(json.dumps(row))


def row_done(job: Job, model: str) -> bool:
    """Whether an earlier run finished this row: its files exist, its sidecar (written last) records this row
    with this model and the same files, and no input file is newer than the sidecar."""
    files = job_outputs(job)
    try:
        record = json.loads(files["sidecar"].read_text(encoding="utf-8"))
        written = files["sidecar"].stat().st_mtime
        newest = max(path.stat().st_mtime for path in job_inputs(job).values())
        present = all(path.is_file() for path in files.values())
    except (OSError, ValueError):
        return False
    if not present or not isinstance(record, dict) or newest > written:
        return False
    expected = recorded_row(job, model)
    return all(record.get(k) == v for k, v in expected.items()) and set(record.get("files") or {}) == set(files)


class InputBlobs:
    """The input files' bytes in Ray's object store: each file read and sent once, dropped after its last row."""

    def __init__(self, ray: Any, jobs: list[Job]) -> None:
        self.ray, self.refs = ray, {}
        self.uses = Counter(path for job in jobs for path in job_inputs(job).values())

    def of(self, job: Job) -> tuple[list[str], list[Any]]:
        """(kinds, object refs) of a job's input files; raises OSError when one cannot be read."""
        kinds = list(job_inputs(job))
        for path in job_inputs(job).values():
            if path not in self.refs:
                self.refs[path] = self.ray.put(path.read_bytes())
        return kinds, [self.refs[path] for path in job_inputs(job).values()]

    def release(self, job: Job) -> None:
        for path in job_inputs(job).values():
            self.uses[path] -= 1
            if self.uses[path] <= 0:
                self.refs.pop(path, None)


def worker_failure(ray: Any, err: Exception, where: str) -> RowOutcome:
    """A row whose actor died (after its restarts) or raised what FGAT does not expect: failed, with why."""
    if isinstance(err, ray.exceptions.RayActorError):
        message = ("its Ray actor died (a node lost, or killed for memory) and could not be restarted: rerun the "
                   "batch to run it again")
    else:
        cause = getattr(err, "cause", None) or err
        message = f"crashed on its Ray actor: {type(cause).__name__}: {cause}"
    return RowOutcome({"row": where, "error": clip(message), "crashed": True})


@dataclass
class Pool:
    """The actors of a Ray batch, where each runs (`RowWorker.info`) and what each was given."""

    actors: list[Any]
    infos: list[dict[str, str]]
    setup: dict[str, Any]  # recorded in the summary: address, actors, GPUs and CPUs per actor, nodes


def start_pool(ray: Any, load: Callable[[], FGATPipeline], shape: tuple[int, float], options: RayOptions,
               cache_size: int = 64, threads: int | None = None) -> Pool:
    """Start the actors (`shape`: `pool_shape`'s), each loading the model with `load()` once; a load that
    fails is reported as the load's error."""
    count, per_gpu = shape
    remote = ray.remote(RowWorker).options(num_cpus=options.cpus_per_actor, num_gpus=per_gpu,
                                            max_restarts=RESTARTS, max_task_retries=RESTARTS)
    threads = threads or max(1, int(options.cpus_per_actor))
    actors = [remote.remote(load, cache_size, threads) for _ in range(count)]
    try:
        infos = ray.get([actor.info.remote() for actor in actors])
    except ray.exceptions.RayError as e:
        cause = getattr(e, "cause", None) or e
        if isinstance(cause, ValueError):  # a model that does not load: the message says what to change
            raise ValueError(f"{cause} (while loading the model on the Ray actors)") from None
        raise PoolFailure(f"the Ray actors could not load the model: {clip(str(cause))}") from None
    setup = {"address": options.address or "local", "actors": count, "gpus_per_actor": per_gpu,
             "cpus_per_actor": options.cpus_per_actor, "nodes": sorted({info["node"] for info in infos})}
    return Pool(actors, infos, setup)


def run_ray_batch(
    load: Callable[[], FGATPipeline], jobs: list[tuple[str, Job]], out_dir: str | Path, options: RayOptions, *,
    cache_size: int = 64, progress_bars: bool = True, threads: int | None = None,
) -> int:
    """Run checked jobs (`batch.read_pairs`) on Ray actors that each build their model with `load()` (a
    picklable callable); write what they return and <out_dir>/batch.json. The exit code as `batch.run_batch`'s
    (1 also when a row crashed on its actor)."""
    ray = import_ray()
    options.check()
    with ray_session(ray, options) as shape:
        pool = start_pool(ray, load, shape, options, cache_size, threads)
        return run_on_pool(ray, pool, jobs, out_dir, resume=options.resume, progress_bars=progress_bars)


def run_on_pool(ray: Any, pool: Pool, jobs: list[tuple[str, Job]], out_dir: str | Path, *, resume: bool = True,
                progress_bars: bool = True) -> int:
    """`run_ray_batch` on a pool already started (`start_pool`): the mask words checked with the model's
    tokenizer, the rows an earlier run finished skipped (`resume`), the others run; the exit code."""
    t0 = time.perf_counter()
    ray.get([actor.start_batch.remote() for actor in pool.actors])
    problems = ray.get(pool.actors[0].check.remote(jobs))
    if problems:
        raise ValueError("the pairs file has problems (nothing was run):\n  " + "\n  ".join(problems))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = pool.infos[0]["model"]
    done = {i for i, (_, job) in enumerate(jobs) if resume and row_done(job, model)}
    if done:
        print(f"{len(done)} of {len(jobs)} pairs were finished by an earlier run (same files, prompts, settings "
              "and model): skipped", file=sys.stderr)
    entries = run_rows(ray, pool, jobs, done, progress_bars)
    counts = ray.get([actor.cache_counts.remote() for actor in pool.actors])
    cache = {k: sum(c[k] for c in counts) for k in ("hits", "misses")}
    extra = {"skipped": len(done), "ray": pool.setup}
    return finish_batch(out_dir, entries, time.perf_counter() - t0, model, cache, extra)


def run_rows(ray: Any, pool: Pool, jobs: list[tuple[str, Job]], done: set[int], bar: bool) -> list[dict[str, Any]]:
    """Run the rows not `done` on the pool: each actor takes a group of rows at a time (`row_groups`), keeps
    IN_FLIGHT rows queued, and the driver writes each row as it comes back. The summary's entries, in the
    file's order, each with the node and actor that made it."""
    from tqdm import tqdm

    todo = [i for i in range(len(jobs)) if i not in done]
    groups = [[todo[k] for k in group] for group in row_groups([jobs[i] for i in todo], len(pool.actors))]
    entries = {i: {"row": jobs[i][0], "skipped": "finished by an earlier run",
                   "files": {k: str(v) for k, v in job_outputs(jobs[i][1]).items()}} for i in done}
    blobs = InputBlobs(ray, [jobs[i][1] for i in todo])
    queues: list[list[int]] = [[] for _ in pool.actors]
    flying: dict[Any, tuple[int, int]] = {}
    progress = tqdm(total=len(todo), unit="row", desc="rows", file=sys.stderr, dynamic_ncols=True, disable=not bar)

    def land(a: int, i: int, outcome: RowOutcome, info: dict[str, str]) -> None:
        with tqdm.external_write_mode(file=sys.stdout):  # the row's lines above the bar, not through it
            entry = finish_row(outcome, f"[{i + 1}/{len(jobs)}] {jobs[i][0]}")
        entries[i] = {**entry, "node": info["node"], "node_id": info["node_id"], "actor": a}
        blobs.release(jobs[i][1])
        progress.update(1)

    def feed(a: int) -> None:
        while sum(1 for actor, _ in flying.values() if actor == a) < IN_FLIGHT and (queues[a] or groups):
            queues[a] = queues[a] or groups.pop(0)
            i = queues[a].pop(0)
            where, job = jobs[i]
            try:
                kinds, refs = blobs.of(job)
            except OSError as e:
                land(a, i, RowOutcome({"row": where, "error": f"its input cannot be read: {e}"}), pool.infos[a])
                continue
            flying[pool.actors[a].run.remote(where, job, kinds, *refs)] = (a, i)

    try:
        for a in range(len(pool.actors)):
            feed(a)
        while flying:
            (ref,), _ = ray.wait(list(flying), num_returns=1)
            a, i = flying.pop(ref)
            try:
                outcome, info = ray.get(ref)
            except ray.exceptions.RayError as e:
                outcome, info = worker_failure(ray, e, jobs[i][0]), pool.infos[a]
            land(a, i, outcome, info)
            feed(a)
    finally:
        progress.close()
    return [entries[i] for i in range(len(jobs))]
