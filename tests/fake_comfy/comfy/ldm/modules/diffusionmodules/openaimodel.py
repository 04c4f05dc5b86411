"""comfy/ldm/modules/diffusionmodules/openaimodel.py (ComfyUI 0.33.0) `UNetModel`: the ldm UNet, forward(x,
timesteps, context, y, control, transformer_options) with `output_blocks` (ldm layout: output_blocks[5] is DIFT's
up_ft_index 1) and cross-attention modules `*.attn2` with `to_q`, `to_k`, `heads`
(comfy/ldm/modules/attention.py CrossAttention). ComfyUI's is a port of the same ldm code as Forge's
backend/nn/unet.py, so this runs the fake Forge's ldm-layout wrapper over a diffusers UNet (its file, run here:
`y` fed to `label_emb`, residuals added in place as ldm's BasicTransformerBlock does)."""
from pathlib import Path

_FORGE = Path(__file__).resolve().parents[5] / "fake_forge" / "backend" / "nn" / "unet.py"
exec(compile(_FORGE.read_text(encoding="utf-8"), str(_FORGE), "exec"))




class TimestepEmbedSequential(torch.nn.Sequential):  # noqa: F821
    """openaimodel.py:65: a block of layers that `forward_timestep_embed` (l.35-63) runs one by one; the
    Sequential itself is never called, so a forward hook on an output block never fires. Each fake output block
    holds its ldm-layout module as its one (last) layer, which the UNet calls."""


class UNetModel(IntegratedUNet2DConditionModel):  # noqa: F821
    def __init__(self, unet):
        super().__init__(unet)
        self.output_blocks = torch.nn.ModuleList(TimestepEmbedSequential(b) for b in self.output_blocks)  # noqa: F821
