"""Mirrors sgm/modules/diffusionmodules/wrappers.py (l.8-34): OpenAIWrapper.forward(x, t, c) calls
diffusion_model(x, timesteps=t, context=c["crossattn"], y=c["vector"])."""
import torch
from torch import nn


class IdentityWrapper(nn.Module):
    def __init__(self, diffusion_model, compile_model: bool = False):
        super().__init__()
        self.diffusion_model = diffusion_model

    def forward(self, *args, **kwargs):
        return self.diffusion_model(*args, **kwargs)


class OpenAIWrapper(IdentityWrapper):
    def forward(self, x, t, c, **kwargs):
        x = torch.cat((x, c.get("concat", torch.Tensor([]).type_as(x))), dim=1)
        return self.diffusion_model(x, timesteps=t, context=c.get("crossattn", None), y=c.get("vector", None),
                                    **kwargs)
