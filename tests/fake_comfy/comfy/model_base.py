"""comfy/model_base.py (ComfyUI 0.33.0): `ModelType` (l.94-107), `model_sampling` (l.110-160: ModelSamplingDiscrete
with EPS or V_PREDICTION), `BaseModel` (l.163-), its `apply_model` (l.204-262: xc = calculate_input(sigma, x), t =
timestep(sigma), the conds cast to the model's dtype, `diffusion_model(xc, t, context=..., y=..., control=...,
transformer_options=...)`, x0 = calculate_denoised), `encode_adm` (l.268, None), `process_latent_in/out`
(l.375-379), `memory_required` (l.405), `concat_keys` (l.196, inpainting models set them); `SDXL` (l.511-535:
encode_adm = pooled text + Timestep(256) of (height, width, crop_h, crop_w, target_height, target_width); here
the tiny UNet's addition_time_embed_dim); `Flux` (l.979), a DiT family FGAT refuses."""
from enum import Enum

import torch

import comfy.model_sampling
from comfy.ldm.modules.diffusionmodules.openaimodel import Timestep


class ModelType(Enum):
    EPS = 1
    V_PREDICTION = 2


def model_sampling(model_config, model_type):
    s = comfy.model_sampling.ModelSamplingDiscrete
    c = comfy.model_sampling.EPS if model_type == ModelType.EPS else comfy.model_sampling.V_PREDICTION

    class ModelSampling(s, c):
        pass

    return ModelSampling(model_config)


class BaseModel(torch.nn.Module):
    def __init__(self, model_config, model_type=ModelType.EPS, device=None, unet_model=None):
        super().__init__()
        self.latent_format = model_config.latent_format
        self.model_config = model_config
        self.diffusion_model = unet_model
        self.diffusion_model.requires_grad_(False)
        self.diffusion_model.eval()
        self.model_type = model_type
        self.model_sampling = model_sampling(model_config, model_type)
        self.concat_keys = ()
        self.device = device

    def apply_model(self, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={}, **kwargs):
        sigma = t
        xc = self.model_sampling.calculate_input(sigma, x)
        dtype = self.get_dtype()
        xc = xc.to(dtype)
        t = self.model_sampling.timestep(t).float()
        context = c_crossattn.to(xc.device, dtype) if c_crossattn is not None else None
        extra = {k: v.to(dtype) if hasattr(v, "dtype") else v for k, v in kwargs.items()}
        transformer_options = transformer_options.copy()
        out = self.diffusion_model(xc, t, context=context, control=control, transformer_options=transformer_options,
                                   **extra)
        return self.model_sampling.calculate_denoised(sigma, out.float(), x)

    def get_dtype(self):
        return next(self.diffusion_model.parameters()).dtype

    def encode_adm(self, **kwargs):
        return None

    def process_latent_in(self, latent):
        return self.latent_format.process_in(latent)

    def process_latent_out(self, latent):
        return self.latent_format.process_out(latent)

    def memory_required(self, input_shape, cond_shapes={}):
        area = input_shape[0] * input_shape[2] * input_shape[3]
        return area * 0.15 * 1024 * 1024


class SDXL(BaseModel):
    def __init__(self, model_config, model_type=ModelType.EPS, device=None, unet_model=None):
        super().__init__(model_config, model_type, device=device, unet_model=unet_model)
        self.embedder = Timestep(unet_model.unet.config.addition_time_embed_dim)

    def encode_adm(self, **kwargs):
        clip_pooled = kwargs["pooled_output"]
        width, height = kwargs.get("width", 768), kwargs.get("height", 768)
        crop_w, crop_h = kwargs.get("crop_w", 0), kwargs.get("crop_h", 0)
        target_width, target_height = kwargs.get("target_width", width), kwargs.get("target_height", height)
        out = [self.embedder(torch.Tensor([v])) for v in (height, width, crop_h, crop_w, target_height, target_width)]
        flat = torch.flatten(torch.cat(out)).unsqueeze(dim=0).repeat(clip_pooled.shape[0], 1)
        return torch.cat((clip_pooled.to(flat.device), flat), dim=1)


class Flux(BaseModel):
    pass
