"""The Forge backend (lllyasviel/stable-diffusion-webui-forge 2.x): `WebUIBackend` over Forge's own model code.

What differs from A1111 (docs/DESIGN.md §4.3) and how this backend handles it:

- There is no `sd_model.apply_model`, `model.diffusion_model` or `alphas_cumprod`. The UNet is the
  `UnetPatcher` at `p.sd_model.forge_objects.unet` (reset by Forge right before
  `process_before_every_sampling`, `modules/processing.py:1851`, then patched by other extensions); its
  `model` is a `KModel` whose `apply_model(x, sigma, c_crossattn=..., y=...)` takes a k-diffusion (VE)
  latent and a sigma and returns x0 (`backend/modules/k_model.py:25-46`). `ForgeDenoiser` converts:
  x_ve = x / sqrt(a), sigma = sqrt((1 - a) / a), eps = (x_ve - x0) / sigma, with a = 1 / (1 + sigma^2) from
  the predictor's sigma table (`predictor.sigmas`, which also follows a Zero-Terminal-SNR rescale).
- The UNet is loaded through Forge's memory management (`sampling_prepare`, which also applies LoRA
  weights) before FGAT runs it, for each image *after* its prompts and target are encoded (loading CLIP
  or the VAE can unload the UNet), and `sampling_cleanup` follows the run, as in Forge's own sampler
  (`modules/sd_samplers_kdiffusion.py:136-194`).
- Generation runs under `torch.inference_mode()` (`processing.py:911`) and Forge builds its models under it
  too (`backend/loader.py:497`, `modules/sd_models.py:472`), so every weight is an inference tensor, which
  autograd refuses to save. Null-text inversion (fgat_core leaves inference mode for its Adam steps) needs
  gradients through the UNet: while grad mode is on, `ForgeDenoiser` runs the UNet with each inference
  weight replaced by a normal tensor over the same memory (no copy), and puts the originals back after.
  Forge's UNet also adds its residuals in place (`backend/nn/unet.py:240,272,278`, `x += n`), which
  modifies tensors autograd saved for the backward pass (a LayerNorm's input): in grad mode, every saved
  activation is kept as a copy (`torch.autograd.graph.saved_tensors_hooks`; the weights are not copied).
- Conditioning: `get_learned_conditioning` returns a tensor (SD1/2) or SDXL's {"crossattn", "vector"}
  (`backend/diffusion_engine/sdxl.py:85-121`); fgat conditionings keep them as {"context", "vector"}.
  SDXL's size embedding reads the prompt list's width/height (`SdConditioning`), given the generation's.
- The VAE encodes with a posterior *sample* unless a regulation is set (`backend/nn/vae.py:293-303`): the
  target is encoded through a clone of the VAE patcher whose regulation takes the posterior mode.
- Tokens: Forge's `ClassicTextProcessingEngine.tokenize_line` / `tokenize` (clip_l's for SDXL; the
  positions are the same for clip_g, whose features are concatenated per token).
- Cross-attention modules are still named `*.attn2` with `to_q` / `to_k`, so the attention mask's forward
  hooks see every call whatever attention function Forge uses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from fgat_core.host import CONTEXT, Cond, Denoiser
from fgat_core.kmodel_host import KModelDenoiser, autograd_safe_weights

from .backend import REFINER_MESSAGE, SamplerTakeover, WebUIBackend, replace_sample_img2img
from .ldm_host import VECTOR


class ForgeDenoiser(KModelDenoiser):
    """A `fgat_core.host.Denoiser` over Forge's `UnetPatcher` (its KModel and diffusion model).

    The UNet sees the patcher's `transformer_options` (block patches of other extensions apply, as in
    Forge's own sampling), with every row marked as a conditional one; `model_function_wrapper`s are not
    called, because they expect Forge's cond/uncond batch layout. `interrupt_check` runs before every UNet
    call, as Forge's CFG denoiser checks Interrupt/Skip before every call (`sd_samplers_cfg_denoiser.py:157`).
    The VE <-> VP conversion is `fgat_core.kmodel_host`'s, shared with ComfyUI (whose patcher Forge's ports)."""

    def __init__(self, unet_patcher, interrupt_check: Callable[[], None] | None = None) -> None:
        self.patcher = unet_patcher
        super().__init__(unet_patcher.model, unet_patcher.model.predictor.sigmas, interrupt_check)

    def transformer_options(self, sigma: Tensor) -> dict:
        options = dict(self.patcher.model_options.get("transformer_options", {}))
        # as Forge's sampler sets them per call (sampling_function.py:253-257), every row one conditional chunk
        rows = sigma.shape[0]
        options.update(cond_or_uncond=[0], sigmas=sigma, cond_mark=torch.zeros(rows).to(sigma),
                       cond_indices=list(range(rows)), uncond_indices=[])
        return options


__all__ = ["ForgeBackend", "ForgeDenoiser", "autograd_safe_weights", "encode_with"]


class ForgeBackend(WebUIBackend):
    """Forge 2.x (its own backend) with an SD 1.x / 2.x / XL checkpoint, eps or v prediction."""

    name = "Forge"

    @classmethod
    def is_active(cls) -> bool:
        from modules import shared

        return hasattr(shared.sd_model, "forge_objects")

    # ------------------------------------------------------------------------------------------ model
    def check_model(self, p) -> None:
        model = self._model()
        if not (getattr(model, "is_sd1", False) or getattr(model, "is_sd2", False) or getattr(model, "is_sdxl", False)):
            raise ValueError(
                "the loaded checkpoint is not a Stable Diffusion 1.x, 2.x or XL model (Flux, SD3 and other "
                "architectures are not supported by FGAT): load an SD 1.x, 2.x or SDXL checkpoint"
            )
        if type(model).__name__ == "StableDiffusionXLRefiner":  # backend/diffusion_engine/sdxl.py:157
            raise ValueError(REFINER_MESSAGE)
        if getattr(model, "is_inpaint", False):
            raise ValueError(
                "the loaded checkpoint is an inpainting model; FGAT needs a regular text-to-image checkpoint: load "
                "a normal SD 1.x/2.x/XL model"
            )
        kind = model.forge_objects.unet.model.predictor.prediction_type
        if kind not in ("epsilon", "v_prediction"):
            raise ValueError(f"the loaded checkpoint predicts {kind!r}; FGAT supports eps and v prediction")

    def denoiser(self, p) -> Denoiser:
        return ForgeDenoiser(self._model().forge_objects.unet, interrupt_check=self.check_interrupted)

    def encode_prompts(self, p, prompts: Sequence[str]) -> list[Cond]:
        """One batched `get_learned_conditioning` call (shorter prompts are padded with empty chunks, so all
        rows share one length), with the generation's size for SDXL's size embedding."""
        from modules import prompt_parser

        size = {"width": getattr(p, "width", None), "height": getattr(p, "height", None)}
        texts = prompt_parser.SdConditioning(list(prompts), **size)
        out = self._model().get_learned_conditioning(texts)
        if isinstance(out, dict):
            return [{CONTEXT: out["crossattn"][i : i + 1], VECTOR: out[VECTOR][i : i + 1]} for i in range(len(prompts))]
        return [{CONTEXT: out[i : i + 1]} for i in range(out.shape[0])]

    def _text_model(self):
        model = self._model()
        for name in ("text_processing_engine", "text_processing_engine_l", "text_processing_engine_g"):
            engine = getattr(model, name, None)
            if engine is not None:
                return engine
        raise ValueError("the loaded model has no CLIP text encoder, so FGAT cannot find prompt tokens")

    def _tokenizer(self):
        return getattr(self._text_model(), "tokenizer", None)

    def encode_image(self, p, image: Image.Image) -> Tensor:
        """The posterior mean through Forge's VAE: a clone of its patcher with a mode regulation
        (`backend/patcher/vae.py:165-193`), then `process_in` (scaling / shift factor)."""
        vae = self._model().forge_objects.vae.clone()
        vae.patcher.set_model_vae_regulation(lambda posterior: posterior.mode())
        return encode_with(vae, image)

    # ------------------------------------------------------------------------------------------ sampling
    def take_over_sampling(self, p, fn: Callable[..., Tensor]) -> SamplerTakeover | None:
        """As A1111, plus Forge's `sampling_cleanup` after the run (the loading is `prepare_unet`'s)."""
        from backend.sampling.sampling_function import sampling_cleanup

        def forge_sample_img2img(p, x, noise, *args, **kwargs):
            unet = p.sd_model.forge_objects.unet
            try:
                return fn(p, x, noise, *args, **kwargs)
            finally:
                sampling_cleanup(unet)

        return replace_sample_img2img(p, forge_sample_img2img)

    def prepare_unet(self, p, latent: Tensor, rows: int) -> None:
        """Forge's `sampling_prepare` (memory management loads the UNet and applies LoRA), for each image
        right before FGAT's UNet calls: encoding its prompts and target loads CLIP and the VAE, which on a
        card short of VRAM (or with --always-offload-from-vram) unloads the UNet (`memory_management.py`
        l.562-612); Forge's own sampler encodes before its `sampling_prepare` and so never meets this.
        `sampling_prepare` sizes its memory for 2 x the batch it is shown."""
        from backend.sampling.sampling_function import sampling_prepare

        shape = (max(1, (rows + 1) // 2), *latent.shape[1:])
        sampling_prepare(p.sd_model.forge_objects.unet, torch.empty(shape, device="meta"))


def encode_with(vae: Any, image: Image.Image) -> Tensor:
    """`image` through a Forge `VAE`'s `encode` (memory management, batching), then `process_in` (scaling /
    shift factor), as `encode_first_stage` does; float32."""
    arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    pixels = torch.from_numpy(arr)[None]  # (1, H, W, 3) in [0, 1], as encode_first_stage passes it
    with torch.inference_mode():
        latent = vae.first_stage_model.process_in(vae.encode(pixels))
    return latent.float()
