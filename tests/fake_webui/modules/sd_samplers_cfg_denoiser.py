"""Mirrors modules/sd_samplers_cfg_denoiser.py (A1111 1.10.1) CFGDenoiser.forward (l.156-311): the rows
are the cond rows first, then the B uncond rows (l.202-209); cfg_denoiser callbacks get a copy of them and
may reassign x/image_cond/sigma/text_cond/text_uncond (l.211-217); one UNet call with batch_cond_uncond
(l.248-249); cfg_denoised sees per-branch outputs (l.278-279); CFG combine (l.74-82); the inpaint mask
blend (l.174-187, 291-293); last_latent is the cond branch's x0 (l.295); cfg_after_cfg may replace the
result (l.306-308). Edit models, refiner, skip-early-CFG/NGMS and cond padding are not mirrored."""
import torch

import modules.shared as shared
from modules import prompt_parser, sd_samplers_common
from modules.script_callbacks import (
    AfterCFGCallbackParams, CFGDenoisedParams, CFGDenoiserParams, cfg_after_cfg_callback, cfg_denoised_callback,
    cfg_denoiser_callback,
)
from modules.shared import state


def catenate_conds(conds):  # l.11-15
    if not isinstance(conds[0], dict):
        return torch.cat(conds)
    return {key: torch.cat([x[key] for x in conds]) for key in conds[0].keys()}


def subscript_cond(cond, a, b):  # l.18-22
    if not isinstance(cond, dict):
        return cond[a:b]
    return {key: vec[a:b] for key, vec in cond.items()}


class CFGDenoiser(torch.nn.Module):
    def __init__(self, sampler):  # l.41-68
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
        self.sampler = sampler
        self.p = None
        self.cond_scale_miltiplier = 1.0
        self.mask_before_denoising = False

    @property
    def inner_model(self):
        raise NotImplementedError()

    def combine_denoised(self, x_out, conds_list, uncond, cond_scale):  # l.74-82
        denoised_uncond = x_out[-uncond.shape[0]:]
        denoised = torch.clone(denoised_uncond)
        for i, conds in enumerate(conds_list):
            for cond_index, weight in conds:
                denoised[i] += (x_out[cond_index] - denoised_uncond[i]) * (weight * cond_scale)
        return denoised

    def get_pred_x0(self, x_in, x_out, sigma):  # l.90-91
        return x_out

    def blend_mask(self, current_latent, sigma):
        """forward's `apply_blend` (l.174-187; Forge's forward has the same lines, l.204-213): the masked area
        from init_latent, the rest from `current_latent`, then the scripts' on_mask_blend may replace it."""
        blended_latent = current_latent * self.nmask + self.init_latent * self.mask
        if self.p.scripts is not None:
            from modules import scripts

            mba = scripts.MaskBlendArgs(current_latent, self.nmask, self.init_latent, self.mask, blended_latent,
                                        denoiser=self, sigma=sigma)
            self.p.scripts.on_mask_blend(self.p, mba)
            blended_latent = mba.blended_latent
        return blended_latent

    def forward(self, x, sigma, uncond, cond, cond_scale, s_min_uncond, image_cond):
        if state.interrupted or state.skipped:
            raise sd_samplers_common.InterruptedException

        conds_list, tensor = prompt_parser.reconstruct_multicond_batch(cond, self.step)
        uncond = prompt_parser.reconstruct_cond_batch(uncond, self.step)

        def apply_blend(current_latent):  # l.174-187
            return self.blend_mask(current_latent, sigma)

        if self.mask_before_denoising and self.mask is not None:
            x = apply_blend(x)

        batch_size = len(conds_list)
        repeats = [len(conds_list[i]) for i in range(batch_size)]
        image_uncond = image_cond

        def make_condition_dict(c_crossattn, c_concat):  # SDXL's dict conds are spread (l.192-196)
            if isinstance(c_crossattn, dict):
                return {**c_crossattn, "c_concat": [c_concat]}
            return {"c_crossattn": [c_crossattn], "c_concat": [c_concat]}

        x_in = torch.cat([torch.stack([x[i] for _ in range(n)]) for i, n in enumerate(repeats)] + [x])
        sigma_in = torch.cat([torch.stack([sigma[i] for _ in range(n)]) for i, n in enumerate(repeats)] + [sigma])
        image_cond_in = torch.cat([torch.stack([image_cond[i] for _ in range(n)]) for i, n in enumerate(repeats)]
                                  + [image_uncond])

        denoiser_params = CFGDenoiserParams(x_in, image_cond_in, sigma_in, state.sampling_step, state.sampling_steps,
                                            tensor, uncond, self)
        cfg_denoiser_callback(denoiser_params)
        x_in = denoiser_params.x
        image_cond_in = denoiser_params.image_cond
        sigma_in = denoiser_params.sigma
        tensor = denoiser_params.text_cond
        uncond = denoiser_params.text_uncond

        cond_in = catenate_conds([tensor, uncond])
        if shared.opts.batch_cond_uncond:
            x_out = self.inner_model(x_in, sigma_in, cond=make_condition_dict(cond_in, image_cond_in))
        else:
            x_out = torch.zeros_like(x_in)
            for a in range(0, x_out.shape[0], batch_size):
                b = a + batch_size
                x_out[a:b] = self.inner_model(x_in[a:b], sigma_in[a:b],
                                              cond=make_condition_dict(subscript_cond(cond_in, a, b), image_cond_in[a:b]))

        denoised_image_indexes = [x[0][0] for x in conds_list]
        denoised_params = CFGDenoisedParams(x_out, state.sampling_step, state.sampling_steps, self.inner_model)
        cfg_denoised_callback(denoised_params)

        denoised = self.combine_denoised(x_out, conds_list, uncond, cond_scale * self.cond_scale_miltiplier)

        if not self.mask_before_denoising and self.mask is not None:
            denoised = apply_blend(denoised)

        self.sampler.last_latent = self.get_pred_x0(torch.cat([x_in[i:i + 1] for i in denoised_image_indexes]),
                                                    torch.cat([x_out[i:i + 1] for i in denoised_image_indexes]), sigma)
        sd_samplers_common.store_latent(self.sampler.last_latent)

        after_cfg_callback_params = AfterCFGCallbackParams(denoised, state.sampling_step, state.sampling_steps)
        cfg_after_cfg_callback(after_cfg_callback_params)
        denoised = after_cfg_callback_params.x

        self.step += 1
        return denoised
