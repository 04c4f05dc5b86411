"""Mirrors backend/nn/vae.py (Neo 3df257ae) IntegratedAutoencoderKL (l.285-324) over a diffusers AutoencoderKL:
`encoder` and `quant_conv` as attributes; `encode(x)` = encoder -> quant_conv -> DiagonalGaussianDistribution
-> **always a sample** (`mean + std * torch.randn(...)`, the global generator; l.304-311, l.31-33): Forge 2's
`regulation` argument is gone. `decode`, `process_in` / `process_out` (l.313-324)."""
import torch


class IntegratedAutoencoderKL(torch.nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.vae = vae
        self.config = vae.config
        self.encoder = vae.encoder
        self.quant_conv = vae.quant_conv
        self.scaling_factor = float(vae.config.scaling_factor)
        shift = getattr(vae.config, "shift_factor", None)
        self.shift_factor = shift if isinstance(shift, float) else 0.0

    def encode(self, x):
        z = self.encoder(x)
        if self.quant_conv is not None:
            z = self.quant_conv(z)
        mean, logvar = torch.chunk(z, 2, dim=1)
        std = torch.exp(0.5 * torch.clamp(logvar, -30.0, 20.0))
        return mean + std * torch.randn(mean.shape).to(device=z.device)

    def decode(self, z):
        return self.vae.decode(z).sample

    def process_in(self, latent):
        return (latent - self.shift_factor) * self.scaling_factor

    def process_out(self, latent):
        return (latent / self.scaling_factor) + self.shift_factor
