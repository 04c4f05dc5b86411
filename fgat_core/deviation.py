"""Appearance transfer in x0 space (Eq. 3), latent deviation (Eqs. 4-7), the deviated step (Eq. 13), and
`fgat_step`, one window step of the method built from them (docs/DESIGN.md §2.3)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from .inversion import guided
from .schedule import ddim_step
from .settings import GammaOn

# eps_at(x) -> (conditional eps, unconditional eps) at the latent x, at the step's timestep
EpsPair = Callable[[Tensor], tuple[Tensor, Tensor]]


def transfer_x0(x0_src: Tensor, x0_tar_matched: Tensor, mask: Tensor, delta: float) -> Tensor:
    """Eq. 3: x0' = M((1-d) x0_src + d C(x0_tar)) + (1-M) x0_src, written as x0_src + M d (C - x0_src).

    The two forms are equal algebraically; this one returns x0_src bit-exactly when d = 0 or M = 0."""
    return x0_src + (mask * delta) * (x0_tar_matched - x0_src)


def x0_shift(x0_prime: Tensor, x0_src: Tensor) -> Tensor:
    """Eq. 4: T(x0', x0) = x0' - x0."""
    return x0_prime - x0_src


def latent_deviation(x_t: Tensor, shift: Tensor, alpha_t: float, lam: float) -> tuple[Tensor, Tensor]:
    """Eqs. 5-6: x'_t = x_t + sqrt(a_t) T (Eq. 5 with Eq. 2), x*_t = lam x_t + (1-lam) x'_t.

    x*_t is evaluated as x_t + (1-lam)(x'_t - x_t): the same value, and x_t bit-exactly when lam = 1 or
    when T = 0."""
    x_prime = x_t + alpha_t**0.5 * shift
    x_star = x_t + (1.0 - lam) * (x_prime - x_t)
    return x_prime, x_star


def mix_noise(eps: Tensor, eps_prime: Tensor, gamma: float) -> Tensor:
    """Eq. 7: eps* = gamma eps(x_t) + (1-gamma) eps(x'_t), evaluated as eps + (1-gamma)(eps' - eps)
    (the same value; eps bit-exactly when gamma = 1 or eps' = eps)."""
    return eps + (1.0 - gamma) * (eps_prime - eps)


def deviated_step(x_star: Tensor, eps_star: Tensor, alpha_t: float, alpha_next: float) -> Tensor:
    """Eq. 13: the DDIM step from (x*_t, eps*) to x*_{t-1}."""
    return ddim_step(x_star, eps_star, alpha_t, alpha_next)


@dataclass(frozen=True)
class StepParams:
    """The knobs of one window step: delta (Eq. 3), lam (Eq. 6), gamma (Eq. 7), the CFG scale, and which
    noise gamma mixes (`GammaOn.GUIDED`: the guided eps; `UNCOND`: the unconditional branch only)."""

    delta: float
    lam: float
    gamma: float
    guidance_scale: float
    gamma_on: GammaOn = GammaOn.GUIDED


def fgat_step(
    x_t: Tensor,
    eps: Tensor,
    eps_uncond: Tensor,
    x0_src: Tensor,
    x0_matched: Tensor,
    mask: Tensor,
    eps_at: EpsPair,
    alpha_t: float,
    alpha_next: float,
    params: StepParams,
) -> Tensor:
    """One FGAT window step, x_t -> x*_{t-1}: Eq. 3 (transfer), Eq. 4 (shift), Eqs. 5-6 (deviated latents),
    eps at x'_t (`eps_at`, the step's one extra UNet call), Eq. 7 (noise mix), Eq. 13 (DDIM step).

    `eps` is the guided eps at x_t and `eps_uncond` its unconditional branch; `x0_src` = predict_x0(x_t, eps,
    alpha_t); `x0_matched` the target's x0 gathered at the matched positions C. Pure given `eps_at`."""
    p = params
    shift = x0_shift(transfer_x0(x0_src, x0_matched, mask, p.delta), x0_src)
    x_prime, x_star = latent_deviation(x_t, shift, alpha_t, p.lam)
    eps_cond_prime, eps_uncond_prime = eps_at(x_prime)
    if p.gamma_on == GammaOn.GUIDED:
        eps_star = mix_noise(eps, guided(eps_uncond_prime, eps_cond_prime, p.guidance_scale), p.gamma)
    else:
        eps_star = guided(mix_noise(eps_uncond, eps_uncond_prime, p.gamma), eps_cond_prime, p.guidance_scale)
    return deviated_step(x_star, eps_star, alpha_t, alpha_next)
