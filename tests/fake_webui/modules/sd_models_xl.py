"""Mirrors modules/sd_models_xl.py (A1111 1.10.1): the methods A1111 adds to sgm's DiffusionEngine for SDXL.

- get_learned_conditioning (l.12-34): the conditioner's batch is the prompts plus the size / crop / target
  size of the prompt list (SdConditioning's width/height, 1024 when absent) and the aesthetic score; an
  all-empty negative prompt gets zero text embeddings. Returns {"crossattn": (B, T, 2048), "vector": (B, 2816)}.
- apply_model (l.37-43): `self.model(x, t, cond)` with the dict cond (-> OpenAIWrapper -> UNet(context, y)).
- get_first_stage_encoding (l.46-47): the identity (encode_first_stage already scaled a posterior sample).
- the GeneralConditioner additions (l.55-87: tokenize / process_texts ... from its first text embedder) and
  extend_sdxl (l.90-104: conditioning_key 'crossattn', parameterization from the denoiser's scaling,
  alphas_cumprod of the legacy DDPM discretization as float32)."""
import torch

import sgm.models.diffusion
import sgm.modules
import sgm.modules.diffusionmodules.denoiser_scaling
import sgm.modules.diffusionmodules.discretizer
from modules import devices, shared


def get_learned_conditioning(self, batch):
    for embedder in self.conditioner.embedders:
        embedder.ucg_rate = 0.0
    width = getattr(batch, "width", 1024) or 1024
    height = getattr(batch, "height", 1024) or 1024
    is_negative_prompt = getattr(batch, "is_negative_prompt", False)
    aesthetic_score = (shared.opts.sdxl_refiner_low_aesthetic_score if is_negative_prompt
                       else shared.opts.sdxl_refiner_high_aesthetic_score)
    devices_args = dict(device=devices.device, dtype=devices.dtype_inference)
    sdxl_conds = {
        "txt": batch,
        "original_size_as_tuple": torch.tensor([height, width], **devices_args).repeat(len(batch), 1),
        "crop_coords_top_left": torch.tensor([shared.opts.sdxl_crop_top, shared.opts.sdxl_crop_left],
                                             **devices_args).repeat(len(batch), 1),
        "target_size_as_tuple": torch.tensor([height, width], **devices_args).repeat(len(batch), 1),
        "aesthetic_score": torch.tensor([aesthetic_score], **devices_args).repeat(len(batch), 1),
    }
    force_zero_negative_prompt = is_negative_prompt and all(x == "" for x in batch)
    return self.conditioner(sdxl_conds, force_zero_embeddings=["txt"] if force_zero_negative_prompt else [])


def apply_model(self, x, t, cond):
    return self.model(x, t, cond)


def get_first_stage_encoding(self, x):
    return x


sgm.models.diffusion.DiffusionEngine.get_learned_conditioning = get_learned_conditioning
sgm.models.diffusion.DiffusionEngine.apply_model = apply_model
sgm.models.diffusion.DiffusionEngine.get_first_stage_encoding = get_first_stage_encoding


def tokenize(self, texts):
    for embedder in [embedder for embedder in self.embedders if hasattr(embedder, "tokenize")]:
        return embedder.tokenize(texts)
    raise AssertionError("no tokenizer available")


def process_texts(self, texts):
    for embedder in [embedder for embedder in self.embedders if hasattr(embedder, "process_texts")]:
        return embedder.process_texts(texts)


def get_target_prompt_token_count(self, token_count):
    for embedder in [embedder for embedder in self.embedders if hasattr(embedder, "get_target_prompt_token_count")]:
        return embedder.get_target_prompt_token_count(token_count)


sgm.modules.GeneralConditioner.tokenize = tokenize
sgm.modules.GeneralConditioner.process_texts = process_texts
sgm.modules.GeneralConditioner.get_target_prompt_token_count = get_target_prompt_token_count


def extend_sdxl(model):
    dtype = next(model.model.diffusion_model.parameters()).dtype
    model.model.diffusion_model.dtype = dtype
    model.model.conditioning_key = "crossattn"
    model.cond_stage_key = "txt"
    model.parameterization = ("v" if isinstance(model.denoiser.scaling,
                                                sgm.modules.diffusionmodules.denoiser_scaling.VScaling) else "eps")
    discretization = sgm.modules.diffusionmodules.discretizer.LegacyDDPMDiscretization()
    model.alphas_cumprod = torch.asarray(discretization.alphas_cumprod, device=devices.device, dtype=torch.float32)
    model.conditioner.wrapped = torch.nn.Module()
