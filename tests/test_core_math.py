"""The paper's identities (docs/DESIGN.md §2.9) checked against independent formulas, in float64."""

import math

import pytest
import torch

from fgat_core import FGATConfig
from fgat_core.deviation import StepParams, fgat_step, latent_deviation, mix_noise, transfer_x0, x0_shift
from fgat_core.inversion import direct_inversion_step
from fgat_core.schedule import (
    Schedule,
    alpha_from_sigma,
    ddim_step,
    ddim_timesteps,
    eps_from_v,
    predict_x0,
    scaled_linear_alphas_cumprod,
    sigma_from_alpha,
    v_from_eps,
)

D = torch.float64


def _rand(g, *shape):
    return torch.randn(*shape, generator=g, dtype=D)


@pytest.mark.parametrize("trial", range(20))
def test_eq13_equals_closed_form_eq8(trial):
    """Eq. 13 applied to (x*_t, eps*) from Eqs. 5-7 equals the paper's closed form Eq. 8, written out here."""
    g = torch.Generator().manual_seed(trial)
    # a random schedule: increasing alphas along the sampling direction
    a_t = float(torch.rand(1, generator=g, dtype=D) * 0.9 + 0.05)
    a_prev = a_t + (1 - a_t) * float(torch.rand(1, generator=g, dtype=D)) * 0.99
    lam, gam, delta = (float(v) for v in torch.rand(3, generator=g, dtype=D))
    x_t, eps, eps_p = _rand(g, 2, 4, 8, 8), _rand(g, 2, 4, 8, 8), _rand(g, 2, 4, 8, 8)
    tar, mask = _rand(g, 2, 4, 8, 8), (torch.rand(1, 1, 8, 8, generator=g, dtype=D) > 0.5).to(D)

    x0 = predict_x0(x_t, eps, a_t)
    shift = x0_shift(transfer_x0(x0, tar, mask, delta), x0)
    _, x_star = latent_deviation(x_t, shift, a_t, lam)
    eps_star = mix_noise(eps, eps_p, gam)
    eq13 = ddim_step(x_star, eps_star, a_t, a_prev)

    # Eq. 8, transcribed from the paper independently of fgat_core
    x0_ref = (x_t - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
    T = mask * ((1 - delta) * x0_ref + delta * tar) + (1 - mask) * x0_ref - x0_ref
    e_star = gam * eps + (1 - gam) * eps_p
    eq8 = (
        math.sqrt(a_prev) * (x0_ref + (1 - lam) * T)
        + math.sqrt(1 - a_prev) * e_star
        + math.sqrt(a_prev * (1 - a_t) / a_t) * (eps - e_star)
    )
    torch.testing.assert_close(eq13, eq8, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("gamma_on", ["guided", "uncond"])
@pytest.mark.parametrize("trial", range(5))
def test_fgat_step_equals_closed_form_eq8(trial, gamma_on):
    """The engine's window step, `fgat_step` (Eqs. 3-7 and 13 with the UNet call at x'_t injected), equals Eq. 8
    written out independently, with eps(x'_t) from a known linear noise model and CFG spelled out."""
    g = torch.Generator().manual_seed(100 + trial)
    a_t = float(torch.rand(1, generator=g, dtype=D) * 0.9 + 0.05)
    a_prev = a_t + (1 - a_t) * float(torch.rand(1, generator=g, dtype=D)) * 0.99
    lam, gam, delta = (float(v) for v in torch.rand(3, generator=g, dtype=D))
    w = 7.5
    x_t, eps_c, eps_u = _rand(g, 1, 4, 8, 8), _rand(g, 1, 4, 8, 8), _rand(g, 1, 4, 8, 8)
    tar, mask = _rand(g, 1, 4, 8, 8), (torch.rand(1, 1, 8, 8, generator=g, dtype=D) > 0.5).to(D)
    seen = []

    def eps_at(x):  # a noise model whose two branches depend on the latent they are evaluated at
        seen.append(x)
        return 0.3 * x + 1.0, -0.2 * x + 0.5

    eps = eps_u + w * (eps_c - eps_u)
    x0 = (x_t - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
    got = fgat_step(x_t, eps, eps_u, x0, tar, mask, eps_at, a_t, a_prev, StepParams(delta, lam, gam, w, gamma_on))

    # Eq. 8, transcribed from the paper, with eps' = eps_cfg(x'_t) and x'_t = x_t + sqrt(a_t) T (Eq. 5)
    T = mask * ((1 - delta) * x0 + delta * tar) + (1 - mask) * x0 - x0
    x_prime = x_t + math.sqrt(a_t) * T
    ec_p, eu_p = 0.3 * x_prime + 1.0, -0.2 * x_prime + 0.5
    if gamma_on == "guided":  # gamma mixes the guided noise
        e_star = gam * eps + (1 - gam) * (eu_p + w * (ec_p - eu_p))
    else:  # gamma mixes the unconditional branch only; the conditional one comes from x'_t
        mixed_u = gam * eps_u + (1 - gam) * eu_p
        e_star = mixed_u + w * (ec_p - mixed_u)
    eq8 = (
        math.sqrt(a_prev) * (x0 + (1 - lam) * T)
        + math.sqrt(1 - a_prev) * e_star
        + math.sqrt(a_prev * (1 - a_t) / a_t) * (eps - e_star)
    )
    assert len(seen) == 1  # one UNet call per window step, at x'_t
    torch.testing.assert_close(seen[0], x_prime, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got, eq8, rtol=1e-10, atol=1e-10)


def test_direct_inversion_step_adds_the_trajectory_correction():
    """Ju et al.: x_{i+1} + (X[i+1] - ddim(X[i], eps_cfg(X[i]))); a step from the trajectory lands on X[i+1]
    bit-exactly (float32: the order of the sum matters)."""
    g = torch.Generator().manual_seed(5)
    a_t, a_next = 0.3, 0.5
    x_level, x_next_level, eps_level, x_next = (torch.randn(1, 4, 8, 8, generator=g) for _ in range(4))
    ddim = math.sqrt(a_next) * (x_level - math.sqrt(1 - a_t) * eps_level) / math.sqrt(a_t) + math.sqrt(
        1 - a_next) * eps_level
    torch.testing.assert_close(direct_inversion_step(x_next, x_level, eps_level, x_next_level, a_t, a_next),
                               x_next + (x_next_level - ddim), rtol=1e-5, atol=1e-5)
    on_path = ddim_step(x_level, eps_level, a_t, a_next)
    assert torch.equal(direct_inversion_step(on_path, x_level, eps_level, x_next_level, a_t, a_next), x_next_level)


def test_eq14_kappa_form():
    """Eq. 14: x*_{t-1} = sqrt(a'/a) x*_t + kappa eps*, kappa = sqrt(1-a) ... as the paper defines it."""
    g = torch.Generator().manual_seed(3)
    a_t, a_prev = 0.3, 0.55
    x_star, eps_star = _rand(g, 4, 6, 6), _rand(g, 4, 6, 6)
    kappa = math.sqrt(1 - a_prev) - math.sqrt(a_prev * (1 - a_t) / a_t)
    ref = math.sqrt(a_prev / a_t) * x_star + kappa * eps_star
    torch.testing.assert_close(ddim_step(x_star, eps_star, a_t, a_prev), ref, rtol=1e-12, atol=1e-12)


def test_transfer_eq3_literal_form_and_exact_zero():
    g = torch.Generator().manual_seed(0)
    src, tar = _rand(g, 1, 4, 8, 8), _rand(g, 1, 4, 8, 8)
    soft = torch.rand(1, 1, 8, 8, generator=g, dtype=D)
    for delta in (0.0, 0.35, 0.6, 1.0):
        literal = soft * ((1 - delta) * src + delta * tar) + (1 - soft) * src
        torch.testing.assert_close(transfer_x0(src, tar, soft, delta), literal, rtol=1e-12, atol=1e-12)
    # delta = 0 or M = 0 leave x0 bit-exactly unchanged, so T = 0 exactly
    assert torch.equal(transfer_x0(src, tar, soft, 0.0), src)
    assert torch.equal(transfer_x0(src, tar, torch.zeros_like(soft), 0.6), src)
    # delta = 1, M = 1: the matched target replaces x0
    torch.testing.assert_close(transfer_x0(src, tar, torch.ones_like(soft), 1.0), tar)


def test_latent_deviation_is_eq5_with_eq2():
    """x'_t = sqrt(a)(x0 + T) + sqrt(1-a) eps(x_t) (Eq. 5) equals x_t + sqrt(a) T; Eq. 6 blend."""
    g = torch.Generator().manual_seed(1)
    a = 0.42
    x_t, eps, T = _rand(g, 1, 4, 8, 8), _rand(g, 1, 4, 8, 8), _rand(g, 1, 4, 8, 8)
    x0 = (x_t - math.sqrt(1 - a) * eps) / math.sqrt(a)
    eq5 = math.sqrt(a) * (x0 + T) + math.sqrt(1 - a) * eps
    x_p, x_s = latent_deviation(x_t, T, a, 0.2)
    torch.testing.assert_close(x_p, eq5, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(x_s, 0.2 * x_t + 0.8 * eq5, rtol=1e-12, atol=1e-12)
    # lambda = 1 and gamma = 1 are bit-exact no-ops
    assert torch.equal(latent_deviation(x_t, T, a, 1.0)[1], x_t)
    assert torch.equal(mix_noise(eps, T, 1.0), eps)


def test_ddim_step_eq1_and_eq2():
    g = torch.Generator().manual_seed(2)
    a, a2 = 0.2, 0.7
    x0, eps = _rand(g, 3, 5), _rand(g, 3, 5)
    x_t = math.sqrt(a) * x0 + math.sqrt(1 - a) * eps  # Eq. 2
    torch.testing.assert_close(predict_x0(x_t, eps, a), x0)
    torch.testing.assert_close(ddim_step(x_t, eps, a, a2), math.sqrt(a2) * x0 + math.sqrt(1 - a2) * eps)
    torch.testing.assert_close(ddim_step(x_t, eps, a, a), x_t)


def test_v_prediction_conversions():
    """v = sqrt(a) eps - sqrt(1-a) x0 (Salimans & Ho) <-> eps."""
    g = torch.Generator().manual_seed(4)
    a = 0.37
    x0, eps = _rand(g, 2, 4, 4), _rand(g, 2, 4, 4)
    x_t = math.sqrt(a) * x0 + math.sqrt(1 - a) * eps
    v = math.sqrt(a) * eps - math.sqrt(1 - a) * x0
    torch.testing.assert_close(eps_from_v(x_t, v, a), eps)
    torch.testing.assert_close(v_from_eps(x_t, eps, a), v)


def test_ddim_is_euler_in_ve_space():
    """A deterministic DDIM step equals an Euler step of dx/dsigma = eps in k-diffusion (VE) space."""
    g = torch.Generator().manual_seed(5)
    a, a2 = 0.3, 0.6
    x_vp, eps = _rand(g, 4, 4), _rand(g, 4, 4)
    s, s2 = sigma_from_alpha(a), sigma_from_alpha(a2)
    x_ve = x_vp / math.sqrt(a)
    euler = x_ve + (s2 - s) * eps
    torch.testing.assert_close(ddim_step(x_vp, eps, a, a2) / math.sqrt(a2), euler)
    assert abs(alpha_from_sigma(s) - a) < 1e-12


def test_schedule_matches_diffusers_ddim():
    """Timesteps and alphas agree with diffusers' DDIMScheduler (an independent implementation)."""
    from diffusers import DDIMScheduler

    sch = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
        set_alpha_to_one=False, steps_offset=1,
    )
    ac = scaled_linear_alphas_cumprod()
    torch.testing.assert_close(ac.float(), sch.alphas_cumprod, rtol=1e-6, atol=1e-7)
    for n in (10, 25, 50):
        sch.set_timesteps(n)
        assert torch.equal(ddim_timesteps(n), sch.timesteps.long())
    s = Schedule.ddim(ac, 50)
    assert s.timesteps[0] == 981 and s.timesteps[49] == 1 and s.timesteps[50] == 0
    assert s.a(50) == float(ac[0])  # final alpha = alphas_cumprod[0] (set_alpha_to_one=False)


@pytest.mark.parametrize("steps,expected", [(50, (12, 22)), (25, (6, 11)), (100, (24, 44)), (10, (3, 5))])
def test_window_from_fractions(steps, expected):
    """start = ceil(0.24 N), end = ceil(0.44 N): the paper's steps 12..21 at N = 50."""
    assert FGATConfig().window(steps) == expected
    assert expected == (math.ceil(0.24 * steps - 1e-9), math.ceil(0.44 * steps - 1e-9))


def test_window_errors_say_what_to_change():
    with pytest.raises(ValueError, match="window is empty at 2 steps"):
        FGATConfig(window_start=0.1, window_end=0.4).window(2)
    with pytest.raises(ValueError, match="window_start"):
        FGATConfig(window_start=0.0).window(50)
    assert FGATConfig(window_start=0.0, mask_source="none").window(50) == (0, 22)
