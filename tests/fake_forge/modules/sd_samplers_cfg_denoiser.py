"""Mirrors Forge's modules/sd_samplers_cfg_denoiser.py CFGDenoiser (l.34-228).

forward (l.156-228): Interrupt/Skip check; prompt schedules resolved (l.175-176); the inpaint mask noises
the masked area (l.178-181); **`cfg_denoiser_callback` gets the sampler's own `x` (B rows, not a
cond/uncond copy) and B sigmas** (l.183-184); Forge's `sampling_function` computes cond and uncond (its
own batching: usually uncond first) and the CFG combine (l.199); **`cfg_denoised_callback` is never called**
(imported at l.7 only); the mask blend (l.204-213); `cfg_after_cfg_callback` may replace the x0 (l.218-220).
DDIM's "classic eps estimation" turns its VP latent and integer timestep into k-diffusion's x and sigma
on entry (l.163-169) and returns eps (l.224-226). Refiner, hires CFG and skip-early-CFG / NGMS are not
mirrored."""
import torch
from backend.sampling.sampling_function import sampling_function
from modules import prompt_parser, sd_samplers_common
from modules.script_callbacks import (  # noqa: F401 (imported, unused: l.7)
    AfterCFGCallbackParams,
    CFGDenoisedParams,
    CFGDenoiserParams,
    cfg_after_cfg_callback,
    cfg_denoised_callback,
    cfg_denoiser_callback,
)
from modules.shared import state


def catenate_conds(conds):  # l.12-16
    if not isinstance(conds[0], dict):
        return torch.cat(conds)
    return {key: torch.cat([x[key] for x in conds]) for key in conds[0].keys()}


class CFGDenoiser(torch.nn.Module):
    def __init__(self, sampler):  # l.42-68
        super().__init__()
        self.model_wrap = None
        self.mask = None
        self.nmask = None
        self.init_latent = None
        self.steps = None
        self.total_steps = None
        self.step = 0
        self.image_cfg_scale = None
        self.padded_cond_uncond = False
        self.padded_cond_uncond_v0 = False
        self.sampler = sampler
        self.p = None
        self.need_last_noise_uncond = False
        self.last_noise_uncond = None
        self.mask_before_denoising = False
        self.classic_ddim_eps_estimation = False

    @property
    def inner_model(self):
        raise NotImplementedError()

    def get_pred_x0(self, x_in, x_out, sigma):
        return x_out

    def forward(self, x, sigma, uncond, cond, cond_scale, s_min_uncond, image_cond):
        if state.interrupted or state.skipped:
            raise sd_samplers_common.InterruptedException
        original_x_device = x.device
        original_x_dtype = x.dtype

        if self.classic_ddim_eps_estimation:
            acd = self.inner_model.inner_model.alphas_cumprod
            fake_sigmas = ((1 - acd) / acd) ** 0.5
            real_sigma = fake_sigmas[sigma.round().long().clip(0, int(fake_sigmas.shape[0]))]
            real_sigma_data = 1.0
            x = x * (((real_sigma ** 2.0 + real_sigma_data ** 2.0) ** 0.5)[:, None, None, None])
            sigma = real_sigma

        cond_composition, cond = prompt_parser.reconstruct_multicond_batch(cond, self.step)
        uncond = prompt_parser.reconstruct_cond_batch(uncond, self.step) if uncond is not None else None

        if self.mask is not None:
            predictor = self.inner_model.inner_model.forge_objects.unet.model.predictor
            noisy_initial_latent = predictor.noise_scaling(sigma[:, None, None, None],
                                                           torch.randn_like(self.init_latent).to(self.init_latent),
                                                           self.init_latent, max_denoise=False)
            x = x * self.nmask + noisy_initial_latent * self.mask

        denoiser_params = CFGDenoiserParams(x, image_cond, sigma, state.sampling_step, state.sampling_steps, cond,
                                            uncond, self)
        cfg_denoiser_callback(denoiser_params)

        denoised, cond_pred, uncond_pred = sampling_function(self, denoiser_params=denoiser_params,
                                                             cond_scale=cond_scale, cond_composition=cond_composition)
        if self.need_last_noise_uncond:
            self.last_noise_uncond = (x - uncond_pred) / sigma[:, None, None, None]

        if self.mask is not None:
            blended_latent = denoised * self.nmask + self.init_latent * self.mask
            if self.p.scripts is not None:
                from modules import scripts

                mba = scripts.MaskBlendArgs(denoised, self.nmask, self.init_latent, self.mask, blended_latent,
                                            denoiser=self, sigma=sigma)
                self.p.scripts.on_mask_blend(self.p, mba)
                blended_latent = mba.blended_latent
            denoised = blended_latent

        preview = self.sampler.last_latent = denoised
        sd_samplers_common.store_latent(preview)

        after_cfg_callback_params = AfterCFGCallbackParams(denoised, state.sampling_step, state.sampling_steps)
        cfg_after_cfg_callback(after_cfg_callback_params)
        denoised = after_cfg_callback_params.x

        self.step += 1

        if self.classic_ddim_eps_estimation:
            eps = (x - denoised) / sigma[:, None, None, None]
            return eps

        return denoised.to(device=original_x_device, dtype=original_x_dtype)
