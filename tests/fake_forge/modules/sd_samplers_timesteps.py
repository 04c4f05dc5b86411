"""Mirrors Forge's modules/sd_samplers_timesteps.py (DDIM here, l.13-24): CompVisTimestepsDenoiser (l.27-34)
puts a = 1 / (1 + sigma^2) of the predictor's sigmas on the engine as `alphas_cumprod` and calls the
engine's `apply_model`; CFGDenoiserTimesteps (l.37-48) uses the CFG denoiser's "classic DDIM eps estimation"
(the timestep turned into a sigma on entry, eps returned on exit); CompVisSampler (l.51-125): timesteps
range(0, 1000, 1000 // steps) + 1, img2img noise at timesteps[t_enc], between sampling_prepare and
sampling_cleanup. The DDIM loop itself (sd_samplers_timesteps_impl.ddim) is A1111's."""
import inspect

import torch

import modules.shared as shared
from backend.sampling.sampling_function import sampling_cleanup, sampling_prepare
from modules import devices, sd_samplers_common, sd_samplers_timesteps_impl
from modules.sd_samplers_cfg_denoiser import CFGDenoiser

samplers_timesteps = [("DDIM", sd_samplers_timesteps_impl.ddim, ["ddim"], {})]

samplers_data_timesteps = [
    sd_samplers_common.SamplerData(label, lambda model, funcname=funcname: CompVisSampler(funcname, model), aliases,
                                   options)
    for label, funcname, aliases, options in samplers_timesteps
]


class CompVisTimestepsDenoiser(torch.nn.Module):
    def __init__(self, model, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.inner_model = model
        self.inner_model.alphas_cumprod = 1.0 / (self.inner_model.forge_objects.unet.model.predictor.sigmas ** 2.0 + 1.0)

    def forward(self, input, timesteps, **kwargs):
        return self.inner_model.apply_model(input, timesteps, **kwargs)


class CFGDenoiserTimesteps(CFGDenoiser):
    def __init__(self, sampler):
        super().__init__(sampler)
        self.classic_ddim_eps_estimation = True

    @property
    def inner_model(self):
        if self.model_wrap is None:
            self.model_wrap = CompVisTimestepsDenoiser(shared.sd_model)
        return self.model_wrap


class CompVisSampler(sd_samplers_common.Sampler):
    def __init__(self, funcname, sd_model):
        super().__init__(funcname)
        self.eta_option_field = "eta_ddim"
        self.eta_infotext_field = "Eta DDIM"
        self.eta_default = 0.0
        self.model_wrap_cfg = CFGDenoiserTimesteps(self)
        self.model_wrap = self.model_wrap_cfg.inner_model

    def get_timesteps(self, p, steps):
        return torch.clip(torch.asarray(list(range(0, 1000, 1000 // steps)), device=devices.device) + 1, 0, 999)

    def sample_img2img(self, p, x, noise, conditioning, unconditional_conditioning, steps=None,
                       image_conditioning=None):
        unet_patcher = self.model_wrap.inner_model.forge_objects.unet
        sampling_prepare(self.model_wrap.inner_model.forge_objects.unet, x=x)
        self.model_wrap.inner_model.alphas_cumprod = self.model_wrap.inner_model.alphas_cumprod.to(x.device)
        steps, t_enc = sd_samplers_common.setup_img2img_steps(p, steps)
        timesteps = self.get_timesteps(p, steps).to(x.device)
        timesteps_sched = timesteps[:t_enc]
        alphas_cumprod = shared.sd_model.alphas_cumprod
        sqrt_alpha_cumprod = torch.sqrt(alphas_cumprod[timesteps[t_enc]])
        sqrt_one_minus_alpha_cumprod = torch.sqrt(1 - alphas_cumprod[timesteps[t_enc]])
        xi = x.to(noise) * sqrt_alpha_cumprod + noise * sqrt_one_minus_alpha_cumprod
        extra_params_kwargs = self.initialize(p)
        if "timesteps" in inspect.signature(self.func).parameters:
            extra_params_kwargs["timesteps"] = timesteps_sched
        self.model_wrap_cfg.init_latent = x
        self.last_latent = x
        self.sampler_extra_args = {"cond": conditioning, "image_cond": image_conditioning,
                                   "uncond": unconditional_conditioning, "cond_scale": p.cfg_scale,
                                   "s_min_uncond": self.s_min_uncond}
        samples = self.launch_sampling(t_enc + 1, lambda: self.func(
            self.model_wrap_cfg, xi, extra_args=self.sampler_extra_args, disable=False, callback=self.callback_state,
            **extra_params_kwargs))
        self.add_infotext(p)
        sampling_cleanup(unet_patcher)
        return samples
