"""Mirrors backend/nn/vae.py (Neo 3df257ae) IntegratedAutoencoderKL (l.285-324) over a diffusers AutoencoderKL: Forge
2's (the fake Forge's file, run here) with `encoder` and `quant_conv` as attributes; `encode(x)` = encoder ->
quant_conv -> DiagonalGaussianDistribution -> **always a sample** (`mean + std * torch.randn(...)`, the global
generator; l.304-311, l.31-33): Forge 2's `regulation` argument is gone. `decode`, `process_in` / `process_out`
(l.313-324)."""
from pathlib import Path

_FORGE = Path(__file__).resolve().parents[3] / "fake_forge" / "backend" / "nn" / "vae.py"
exec(compile(_FORGE.read_text(encoding="utf-8"), str(_FORGE), "exec"))


class IntegratedAutoencoderKL(IntegratedAutoencoderKL):  # noqa: F821
    def __init__(self, vae):
        super().__init__(vae)
        self.encoder = vae.encoder
        self.quant_conv = vae.quant_conv

    def encode(self, x):  # l.304-311
        z = self.encoder(x)
        if self.quant_conv is not None:
            z = self.quant_conv(z)
        mean, logvar = torch.chunk(z, 2, dim=1)  # noqa: F821
        std = torch.exp(0.5 * torch.clamp(logvar, -30.0, 20.0))  # noqa: F821
        return mean + std * torch.randn(mean.shape).to(device=z.device)  # noqa: F821
