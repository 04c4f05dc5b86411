"""Mirrors backend/patcher/vae.py (Neo 3df257ae) VAE (l.123-310) for a 2-D latent VAE: Forge 2's (the fake Forge's
file, run here) with downscale_ratio 8 and `is_wan` (l.124-165), clone also sharing `is_wan` (l.167-179), encode
(l.251-281: load through memory management, `process_input` 2x-1, the model's `encode` per batch, float on the
output device) and decode (pixels in [0, 1], channels last). Neo's VAE has no regulation and no encode/decode
wrappers (Forge 2's `set_model_vae_regulation` is gone); tiling is not mirrored."""
from pathlib import Path

_FORGE = Path(__file__).resolve().parents[3] / "fake_forge" / "backend" / "patcher" / "vae.py"
exec(compile(_FORGE.read_text(encoding="utf-8"), str(_FORGE), "exec"))
del VAE.decode_inner, VAE.encode_inner  # noqa: F821  (Forge 2 only)


class VAE(VAE):  # noqa: F821
    cloned = (*VAE.cloned, "is_wan")  # noqa: F821

    def __init__(self, model=None, device=None, dtype=None, no_init=False, *, is_wan=False, is_flux2=False):
        super().__init__(model, device, dtype, no_init)
        if no_init:
            return
        self.downscale_ratio = 8  # l.130
        self.is_wan = is_wan

    def decode(self, samples_in):
        memory_management.load_models_gpu([self.patcher])  # noqa: F821
        samples = samples_in.to(self.vae_dtype).to(self.device)
        pixel_samples = self.process_output(self.first_stage_model.decode(samples).to(self.output_device).float())
        return pixel_samples.movedim(1, -1)

    def encode(self, pixel_samples):
        _samples = pixel_samples.movedim(-1, 1)
        memory_used = self.memory_used_encode(_samples.shape, self.vae_dtype)
        memory_management.load_models_gpu([self.patcher], memory_required=memory_used)  # noqa: F821
        pixels_in = self.process_input(_samples).to(self.vae_dtype).to(self.device)
        return self.first_stage_model.encode(pixels_in).to(self.output_device).float()

    def process_input(self, image):
        return image * 2.0 - 1.0

    def process_output(self, image):
        return torch.clamp((image + 1.0) / 2.0, min=0.0, max=1.0)  # noqa: F821
