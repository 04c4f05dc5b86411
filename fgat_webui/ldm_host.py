"""A `fgat_core.host.Denoiser` over the model object the A1111 WebUI holds (`shared.sd_model`).

SD1/SD2 checkpoints are ldm `LatentDiffusion` models (SDXL ones sgm `DiffusionEngine`s that A1111's
`modules/sd_models_xl.py` gives the same `apply_model` / `alphas_cumprod` / `parameterization` surface):

- `apply_model(x_noisy, t, cond)` returns eps or v (Stability-AI/stablediffusion@cf1d67a
  `ldm/models/diffusion/ddpm.py:848`), with `cond = {"c_crossattn": [context]}` routed by
  `DiffusionWrapper.forward` (l.1318) to `diffusion_model(x, t, context=...)`;
- `parameterization` is "eps" or "v" (l.74); `alphas_cumprod` is a float32 buffer (l.149);
- `model.diffusion_model` is the ldm `UNetModel` whose `output_blocks[5]` output is DIFT's
  `up_ft_index=1` feature (= diffusers `up_blocks[1]`, docs/DESIGN.md §4.3);
- cross-attention modules are named `*.attn2` with `to_q`, `to_k` and `heads` (`ldm/modules/attention.py:145-152`).

Interrupt/Skip: `interrupt_check` runs before every UNet call, as the WebUI's own CFG denoiser checks
the flags before every call (`modules/sd_samplers_cfg_denoiser.py:157-158`), so a run stops within one
call in every stage (inversions, null-text optimisation, DIFT features, sampling).

A1111 hijacks `apply_model` to cast its inputs to the UNet dtype (`modules/sd_hijack_unet.py:40-54`), so
calling it here behaves exactly like the WebUI's own sampler calls (LoRA and other weight patches apply).
Attention optimisations (SDP, xformers, sub-quadratic) replace `CrossAttention.forward`, but every one of
them still calls `to_q` / `to_k`, so the attention mask's forward hooks on those layers see every call.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from fgat_core.host import CONTEXT, AttentionLayer, Cond, output_of
from fgat_core.kmodel_host import DIFT_BLOCK, VECTOR, cross_attention_layers
from fgat_core.schedule import eps_from_v

__all__ = ["DIFT_BLOCK", "VECTOR", "LDMDenoiser"]


class LDMDenoiser:
    """eps / DIFT features / attention layers of an ldm-style model (`apply_model`, `model.diffusion_model`)."""

    def __init__(self, sd_model, interrupt_check: Callable[[], None] | None = None) -> None:
        self.sd_model = sd_model
        self.interrupt_check = interrupt_check  # called before every UNet call; may raise FGATInterrupted
        self.unet = sd_model.model.diffusion_model
        self.alphas_cumprod = sd_model.alphas_cumprod.detach().to("cpu", torch.float64)
        self.v_prediction = getattr(sd_model, "parameterization", "eps") == "v"

    def model_cond(self, cond: Cond) -> dict:
        """fgat_core conditioning -> the model's `cond` dict. SD1/2 (ldm): {"c_crossattn": [context]};
        SDXL (sgm, whose OpenAIWrapper passes them on as the UNet's context and y, `wrappers.py:23-34`):
        {"crossattn": context, "vector": vector}."""
        if VECTOR in cond:
            return {"crossattn": cond[CONTEXT], VECTOR: cond[VECTOR]}
        return {"c_crossattn": [cond[CONTEXT]]}

    def _apply(self, x: Tensor, t: Tensor, cond: Cond) -> Tensor:
        if self.interrupt_check is not None:
            self.interrupt_check()
        return self.sd_model.apply_model(x, t.to(x.device), self.model_cond(cond))

    def eps(self, x: Tensor, t: Tensor, cond: Cond) -> Tensor:
        out = self._apply(x, t, cond).to(x.dtype)
        if self.v_prediction:
            a = self.alphas_cumprod[t.cpu()].to(device=x.device, dtype=torch.float32).view(-1, 1, 1, 1)
            return eps_from_v(x, out, a).to(x.dtype)
        return out

    def features(self, x: Tensor, t: Tensor, cond: Cond) -> Tensor:
        """Output of `output_blocks[5]`; a forward hook stops the UNet there and is always removed."""
        return output_of(self.unet.output_blocks[DIFT_BLOCK], lambda: self._apply(x, t, cond)).float()

    def attention_layers(self) -> list[AttentionLayer]:
        return cross_attention_layers(self.unet)
