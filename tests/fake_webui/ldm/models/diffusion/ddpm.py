"""Mirrors the inference surface of ldm/models/diffusion/ddpm.py (Stability-AI/stablediffusion@cf1d67a):

- DDPM: `parameterization` (l.74), the float32 `alphas_cumprod` buffer (l.141-149), `ema_scope` (l.186-200);
- LatentDiffusion: get_first_stage_encoding (l.653-660: posterior *sample* times scale_factor),
  get_learned_conditioning (l.662-672), decode_first_stage (l.818-827), encode_first_stage (l.829-831),
  apply_model (l.848-862: a non-dict cond becomes {"c_crossattn": [cond]});
- DiffusionWrapper.forward (l.1318-1335): 'crossattn' -> diffusion_model(x, t, context=cat(c_crossattn)).

Built in code around the tiny diffusers networks (seeded); `scale_factor` is the VAE's scaling factor."""
import contextlib

import torch
from torch import nn

from ldm.models.autoencoder import AutoencoderKL
from ldm.modules.diffusionmodules.openaimodel import UNetModel
from ldm.modules.distributions.distributions import DiagonalGaussianDistribution
from ldm.modules.encoders.modules import FrozenCLIPEmbedder


class DiffusionWrapper(nn.Module):
    def __init__(self, diffusion_model, conditioning_key):
        super().__init__()
        self.diffusion_model = diffusion_model
        self.conditioning_key = conditioning_key

    def forward(self, x, t, c_concat=None, c_crossattn=None, c_adm=None):
        if self.conditioning_key == "crossattn":
            cc = torch.cat(c_crossattn, 1)
            return self.diffusion_model(x, t, context=cc)
        raise NotImplementedError(f"conditioning key {self.conditioning_key!r} is not mirrored")


class LatentDiffusion(nn.Module):
    def __init__(self, unet, vae, text_encoder, tokenizer, *, alphas_cumprod, parameterization="eps",
                 conditioning_key="crossattn"):
        super().__init__()
        self.model = DiffusionWrapper(UNetModel(unet), conditioning_key)
        self.first_stage_model = AutoencoderKL(vae)
        self.cond_stage_model = FrozenCLIPEmbedder(tokenizer, text_encoder)
        self.cond_stage_forward = None
        self.cond_stage_key = "txt"
        self.parameterization = parameterization
        self.scale_factor = float(vae.config.scaling_factor)
        self.register_buffer("alphas_cumprod", alphas_cumprod.to(torch.float32))
        self.num_timesteps = int(alphas_cumprod.numel())
        self.is_sd1, self.is_sd2, self.is_sdxl, self.is_sd3, self.is_ssd = True, False, False, False, False
        self.latent_channels = 4

    @contextlib.contextmanager
    def ema_scope(self, context=None):
        yield None

    def get_first_stage_encoding(self, encoder_posterior):
        if isinstance(encoder_posterior, DiagonalGaussianDistribution):
            z = encoder_posterior.sample()
        elif isinstance(encoder_posterior, torch.Tensor):
            z = encoder_posterior
        else:
            raise NotImplementedError(f"encoder_posterior of type '{type(encoder_posterior)}' not yet implemented")
        return self.scale_factor * z

    def get_learned_conditioning(self, c):
        if self.cond_stage_forward is None:
            if hasattr(self.cond_stage_model, "encode") and callable(self.cond_stage_model.encode):
                c = self.cond_stage_model.encode(c)
                if isinstance(c, DiagonalGaussianDistribution):
                    c = c.mode()
            else:
                c = self.cond_stage_model(c)
        return c

    def decode_first_stage(self, z, predict_cids=False, force_not_quantize=False):
        z = 1.0 / self.scale_factor * z
        return self.first_stage_model.decode(z)

    @torch.no_grad()
    def encode_first_stage(self, x):
        return self.first_stage_model.encode(x)

    def apply_model(self, x_noisy, t, cond, return_ids=False):
        if not isinstance(cond, dict):
            if not isinstance(cond, list):
                cond = [cond]
            key = "c_concat" if self.model.conditioning_key == "concat" else "c_crossattn"
            cond = {key: cond}
        x_recon = self.model(x_noisy, t, **cond)
        if isinstance(x_recon, tuple) and not return_ids:
            return x_recon[0]
        return x_recon
