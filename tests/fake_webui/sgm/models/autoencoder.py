"""Mirrors sgm/models/autoencoder.py AutoencoderKL (l.282-316: encode returns the posterior,
DiagonalGaussianDistribution over quant_conv(encoder(x)); decode) and AutoencoderKLInferenceWrapper
(l.319-321: encode returns a posterior *sample*; SDXL's first stage), over a diffusers AutoencoderKL."""
import torch


class AutoencoderKL(torch.nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.vae = vae
        self.embed_dim = vae.config.latent_channels

    @property
    def dtype(self):
        return next(self.parameters()).dtype

    def encode(self, x):
        return self.vae.encode(x).latent_dist

    def decode(self, z, **decoder_kwargs):
        return self.vae.decode(z).sample


class AutoencoderKLInferenceWrapper(AutoencoderKL):
    def encode(self, x):
        return super().encode(x).sample()
