"""Mirrors backend/diffusion_engine/sdxl.py (Forge 2.0.1) StableDiffusionXL (l.19-154): CLIP {clip_l, clip_g};
both text engines take the penultimate hidden state without the final layer norm (clip_skip 2, l.44-70),
clip_g also returns the pooled output through its projection. get_learned_conditioning (l.85-121) returns
{"crossattn": cat(clip_l, clip_g), "vector": cat(pooled, embedder(h, w, crop_top, crop_left, h, w))} with
the size read from the prompt list's `width` / `height` (SdConditioning; 1024 when absent) and zeros for an
all-empty negative prompt (l.109-114). The embedder is `Timestep(256)` in SDXL; here the tiny UNet's
`addition_time_embed_dim`."""
import torch
from backend import memory_management
from backend.diffusion_engine.base import ForgeDiffusionEngine
from backend.diffusion_engine.sd15 import StableDiffusion, set_forge_objects, text_engine
from backend.nn.unet import Timestep
from backend.patcher.clip import CLIP
from modules.shared import opts


def size_vector(embedder, prompt, clip_pooled):
    """get_learned_conditioning's size and crop embeddings (l.92-107; Neo's the same, l.74-84): the prompt list's
    `width` / `height` (1024 when absent), the crop options, each through the `Timestep` embedder, one row per
    prompt."""
    width = getattr(prompt, "width", 1024) or 1024
    height = getattr(prompt, "height", 1024) or 1024
    crop_w = opts.sdxl_crop_left
    crop_h = opts.sdxl_crop_top
    out = [embedder(torch.Tensor([height])), embedder(torch.Tensor([width])),
           embedder(torch.Tensor([crop_h])), embedder(torch.Tensor([crop_w])),
           embedder(torch.Tensor([height])), embedder(torch.Tensor([width]))]
    return torch.flatten(torch.cat(out)).unsqueeze(dim=0).repeat(clip_pooled.shape[0], 1).to(clip_pooled)


class StableDiffusionXL(ForgeDiffusionEngine):
    def __init__(self, estimated_config, huggingface_components):
        super().__init__(estimated_config, huggingface_components)
        clip = CLIP(model_dict={"clip_l": huggingface_components["text_encoder"],
                                "clip_g": huggingface_components["text_encoder_2"]},
                    tokenizer_dict={"clip_l": huggingface_components["tokenizer"],
                                    "clip_g": huggingface_components["tokenizer_2"]})
        self.text_processing_engine_l = text_engine(
            clip, "clip_l", embedding_expected_shape=2048, text_projection=False, minimal_clip_skip=2, clip_skip=2,
            return_pooled=False, final_layer_norm=False)
        self.text_processing_engine_g = text_engine(
            clip, "clip_g", embedding_expected_shape=2048, text_projection=True, minimal_clip_skip=2, clip_skip=2,
            return_pooled=True, final_layer_norm=False)
        self.embedder = Timestep(huggingface_components["unet"].unet.config.addition_time_embed_dim)
        set_forge_objects(self, clip, estimated_config, huggingface_components)
        self.is_sdxl = True

    def set_clip_skip(self, clip_skip):
        self.text_processing_engine_l.clip_skip = clip_skip
        self.text_processing_engine_g.clip_skip = clip_skip

    @torch.inference_mode()
    def get_learned_conditioning(self, prompt):
        memory_management.load_model_gpu(self.forge_objects.clip.patcher)
        cond_l = self.text_processing_engine_l(prompt)
        cond_g, clip_pooled = self.text_processing_engine_g(prompt)
        flat = size_vector(self.embedder, prompt, clip_pooled)
        if getattr(prompt, "is_negative_prompt", False) and all(x == "" for x in prompt):
            clip_pooled = torch.zeros_like(clip_pooled)
            cond_l = torch.zeros_like(cond_l)
            cond_g = torch.zeros_like(cond_g)
        return dict(crossattn=torch.cat([cond_l, cond_g], dim=2), vector=torch.cat([clip_pooled, flat], dim=1))

    @torch.inference_mode()
    def get_prompt_lengths_on_ui(self, prompt):
        _, token_count = self.text_processing_engine_l.process_texts([prompt])
        return token_count, self.text_processing_engine_l.get_target_prompt_token_count(token_count)

    # l.129-138: the same as sd15.py's (l.75-84)
    encode_first_stage = StableDiffusion.encode_first_stage
    decode_first_stage = StableDiffusion.decode_first_stage
