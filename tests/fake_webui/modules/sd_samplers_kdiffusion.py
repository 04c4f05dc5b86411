"""Mirrors modules/sd_samplers_kdiffusion.py (A1111 1.10.1): the sampler table (l.11-27, Euler and Euler a
here), CFGDenoiserKDiffusion whose inner model is k-diffusion's CompVis(V)Denoiser (l.52-64, x0 out), and
KDiffusionSampler (l.67-234): get_sigmas with the 'Automatic' schedule = model_wrap.get_sigmas (l.79-132),
sample_img2img: t_enc from denoising strength, xi = x + noise * sigma_sched[0], then
`self.func(self.model_wrap_cfg, xi, extra_args=..., callback=self.callback_state, ...)` (l.134-188)."""

import k_diffusion.external
import k_diffusion.sampling
import modules.shared as shared
from modules import sd_samplers_cfg_denoiser, sd_samplers_common

samplers_k_diffusion = [
    ("Euler a", "sample_euler_ancestral", ["k_euler_a", "k_euler_ancestral"], {"uses_ensd": True}),
    ("Euler", "sample_euler", ["k_euler"], {}),
]

samplers_data_k_diffusion = [
    sd_samplers_common.SamplerData(label, lambda model, funcname=funcname: KDiffusionSampler(funcname, model),
                                   aliases, options)
    for label, funcname, aliases, options in samplers_k_diffusion
]

sampler_extra_params = {"sample_euler": ["s_churn", "s_tmin", "s_tmax", "s_noise"]}


class CFGDenoiserKDiffusion(sd_samplers_cfg_denoiser.CFGDenoiser):
    @property
    def inner_model(self):
        if self.model_wrap is None:
            denoiser = (k_diffusion.external.CompVisVDenoiser if shared.sd_model.parameterization == "v"
                        else k_diffusion.external.CompVisDenoiser)
            self.model_wrap = denoiser(shared.sd_model, quantize=shared.opts.enable_quantization)
        return self.model_wrap


class KDiffusionSampler(sd_samplers_common.Sampler):
    def __init__(self, funcname, sd_model, options=None):
        super().__init__(funcname)
        self.extra_params = sampler_extra_params.get(funcname, [])
        self.options = options or {}
        self.func = funcname if callable(funcname) else getattr(k_diffusion.sampling, self.funcname)
        self.model_wrap_cfg = CFGDenoiserKDiffusion(self)
        self.model_wrap = self.model_wrap_cfg.inner_model

    def get_sigmas(self, p, steps):
        return self.model_wrap.get_sigmas(steps).cpu()

    def sample_img2img(self, p, x, noise, conditioning, unconditional_conditioning, steps=None, image_conditioning=None):
        steps, t_enc = sd_samplers_common.setup_img2img_steps(p, steps)
        sigmas = self.get_sigmas(p, steps)
        sigma_sched = sigmas[steps - t_enc - 1:]
        xi = x + noise * sigma_sched[0]
        return self.launch_img2img(p, x, xi, conditioning, unconditional_conditioning, image_conditioning, t_enc,
                                   ("sigmas", sigma_sched))
