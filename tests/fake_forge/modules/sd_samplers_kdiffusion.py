"""Forge's modules/sd_samplers_kdiffusion.py: A1111's (the fake A1111's file, run in this module's namespace:
the sampler table with Euler and Euler a, KDiffusionSampler's __init__ and get_sigmas, l.69-134, whose
'Automatic' schedule is model_wrap.get_sigmas) except
- CFGDenoiserKDiffusion (l.59-66): the inner model is a ForgeScheduleLinker over the UNet's predictor, with
  `inner_model = shared.sd_model`;
- KDiffusionSampler.sample_img2img (l.136-194): `sampling_prepare` loads the UNet, t_enc from the denoising
  strength, xi = predictor.noise_scaling(sigma_sched[0], noise, x), `self.func(self.model_wrap_cfg, xi, ...)`
  under launch_sampling, then `sampling_cleanup`."""
from pathlib import Path

from backend.sampling.sampling_function import sampling_cleanup, sampling_prepare

_A1111 = Path(__file__).resolve().parents[2] / "fake_webui" / "modules" / "sd_samplers_kdiffusion.py"
exec(compile(_A1111.read_text(encoding="utf-8"), str(_A1111), "exec"))


class CFGDenoiserKDiffusion(sd_samplers_cfg_denoiser.CFGDenoiser):  # noqa: F821  (l.59-66)
    @property
    def inner_model(self):
        if self.model_wrap is None:
            self.model_wrap = k_diffusion.external.ForgeScheduleLinker(  # noqa: F821
                shared.sd_model.forge_objects.unet.model.predictor)  # noqa: F821
            self.model_wrap.inner_model = shared.sd_model  # noqa: F821
        return self.model_wrap


class KDiffusionSampler(KDiffusionSampler):  # noqa: F821
    def sample_img2img(self, p, x, noise, conditioning, unconditional_conditioning, steps=None,
                       image_conditioning=None):  # l.136-194
        unet_patcher = self.model_wrap.inner_model.forge_objects.unet
        sampling_prepare(self.model_wrap.inner_model.forge_objects.unet, x=x)
        steps, t_enc = sd_samplers_common.setup_img2img_steps(p, steps)  # noqa: F821
        sigmas = self.get_sigmas(p, steps).to(x.device)
        sigma_sched = sigmas[steps - t_enc - 1:]
        x = x.to(noise)
        xi = self.model_wrap.predictor.noise_scaling(sigma_sched[0], noise, x, max_denoise=False)
        samples = self.launch_img2img(p, x, xi, conditioning, unconditional_conditioning, image_conditioning, t_enc,
                                      ("sigmas", sigma_sched))
        sampling_cleanup(unet_patcher)
        return samples
