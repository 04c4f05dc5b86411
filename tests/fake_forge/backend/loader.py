"""Mirrors backend/loader.py `forge_loader` (Forge 2.0.1, l.497-): the checkpoint's components are built and
loaded **under `torch.inference_mode()`**, so every weight of the UNet, VAE and text encoders is an
inference tensor (autograd through them needs care: see fgat_webui.forge_backend), then handed to the
engine class of the detected architecture (`StableDiffusion` or `StableDiffusionXL`).

Here the components are copies of a `fgat_cli.pipeline.FGATPipeline`'s tiny diffusers networks (the copies
made under inference mode; the pipeline itself is left as it was), and the scheduler is the
diffusers-style config of SD's scaled-linear schedule (k_prediction_from_diffusers_scheduler)."""
import copy
from types import SimpleNamespace

import torch
from backend.diffusion_engine.sd15 import StableDiffusion
from backend.diffusion_engine.sdxl import StableDiffusionXL
from backend.nn.clip import IntegratedCLIP
from backend.nn.unet import IntegratedUNet2DConditionModel
from backend.nn.vae import IntegratedAutoencoderKL

SD_SCHEDULE = dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, num_train_timesteps=1000)


@torch.inference_mode()
def forge_loader(pipe):
    from fgat_core.schedule import scaled_linear_alphas_cumprod

    if not torch.allclose(pipe.host.alphas_cumprod, scaled_linear_alphas_cumprod(), rtol=0, atol=1e-12):
        raise ValueError("the fake Forge loader knows SD's scaled-linear schedule only")
    components = dict(
        unet=IntegratedUNet2DConditionModel(copy.deepcopy(pipe.unet)),
        vae=IntegratedAutoencoderKL(copy.deepcopy(pipe.vae)),
        text_encoder=IntegratedCLIP(copy.deepcopy(pipe.text_encoder)),
        tokenizer=pipe.tokenizer,
        scheduler=SimpleNamespace(config=SimpleNamespace(prediction_type=pipe.prediction_type, **SD_SCHEDULE)),
    )
    estimated_config = SimpleNamespace(inpaint_model=lambda: False, ztsnr=False)
    if pipe.is_sdxl:
        components.update(text_encoder_2=IntegratedCLIP(copy.deepcopy(pipe.text_encoder_2)),
                          tokenizer_2=pipe.tokenizer_2)
        return StableDiffusionXL(estimated_config, components)
    return StableDiffusion(estimated_config, components)
