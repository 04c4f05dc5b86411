"""Mirrors backend/modules/k_model.py (Forge 2.0.1) KModel: the UNet (`diffusion_model`) plus its predictor.

`apply_model(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)` (l.25-46) takes a
k-diffusion (VE) latent and a *sigma*: xc = x / sqrt(sigma^2 + 1), t = predictor.timestep(sigma) (argmin,
so a sigma from the table maps back to its integer timestep), extra conds such as SDXL's `y` are cast to
the computation dtype, and the result is `calculate_denoised` = x0 in VE space. memory_required l.48-59."""
import torch
from backend import memory_management
from backend.modules.k_prediction import k_prediction_from_diffusers_scheduler


class KModel(torch.nn.Module):
    def __init__(self, model, diffusers_scheduler, k_predictor=None, config=None):
        super().__init__()
        self.config = config
        self.storage_dtype = model.storage_dtype
        self.computation_dtype = model.computation_dtype
        self.diffusion_model = model
        self.predictor = k_predictor if k_predictor is not None else k_prediction_from_diffusers_scheduler(
            diffusers_scheduler)

    def apply_model(self, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={}, **kwargs):
        memory_management.check_loaded(self)  # fake: see memory_management's residency note
        sigma = t
        xc = self.predictor.calculate_input(sigma, x)
        if c_concat is not None:
            xc = torch.cat([xc] + [c_concat], dim=1)
        context = c_crossattn
        dtype = self.computation_dtype
        xc = xc.to(dtype)
        t = self.predictor.timestep(t).float()
        context = context.to(dtype)
        extra_conds = {}
        for o in kwargs:
            extra = kwargs[o]
            if hasattr(extra, "dtype") and extra.dtype != torch.int and extra.dtype != torch.long:
                extra = extra.to(dtype)
            extra_conds[o] = extra
        model_output = self.diffusion_model(xc, t, context=context, control=control,
                                            transformer_options=transformer_options, **extra_conds).float()
        return self.predictor.calculate_denoised(sigma, model_output, x)

    def memory_required(self, input_shape):
        area = input_shape[0] * input_shape[2] * input_shape[3]
        return 1.28 * area * 4 * 16384
