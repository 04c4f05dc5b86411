"""The Forge Neo backend (the `neo` line of Haoming02/sd-webui-forge-classic): `WebUIBackend` over Neo's model code.

Tested against Neo as of commit 3df257ae (github:nolanlane/sd-webui-forge-classic, a full-tree copy of Neo,
Feb 2026; `modules_forge/forge_version.py` says `version = "neo"`). Neo keeps Forge 2's engine surface for
SD 1.5 and SDXL (`p.sd_model.forge_objects.unet` is a `UnetPatcher` over a `KModel` whose
`apply_model(x, sigma, ...)` returns x0 in k-diffusion space, `backend/modules/k_model.py:37-58`; the
predictor's sigma table; `ClassicTextProcessingEngine`; `get_learned_conditioning`; generation under
`torch.inference_mode()`, `modules/processing.py:914`), so `ForgeBackend` does the model access, the text
conditioning, the sampling takeover and the loading through memory management (`sampling_prepare`, which
applies LoRA and the ComfyUI-style weight patches of the clone being sampled). What Neo changes:

- Model patcher: a port of ComfyUI's (`backend/patcher/base.py`): weight `patches` are merged when a clone
  is loaded (`load` / `partially_load`, l.356-469, l.602-626) and undone when another clone of the same
  model is; under low VRAM some modules stay on the CPU and are cast per call, LoRA merged on the fly
  (`LowVramPatch`, l.116-124). FGAT's UNet calls therefore come after `sampling_prepare` on the clone
  the WebUI samples with (`prepare_unet`), never on whatever clone happened to be loaded last.
- VAE: no `set_model_vae_regulation` any more, and `IntegratedAutoencoderKL.encode` always returns a
  posterior *sample* (`backend/nn/vae.py:304-311`, `torch.randn` from the global generator). `encode_image`
  runs Neo's own `VAE.encode` (memory management, batching, tiled fallback, `backend/patcher/vae.py:251-281`)
  on a view of the model whose `encode` returns the posterior mean: deterministic, no RNG drawn.
- Architectures: SD 2.x and SD3 are gone; Flux, Flux.2 Klein, Chroma, Lumina 2, Qwen-Image, Wan, Z-Image and
  Anima engines (`backend/diffusion_engine/*.py`) are refused with a message naming the family, raised when
  sampling starts (HTTP 422); nothing reads their predictors (`PredictionFlux` and kin, no `log_sigmas`).
- Zero terminal SNR (`opts.sd_noise_schedule` or a checkpoint's `ztsnr` key): Neo rescales the predictor's
  sigmas around `p.sample` and puts them back only if it returns (`modules/processing.py:985-997`); when
  FGAT fails inside `p.sample`, this backend restores them, so a failed run leaves the schedule as it was.

Detection is by what the loaded model offers: a Forge engine (`forge_objects`, a `KModel` with a predictor)
whose VAE patcher has no regulation hook. reForge and Forge Classic (the Forge 1.x `ldm_patched` backend,
whose UNet patcher's model has `model_sampling` and no `predictor`) are named by
`fgat_webui.detect.unsupported_webui()`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from PIL import Image
from torch import Tensor

from .backend import SamplerTakeover
from .forge_backend import ForgeBackend, encode_with

# Neo's engine classes for models FGAT cannot run (backend/diffusion_engine/<file>.py, class line)
NEO_FAMILIES = {
    "Flux": "Flux.1",  # flux.py:20
    "Flux2": "Flux.2 (Klein)",  # flux2.py:19
    "Chroma": "Chroma",  # chroma.py:13
    "Lumina2": "Lumina 2",  # lumina.py:13
    "QwenImage": "Qwen-Image",  # qwen.py:21
    "Wan": "Wan",  # wan.py:18
    "ZImage": "Z-Image",  # zimage.py:13
    "Anima": "Anima",  # anima.py:13
    "StableDiffusion3": "SD3",  # older Neo
}


def is_sd_engine(model) -> bool:
    """Whether a loaded Neo engine is SD 1.5 or SDXL, the ones FGAT runs (the others, `NEO_FAMILIES`, are flow
    models whose predictors, `PredictionFlux` and kin in `backend/modules/k_prediction.py:211-353`, have no
    `log_sigmas`, no VP schedule and no cross-attention UNet)."""
    return bool(getattr(model, "is_sd1", False) or getattr(model, "is_sdxl", False))


def model_family(model) -> str:
    """A readable name for the architecture of a loaded Neo engine that is neither SD 1.5 nor SDXL."""
    name = type(model).__name__
    if name in NEO_FAMILIES:
        return NEO_FAMILIES[name]
    guess = type(getattr(model, "model_config", None)).__name__  # huggingface_guess model_list class
    return NEO_FAMILIES.get(guess, f"{name} ({guess})" if guess not in ("NoneType", name) else name)


class PosteriorMeanEncoder:
    """A view of Neo's `IntegratedAutoencoderKL` whose `encode` returns the posterior mean instead of a sample
    (`backend/nn/vae.py:304-311`: encoder, quant_conv, DiagonalGaussianDistribution); everything else is the
    model's own."""

    def __init__(self, model) -> None:
        self.model = model

    def __getattr__(self, name: str):
        return getattr(self.model, name)

    def encode(self, x: Tensor) -> Tensor:
        z = self.model.encoder(x)
        if getattr(self.model, "quant_conv", None) is not None:
            z = self.model.quant_conv(z)
        return torch.chunk(z, 2, dim=1)[0]


class NeoBackend(ForgeBackend):
    """Forge Neo with an SD 1.5 / SDXL checkpoint: eps, v-prediction, zero terminal SNR."""

    name = "Forge Neo"

    @classmethod
    def is_active(cls) -> bool:
        from modules import shared

        objects = getattr(shared.sd_model, "forge_objects", None)
        if objects is None or not hasattr(getattr(objects.unet, "model", None), "predictor"):
            return False
        return not hasattr(getattr(objects.vae, "patcher", None), "set_model_vae_regulation")

    def check_model(self, p) -> None:
        model = self._model()
        if not is_sd_engine(model):
            family = model_family(model)
            raise ValueError(
                f"the loaded checkpoint is a {family} model, which FGAT does not support (it needs the SD 1.5 / "
                "SDXL UNet, its cross-attention and DDIM schedule): load an SD 1.5 or SDXL checkpoint"
            )
        super().check_model(p)

    def encode_image(self, p, image: Image.Image) -> Tensor:
        """The posterior mean through Neo's `VAE.encode` (its memory management, batching and tiled fallback),
        then `process_in` (scaling / shift factor): deterministic, and no random number is drawn."""
        vae = copy.copy(self._model().forge_objects.vae)  # the same patcher and model, another first_stage_model
        vae.first_stage_model = PosteriorMeanEncoder(vae.first_stage_model)
        return encode_with(vae, image)

    def take_over_sampling(self, p, fn: Callable[..., Tensor]) -> SamplerTakeover | None:
        """As Forge; when FGAT fails, the predictor's sigma table is put back as it was at takeover (before
        Neo's zero-terminal-SNR rescale, which Neo undoes only when `p.sample` returns).

        A flow model (refused by `check_model`; the run raises that refusal when sampling starts) gets Forge's
        takeover alone: its predictor is not read, for it has no `log_sigmas`, and an exception here, inside
        `process_batch`, would only be logged by Neo's script runner while Neo sampled on its own."""
        if not is_sd_engine(p.sd_model):
            return super().take_over_sampling(p, fn)
        predictor = p.sd_model.forge_objects.unet.model.predictor
        saved = {name: getattr(predictor, name) for name in ("sigmas", "log_sigmas")}

        def neo_sample_img2img(p, x, noise, *args, **kwargs):
            try:
                return fn(p, x, noise, *args, **kwargs)
            except BaseException:
                for name, tensor in saved.items():
                    if getattr(predictor, name) is not tensor:
                        predictor.register_buffer(name, tensor)
                raise

        return super().take_over_sampling(p, neo_sample_img2img)
