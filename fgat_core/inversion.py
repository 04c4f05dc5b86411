"""Source and target inversion over a Denoiser (docs/DESIGN.md §2.2).

Convention: level k < N is timestep tau_k, level N the clean latent (timestep 0). Inverting from level
k to k-1 evaluates the UNet at the level-k latent and its own timestep, eps_k = eps(X[k], tau_k), then
X[k-1] = ddim(X[k], eps_k, a_k -> a_{k-1}). So the inversion's call at level k is exactly the call that
sampling would make at X[k]: it yields x0 of the target at tau_k and the source's attention there."""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from .host import CONTEXT, Cond, Denoiser, cond_cat
from .schedule import Schedule, ddim_step

# observer(level, eps_rows, x_rows, active_row_ids) after each batched inversion call
Observer = Callable[[int, Tensor, Tensor, list[int]], None]
# around_call(level, active_row_ids): a context the batched inversion call at that level runs in
AroundCall = Callable[[int, list[int]], AbstractContextManager[object]]


def guided(eps_uncond: Tensor, eps_cond: Tensor, scale: float) -> Tensor:
    """Classifier-free guidance: eps_u + w (eps_c - eps_u)."""
    return eps_uncond + scale * (eps_cond - eps_uncond)


@dataclass
class InversionTrace:
    """Latents per level for each inverted row; eps (conditional, guidance 1) per level."""

    latents: list[dict[int, Tensor]] = field(default_factory=list)
    eps: list[dict[int, Tensor]] = field(default_factory=list)


def ddim_invert(
    host: Denoiser,
    latents: list[Tensor],
    conds: list[Cond],
    sched: Schedule,
    stop_levels: list[int],
    keep_eps_from: list[int] | None = None,
    around_call: AroundCall | None = None,
    observer: Observer | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> InversionTrace:
    """DDIM inversion (guidance 1) of several images at once, one batched UNet call per level.

    Row r makes calls at levels N, N-1, ..., stop_levels[r] and so reaches level stop_levels[r] - 1.
    Rows still running share each call. Returns every latent X[k] and, for k >= keep_eps_from[r], eps_k."""
    n = sched.steps
    trace = InversionTrace([{n: x} for x in latents], [{} for _ in latents])
    keep = keep_eps_from or [n + 1] * len(latents)
    lowest = min(stop_levels)
    for k in range(n, lowest - 1, -1):
        active = [r for r, lo in enumerate(stop_levels) if k >= lo]
        x = torch.cat([trace.latents[r][k] for r in active])
        cond = cond_cat([conds[r] for r in active])
        t = torch.full((len(active),), int(sched.timesteps[k]), dtype=torch.long, device=x.device)
        with around_call(k, active) if around_call is not None else nullcontext():
            eps = host.eps(x, t, cond)
        if observer is not None:
            observer(k, eps, x, active)
        a_k, a_up = sched.a(k), sched.a(k - 1)
        for j, r in enumerate(active):
            if k >= keep[r]:
                trace.eps[r][k] = eps[j : j + 1]
            trace.latents[r][k - 1] = ddim_step(x[j : j + 1], eps[j : j + 1], a_k, a_up)
        if progress is not None:
            progress(n - k + 1, n - lowest + 1)
    return trace


def direct_inversion_step(
    x_next: Tensor, x_level: Tensor, eps_level: Tensor, x_next_level: Tensor, a_t: float, a_next: float
) -> Tensor:
    """Direct Inversion (Ju et al. 2024): the step x_next corrected by X[i+1] - ddim(X[i], eps_cfg(X[i])).

    Evaluated as X[i+1] + (x_next - ddim(X[i], eps_level)), the same value, so that a step taken from
    the trajectory itself (x_next equal to that ddim step) returns X[i+1] bit-exactly."""
    return x_next_level + (x_next - ddim_step(x_level, eps_level, a_t, a_next))


def loss_scale(loss: Tensor, ceiling: float = 2.0**24) -> float:
    """A power of two that brings `loss` near 1 (at most `ceiling`), for the backward pass.

    Null-text losses are ~1e-6, and their gradients underflow to zero in a half-precision UNet (a WebUI's
    fp16 model, the CLI on CUDA): all of them, measured on the tiny model. Scaling the loss before the
    backward pass and the gradient back after it keeps them; a power of two scales exactly, so float32
    results are bit-identical to unscaled ones."""
    value = float(loss.detach())
    if not math.isfinite(value) or value <= 0.0:
        return 1.0
    return float(2.0 ** min(max(0, round(-math.log2(value))), int(math.log2(ceiling))))


def null_text_optimize(
    host: Denoiser,
    trajectory: dict[int, Tensor],
    cond: Cond,
    uncond: Cond,
    sched: Schedule,
    guidance_scale: float,
    inner_steps: int = 10,
    lr: float = 1e-2,
    epsilon: float = 1e-5,
    progress: Callable[[int, int], None] | None = None,
) -> list[Cond]:
    """Null-text inversion (Mokady et al. 2023): per-step Adam on the unconditional context.

    lr = lr (1 - i/100), up to `inner_steps` iterations, early stop at loss < epsilon + 2e-5 i.
    Returns the N optimised unconditional conditionings, in sampling order."""
    n = sched.steps
    out: list[Cond] = []
    # Leave inference mode (Forge runs generation under it) and enable autograd for the optimisation.
    with torch.inference_mode(False), torch.enable_grad():
        ctx = uncond[CONTEXT].detach().clone().float()
        rest = {k: v.detach().clone() for k, v in uncond.items() if k != CONTEXT}
        cond_c = {k: v.detach().clone() for k, v in cond.items()}
        x = trajectory[0].detach().clone()
        ceiling = 2.0**24  # the largest loss scale; lowered if a scaled backward pass overflows
        for i in range(n):
            t = torch.full((1,), int(sched.timesteps[i]), dtype=torch.long, device=x.device)
            a_t, a_next = sched.a(i), sched.a(i + 1)
            target = trajectory[i + 1].detach().clone()
            with torch.no_grad():
                eps_c = host.eps(x, t, cond_c)
            ctx = ctx.detach().clone().requires_grad_(True)
            opt = torch.optim.Adam([ctx], lr=lr * (1.0 - i / 100.0))
            for _ in range(inner_steps):
                u = {CONTEXT: ctx.to(uncond[CONTEXT].dtype), **rest}
                eps_u = host.eps(x, t, u)
                x_prev = ddim_step(x, guided(eps_u, eps_c, guidance_scale), a_t, a_next)
                loss = F.mse_loss(x_prev.float(), target.float())
                # grad w.r.t. the embedding only: no weight gradients are formed or kept
                scale = loss_scale(loss, ceiling)
                grad = torch.autograd.grad(loss * scale, ctx)[0] / scale
                if not torch.isfinite(grad).all():  # half-precision overflow: skip this update, scale less
                    ceiling = max(1.0, scale / 2**4)
                    continue
                ctx.grad = grad
                opt.step()
                if loss.item() < epsilon + i * 2e-5:
                    break
            u_final = {CONTEXT: ctx.detach().clone().to(uncond[CONTEXT].dtype), **rest}
            out.append(u_final)
            with torch.no_grad():
                eps = host.eps(torch.cat([x, x]), torch.cat([t, t]), cond_cat([cond_c, u_final]))
                x = ddim_step(x, guided(eps[1:], eps[:1], guidance_scale), a_t, a_next).detach()
            if progress is not None:
                progress(i + 1, n)
    return out

