"""Schedule math: a_t, x0/eps/v conversions and the DDIM step (paper Eqs. 1-2, docs/DESIGN.md §2.1)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def _sqrt(a: Tensor | float) -> Tensor | float:
    return a**0.5


def predict_x0(x_t: Tensor, eps: Tensor, alpha_t: Tensor | float) -> Tensor:
    """Eq. 2 solved for x0: x0 = (x_t - sqrt(1 - a_t) * eps) / sqrt(a_t)."""
    return (x_t - _sqrt(1 - alpha_t) * eps) / _sqrt(alpha_t)


def ddim_step(x_t: Tensor, eps: Tensor, alpha_t: Tensor | float, alpha_next: Tensor | float) -> Tensor:
    """Eq. 1 / Eq. 13: deterministic DDIM move from a_t to a_next (either direction)."""
    return _sqrt(alpha_next) * predict_x0(x_t, eps, alpha_t) + _sqrt(1 - alpha_next) * eps


def eps_from_v(x_t: Tensor, v: Tensor, alpha_t: Tensor | float) -> Tensor:
    """v-prediction to eps: eps = sqrt(a) * v + sqrt(1 - a) * x_t."""
    return _sqrt(alpha_t) * v + _sqrt(1 - alpha_t) * x_t


def v_from_eps(x_t: Tensor, eps: Tensor, alpha_t: Tensor | float) -> Tensor:
    """eps to v: v = (eps - sqrt(1 - a) * x_t) / sqrt(a)."""
    return (eps - _sqrt(1 - alpha_t) * x_t) / _sqrt(alpha_t)


def sigma_from_alpha(alpha: Tensor | float) -> Tensor | float:
    """VP -> VE noise level: sigma = sqrt((1 - a) / a)."""
    return _sqrt((1 - alpha) / alpha)


def alpha_from_sigma(sigma: Tensor | float) -> Tensor | float:
    """VE -> VP: a = 1 / (1 + sigma^2)."""
    return 1.0 / (1.0 + sigma**2)


def scaled_linear_alphas_cumprod(
    beta_start: float = 0.00085, beta_end: float = 0.012, num_train_timesteps: int = 1000
) -> Tensor:
    """The Stable Diffusion training schedule (scaled_linear betas), float64."""
    betas = torch.linspace(beta_start**0.5, beta_end**0.5, num_train_timesteps, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0)


def rescale_zero_terminal_snr(alphas_cumprod: Tensor) -> Tensor:
    """a_t rescaled to zero terminal SNR (Lin et al. 2024, Alg. 1): sqrt(a_t) shifted and scaled so that it keeps
    its first value and ends at 0 (the schedule ZTSNR v-prediction models are trained on)."""
    sqrt_a = alphas_cumprod.double().sqrt()
    first, last = sqrt_a[0].clone(), sqrt_a[-1].clone()
    return ((sqrt_a - last) * first / (first - last)) ** 2


def ddim_timesteps(steps: int, num_train_timesteps: int = 1000) -> Tensor:
    """tau_0 > ... > tau_{N-1}: 'leading' spacing with offset 1 (981, 961, ..., 1 at N = 50).

    This is diffusers' DDIMScheduler with steps_offset=1 and A1111's DDIM 'uniform' grid."""
    if not 1 <= steps <= num_train_timesteps:
        raise ValueError(f"steps must be in [1, {num_train_timesteps}], got {steps}")
    ratio = num_train_timesteps // steps
    return (torch.arange(steps, dtype=torch.long) * ratio).flip(0) + 1


@dataclass(frozen=True)
class Schedule:
    """Levels k = 0..N of one trajectory: level k < N is timestep tau_k, level N is the clean latent.

    `alphas[k]` is a(tau_k) for k < N and a_final = alphas_cumprod[0] for k = N (DDIM with
    set_alpha_to_one=False, as SD and A1111 use). `timesteps[N]` is 0, the timestep at which the
    clean latent is seen by the UNet during inversion."""

    timesteps: Tensor  # (N + 1,) long
    alphas: Tensor  # (N + 1,) float64

    @classmethod
    def ddim(cls, alphas_cumprod: Tensor, steps: int) -> Schedule:
        ac = alphas_cumprod.detach().to("cpu", torch.float64)
        taus = ddim_timesteps(steps, ac.numel())
        ts = torch.cat([taus, torch.zeros(1, dtype=torch.long)])
        alphas = torch.cat([ac[taus], ac[:1]])
        return cls(ts, alphas)

    @property
    def steps(self) -> int:
        return self.timesteps.numel() - 1

    def a(self, k: int) -> float:
        return float(self.alphas[k])
