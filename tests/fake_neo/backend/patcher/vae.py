"""Mirrors backend/patcher/vae.py (Neo 3df257ae) VAE (l.123-310) for a 2-D latent VAE: `patcher` (a ModelPatcher),
clone (l.163-176), encode (l.251-281: load through memory management, `process_input` 2x-1, the model's
`encode` per batch, float on the output device) and decode (pixels in [0, 1], channels last). Neo's VAE has no
regulation and no encode/decode wrappers (Forge 2's `set_model_vae_regulation` is gone); tiling is not mirrored."""
import torch
from backend import memory_management
from backend.patcher.base import ModelPatcher


class VAE:
    def __init__(self, model=None, device=None, dtype=None, no_init=False, *, is_wan=False, is_flux2=False):
        if no_init:
            return
        self.downscale_ratio = 8
        self.latent_channels = int(model.config.latent_channels)
        self.memory_used_encode = lambda shape, dtype: 1767 * shape[2] * shape[3] * memory_management.dtype_size(dtype)
        self.first_stage_model = model.eval()
        self.device = device or memory_management.vae_device()
        self.vae_dtype = dtype or memory_management.vae_dtype()
        self.output_device = memory_management.intermediate_device()
        self.patcher = ModelPatcher(self.first_stage_model, load_device=self.device,
                                    offload_device=memory_management.vae_offload_device())
        self.is_wan = is_wan

    def clone(self):
        n = VAE(no_init=True)
        n.patcher = self.patcher.clone()
        n.memory_used_encode = self.memory_used_encode
        n.downscale_ratio = self.downscale_ratio
        n.latent_channels = self.latent_channels
        n.first_stage_model = self.first_stage_model
        n.device = self.device
        n.vae_dtype = self.vae_dtype
        n.output_device = self.output_device
        n.is_wan = self.is_wan
        return n

    def decode(self, samples_in):
        memory_management.load_models_gpu([self.patcher])
        samples = samples_in.to(self.vae_dtype).to(self.device)
        pixel_samples = self.process_output(self.first_stage_model.decode(samples).to(self.output_device).float())
        return pixel_samples.movedim(1, -1)

    def encode(self, pixel_samples):
        _samples = pixel_samples.movedim(-1, 1)
        memory_used = self.memory_used_encode(_samples.shape, self.vae_dtype)
        memory_management.load_models_gpu([self.patcher], memory_required=memory_used)
        pixels_in = self.process_input(_samples).to(self.vae_dtype).to(self.device)
        return self.first_stage_model.encode(pixels_in).to(self.output_device).float()

    def process_input(self, image):
        return image * 2.0 - 1.0

    def process_output(self, image):
        return torch.clamp((image + 1.0) / 2.0, min=0.0, max=1.0)
