"""The FGAT driver shared by every host, in phases: plan, `invert`, the mask's attention, `sample`.

`run_fgat` runs them in order; each phase is a function of typed values, so a host or a test can run one
alone (docs/DESIGN.md §3)."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import torch
from torch import Tensor

from .config import FGATConfig
from .deviation import StepParams, fgat_step
from .host import Cond, Denoiser, eps_rows
from .inversion import InversionTrace, ddim_invert, direct_inversion_step, guided, null_text_optimize
from .mask import AttentionRecorder, prepare_user_mask, threshold_mask
from .matching import correspondence, dift_features, dift_noise, gather_matched, upsample_features
from .metering import STAGES, StageMeter, StageStats, counted
from .schedule import Schedule, ddim_step, predict_x0
from .settings import BackgroundLock, DiftPrompt, Inversion, MaskLevels, MaskSource, Matching, TargetMask

__all__ = [
    "STAGES", "FGATInputs", "FGATInterrupted", "FGATResult", "InversionStore", "Inversions", "Plan", "Progress",
    "StageStats", "ddim_sample", "invert", "plan_run", "record_first_level_attention", "run_fgat", "sample",
]

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
    # target-side masking (config.target_mask not none): the target prompt's object word, or a drawn target mask
    # target-prompt token positions of the target's object word; [] = the target prompt names no object (the
    # target-side mask is then the whole target, with a message)
    target_mask_tokens: list[int] | None = None
    target_user_mask: Tensor | None = None  # (h, w) in [0, 1]; when given, used instead of the attention


@dataclass
class FGATResult:
    latent: Tensor
    mask: Tensor  # (h, w)
    correspondence: Tensor | None  # last flat source->target map used
    x0_window: list[Tensor]  # x0 of the source at each window step (before transfer)
    window: tuple[int, int]
    messages: list[str] = field(default_factory=list)
    stats: dict[str, StageStats] = field(default_factory=dict)
    target_mask: Tensor | None = None  # (h, w): the target's object mask T (target-side masking only)


@dataclass(frozen=True)
class Plan:
    """The settings of one run that every phase reads: the schedule, the window [start, end), the first
    sampling step, whether to transfer at all, and the latent grid."""

    config: FGATConfig
    schedule: Schedule
    start: int
    end: int
    first: int
    transfer: bool
    size: tuple[int, int]

    @property
    def steps(self) -> int:
        return self.schedule.steps

    @property
    def direct(self) -> bool:
        """Direct Inversion: sampling starts at the window and is pulled back onto the source's trajectory."""
        return self.config.inversion is Inversion.DIRECT

    @property
    def null_text(self) -> bool:
        """Null-text inversion: one optimised unconditional embedding per sampling step."""
        return self.config.inversion is Inversion.NULL_TEXT

    def in_window(self, i: int) -> bool:
        return self.transfer and self.start <= i < self.end

    @property
    def target_masked(self) -> bool:
        return self.transfer and self.config.target_mask is not TargetMask.NONE

    @property
    def locked(self) -> bool:
        return self.transfer and self.config.background_lock is BackgroundLock.ON

    @property
    def all_levels(self) -> bool:
        return self.config.mask_levels is MaskLevels.ALL

    def source_attention_levels(self) -> range:
        """The source inversion's levels whose calls record the mask's attention: every level (`mask_levels`
        all, any inversion) or, with direct inversion, levels 1..start-1 (the latents and timesteps sampling
        would revisit; other inversions then record at the sampling steps before the window)."""
        if self.all_levels:
            return range(1, self.steps + 1)
        return range(1, self.start) if self.direct else range(0)

    def target_attention_levels(self) -> range:
        """The target inversion's levels whose calls record the target's object attention (no extra UNet
        call): every level it visits (`mask_levels` all), else the window's levels."""
        return range(self.start, self.steps + 1) if self.all_levels else range(self.start, self.end)


@dataclass
class Inversions:
    """The inversion phase's result, all that sampling takes from it.

    `source_latents[k]`: the source's inverted latent X[k] at every level k = 0..N; `source_eps[k]`: its
    conditional eps where kept (direct inversion: levels >= the first sampling step); `target_x0[k]`: the
    target's x0 at the levels the window visits; `uncond_steps`: null-text inversion's optimised
    unconditional conditionings, one per sampling step (None for the other modes)."""

    source_latents: dict[int, Tensor]
    source_eps: dict[int, Tensor]
    target_x0: dict[int, Tensor]
    uncond_steps: list[Cond] | None = None


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


def _reporter(progress: Progress | None, stage: str) -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        if progress is not None:
            progress(stage, done, total)

    return report


# ------------------------------------------------------------------------------------------------ plan
def plan_run(
    alphas_cumprod: Tensor, inputs: FGATInputs, config: FGATConfig, transfer: bool = True,
    schedule: Schedule | None = None, first_step: int | None = None,
) -> Plan:
    """The run's schedule and window. Sampling starts at the window start with `direct` inversion (exact
    reconstruction makes the steps before it redundant) and at step 0 otherwise; `first_step` overrides."""
    sched = schedule or Schedule.ddim(alphas_cumprod, config.steps)
    n = sched.steps
    start, end = config.window(n)
    first = first_step if first_step is not None else (start if config.inversion is Inversion.DIRECT else 0)
    if not 0 <= first < n:
        raise ValueError(f"first_step must be in [0, {n - 1}], got {first}")
    size = (int(inputs.source_latent.shape[-2]), int(inputs.source_latent.shape[-1]))
    return Plan(config, sched, start, end, first, transfer, size)


def _attention_recorder(host: Denoiser, inputs: FGATInputs, plan: Plan) -> AttentionRecorder | None:
    if not (plan.transfer and plan.config.mask_source is MaskSource.ATTENTION):
        return None
    if not inputs.mask_tokens:
        raise ValueError("mask_source 'attention' needs the token positions of the mask word")
    return AttentionRecorder(host.attention_layers(), inputs.mask_tokens, plan.size, plan.config.mask_layers)


def _target_recorder(host: Denoiser, inputs: FGATInputs, plan: Plan) -> AttentionRecorder | None:
    if not plan.target_masked or inputs.target_user_mask is not None or inputs.target_mask_tokens == []:
        return None
    if inputs.target_mask_tokens is None:
        raise ValueError("target_mask needs the token positions of the target's object word (or a target mask)")
    return AttentionRecorder(host.attention_layers(), inputs.target_mask_tokens, plan.size, plan.config.mask_layers)


def _user_mask(inputs: FGATInputs, plan: Plan) -> Tensor | None:
    if not (plan.transfer and plan.config.mask_source is MaskSource.USER):
        return None
    if inputs.user_mask is None:
        raise ValueError("mask_source is 'user' but no mask was given: draw or upload a mask, "
                         "or choose mask source 'attention' or 'none'")
    return prepare_user_mask(inputs.user_mask, plan.size).to(inputs.source_latent)


# ------------------------------------------------------------------------------------------------ run
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
    """Run FGAT (docs/DESIGN.md §2) and return the final latent.

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
    plan = plan_run(host.alphas_cumprod, inputs, config, transfer, schedule, first_step)
    host, meter = counted(host, None)
    recorder = _attention_recorder(host, inputs, plan)
    target_recorder = _target_recorder(host, inputs, plan)
    user_mask = _user_mask(inputs, plan)
    # null-text inversion turns autograd back on for its own optimisation only
    with torch.no_grad(), ExitStack() as hooks:
        for r in (recorder, target_recorder):
            if r is not None:
                hooks.enter_context(r)
        inversions = invert(host, inputs, plan, recorder=recorder, cache=cache, meter=meter, progress=progress,
                            target_recorder=target_recorder)
        if recorder is not None and plan.direct and plan.start == 1 and not plan.all_levels:
            with meter.stage("mask"):
                record_first_level_attention(host, recorder, inversions, inputs, plan)
        return sample(host, inversions, inputs, plan, recorder=recorder, user_mask=user_mask, meter=meter,
                      progress=progress, target_recorder=target_recorder)


# ------------------------------------------------------------------------------------------------ invert
@dataclass
class _InversionRow:
    role: str  # "source" or "target"
    latent: Tensor
    cond: Cond
    stop: int  # the lowest level this row makes a call at
    keep_eps_from: int


def _inversion_rows(inputs: FGATInputs, plan: Plan, source: bool, target: bool) -> list[_InversionRow]:
    """Rows of the joint inversion: the source (unless cached), then the target (unless cached). The target
    rides along even without transfer, so that the reconstruction reference sees the very same batched calls
    as a transfer run (batch composition can change float rounding)."""
    n = plan.steps
    rows = []
    if source:
        keep = plan.first if plan.direct else n + 1
        rows.append(_InversionRow("source", inputs.source_latent, inputs.source_cond, 1, keep))
    if target:
        rows.append(_InversionRow("target", inputs.target_latent, inputs.target_cond, plan.start, n + 1))
    return rows


def _joint_inversion(
    host: Denoiser,
    rows: list[_InversionRow],
    plan: Plan,
    recorder: AttentionRecorder | None,
    target_x0: dict[int, Tensor],
    keep_x0_to: int,
    progress: Progress | None,
    target_recorder: AttentionRecorder | None = None,
) -> InversionTrace:
    """DDIM-invert the rows in shared calls; keep the target's x0 at levels [start, keep_x0_to) in `target_x0`;
    with direct inversion, record the source's attention at levels 1..start-1 (the latents and timesteps
    sampling would revisit); record the target's object attention at `plan.target_attention_levels()`."""
    roles = [r.role for r in rows]
    src = roles.index("source") if "source" in roles else None
    tar = roles.index("target") if "target" in roles else None

    def observe(k: int, eps: Tensor, x: Tensor, active: list[int]) -> None:
        if tar in active and plan.start <= k < keep_x0_to:
            j = active.index(tar)
            target_x0[k] = predict_x0(x[j : j + 1], eps[j : j + 1], plan.schedule.a(k))

    def around(k: int, active: list[int]) -> AbstractContextManager[object]:
        stack = ExitStack()
        if recorder is not None and k in plan.source_attention_levels() and src in active:
            stack.enter_context(recorder.recording([active.index(src)]))
        if target_recorder is not None and k in plan.target_attention_levels() and tar in active:
            stack.enter_context(target_recorder.recording([active.index(tar)]))
        return stack

    return ddim_invert(
        host, [r.latent for r in rows], [r.cond for r in rows], plan.schedule, [r.stop for r in rows],
        [r.keep_eps_from for r in rows], around, observe, _reporter(progress, "inversion"),
    )


def invert(
    host: Denoiser, inputs: FGATInputs, plan: Plan, *, recorder: AttentionRecorder | None = None,
    cache: InversionStore | None = None, meter: StageMeter | None = None, progress: Progress | None = None,
    target_recorder: AttentionRecorder | None = None,
) -> Inversions:
    """Phase 1-2: invert the source (to level 0) and the target (to the window start) in shared UNet calls,
    or take either from `cache`; with null-text inversion, optimise the unconditional embeddings. The UNet
    calls are counted in `meter`. `target_recorder` records the target's object attention on the way."""
    host, meter = counted(host, meter)
    src_key, tar_key = _cache_keys(inputs, plan, recorder, target_recorder)
    src_hit = cache.get(src_key) if cache is not None and src_key is not None else None
    tar_hit = cache.get(tar_key) if cache is not None and tar_key is not None else None
    target_x0: dict[int, Tensor] = dict(tar_hit["x0"]) if tar_hit is not None else {}
    if tar_hit is not None and target_recorder is not None:
        target_recorder.restore(tar_hit["attention"])
    rows = _inversion_rows(inputs, plan, src_hit is None, tar_hit is None)
    # when caching, keep the target's x0 at every level it visits (k >= start), so that runs with another
    # window end share it
    keep_x0_to = plan.steps + 1 if tar_key is not None else plan.end
    with meter.stage("inversion"):
        trace = _joint_inversion(host, rows, plan, recorder, target_x0, keep_x0_to, progress,
                                 target_recorder) if rows else None
        if src_hit is not None:
            inversions = _source_from_cache(src_hit, target_x0, recorder)
        else:
            inversions = _source_from_trace(host, trace, inputs, plan, target_x0, progress)
            if cache is not None and src_key is not None:
                cache.put(src_key, _source_entry(inversions, plan, recorder))
        if cache is not None and tar_key is not None and tar_hit is None:
            attention = target_recorder.snapshot() if target_recorder is not None else None
            cache.put(tar_key, {"x0": dict(target_x0), "attention": attention})
    return inversions


def _source_from_trace(
    host: Denoiser, trace: InversionTrace, inputs: FGATInputs, plan: Plan, target_x0: dict[int, Tensor],
    progress: Progress | None,
) -> Inversions:
    latents, eps = trace.latents[0], trace.eps[0]  # the source is the first row when it is inverted
    uncond_steps = None
    if plan.null_text:
        c = plan.config
        uncond_steps = null_text_optimize(
            host, latents, inputs.source_cond, inputs.uncond, plan.schedule, c.guidance_scale,
            c.null_text_steps, c.null_text_lr, c.null_text_epsilon, _reporter(progress, "inversion"),
        )
    return Inversions(latents, eps, target_x0, uncond_steps)


def _source_entry(inversions: Inversions, plan: Plan, recorder: AttentionRecorder | None) -> dict[str, Any]:
    attention = recorder.snapshot() if recorder is not None and plan.source_attention_levels() else None
    return {"latents": inversions.source_latents, "eps": inversions.source_eps,
            "uncond_steps": inversions.uncond_steps, "attention": attention}


def _source_from_cache(
    entry: dict[str, Any], target_x0: dict[int, Tensor], recorder: AttentionRecorder | None
) -> Inversions:
    if recorder is not None and entry["attention"] is not None:
        recorder.restore(entry["attention"])
    return Inversions(entry["latents"], entry["eps"], target_x0, entry["uncond_steps"])


def _cache_keys(
    inputs: FGATInputs, plan: Plan, recorder: AttentionRecorder | None,
    target_recorder: AttentionRecorder | None = None,
) -> tuple[tuple | None, tuple | None]:
    """Cache keys of the source trace and the target's x0 trajectory: the caller's identity of the
    image (+ prompt, model) and everything else the stored value depends on."""
    lat, sched, cfg = inputs.source_latent, plan.schedule, plan.config
    grid = (tuple(sched.timesteps.tolist()), tuple(sched.alphas.tolist()), tuple(lat.shape), str(lat.dtype),
            str(lat.device))
    src_key = tar_key = None
    if inputs.source_key is not None:
        null_text = None
        if plan.null_text:
            null_text = (cfg.guidance_scale, cfg.null_text_steps, cfg.null_text_lr, cfg.null_text_epsilon)
        # the mask's attention maps recorded during the source inversion
        attention = None
        if recorder is not None and plan.source_attention_levels():
            attention = (tuple(recorder.tokens), tuple(recorder.grids), tuple(plan.source_attention_levels()))
        src_key = ("source", inputs.source_key, grid, cfg.inversion, plan.first if plan.direct else None,
                   null_text, attention)
    if plan.transfer and inputs.target_key is not None:
        target_attention = None  # the target's object attention, recorded at the window's levels
        if target_recorder is not None:
            target_attention = (tuple(target_recorder.tokens), tuple(target_recorder.grids),
                                tuple(plan.target_attention_levels()))
        # x0 is kept for every level >= start
        tar_key = ("target", inputs.target_key, grid, plan.start, target_attention)
    return src_key, tar_key


# ------------------------------------------------------------------------------------------------ mask
def record_first_level_attention(
    host: Denoiser, recorder: AttentionRecorder, inversions: Inversions, inputs: FGATInputs, plan: Plan
) -> None:
    """The one UNet call the attention mask costs with direct inversion and a window starting at step 1:
    the inversion records levels 1..start-1, never tau_0, so evaluate the conditional branch at X[0]."""
    with recorder.recording([0]):
        eps_rows(host, int(plan.schedule.timesteps[0]), [(inversions.source_latents[0], inputs.source_cond)])


def _mask(
    inputs: FGATInputs, plan: Plan, recorder: AttentionRecorder | None, user_mask: Tensor | None,
    messages: list[str], meter: StageMeter,
) -> Tensor:
    """The mask M of Eq. 3 on the latent grid: all ones, the user's mask, or the object word's attention."""
    cfg, like = plan.config, inputs.source_latent
    if cfg.mask_source is MaskSource.NONE or not plan.transfer:
        return torch.ones(plan.size, dtype=like.dtype, device=like.device)
    if cfg.mask_source is MaskSource.USER:
        if user_mask.max() <= 0:
            messages.append(
                "FGAT: the mask is all black, so nothing was transferred (paint the parts to transfer white)"
            )
        return user_mask
    with meter.stage("mask"):
        m = threshold_mask(recorder.mean_map(), cfg.mask_threshold, cfg.mask_dilate, cfg.mask_threshold_mode)
    if m.sum() == 0:
        messages.append(
            "FGAT: the attention mask of the object word thresholded to nothing; the whole image "
            "was used as the mask instead (lower mask_threshold or pick another word)"
        )
        m = torch.ones_like(m)
    return m.to(like)


def _target_mask(
    inputs: FGATInputs, plan: Plan, recorder: AttentionRecorder | None, messages: list[str], meter: StageMeter
) -> Tensor:
    """The target's object mask T on the latent grid (target-side masking): the drawn target mask, or the
    target object word's attention thresholded as the source's is (not dilated: matches that land on the
    target's background must not count). All ones when it thresholds to nothing (with a message)."""
    cfg, like = plan.config, inputs.target_latent
    if inputs.target_user_mask is not None:
        return prepare_user_mask(inputs.target_user_mask, plan.size).to(like)
    if recorder is None:  # the target prompt names no object
        messages.append("FGAT: the target prompt names no object, so the whole target was used for the "
                        "target-side mask (write a target prompt naming the object, or set target_mask 'none')")
        return torch.ones(plan.size, dtype=like.dtype, device=like.device)
    with meter.stage("mask"):
        m = threshold_mask(recorder.mean_map(), cfg.mask_threshold, 0, cfg.mask_threshold_mode)
    if m.sum() == 0:
        messages.append("FGAT: the target's attention mask thresholded to nothing; the whole target was used "
                        "instead (lower mask_threshold or pick another target word)")
        m = torch.ones_like(m)
    return m.to(like)


def gate_mask(mask: Tensor, target_object: Tensor, corr: Tensor) -> Tensor:
    """Target-side gating: M(p) T(C(p)), a source cell transfers only as much as its match lies on the target's
    object T; M itself where T is all ones."""
    return mask * target_object.flatten()[corr].reshape(mask.shape)


def lock_background(x: Tensor, trajectory_latent: Tensor, keep: Tensor) -> Tensor:
    """The background lock: `x` where keep = 1, the source trajectory's latent where keep = 0, their blend
    between (blended latent diffusion's step, beyond the paper); bit-exact at both ends."""
    blend = trajectory_latent + keep * (x - trajectory_latent)
    return torch.where(keep >= 1, x, blend)


# ------------------------------------------------------------------------------------------------ sample
class _Matcher:
    """Semantic matching (DIFT) for the run: fixed noise drawn once, the latest correspondence kept."""

    def __init__(self, host: Denoiser, inputs: FGATInputs, plan: Plan, meter: StageMeter) -> None:
        self.host, self.plan, self.meter = host, plan, meter
        self.conds = _dift_conds(inputs, plan.config)
        self.noise: Tensor | None = None
        self.corr: Tensor | None = None

    def match(self, x0_pair: Tensor, allowed: Tensor | None = None) -> Tensor:
        """C for the (source, target) x0 rows of `x0_pair`: flat target indices per source position, among the
        `allowed` target cells (None: all)."""
        cfg, size = self.plan.config, self.plan.size
        if self.noise is None:
            self.noise = dift_noise(tuple(x0_pair.shape[1:]), cfg.dift_ensemble, cfg.seed, x0_pair.device,
                                    x0_pair.dtype)
        with self.meter.stage("matching"):
            fs, ft = dift_features(self.host, x0_pair, self.conds, cfg.dift_timestep, self.noise)
            fs, ft = upsample_features(fs, size), upsample_features(ft, size)
            self.corr = correspondence(fs, ft, cfg.match_chunk, allowed)
        return self.corr


def _dift_conds(inputs: FGATInputs, cfg: FGATConfig) -> list[Cond]:
    if cfg.dift_prompt is DiftPrompt.OWN:
        return [inputs.source_cond, inputs.target_cond]
    empty = inputs.empty_cond if inputs.empty_cond is not None else inputs.uncond
    return [empty, empty]


def _uncond_picker(inputs: FGATInputs, plan: Plan, inversions: Inversions) -> Callable[[int], Cond]:
    """The unconditional branch's conditioning at step i, chosen once per run by the inversion mode: the
    source prompt (negative-prompt inversion), the optimised embedding of step i (null-text), else uncond."""
    if plan.config.inversion is Inversion.NEGATIVE_PROMPT:
        return lambda i: inputs.source_cond
    if inversions.uncond_steps is not None:
        return inversions.uncond_steps.__getitem__
    return lambda i: inputs.uncond


class _Sampler:
    """The sampling loop's state: the mask (made at the first window step), the matcher, x0 per window step."""

    def __init__(
        self, host: Denoiser, inversions: Inversions, inputs: FGATInputs, plan: Plan,
        recorder: AttentionRecorder | None, user_mask: Tensor | None, meter: StageMeter,
        target_recorder: AttentionRecorder | None = None,
    ) -> None:
        self.host, self.inv, self.inputs, self.plan = host, inversions, inputs, plan
        self.recorder, self.user_mask, self.meter = recorder, user_mask, meter
        self.target_recorder = target_recorder
        self.target_object: Tensor | None = None  # the target's object mask T (target-side masking)
        c = plan.config
        self.params = StepParams(c.delta, c.lam, c.gamma, c.guidance_scale, c.gamma_on)
        self.matcher = _Matcher(host, inputs, plan, meter)
        self.uncond = _uncond_picker(inputs, plan, inversions)
        self.mask: Tensor | None = None
        self.x0_window: list[Tensor] = []
        self.messages: list[str] = []

    def get_mask(self) -> Tensor:
        if self.mask is None:
            self.mask = _mask(self.inputs, self.plan, self.recorder, self.user_mask, self.messages, self.meter)
        return self.mask

    def get_target_object(self) -> Tensor | None:
        """T, the target's object mask (None without target-side masking)."""
        if self.target_object is None and self.plan.target_masked:
            self.target_object = _target_mask(self.inputs, self.plan, self.target_recorder, self.messages,
                                              self.meter)
        return self.target_object

    def transfer_mask(self) -> Tensor:
        """The mask of Eq. 3 at this step: M, gated by the target's object mask at the matches (`gate`)."""
        mask, obj = self.get_mask(), self.get_target_object()
        if obj is None or self.plan.config.target_mask is not TargetMask.GATE:
            return mask
        return gate_mask(mask, obj, self.matcher.corr)

    def step(self, i: int, x: Tensor) -> Tensor:
        """Sampling step i: x at level i -> level i + 1 (a plain CFG DDIM step, or an FGAT step in the
        window), with Direct Inversion's correction toward the source trajectory when inverting `direct`."""
        p, traj = self.plan, self.inv.source_latents
        on_trajectory = p.direct and torch.equal(x, traj[i])
        if on_trajectory and not p.in_window(i):
            return traj[i + 1]  # still on the inverted trajectory: direct inversion's step gives X[i+1] exactly
        u = self.uncond(i)
        eps_c, eps_u, eps_source = self.step_eps(i, x, u, on_trajectory)
        eps = guided(eps_u, eps_c, p.config.guidance_scale)
        a_t, a_next = p.schedule.a(i), p.schedule.a(i + 1)
        if p.in_window(i):
            x_next = self.window_step(i, x, eps, eps_u, u)
        else:
            x_next = ddim_step(x, eps, a_t, a_next)
        if eps_source is not None:
            x_next = direct_inversion_step(x_next, traj[i], eps_source, traj[i + 1], a_t, a_next)
        if p.locked and i >= p.start:
            x_next = lock_background(x_next, traj[i + 1], self.get_mask())
        return x_next

    def step_eps(self, i: int, x: Tensor, u: Cond, on_trajectory: bool) -> tuple[Tensor, Tensor, Tensor | None]:
        """eps_c and eps_u at x and, with direct inversion, the guided eps at the trajectory's X[i], in one
        batched call. Before the window (other inversions) the call records the mask's attention."""
        p, cond = self.plan, self.inputs.source_cond
        rows = [(x, cond), (x, u)] + self.source_rows(i, u, on_trajectory)
        record = self.recorder is not None and not p.direct and not p.all_levels and i < p.start
        with self.recorder.recording([0]) if record else nullcontext():
            eps = eps_rows(self.host, int(p.schedule.timesteps[i]), rows)
        return eps[0], eps[1], self.source_eps(i, eps, on_trajectory)

    def source_rows(self, i: int, u: Cond, on_trajectory: bool) -> list[tuple[Tensor, Cond]]:
        """Direct Inversion's extra rows at X[i]: none on the trajectory (x is X[i]), else the unconditional
        branch, and the conditional one unless the inversion kept it (levels >= the first step)."""
        if not self.plan.direct or on_trajectory:
            return []
        x_level = self.inv.source_latents[i]
        known = i in self.inv.source_eps
        return [(x_level, u)] + ([] if known else [(x_level, self.inputs.source_cond)])

    def source_eps(self, i: int, eps: list[Tensor], on_trajectory: bool) -> Tensor | None:
        if not self.plan.direct:
            return None
        w = self.plan.config.guidance_scale
        if on_trajectory:
            return guided(eps[1], eps[0], w)
        known = self.inv.source_eps.get(i)
        return guided(eps[2], known if known is not None else eps[3], w)

    def window_step(self, i: int, x: Tensor, eps: Tensor, eps_u: Tensor, u: Cond) -> Tensor:
        """Match (progressive: at this step's x0), gather the target's x0, and take `fgat_step`."""
        p, cond = self.plan, self.inputs.source_cond
        a_t, a_next = p.schedule.a(i), p.schedule.a(i + 1)
        x0_src = predict_x0(x, eps, a_t)
        self.x0_window.append(x0_src.detach().cpu())
        x0_tar = self.inv.target_x0[i]
        if p.config.matching is Matching.PROGRESSIVE:
            self.matcher.match(torch.cat([x0_src, x0_tar]), self.allowed_targets())
        mask = self.transfer_mask()
        matched = gather_matched(x0_tar, self.matcher.corr, p.size)
        t = int(p.schedule.timesteps[i])

        def eps_at(x_prime: Tensor) -> tuple[Tensor, Tensor]:
            eps_c_prime, eps_u_prime = eps_rows(self.host, t, [(x_prime, cond), (x_prime, u)])
            return eps_c_prime, eps_u_prime

        return fgat_step(x, eps, eps_u, x0_src, matched, mask, eps_at, a_t, a_next, self.params)

    def allowed_targets(self) -> Tensor | None:
        """The target cells the matching may pick: the target's object (`restrict`), else all (None)."""
        obj = self.get_target_object()
        return obj > 0.5 if obj is not None and self.plan.config.target_mask is TargetMask.RESTRICT else None


def sample(
    host: Denoiser, inversions: Inversions, inputs: FGATInputs, plan: Plan, *,
    recorder: AttentionRecorder | None = None, user_mask: Tensor | None = None, meter: StageMeter | None = None,
    progress: Progress | None = None, target_recorder: AttentionRecorder | None = None,
) -> FGATResult:
    """Phase 3-6: sample from the inverted source at `plan.first`, FGAT steps inside the window. The result's
    `stats` are `meter`'s (a new meter if None): this phase's UNet calls and those counted there before."""
    host, meter = counted(host, meter)
    s = _Sampler(host, inversions, inputs, plan, recorder, user_mask, meter, target_recorder)
    if plan.transfer and plan.config.matching is Matching.INITIAL:
        s.matcher.match(torch.cat([inputs.source_latent, inputs.target_latent]), s.allowed_targets())
    report = _reporter(progress, "sampling")
    x = inversions.source_latents[plan.first]
    with meter.stage("sampling"):
        for i in range(plan.first, plan.steps):
            x = s.step(i, x)
            report(i - plan.first + 1, plan.steps - plan.first)
    mask = torch.ones(plan.size) if not plan.transfer else s.get_mask()
    corr = s.matcher.corr
    return FGATResult(
        latent=x, mask=mask.detach().cpu(), correspondence=None if corr is None else corr.cpu(),
        x0_window=s.x0_window, window=(plan.start, plan.end), messages=s.messages, stats=meter.stats,
        target_mask=None if s.target_object is None else s.target_object.detach().cpu(),
    )


def ddim_sample(
    host: Denoiser, x_t: Tensor, cond: Cond, uncond: Cond, schedule: Schedule, guidance_scale: float,
    progress: Progress | None = None,
) -> Tensor:
    """Plain CFG DDIM sampling over the whole schedule (the baseline FGAT's cost is measured against)."""
    x = x_t
    n = schedule.steps
    report = _reporter(progress, "sampling")
    with torch.no_grad():
        for i in range(n):
            eps_c, eps_u = eps_rows(host, int(schedule.timesteps[i]), [(x, cond), (x, uncond)])
            x = ddim_step(x, guided(eps_u, eps_c, guidance_scale), schedule.a(i), schedule.a(i + 1))
            report(i + 1, n)
    return x
