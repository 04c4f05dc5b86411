"""The surface of ldm's UNetModel (ldm/modules/diffusionmodules/openaimodel.py:421, forward l.775) over a
diffusers UNet2DConditionModel: forward(x, timesteps, context) -> the UNet's output.

`output_blocks` mirrors ldm's layout of three blocks per resolution level, index 3*i+2 being the level's
last block (ending with its upsampler): `fake_common.unet_layout.UNetSurface`, where index 3*i+2 is
diffusers `up_blocks[i]` itself, so `output_blocks[5]` = DIFT's up_ft_index 1. The cross-attention modules
are the diffusers `Attention` modules named `...attn2`, with `to_q`, `to_k` and `heads` like ldm's."""
from fake_common.unet_layout import UNetSurface


class UNetModel(UNetSurface):
    def forward(self, x, timesteps=None, context=None, y=None, **kwargs):
        return self.unet(x, timesteps, encoder_hidden_states=context).sample
