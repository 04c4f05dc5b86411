"""Mirrors Forge's k_diffusion/external.py ForgeScheduleLinker (l.41-73): k-diffusion's schedule view of a
Forge predictor: `sigmas` (ascending), `get_sigmas(n)` (t from t_max to 0 by linspace, then t_to_sigma,
then a trailing 0), `sigma_to_t` / `t_to_sigma` via the predictor. It has no forward: it cannot be called as
A1111's CompVisDenoiser can."""
import torch
from torch import nn

from . import sampling


class ForgeScheduleLinker(nn.Module):
    def __init__(self, predictor):
        super().__init__()
        self.predictor = predictor

    @property
    def sigmas(self):
        return self.predictor.sigmas

    @property
    def log_sigmas(self):
        return self.predictor.sigmas.log()

    @property
    def sigma_min(self):
        return self.predictor.sigma_min

    @property
    def sigma_max(self):
        return self.predictor.sigma_max

    def get_sigmas(self, n=None):
        if n is None:
            return sampling.append_zero(self.sigmas.flip(0))
        t_max = len(self.sigmas) - 1
        t = torch.linspace(t_max, 0, n, device=self.sigmas.device)
        return sampling.append_zero(self.t_to_sigma(t))

    def sigma_to_t(self, sigma, quantize=None):
        return self.predictor.timestep(sigma)

    def t_to_sigma(self, t):
        return self.predictor.sigma(t)
