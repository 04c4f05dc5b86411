"""The openaimodel UNet surface that ldm, sgm (A1111) and Forge's backend share, over a diffusers
UNet2DConditionModel.

- `timestep_embedding` / `Timestep`: sgm/modules/diffusionmodules/util.py:206-232 and openaimodel.py:488-494
  (generative-models, as A1111 1.10.1 runs it); Forge backend/nn/unet.py:55-68 and l.93-101 (dfdcbab6), the
  same code: cos first, then sin (diffusers' flip_sin_to_cos).
- `UNetSurface.output_blocks`: ldm's layout of three output blocks per resolution level, index 3*i+2 being the level's
  last block, which ends with the level's upsampler (ldm openaimodel.py:421-, sgm openaimodel.py:497-, Forge
  backend/nn/unet.py:636-688). Here index 3*i+2 is diffusers `up_blocks[i]` itself, so its output is the same
  tensor as the real `output_blocks[3*i+2]` output: `output_blocks[5]` = `up_blocks[1]` = DIFT's up_ft_index 1.
  Indices 3*i and 3*i+1 are the up block's resnets (their outputs are not the real blocks' outputs, which also
  include attention; nothing in the extension reads them).
- `vector_conditioning`: `y` (SDXL's vector: pooled text embedding + size/crop embeddings) goes through
  `label_emb` and is added to the time embedding (sgm openaimodel.py:988, Forge backend/nn/unet.py:705-707).
  diffusers' `add_embedding` plays `label_emb`, fed `y` directly by a forward pre-hook that lives only during
  the call."""
import math
from contextlib import contextmanager

import torch
from torch import nn


def timestep_embedding(timesteps, dim, max_period=10000, repeat_only=False):
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(start=0, end=half, dtype=torch.float32) / half).to(
        device=timesteps.device)
    args = timesteps[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class Timestep(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, t):
        return timestep_embedding(t, self.dim)


class UNetSurface(nn.Module):
    """What ldm's, sgm's and Forge's UNet share here: the diffusers `unet`, `output_blocks` in ldm's layout (see
    the module's docstring), `middle_block` and `in_channels` (ldm openaimodel.py:421-, sgm l.497-, Forge
    backend/nn/unet.py:636-688)."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet
        blocks = []
        for up in unet.up_blocks:
            resnets = list(up.resnets)
            blocks += [resnets[0], resnets[min(1, len(resnets) - 1)], up]
        self.output_blocks = nn.ModuleList(blocks)
        self.middle_block = unet.mid_block
        self.in_channels = unet.config.in_channels


@contextmanager
def vector_conditioning(unet, label_emb, x, y):
    """While open, `label_emb` (the diffusers UNet's `add_embedding`) is fed `y`; yields the UNet's
    `added_cond_kwargs` (placeholders of the right shapes, which the hook replaces)."""
    assert y is not None and y.shape[0] == x.shape[0], "SDXL's UNet needs the vector conditioning y"
    handle = label_emb.register_forward_pre_hook(lambda _m, _args: (y,))
    n_ids = 6
    pooled = y.shape[1] - n_ids * unet.config.addition_time_embed_dim
    try:
        yield {"text_embeds": y.new_zeros(y.shape[0], pooled), "time_ids": y.new_zeros(y.shape[0], n_ids)}
    finally:
        handle.remove()
