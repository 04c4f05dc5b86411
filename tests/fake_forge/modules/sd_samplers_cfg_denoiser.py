"""Forge's modules/sd_samplers_cfg_denoiser.py: A1111's (the fake A1111's file, run in this module's namespace:
catenate_conds and subscript_cond, l.12-23, the script_callbacks imports, l.6-8) with Forge's CFGDenoiser (l.34-228): __init__
(l.42-68) adds `padded_cond_uncond_v0`, `need_last_noise_uncond` / `last_noise_uncond` and
`classic_ddim_eps_estimation`.

forward (l.156-228): Interrupt/Skip check; prompt schedules resolved (l.175-176); the inpaint mask noises
the masked area (l.178-181); **`cfg_denoiser_callback` gets the sampler's own `x` (B rows, not a
cond/uncond copy) and B sigmas** (l.183-184); Forge's `sampling_function` computes cond and uncond (its
own batching: usually uncond first) and the CFG combine (l.199); **`cfg_denoised_callback` is never called**
(imported at l.7 only); the mask blend (l.204-213); `cfg_after_cfg_callback` may replace the x0 (l.218-220).
DDIM's "classic eps estimation" turns its VP latent and integer timestep into k-diffusion's x and sigma
on entry (l.163-169) and returns eps (l.224-226). Refiner, hires CFG and skip-early-CFG / NGMS are not
mirrored."""
from pathlib import Path

from backend.sampling.sampling_function import sampling_function

_A1111 = Path(__file__).resolve().parents[2] / "fake_webui" / "modules" / "sd_samplers_cfg_denoiser.py"
exec(compile(_A1111.read_text(encoding="utf-8"), str(_A1111), "exec"))
del CFGDenoiser.combine_denoised  # noqa: F821  (Forge's, l.74-82, takes timestep, x_in, cond: not mirrored)


class CFGDenoiser(CFGDenoiser):  # noqa: F821
    def __init__(self, sampler):  # l.42-68
        super().__init__(sampler)
        del self.cond_scale_miltiplier  # A1111 only
        self.padded_cond_uncond_v0 = False
        self.need_last_noise_uncond = False
        self.last_noise_uncond = None
        self.classic_ddim_eps_estimation = False

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
            denoised = self.blend_mask(denoised, sigma)  # l.204-213

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
