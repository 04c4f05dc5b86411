"""Mirrors sgm/modules/diffusionmodules/discretizer.py LegacyDDPMDiscretization (l.42-56): SD's scaled-linear
schedule (linear_start 0.00085, linear_end 0.012: betas = linspace(sqrt)^2), alphas_cumprod in numpy float64."""
import numpy as np
import torch


class LegacyDDPMDiscretization:
    def __init__(self, linear_start=0.00085, linear_end=0.0120, num_timesteps=1000):
        self.num_timesteps = num_timesteps
        betas = torch.linspace(linear_start ** 0.5, linear_end ** 0.5, num_timesteps, dtype=torch.float64) ** 2
        self.alphas_cumprod = np.cumprod(1.0 - betas.numpy(), axis=0)
