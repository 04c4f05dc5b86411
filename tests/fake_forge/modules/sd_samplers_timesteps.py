"""Forge's modules/sd_samplers_timesteps.py: A1111's (the fake A1111's file, run in this module's namespace: the
DDIM table, l.13-24, and CompVisSampler's __init__ / get_timesteps, l.51-72, timesteps
range(0, 1000, 1000 // steps) + 1; the DDIM loop itself, sd_samplers_timesteps_impl.ddim, is A1111's) except
- CompVisTimestepsDenoiser (l.27-34): puts a = 1 / (1 + sigma^2) of the predictor's sigmas on the engine as
  `alphas_cumprod` and calls the engine's `apply_model` (no v variant: the predictor handles v);
- CFGDenoiserTimesteps (l.37-48): the CFG denoiser's "classic DDIM eps estimation" (the timestep turned into
  a sigma on entry, eps returned on exit);
- CompVisSampler.sample_img2img (l.74-122): img2img noise at timesteps[t_enc], between sampling_prepare and
  sampling_cleanup."""
from pathlib import Path

from backend.sampling.sampling_function import sampling_cleanup, sampling_prepare

_A1111 = Path(__file__).resolve().parents[2] / "fake_webui" / "modules" / "sd_samplers_timesteps.py"
exec(compile(_A1111.read_text(encoding="utf-8"), str(_A1111), "exec"))
del CompVisTimestepsVDenoiser  # noqa: F821  (A1111 only)


class CompVisTimestepsDenoiser(torch.nn.Module):  # noqa: F821  (l.27-34)
    def __init__(self, model, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.inner_model = model
        self.inner_model.alphas_cumprod = 1.0 / (self.inner_model.forge_objects.unet.model.predictor.sigmas ** 2.0 + 1.0)

    def forward(self, input, timesteps, **kwargs):
        return self.inner_model.apply_model(input, timesteps, **kwargs)


class CFGDenoiserTimesteps(CFGDenoiser):  # noqa: F821  (l.37-48)
    def __init__(self, sampler):
        super().__init__(sampler)
        self.classic_ddim_eps_estimation = True

    @property
    def inner_model(self):
        if self.model_wrap is None:
            self.model_wrap = CompVisTimestepsDenoiser(shared.sd_model)  # noqa: F821
        return self.model_wrap


class CompVisSampler(CompVisSampler):  # noqa: F821
    def sample_img2img(self, p, x, noise, conditioning, unconditional_conditioning, steps=None,
                       image_conditioning=None):  # l.74-122
        unet_patcher = self.model_wrap.inner_model.forge_objects.unet
        sampling_prepare(self.model_wrap.inner_model.forge_objects.unet, x=x)
        self.model_wrap.inner_model.alphas_cumprod = self.model_wrap.inner_model.alphas_cumprod.to(x.device)
        steps, t_enc = sd_samplers_common.setup_img2img_steps(p, steps)  # noqa: F821
        timesteps = self.get_timesteps(p, steps).to(x.device)
        alphas_cumprod = shared.sd_model.alphas_cumprod  # noqa: F821
        sqrt_alpha_cumprod = torch.sqrt(alphas_cumprod[timesteps[t_enc]])  # noqa: F821
        sqrt_one_minus_alpha_cumprod = torch.sqrt(1 - alphas_cumprod[timesteps[t_enc]])  # noqa: F821
        xi = x.to(noise) * sqrt_alpha_cumprod + noise * sqrt_one_minus_alpha_cumprod
        samples = self.launch_img2img(p, x, xi, conditioning, unconditional_conditioning, image_conditioning, t_enc,
                                      ("timesteps", timesteps[:t_enc]))
        sampling_cleanup(unet_patcher)
        return samples
