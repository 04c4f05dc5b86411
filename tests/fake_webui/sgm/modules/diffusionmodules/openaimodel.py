"""The surface of sgm's UNetModel (sgm/modules/diffusionmodules/openaimodel.py:497, forward(x, timesteps, context,
y) l.970-1004: `y` goes through `label_emb` and is added to the time embedding, l.988) over a diffusers SDXL
UNet2DConditionModel, whose `add_embedding` plays `label_emb` (fed `y` by a forward pre-hook that lives only
during the call). `output_blocks` as in the fake ldm UNetModel: index 3*i+2 is diffusers `up_blocks[i]`, so
`output_blocks[5]` is DIFT's up_ft_index 1 (640 channels at 1/8 in SDXL). `Timestep`: l.488-494."""
from torch import nn

from .util import timestep_embedding


class Timestep(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, t):
        return timestep_embedding(t, self.dim)


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
        self.label_emb = unet.add_embedding
        self.in_channels = unet.config.in_channels

    def forward(self, x, timesteps=None, context=None, y=None, **kwargs):
        assert y is not None and y.shape[0] == x.shape[0], "SDXL's UNet needs the vector conditioning y"
        handle = self.label_emb.register_forward_pre_hook(lambda _m, _args: (y,))
        n_ids = 6
        pooled = y.shape[1] - n_ids * self.unet.config.addition_time_embed_dim
        added = {"text_embeds": y.new_zeros(y.shape[0], pooled), "time_ids": y.new_zeros(y.shape[0], n_ids)}
        try:
            return self.unet(x, timesteps, encoder_hidden_states=context, added_cond_kwargs=added).sample
        finally:
            handle.remove()
