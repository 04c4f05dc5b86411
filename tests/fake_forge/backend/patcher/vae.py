"""Mirrors backend/patcher/vae.py (Forge 2.0.1) VAE: `patcher` (a ModelPatcher), clone (l.91-102, a fresh patcher over
the same first_stage_model and fields), encode (l.195-200 -> encode_inner l.165-193: pixels in [0, 1], channels
last; the VAE regulation from the patcher's model_options decides the posterior reduction) and decode (l.150-155 ->
decode_inner l.128-148: [0, 1], channels last). Tiling is not mirrored."""
import torch
from backend import memory_management
from backend.patcher.base import ModelPatcher


class VAE:
    cloned = ("memory_used_encode", "downscale_ratio", "latent_channels", "first_stage_model", "device", "vae_dtype",
              "output_device")  # what clone shares (l.91-102; Neo adds `is_wan`)

    def __init__(self, model=None, device=None, dtype=None, no_init=False):  # l.60-88
        if no_init:
            return
        self.memory_used_encode = lambda shape, dtype: 1767 * shape[2] * shape[3] * memory_management.dtype_size(dtype)
        self.downscale_ratio = int(2 ** (len(model.config.down_block_types) - 1))
        self.latent_channels = int(model.config.latent_channels)
        self.first_stage_model = model.eval()
        self.device = device or memory_management.vae_device()
        self.vae_dtype = dtype or memory_management.vae_dtype()
        self.output_device = memory_management.intermediate_device()
        self.patcher = ModelPatcher(self.first_stage_model, load_device=self.device,
                                    offload_device=memory_management.vae_offload_device())

    def clone(self):
        n = VAE(no_init=True)
        n.patcher = self.patcher.clone()
        for name in self.cloned:
            setattr(n, name, getattr(self, name))
        return n

    def decode_inner(self, samples_in):
        memory_management.load_models_gpu([self.patcher])
        samples = samples_in.to(self.vae_dtype).to(self.device)
        pixel_samples = torch.clamp((self.first_stage_model.decode(samples).to(self.output_device).float() + 1.0) / 2.0,
                                    min=0.0, max=1.0)
        return pixel_samples.movedim(1, -1)

    def decode(self, samples_in):
        wrapper = self.patcher.model_options.get("model_vae_decode_wrapper", None)
        return self.decode_inner(samples_in) if wrapper is None else wrapper(self.decode_inner, samples_in)

    def encode_inner(self, pixel_samples):
        regulation = self.patcher.model_options.get("model_vae_regulation", None)
        pixel_samples = pixel_samples.movedim(-1, 1)
        memory_management.load_models_gpu([self.patcher])
        pixels_in = (2. * pixel_samples - 1.).to(self.vae_dtype).to(self.device)
        return self.first_stage_model.encode(pixels_in, regulation).to(self.output_device).float()

    def encode(self, pixel_samples):
        wrapper = self.patcher.model_options.get("model_vae_encode_wrapper", None)
        return self.encode_inner(pixel_samples) if wrapper is None else wrapper(self.encode_inner, pixel_samples)
