"""Mirrors sgm/modules/diffusionmodules/denoiser_scaling.py: EpsScaling / VScaling (A1111's extend_sdxl reads
which one the denoiser has to set `parameterization`)."""
import torch


class EpsScaling:
    def __call__(self, sigma):
        return torch.ones_like(sigma), -sigma, 1 / (sigma ** 2 + 1.0) ** 0.5, sigma.clone()


class VScaling:
    def __call__(self, sigma):
        return 1.0 / (sigma ** 2 + 1.0), -sigma / (sigma ** 2 + 1.0) ** 0.5, 1.0 / (sigma ** 2 + 1.0) ** 0.5, sigma.clone()
