"""The surface of ldm's UNetModel (ldm/modules/diffusionmodules/openaimodel.py:421, forward l.775) over a
diffusers UNet2DConditionModel: forward(x, timesteps, context) -> the UNet's output.

`output_blocks` mirrors ldm's layout of three blocks per resolution level, index 3*i+2 being the level's
last block (ending with its upsampler). Here index 3*i+2 is diffusers `up_blocks[i]` itself, so its output
is the same tensor as the real `output_blocks[3*i+2]` output: `output_blocks[5]` = `up_blocks[1]` = DIFT's
up_ft_index 1. Indices 3*i and 3*i+1 are the up block's resnets (their outputs are not the real blocks'
outputs, which also include attention; nothing in the extension reads them). The cross-attention modules
are the diffusers `Attention` modules named `...attn2`, with `to_q`, `to_k` and `heads` like ldm's."""
from torch import nn


class UNetModel(nn.Module):
    def __init__(self, unet):
        super().__init__()
        self.unet = unet
        blocks = []
        for up in unet.up_blocks:
            resnets = list(up.resnets)
            blocks += [resnets[0], resnets[min(1, len(resnets) - 1)], up]
        self.output_blocks = nn.ModuleList(blocks)
        self.middle_block = unet.mid_block

    def forward(self, x, timesteps=None, context=None, y=None, **kwargs):
        return self.unet(x, timesteps, encoder_hidden_states=context).sample
