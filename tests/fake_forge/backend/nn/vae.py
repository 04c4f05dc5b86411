"""Mirrors backend/nn/vae.py IntegratedAutoencoderKL (l.278-316) over a diffusers AutoencoderKL: `encode(x,
regulation)` returns `regulation(posterior)` when given, else a posterior *sample* (l.293-303); `decode`;
`process_in` / `process_out` apply the scaling (and shift) factor (l.312-316)."""
import torch


class IntegratedAutoencoderKL(torch.nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.vae = vae
        self.config = vae.config
        self.scaling_factor = float(vae.config.scaling_factor)
        shift = getattr(vae.config, "shift_factor", None)
        self.shift_factor = shift if isinstance(shift, float) else 0.0

    def encode(self, x, regulation=None):
        posterior = self.vae.encode(x).latent_dist
        if regulation is not None:
            return regulation(posterior)
        return posterior.sample()

    def decode(self, z):
        return self.vae.decode(z).sample

    def process_in(self, latent):
        return (latent - self.shift_factor) * self.scaling_factor

    def process_out(self, latent):
        return (latent / self.scaling_factor) + self.shift_factor
