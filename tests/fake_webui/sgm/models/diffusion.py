"""Mirrors sgm/models/diffusion.py DiffusionEngine (generative-models@45c443b3) as SDXL inference uses it:
`model` (an OpenAIWrapper around the UNet, l.51-53), `denoiser` (its `scaling`: eps or v), `conditioner`,
`first_stage_model`, `scale_factor`; encode_first_stage = scale_factor * first_stage_model.encode(x) (a
posterior sample for SDXL's inference wrapper, l.124-129), decode_first_stage (l.117-122), ema_scope
(l.176-). A1111's sd_models_xl adds get_learned_conditioning / apply_model / get_first_stage_encoding.

`build_sdxl_engine(pipe)` assembles one around a tiny SDXL FGATPipeline's networks (SDXL base's
conditioner: CLIP-L hidden layer, OpenCLIP-G penultimate + pooled, three size/crop embedders)."""
import contextlib
from types import SimpleNamespace

import torch

from ..modules.diffusionmodules.denoiser_scaling import EpsScaling, VScaling
from ..modules.diffusionmodules.openaimodel import UNetModel
from ..modules.diffusionmodules.wrappers import OpenAIWrapper
from ..modules.encoders.modules import (
    ConcatTimestepEmbedderND, FrozenCLIPEmbedder, FrozenOpenCLIPEmbedder2, GeneralConditioner,
)
from .autoencoder import AutoencoderKLInferenceWrapper


class DiffusionEngine(torch.nn.Module):
    def __init__(self, diffusion_model, conditioner, first_stage_model, scaling, scale_factor):
        super().__init__()
        self.input_key = "jpg"
        self.model = OpenAIWrapper(diffusion_model)
        self.denoiser = SimpleNamespace(scaling=scaling)
        self.conditioner = conditioner
        self.first_stage_model = first_stage_model
        self.scale_factor = scale_factor
        self.disable_first_stage_autocast = False

    @contextlib.contextmanager
    def ema_scope(self, context=None):
        yield None

    @torch.no_grad()
    def decode_first_stage(self, z):
        z = 1.0 / self.scale_factor * z
        return self.first_stage_model.decode(z)

    @torch.no_grad()
    def encode_first_stage(self, x):
        z = self.first_stage_model.encode(x)
        return self.scale_factor * z


def build_sdxl_engine(pipe) -> DiffusionEngine:
    te = pipe.text_encoder
    clip_l = FrozenCLIPEmbedder(pipe.tokenizer, te, layer="hidden", layer_idx=te.config.num_hidden_layers - 1)
    clip_g = FrozenOpenCLIPEmbedder2(pipe.tokenizer_2, pipe.text_encoder_2, layer="penultimate")
    outdim = pipe.unet.config.addition_time_embed_dim  # SDXL: 256
    embedders = [clip_l, clip_g, ConcatTimestepEmbedderND(outdim), ConcatTimestepEmbedderND(outdim),
                 ConcatTimestepEmbedderND(outdim)]
    for embedder, key in zip(embedders, ["txt", "txt", "original_size_as_tuple", "crop_coords_top_left",
                                         "target_size_as_tuple"], strict=True):
        embedder.input_key = key
    scaling = VScaling() if pipe.prediction_type == "v_prediction" else EpsScaling()
    engine = DiffusionEngine(UNetModel(pipe.unet), GeneralConditioner(embedders),
                             AutoencoderKLInferenceWrapper(pipe.vae), scaling, float(pipe.vae.config.scaling_factor))
    # what A1111's sd_models.load_model_weights sets from the model's structure (is_sdxl: has a conditioner)
    engine.is_sdxl, engine.is_sd1, engine.is_sd2, engine.is_sd3, engine.is_ssd = True, False, False, False, False
    engine.is_sdxl_inpaint = False
    engine.latent_channels = 4
    return engine
