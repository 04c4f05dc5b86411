"""Mirrors the surface of backend/nn/unet.py (Forge 2.0.1) over a diffusers UNet2DConditionModel.

- `timestep_embedding` l.55-68 and `Timestep` l.93-101 (cos first, as diffusers' flip_sin_to_cos): sgm's code,
  in `fake_common.unet_layout` with the output-block layout and the `y` pre-hook below;
- `IntegratedUNet2DConditionModel.forward(x, timesteps, context, y, control, transformer_options)`
  l.696-763: `y` (SDXL's vector: pooled text embedding + size/crop embeddings) goes through `label_emb`
  and is added to the time embedding (l.705-707). Here `label_emb` is diffusers' `add_embedding`, fed `y`
  directly by a forward pre-hook that lives only during the call. `transformer_options` is accepted,
  `original_shape` and `transformer_index` set (l.697-698); of the block modifiers (l.700-763) only the
  last call is mirrored, `("last", 0)`, `'after'`, on the output (l.753-762); patches are not mirrored.
- `output_blocks`: ldm's layout of three blocks per level, index 3*i+2 being the level's last block,
  which ends with the level's upsampler (l.636-688). As in the fake A1111's ldm UNetModel, index 3*i+2 is
  diffusers `up_blocks[i]` itself, so `output_blocks[5]` outputs the same tensor as the real block
  (= DIFT's up_ft_index 1); the other indices are that level's resnets, whose outputs nothing reads.
- cross-attention: the diffusers `Attention` modules named `...attn2`, with `to_q`, `to_k` and `heads`
  like Forge's `CrossAttention` (l.133-155).
- `BasicTransformerBlock._forward` l.183-280 adds its residuals **in place**: `x += n` after self-attention
  (l.240) and after cross-attention (l.272), `x += x_skip` after the feed-forward (l.276-278). While the
  UNet runs, each diffusers `BasicTransformerBlock` computes the same sums the same in-place way
  (`_forge_transformer_block`), so autograd through this UNet meets what it meets in Forge: a tensor saved
  for backward (a LayerNorm input) modified afterwards. Neo (3df257ae) has the same adds in its
  backend/nn/unet.py l.234, 266, 272; the fake Neo uses this UNet."""
import types
from contextlib import contextmanager, nullcontext

import torch
from diffusers.models.attention import BasicTransformerBlock
from fake_common.unet_layout import Timestep, UNetSurface, timestep_embedding, vector_conditioning  # noqa: F401


def _forge_transformer_block(self, hidden_states, attention_mask=None, encoder_hidden_states=None, **_kwargs):
    """Forge's BasicTransformerBlock._forward (l.183-280) for SD's blocks: pre-norm self-attention,
    cross-attention and feed-forward, each residual added in place."""
    x = hidden_states
    n = self.attn1(self.norm1(x), attention_mask=attention_mask)
    x += n  # l.240
    if self.attn2 is not None:
        n = self.attn2(self.norm2(x), encoder_hidden_states=encoder_hidden_states)
    x += n  # l.272
    x_skip = x
    x = self.ff(self.norm3(x))
    x += x_skip  # l.276-278
    return x


@contextmanager
def _forge_blocks(unet):
    blocks = [m for m in unet.modules() if isinstance(m, BasicTransformerBlock)]
    try:
        for block in blocks:
            block.forward = types.MethodType(_forge_transformer_block, block)
        yield
    finally:
        for block in blocks:
            block.__dict__.pop("forward", None)


class IntegratedUNet2DConditionModel(UNetSurface):
    def __init__(self, unet):
        super().__init__(unet)
        self.label_emb = getattr(unet, "add_embedding", None)
        self.num_classes = "sequential" if self.label_emb is not None else None
        self.model_channels = unet.config.block_out_channels[0]
        self.adm_in_channels = unet.config.projection_class_embeddings_input_dim
        # backend/loader.py: the model is placed by memory management, fp32 under --all-in-fp32
        self.load_device = self.offload_device = self.initial_device = torch.device("cpu")
        self.storage_dtype = self.computation_dtype = self.dtype = torch.float32

    def forward(self, x, timesteps=None, context=None, y=None, control=None, transformer_options={}, **kwargs):
        transformer_options["original_shape"] = list(x.shape)
        transformer_options["transformer_index"] = 0
        block_modifiers = transformer_options.get("block_modifiers", [])
        assert (y is not None) == (self.num_classes is not None)
        vector = vector_conditioning(self.unet, self.label_emb, x, y) if y is not None else nullcontext()
        with vector as added, _forge_blocks(self.unet):
            h = self.unet(x, timesteps, encoder_hidden_states=context, added_cond_kwargs=added).sample
        transformer_options["block"] = ("last", 0)
        for block_modifier in block_modifiers:
            h = block_modifier(h, "after", transformer_options)
        return h
