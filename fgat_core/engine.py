"""The FGAT driver shared by every host: inversions, mask, matching, and the deviated sampling loop."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import torch
from torch import Tensor

from .config import FGATConfig
from .deviation import latent_deviation, mix_noise, transfer_x0, x0_shift
from .host import Cond, Denoiser, cond_cat
from .inversion import ddim_invert, guided, null_text_optimize
from .mask import AttentionRecorder, prepare_user_mask, threshold_mask
from .matching import correspondence, dift_features, dift_noise, gather_matched, upsample_features
from .schedule import Schedule, ddim_step, predict_x0

STAGES = ("inversion", "mask", "matching", "sampling")
# progress(stage, done, total); a host may raise from it to interrupt the run.
Progress = Callable[[str, int, int], None]


class FGATInterrupted(Exception):
    """Raised by a host's progress callback to stop a run (Interrupt / Skip)."""


class InversionStore(Protocol):
    """Where `run_fgat(cache=...)` keeps inversion results between runs (e.g. `fgat_core.cache.InversionCache`).

    Keys are built by the engine from the caller's `source_key` / `target_key` and every setting the
    stored value depends on; values are opaque and must be returned as they were put."""

    def get(self, key: Hashable) -> Any | None: ...

    def put(self, key: Hashable, value: Any) -> None: ...


@dataclass
class StageStats:
    calls: int = 0  # serial UNet calls (full forward)
    rows: int = 0  # UNet rows (batch entries) of those calls
    feature_calls: int = 0  # partial UNet calls (to up_blocks[1]) for DIFT
    feature_rows: int = 0
    seconds: float = 0.0


@dataclass
class FGATInputs:
    """Everything the engine needs besides the model; latents are (1, C, h, w) VP latents."""

    source_latent: Tensor
    target_latent: Tensor
    source_cond: Cond
    target_cond: Cond
    uncond: Cond
    empty_cond: Cond | None = None  # DIFT conditioning when dift_prompt == "empty" (default: uncond)
    mask_tokens: list[int] | None = None  # source-prompt token positions of the object word
    user_mask: Tensor | None = None  # (h, w) in [0, 1], any size of the same aspect ratio
    # identities for `run_fgat(cache=...)`: image + prompt(s) + model (+ negative prompt for the source);
    # None: that side is never cached
    source_key: Hashable | None = None
    target_key: Hashable | None = None


@dataclass
class FGATResult:
    latent: Tensor
    mask: Tensor  # (h, w)
    correspondence: Tensor | None  # last flat source->target map used
    x0_window: list[Tensor]  # x0 of the source at each window step (before transfer)
    window: tuple[int, int]
    messages: list[str] = field(default_factory=list)
    stats: dict[str, StageStats] = field(default_factory=dict)


class _Meter:
    """Counts UNet calls and time per stage. Nested stages pause the outer one."""

    def __init__(self) -> None:
        self.stats = {s: StageStats() for s in STAGES}
        self._stack: list[tuple[str, float]] = []

    @contextmanager
    def stage(self, name: str):
        now = time.perf_counter()
        if self._stack:
            outer, t0 = self._stack[-1]
            self.stats[outer].seconds += now - t0
        self._stack.append((name, now))
        try:
            yield
        finally:
            name, t0 = self._stack.pop()
            now = time.perf_counter()
            self.stats[name].seconds += now - t0
            if self._stack:
                self._stack[-1] = (self._stack[-1][0], now)

    @property
    def current(self) -> StageStats:
        return self.stats[self._stack[-1][0]]


class _CountingHost:
    def __init__(self, host: Denoiser, meter: _Meter) -> None:
        self.host, self.meter = host, meter
        self.alphas_cumprod = host.alphas_cumprod

    def eps(self, x: Tensor, t: Tensor, cond: Cond) -> Tensor:
        s = self.meter.current
        s.calls += 1
        s.rows += x.shape[0]
        return self.host.eps(x, t, cond)

    def features(self, x: Tensor, t: Tensor, cond: Cond) -> Tensor:
        s = self.meter.current
        s.feature_calls += 1
        s.feature_rows += x.shape[0]
        return self.host.features(x, t, cond)

    def attention_layers(self):
        return self.host.attention_layers()


def _check_inputs(inp: FGATInputs) -> None:
    s, t = inp.source_latent, inp.target_latent
    if s.dim() != 4 or s.shape[0] != 1:
        raise ValueError(f"the source latent must be (1, C, h, w), got {tuple(s.shape)}")
    if t.shape != s.shape:
        raise ValueError(
            f"the target latent {tuple(t.shape)} does not match the source latent {tuple(s.shape)}: "
            "resize the target image to the source image's size before encoding it"
        )
    for name in ("source_cond", "target_cond", "uncond"):
        c = getattr(inp, name)
        if not c or next(iter(c.values())).shape[0] != 1:
            raise ValueError(f"{name} must be a one-row conditioning dict")


def _full(latent: Tensor) -> Tensor:
    return latent.float() if latent.dtype in (torch.float16, torch.bfloat16) else latent


def run_fgat(
    host: Denoiser,
    inputs: FGATInputs,
    config: FGATConfig,
    *,
    transfer: bool = True,
    progress: Progress | None = None,
    schedule: Schedule | None = None,
    first_step: int | None = None,
    cache: InversionStore | None = None,
) -> FGATResult:
    """Run FGAT (DESIGN.md §1) and return the final latent.

    `transfer=False` gives the reconstruction along the very same path (the reference for the
    no-transfer identities). Sampling starts at the window start with `direct` inversion (exact
    reconstruction makes the steps before it redundant) and at step 0 otherwise; `first_step`
    overrides that (e.g. 0 to sample the whole direct-inversion trajectory).

    `cache`: reuse inversions across runs. The source's trace (latents, eps, null-text embeddings and
    the attention maps its inversion recorded) and the target's x0 trajectory are stored under keys
    made of `inputs.source_key` / `inputs.target_key` and the settings they depend on; an image found
    there is not inverted again (its UNet calls are absent from `stats`).

    Half-precision latents are taken to float32 first: the steps' arithmetic (x0 divides by sqrt(a_t)) runs in
    float32 whatever the UNet's dtype, as in the WebUIs; the result is float32."""
    _check_inputs(inputs)
    inputs = replace(inputs, source_latent=_full(inputs.source_latent), target_latent=_full(inputs.target_latent))
    cfg = config
    sched = schedule or Schedule.ddim(host.alphas_cumprod, cfg.steps)
    n = sched.steps
    start, end = cfg.window(n)
    meter = _Meter()
    h = _CountingHost(host, meter)
    size = tuple(inputs.source_latent.shape[-2:])
    w = cfg.guidance_scale
    direct = cfg.inversion == "direct"
    messages: list[str] = []

    def report(stage: str, done: int, total: int) -> None:
        if progress is not None:
            progress(stage, done, total)

    recorder = None
    if transfer and cfg.mask_source == "attention":
        if not inputs.mask_tokens:
            raise ValueError("mask_source 'attention' needs the token positions of the mask word")
        recorder = AttentionRecorder(h.attention_layers(), inputs.mask_tokens, size, cfg.mask_layers)
    user_mask = None
    if transfer and cfg.mask_source == "user":
        if inputs.user_mask is None:
            raise ValueError("mask_source is 'user' but no mask was given: draw or upload a mask, "
                             "or choose mask source 'attention' or 'none'")
        user_mask = prepare_user_mask(inputs.user_mask, size).to(inputs.source_latent)

    # null-text inversion turns autograd back on for its own optimisation only
    with torch.no_grad(), (recorder if recorder is not None else nullcontext()):
        # ---------------------------------------------------------------- 1-2. inversions
        src, tar = inputs.source_latent, inputs.target_latent
        first = first_step if first_step is not None else (start if direct else 0)
        if not 0 <= first < n:
            raise ValueError(f"first_step must be in [0, {n - 1}], got {first}")
        src_key, tar_key = _cache_keys(inputs, cfg, sched, transfer, start, first, recorder)
        src_hit = cache.get(src_key) if cache is not None and src_key is not None else None
        tar_hit = cache.get(tar_key) if cache is not None and tar_key is not None else None
        x0_tar: dict[int, Tensor] = dict(tar_hit) if tar_hit is not None else {}

        # rows of the joint inversion: the source (unless cached), then the target (unless cached or unused)
        roles, latents, conds, stops, keep = [], [], [], [], []
        if src_hit is None:
            roles.append("source")
            latents.append(src)
            conds.append(inputs.source_cond)
            stops.append(1)
            keep.append(first if direct else n + 1)
        # The target rides along even without transfer, so that the reconstruction reference sees the
        # very same batched calls as a transfer run (batch composition can change float rounding).
        if tar_hit is None:
            roles.append("target")
            latents.append(tar)
            conds.append(inputs.target_cond)
            stops.append(start)
            keep.append(n + 1)
        src_row = roles.index("source") if "source" in roles else None
        tar_row = roles.index("target") if "target" in roles else None

        # when caching, keep the target's x0 at every level it visits (k >= start), so that runs with
        # another window end share it
        keep_x0_to = n + 1 if tar_key is not None else end

        def observe(k: int, eps: Tensor, x: Tensor, active: list[int]) -> None:
            if tar_row in active and start <= k < keep_x0_to:
                j = active.index(tar_row)
                x0_tar[k] = predict_x0(x[j : j + 1], eps[j : j + 1], sched.a(k))

        def before(k: int, active: list[int]) -> None:
            if recorder is not None:
                recorder.active = direct and 1 <= k < start and src_row in active
                recorder.rows = [active.index(src_row)] if src_row in active else []

        with meter.stage("inversion"):
            trace = None
            if roles:
                trace = ddim_invert(
                    h, latents, conds, sched, stops, keep, before, observe,
                    lambda d, t: report("inversion", d, t),
                )
            if recorder is not None:
                recorder.active = False
            uncond_steps: list[Cond] | None = None
            if src_hit is not None:
                src_traj, src_eps, uncond_steps = src_hit["latents"], src_hit["eps"], src_hit["uncond_steps"]
                if recorder is not None and src_hit["attention"] is not None:
                    sums, counts = src_hit["attention"]
                    recorder.sums, recorder.counts = dict(sums), dict(counts)
            else:
                src_traj, src_eps = trace.latents[src_row], trace.eps[src_row]
                if cfg.inversion == "null-text":
                    uncond_steps = null_text_optimize(
                        h, src_traj, inputs.source_cond, inputs.uncond, sched, w,
                        cfg.null_text_steps, cfg.null_text_lr, cfg.null_text_epsilon,
                        lambda d, t: report("inversion", d, t),
                    )
                if cache is not None and src_key is not None:
                    attention = None
                    if recorder is not None and direct:
                        attention = (dict(recorder.sums), dict(recorder.counts))
                    cache.put(src_key, {"latents": src_traj, "eps": src_eps, "uncond_steps": uncond_steps,
                                        "attention": attention})
            if cache is not None and tar_key is not None and tar_hit is None:
                cache.put(tar_key, dict(x0_tar))

        return _sample(
            h, inputs, cfg, sched, meter, report, recorder, user_mask, src_traj, src_eps, x0_tar,
            uncond_steps, start, end, transfer, messages, size, first,
        )


def _sample(
    h, inputs, cfg, sched, meter, report, recorder, user_mask, src_traj, src_eps, x0_tar,
    uncond_steps, start, end, transfer, messages, size, first,
) -> FGATResult:
    n = sched.steps
    w = cfg.guidance_scale
    direct = cfg.inversion == "direct"
    cond = inputs.source_cond
    if cfg.inversion == "negative-prompt":
        uncond_at = lambda i: inputs.source_cond  # noqa: E731
    elif uncond_steps is not None:
        uncond_at = lambda i: uncond_steps[i]  # noqa: E731
    else:
        uncond_at = lambda i: inputs.uncond  # noqa: E731
    dift_conds = _dift_conds(inputs, cfg)
    noise = None
    corr = None
    mask = None
    x0_window: list[Tensor] = []

    def get_mask() -> Tensor:
        if cfg.mask_source == "none" or not transfer:
            return torch.ones(size, dtype=inputs.source_latent.dtype, device=inputs.source_latent.device)
        if cfg.mask_source == "user":
            if user_mask.max() <= 0:
                messages.append(
                    "FGAT: the mask is all black, so nothing was transferred (paint the parts to transfer white)"
                )
            return user_mask
        with meter.stage("mask"):
            if direct and start == 1:  # tau_0 is never visited by the inversion: one extra call
                recorder.active, recorder.rows = True, [0]
                x0 = src_traj[0]
                t = torch.full((1,), int(sched.timesteps[0]), dtype=torch.long, device=x0.device)
                h.eps(x0, t, cond)
                recorder.active = False
            m = threshold_mask(recorder.mean_map(), cfg.mask_threshold, cfg.mask_dilate)
        if m.sum() == 0:
            messages.append(
                "FGAT: the attention mask of the object word thresholded to nothing; the whole image "
                "was used as the mask instead (lower mask_threshold or pick another word)"
            )
            m = torch.ones_like(m)
        return m.to(inputs.source_latent)

    def features(x0_pair: Tensor) -> tuple[Tensor, Tensor]:
        nonlocal noise
        if noise is None:
            noise = dift_noise(tuple(x0_pair.shape[1:]), cfg.dift_ensemble, cfg.seed, x0_pair.device, x0_pair.dtype)
        with meter.stage("matching"):
            fs, ft = dift_features(h, x0_pair, dift_conds, cfg.dift_timestep, noise)
            return upsample_features(fs, size), upsample_features(ft, size)

    if transfer and cfg.matching == "initial":
        fs, ft = features(torch.cat([inputs.source_latent, inputs.target_latent]))
        with meter.stage("matching"):
            corr = correspondence(fs, ft, cfg.match_chunk)

    x = src_traj[first]
    with meter.stage("sampling"):
        for i in range(first, n):
            a_t, a_next = sched.a(i), sched.a(i + 1)
            t1 = torch.full((1,), int(sched.timesteps[i]), dtype=torch.long, device=x.device)
            u = uncond_at(i)
            if recorder is not None and not direct:
                recorder.active, recorder.rows = i < start, [0]
            in_window = transfer and start <= i < end
            on_trajectory = direct and torch.equal(x, src_traj[i])
            if on_trajectory and not in_window:
                # still on the inverted trajectory: direct inversion's step returns X[i+1] exactly
                x = src_traj[i + 1]
                report("sampling", i - first + 1, n - first)
                continue
            if on_trajectory:
                # on the trajectory (a window step before any change): x's eps is the trajectory's eps
                eps2 = h.eps(torch.cat([x, x]), t1.repeat(2), cond_cat([cond, u]))
                eps_c, eps_u = eps2[:1], eps2[1:2]
                base = ddim_step(x, guided(eps_u, eps_c, w), a_t, a_next)
            elif direct:
                # the source trajectory's conditional eps comes free from the inversion (level i >= 1)
                known = i in src_eps
                rows = [x, x, src_traj[i]] + ([] if known else [src_traj[i]])
                conds = [cond, u, u] + ([] if known else [cond])
                eps3 = h.eps(torch.cat(rows), t1.repeat(len(rows)), cond_cat(conds))
                eps_c, eps_u = eps3[:1], eps3[1:2]
                eps_src = guided(eps3[2:3], src_eps[i] if known else eps3[3:4], w)
                base = ddim_step(src_traj[i], eps_src, a_t, a_next)
            else:
                eps2 = h.eps(torch.cat([x, x]), t1.repeat(2), cond_cat([cond, u]))
                eps_c, eps_u = eps2[:1], eps2[1:2]
                base = None
            if recorder is not None:
                recorder.active = False
            eps = guided(eps_u, eps_c, w)
            if in_window:
                if mask is None:
                    mask = get_mask()
                x0_src = predict_x0(x, eps, a_t)
                x0_window.append(x0_src.detach().cpu())
                if cfg.matching == "progressive":
                    fs, ft = features(torch.cat([x0_src, x0_tar[i]]))
                    with meter.stage("matching"):
                        corr = correspondence(fs, ft, cfg.match_chunk)
                matched = gather_matched(x0_tar[i], corr, size)
                shift = x0_shift(transfer_x0(x0_src, matched, mask, cfg.delta), x0_src)
                x_prime, x_star = latent_deviation(x, shift, a_t, cfg.lam)
                eps2p = h.eps(torch.cat([x_prime, x_prime]), t1.repeat(2), cond_cat([cond, u]))
                if cfg.gamma_on == "guided":
                    eps_star = mix_noise(eps, guided(eps2p[1:], eps2p[:1], w), cfg.gamma)
                else:
                    eps_star = guided(mix_noise(eps_u, eps2p[1:], cfg.gamma), eps2p[:1], w)
                x_next = ddim_step(x_star, eps_star, a_t, a_next)
            else:
                x_next = ddim_step(x, eps, a_t, a_next)
            if base is not None:
                # Direct Inversion's correction X[i+1] - ddim(X[i], eps_cfg(X[i])), added as the
                # difference of the two steps so that equal inputs give X[i+1] bit-exactly
                x_next = src_traj[i + 1] + (x_next - base)
            x = x_next
            report("sampling", i - first + 1, n - first)
    if mask is None:
        mask = torch.ones(size) if not transfer else get_mask()
    return FGATResult(
        latent=x, mask=mask.detach().cpu(), correspondence=None if corr is None else corr.cpu(),
        x0_window=x0_window, window=(start, end), messages=messages, stats=meter.stats,
    )


def _cache_keys(
    inputs: FGATInputs, cfg: FGATConfig, sched: Schedule, transfer: bool, start: int, first: int,
    recorder: AttentionRecorder | None,
) -> tuple[tuple | None, tuple | None]:
    """Cache keys of the source trace and the target's x0 trajectory: the caller's identity of the
    image (+ prompt, model) and everything else the stored value depends on."""
    lat = inputs.source_latent
    grid = (tuple(sched.timesteps.tolist()), tuple(sched.alphas.tolist()), tuple(lat.shape), str(lat.dtype),
            str(lat.device))
    src_key = tar_key = None
    if inputs.source_key is not None:
        direct = cfg.inversion == "direct"
        null_text = None
        if cfg.inversion == "null-text":
            null_text = (cfg.guidance_scale, cfg.null_text_steps, cfg.null_text_lr, cfg.null_text_epsilon)
        # direct inversion records the mask's attention maps during the source inversion
        attention = None
        if recorder is not None and direct:
            attention = (tuple(recorder.tokens), tuple(recorder.grids), start)
        src_key = ("source", inputs.source_key, grid, cfg.inversion, first if direct else None, null_text,
                   attention)
    if transfer and inputs.target_key is not None:
        tar_key = ("target", inputs.target_key, grid, start)  # x0 is kept for every level >= start
    return src_key, tar_key


def _dift_conds(inputs: FGATInputs, cfg: FGATConfig) -> list[Cond]:
    if cfg.dift_prompt == "own":
        return [inputs.source_cond, inputs.target_cond]
    empty = inputs.empty_cond if inputs.empty_cond is not None else inputs.uncond
    return [empty, empty]


def ddim_sample(
    host: Denoiser, x_t: Tensor, cond: Cond, uncond: Cond, schedule: Schedule, guidance_scale: float,
    progress: Progress | None = None,
) -> Tensor:
    """Plain CFG DDIM sampling over the whole schedule (the baseline FGAT's cost is measured against)."""
    x = x_t
    n = schedule.steps
    with torch.no_grad():
        for i in range(n):
            t = torch.full((2,), int(schedule.timesteps[i]), dtype=torch.long, device=x.device)
            eps2 = host.eps(torch.cat([x, x]), t, cond_cat([cond, uncond]))
            x = ddim_step(x, guided(eps2[1:], eps2[:1], guidance_scale), schedule.a(i), schedule.a(i + 1))
            if progress is not None:
                progress("sampling", i + 1, n)
    return x
