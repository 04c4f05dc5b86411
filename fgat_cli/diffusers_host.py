"""The diffusers host: a `Denoiser` over `UNet2DConditionModel` (eps and v-prediction, SD1/2/XL)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fgat_core.host import CONTEXT, AttentionLayer, Cond, output_of
from fgat_core.schedule import eps_from_v


class DiffusersDenoiser:
    """eps(x, t, cond) and DIFT features of a diffusers UNet; cond keys: context [, text_embeds, time_ids]."""

    def __init__(self, unet: nn.Module, alphas_cumprod: Tensor, prediction_type: str = "epsilon") -> None:
        if prediction_type not in ("epsilon", "v_prediction"):
            raise ValueError(
                f"unsupported prediction type {prediction_type!r}: FGAT supports 'epsilon' and "
                "'v_prediction' models"
            )
        self.unet = unet
        self.alphas_cumprod = alphas_cumprod.detach().to("cpu", torch.float64)
        self.prediction_type = prediction_type

    def _alpha(self, t: Tensor, like: Tensor) -> Tensor:
        a = self.alphas_cumprod[t.cpu()].to(device=like.device, dtype=torch.float32)
        return a.view(-1, *([1] * (like.dim() - 1)))

    def _forward(self, x: Tensor, t: Tensor, cond: Cond) -> Tensor:
        added = None
        if "text_embeds" in cond:
            added = {"text_embeds": cond["text_embeds"], "time_ids": cond["time_ids"]}
        dtype = next(self.unet.parameters()).dtype
        return self.unet(
            x.to(dtype), t, encoder_hidden_states=cond[CONTEXT].to(dtype), added_cond_kwargs=added
        ).sample

    def eps(self, x: Tensor, t: Tensor, cond: Cond) -> Tensor:
        out = self._forward(x, t, cond).to(x.dtype)
        if self.prediction_type == "v_prediction":
            a = self._alpha(t, x)
            return eps_from_v(x, out, a).to(x.dtype)
        return out

    def features(self, x: Tensor, t: Tensor, cond: Cond) -> Tensor:
        """Output of up_blocks[1]; the rest of the UNet is skipped."""
        return output_of(self.unet.up_blocks[1], lambda: self._forward(x, t, cond))

    def attention_layers(self) -> list[AttentionLayer]:
        return [
            AttentionLayer(name, m.to_q, m.to_k, m.heads)
            for name, m in self.unet.named_modules()
            if name.endswith("attn2") and hasattr(m, "to_q")
        ]
