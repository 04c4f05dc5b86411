"""The engine against an independent, step-by-step implementation of docs/DESIGN.md §2 written from the paper's
equations in this file (it calls the raw diffusers UNet, not the engine's host, schedule or matching code).

What it pins down that the identities (delta = 0, M = 0, lambda = gamma = 1) cannot: the target x0 is taken at
the same noise level as the source step (x^T_{tau_i} at tau_i), the alphas of Eqs. 1, 2 and 5, the DIFT
features (timestep 261, `up_blocks[1]`, each image's own prompt, bilinear upsampling, cosine argmax), the
mask's polarity in Eq. 3, the two readings of gamma and the Direct Inversion correction. A deliberately
shifted target level is shown to move the result far beyond the tolerance, so the comparison can fail."""

import math

import pytest
import torch
import torch.nn.functional as F

from fgat_core import FGATConfig, FGATInputs, run_fgat
from fgat_core.presets import paper_config

STEPS, GUIDANCE, DIFT_T = 10, 7.5, 261
SOURCE_PROMPT, TARGET_PROMPT = "a photo of a cat", "a photo of a dog"


def _timesteps(n: int) -> list[int]:
    """SD's DDIM spacing ("leading", steps_offset 1): 1000 // n * j + 1, noisiest first."""
    return [1000 // n * j + 1 for j in reversed(range(n))]


class Reference:
    """docs/DESIGN.md §2 on the tiny SD model, one formula per line."""

    def __init__(self, pipe, source, target, steps: int = STEPS):
        self.unet, ac = pipe.unet, pipe.host.alphas_cumprod.double()
        src, tar = pipe.prepare_images(source, target)
        self.zs, self.zt = pipe.encode_image(src).double(), pipe.encode_image(tar).double()
        self.cs, self.ct = pipe.encode_prompt(SOURCE_PROMPT)["context"], pipe.encode_prompt(TARGET_PROMPT)["context"]
        self.cu = pipe.encode_prompt("")["context"]
        self.n = steps
        self.t = _timesteps(steps) + [0]  # level N is the clean latent, at alpha_cumprod[0]
        self.a = [float(ac[t]) for t in self.t]
        self.a_d = float(ac[DIFT_T])
        self.inputs = FGATInputs(self.zs.float(), self.zt.float(), {"context": self.cs}, {"context": self.ct},
                                 {"context": self.cu})

    def eps(self, x, t, c):
        return self.unet(x.float(), torch.tensor([t]), encoder_hidden_states=c).sample.double()

    def eps_cfg(self, x, t):
        """(guided, conditional, unconditional) noise at x."""
        ec, eu = self.eps(x, t, self.cs), self.eps(x, t, self.cu)
        return eu + GUIDANCE * (ec - eu), ec, eu

    @staticmethod
    def ddim(x, eps, a, b):  # Eq. 1 with Eq. 2
        return b**0.5 * (x - (1 - a) ** 0.5 * eps) / a**0.5 + (1 - b) ** 0.5 * eps

    def invert(self, z, c):
        """Guidance-1 DDIM inversion; the UNet is evaluated at each level's latent and timestep."""
        x = {self.n: z}
        for k in range(self.n, 0, -1):
            x[k - 1] = self.ddim(x[k], self.eps(x[k], self.t[k], c), self.a[k], self.a[k - 1])
        return x

    def features(self, x0, c, noise):
        out = []
        hook = self.unet.up_blocks[1].register_forward_hook(lambda m, i, o: out.append(o))
        try:
            self.unet((self.a_d**0.5 * x0 + (1 - self.a_d) ** 0.5 * noise).float(), torch.tensor([DIFT_T]),
                      encoder_hidden_states=c)
        finally:
            hook.remove()
        f = F.interpolate(out[0].double(), size=x0.shape[-2:], mode="bilinear", align_corners=False)
        return F.normalize(f[0].flatten(1), dim=0)  # (C, h*w), unit columns

    def run(self, cfg: FGATConfig, mask=None, target_shift: int = 0):
        start, end = (math.ceil(f * self.n - 1e-9) for f in (cfg.window_start, cfg.window_end))  # 3, 5 at N = 10
        xs, xt = self.invert(self.zs, self.cs), self.invert(self.zt, self.ct)
        g = torch.Generator().manual_seed(cfg.seed + 7919)  # DIFT noise: one independent draw per image
        noise = torch.randn((2, 1, *self.zs.shape[1:]), generator=g).double()
        m = torch.ones(self.zs.shape[-2:], dtype=torch.float64) if mask is None else mask.double()
        direct = cfg.inversion == "direct"
        x = xs[start] if direct else xs[0]
        for i in range(start if direct else 0, self.n):
            a, b, t = self.a[i], self.a[i + 1], self.t[i]
            eps, _, eps_u = self.eps_cfg(x, t)
            if start <= i < end:
                x0_src = (x - (1 - a) ** 0.5 * eps) / a**0.5  # Eq. 2
                j = i + target_shift  # the target's level: i, the same as the source step
                x0_tar = (xt[j] - (1 - self.a[j]) ** 0.5 * self.eps(xt[j], self.t[j], self.ct)) / self.a[j] ** 0.5
                corr = (self.features(x0_src, self.cs, noise[0]).t() @ self.features(x0_tar, self.ct, noise[1]))
                matched = x0_tar.flatten(2)[:, :, corr.argmax(1)].reshape(x0_tar.shape)
                x0_new = m * ((1 - cfg.delta) * x0_src + cfg.delta * matched) + (1 - m) * x0_src  # Eq. 3
                x_dev = x + a**0.5 * (x0_new - x0_src)  # Eqs. 5-6
                x_star = cfg.lam * x + (1 - cfg.lam) * x_dev  # Eq. 7
                eps_dev, eps_dev_c, eps_dev_u = self.eps_cfg(x_dev, t)
                if cfg.gamma_on == "guided":
                    eps_star = cfg.gamma * eps + (1 - cfg.gamma) * eps_dev
                else:  # gamma mixes the unconditional branch only; the conditional one comes from x'_t
                    mixed_u = cfg.gamma * eps_u + (1 - cfg.gamma) * eps_dev_u
                    eps_star = mixed_u + GUIDANCE * (eps_dev_c - mixed_u)
                x_next = self.ddim(x_star, eps_star, a, b)  # Eq. 13
            else:
                x_next = self.ddim(x, eps, a, b)
            if direct:  # Ju et al.: put the step back on the inverted trajectory
                x_next = x_next + xs[i + 1] - self.ddim(xs[i], self.eps_cfg(xs[i], t)[0], a, b)
            x = x_next
        return x


def _relative(a, b) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


@pytest.fixture(scope="module")
def reference(tiny_pipe, example_images):
    return Reference(tiny_pipe, *example_images)


@pytest.mark.parametrize(("inversion", "gamma_on"), [("ddim", "guided"), ("direct", "guided"), ("ddim", "uncond")])
def test_engine_equals_the_reference(tiny_pipe, reference, inversion, gamma_on):
    cfg = paper_config(steps=STEPS, inversion=inversion, gamma_on=gamma_on, mask_source="none", seed=3)
    with torch.no_grad():
        expected = reference.run(cfg)
        got = run_fgat(tiny_pipe.host, reference.inputs, cfg).latent
        plain = run_fgat(tiny_pipe.host, reference.inputs, cfg, transfer=False).latent
    assert _relative(got, plain) > 0.1  # the transfer changes the result a lot ...
    assert _relative(got, expected) < 1e-4  # ... and exactly as the equations say


def test_mask_polarity_matches_the_reference(tiny_pipe, reference):
    """A user mask: transfer where M = 1 (the left half), the reconstruction's x0 where M = 0."""
    mask = torch.zeros(reference.zs.shape[-2:])
    mask[:, : mask.shape[1] // 2] = 1
    cfg = paper_config(steps=STEPS, inversion="ddim", mask_source="user", seed=3)
    inputs = FGATInputs(**{**reference.inputs.__dict__, "user_mask": mask})
    with torch.no_grad():
        expected, flipped = reference.run(cfg, mask), reference.run(cfg, 1 - mask)
        got = run_fgat(tiny_pipe.host, inputs, cfg).latent
    assert _relative(got, expected) < 1e-4
    assert _relative(got, flipped) > 1e-2


def test_the_comparison_sees_a_target_one_level_off(tiny_pipe, reference):
    """Taking the target's x0 one noise level lower than the source step is far outside the tolerance."""
    cfg = paper_config(steps=STEPS, inversion="ddim", mask_source="none", seed=3)
    with torch.no_grad():
        shifted = reference.run(cfg, target_shift=1)
        got = run_fgat(tiny_pipe.host, reference.inputs, cfg).latent
    assert _relative(got, shifted) > 100 * 1e-4
