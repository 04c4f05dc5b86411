"""Mirrors backend/diffusion_engine/sd15.py (Forge 2.0.1) StableDiffusion: CLIP {clip_l}, VAE, UnetPatcher
(l.19-58); the text engine takes the last hidden state through the final layer norm (l.39-51);
get_learned_conditioning (l.63-67), encode_first_stage / decode_first_stage (l.74-84) all run under
`torch.inference_mode()`, so their outputs are inference tensors."""
import torch
from backend import memory_management
from backend.args import dynamic_args
from backend.diffusion_engine.base import ForgeDiffusionEngine, ForgeObjects
from backend.patcher.clip import CLIP
from backend.patcher.unet import UnetPatcher
from backend.patcher.vae import VAE
from backend.text_processing.classic_engine import ClassicTextProcessingEngine


def text_engine(clip, key, **options):
    """The ClassicTextProcessingEngine over CLIP `key` with the WebUI's embedding dir and emphasis, as each
    engine builds it (sd15.py:39-51, sdxl.py:44-70)."""
    return ClassicTextProcessingEngine(
        text_encoder=getattr(clip.cond_stage_model, key), tokenizer=getattr(clip.tokenizer, key),
        embedding_dir=dynamic_args["embedding_dir"], embedding_key=key, emphasis_name=dynamic_args["emphasis_name"],
        **options)


def set_forge_objects(engine, clip, estimated_config, huggingface_components):
    """The VAE and UnetPatcher, and `forge_objects` with its two shallow copies, as each engine sets them
    (sd15.py:31-58, sdxl.py:40-79)."""
    vae = VAE(model=huggingface_components["vae"])
    unet = UnetPatcher.from_model(model=huggingface_components["unet"],
                                  diffusers_scheduler=huggingface_components["scheduler"], config=estimated_config)
    engine.forge_objects = ForgeObjects(unet=unet, clip=clip, vae=vae, clipvision=None)
    engine.forge_objects_original = engine.forge_objects.shallow_copy()
    engine.forge_objects_after_applying_lora = engine.forge_objects.shallow_copy()


class StableDiffusion(ForgeDiffusionEngine):
    def __init__(self, estimated_config, huggingface_components):
        super().__init__(estimated_config, huggingface_components)
        clip = CLIP(model_dict={"clip_l": huggingface_components["text_encoder"]},
                    tokenizer_dict={"clip_l": huggingface_components["tokenizer"]})
        self.text_processing_engine = text_engine(
            clip, "clip_l", embedding_expected_shape=768, text_projection=False, minimal_clip_skip=1, clip_skip=1,
            return_pooled=False, final_layer_norm=True)
        set_forge_objects(self, clip, estimated_config, huggingface_components)
        self.is_sd1 = True

    def set_clip_skip(self, clip_skip):
        self.text_processing_engine.clip_skip = clip_skip

    @torch.inference_mode()
    def get_learned_conditioning(self, prompt):
        memory_management.load_model_gpu(self.forge_objects.clip.patcher)
        return self.text_processing_engine(prompt)

    @torch.inference_mode()
    def get_prompt_lengths_on_ui(self, prompt):
        _, token_count = self.text_processing_engine.process_texts([prompt])
        return token_count, self.text_processing_engine.get_target_prompt_token_count(token_count)

    @torch.inference_mode()
    def encode_first_stage(self, x):
        sample = self.forge_objects.vae.encode(x.movedim(1, -1) * 0.5 + 0.5)
        sample = self.forge_objects.vae.first_stage_model.process_in(sample)
        return sample.to(x)

    @torch.inference_mode()
    def decode_first_stage(self, x):
        sample = self.forge_objects.vae.first_stage_model.process_out(x)
        sample = self.forge_objects.vae.decode(sample).movedim(-1, 1) * 2.0 - 1.0
        return sample.to(x)
