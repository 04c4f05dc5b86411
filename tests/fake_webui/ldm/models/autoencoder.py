"""The surface of ldm/models/autoencoder.py AutoencoderKL (encode -> posterior, decode) over a diffusers
AutoencoderKL: `encode` returns the ldm DiagonalGaussianDistribution of the same moments."""
import torch
from torch import nn

from ldm.modules.distributions.distributions import DiagonalGaussianDistribution


class AutoencoderKL(nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    @property
    def dtype(self):
        return next(self.vae.parameters()).dtype

    def encode(self, x):
        dist = self.vae.encode(x).latent_dist
        return DiagonalGaussianDistribution(torch.cat([dist.mean, dist.logvar], dim=1))

    def decode(self, z):
        return self.vae.decode(z).sample
