"""Appearance transfer in x0 space (Eq. 3) and latent deviation (Eqs. 5-7)."""

from __future__ import annotations

from torch import Tensor

from .schedule import ddim_step


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


def deviated_step_closed_form(
    x0: Tensor, shift: Tensor, eps: Tensor, eps_star: Tensor, alpha_t: float, alpha_next: float, lam: float
) -> Tensor:
    """Eq. 8 (= Eq. 15): sqrt(a')(x0 + (1-lam) T) + sqrt(1-a') eps* + sqrt(a'(1-a)/a) (eps - eps*)."""
    a, an = alpha_t, alpha_next
    return (
        an**0.5 * (x0 + (1.0 - lam) * shift)
        + (1 - an) ** 0.5 * eps_star
        + (an * (1 - a) / a) ** 0.5 * (eps - eps_star)
    )
