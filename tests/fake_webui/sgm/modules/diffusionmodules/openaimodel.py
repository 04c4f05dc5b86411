"""The surface of sgm's UNetModel (sgm/modules/diffusionmodules/openaimodel.py:497, forward(x, timesteps, context,
y) l.970-1004: `y` goes through `label_emb` and is added to the time embedding, l.988) over a diffusers SDXL
UNet2DConditionModel, whose `add_embedding` plays `label_emb` (fed `y` by a forward pre-hook that lives only
during the call: `fake_common.unet_layout.vector_conditioning`). `output_blocks` as in the fake ldm UNetModel:
index 3*i+2 is diffusers `up_blocks[i]`, so `output_blocks[5]` is DIFT's up_ft_index 1 (640 channels at 1/8 in
SDXL). `Timestep`: l.488-494 (the same in Forge's backend/nn/unet.py, so it lives in `fake_common.unet_layout`)."""
from fake_common.unet_layout import Timestep, UNetSurface, vector_conditioning  # noqa: F401 (Timestep)


class UNetModel(UNetSurface):
    def __init__(self, unet):
        super().__init__(unet)
        self.label_emb = unet.add_embedding

    def forward(self, x, timesteps=None, context=None, y=None, **kwargs):
        with vector_conditioning(self.unet, self.label_emb, x, y) as added:
            return self.unet(x, timesteps, encoder_hidden_states=context, added_cond_kwargs=added).sample
