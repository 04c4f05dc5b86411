"""WebUI backends: one adapter per WebUI behind one interface.

The script and the run lifecycle (`run.py`) only talk to a `WebUIBackend`; they never branch on which WebUI
they are in. `detect_backend()` is the one place that decides.

The interface (what a backend must provide; `A1111Backend` below is the reference implementation):

Model access
    `check_model(p)`                 raise ValueError (saying what to change) if the loaded model is unsupported
    `denoiser(p)`                    a `fgat_core.host.Denoiser` over the WebUI's loaded model: eps(x, t, cond) with
                                     v-prediction converted to eps, DIFT features (output of ldm `output_blocks[5]`),
                                     and the cross-attention (`attn2`) layers; it calls `check_interrupted()`
                                     before every UNet call
    `encode_prompts(p, prompts)`     one one-row fgat conditioning dict per prompt, all of the same token length,
                                     through the WebUI's own text encoder (emphasis syntax, embeddings, CLIP skip)
    `prompt_token_ids(p, prompt)`    the token ids the text encoder feeds the model, chunk after chunk (BOS/EOS
                                     included), so that index i is key position i of the cross-attention
    `word_token_ids(p, word)`        the token ids of one word, without BOS/EOS
    `encode_image(p, image)`         a (1, C, h, w) float32 VP latent of an RGB image, deterministic (posterior mean)
    `latent_factor`                  pixels per latent pixel

Sampling takeover
    `take_over_sampling(p, fn)`      make the WebUI call `fn(p, x, noise, conditioning, unconditional_conditioning,
                                     steps=None, image_conditioning=None)` instead of its sampler's
                                     `sample_img2img`, and return a handle whose `restore()` undoes exactly that.
                                     Default: an instance attribute on `p.sampler` (A1111 `processing.py:1774`;
                                     Forge calls the same method), which leaves the class, ControlNet's `p.sample`
                                     wrapper and every other extension's hooks untouched.

Progress
    `report_progress(stage, done, total)`  move the WebUI's progress bar; raise FGATInterrupted on Interrupt/Skip
    `check_interrupted()`                  raise FGATInterrupted on Interrupt/Skip
    `end_progress()`                       clear what `report_progress` wrote

A Forge backend (docs/DESIGN.md §4.3) differs in: the UNet at `p.sd_model.forge_objects.unet` (x0-predicting
`KModel.apply_model(x, sigma, ...)` after `sampling_prepare`), `alphas_cumprod` from `predictor.sigmas`,
VAE/text encoders under `torch.inference_mode()`, tokenisation through `text_processing_engine`. Its
`denoiser()` must still hand the engine VP latents and eps; `fgat_core` leaves inference mode itself for
null-text inversion.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from fgat_core.engine import FGATInterrupted
from fgat_core.host import CONTEXT, Cond, Denoiser
from fgat_core.prepare import same_aspect

from .ldm_host import VECTOR, LDMDenoiser

_MISSING = object()


@dataclass
class SamplerTakeover:
    """One replaced attribute and what was there before; `restore()` puts it back exactly."""

    owner: Any
    attribute: str
    saved: Any

    def restore(self) -> None:
        if self.saved is _MISSING:
            self.owner.__dict__.pop(self.attribute, None)
        else:
            setattr(self.owner, self.attribute, self.saved)


def replace_sample_img2img(p, fn: Callable[..., Tensor]) -> SamplerTakeover | None:
    """Shadow `p.sampler.sample_img2img` with an instance attribute (the class stays untouched)."""
    sampler = getattr(p, "sampler", None)
    if sampler is None:
        return None
    handle = SamplerTakeover(sampler, "sample_img2img", sampler.__dict__.get("sample_img2img", _MISSING))
    sampler.sample_img2img = fn
    return handle


class WebUIBackend(ABC):
    """See the module docstring for the contract."""

    name: ClassVar[str] = "webui"
    latent_factor: ClassVar[int] = 8

    @classmethod
    @abstractmethod
    def is_active(cls) -> bool:
        """True when this backend's WebUI is the one running."""

    def _model(self):
        from modules import shared

        model = shared.sd_model
        if model is None:
            raise ValueError("no Stable Diffusion checkpoint is loaded: load one in the checkpoint menu")
        return model

    # ------------------------------------------------------------------------------------------ model
    @abstractmethod
    def check_model(self, p) -> None: ...

    @abstractmethod
    def denoiser(self, p) -> Denoiser: ...

    @abstractmethod
    def encode_prompts(self, p, prompts: Sequence[str]) -> list[Cond]: ...

    @abstractmethod
    def _text_model(self) -> Any:
        """The WebUI's prompt-chunking text encoder: `tokenize_line(prompt)` gives the prompt's 77-token chunks
        as the model sees them, `tokenize([word])` a word's token ids."""

    def prompt_token_ids(self, p, prompt: str) -> list[int]:
        """The prompt's token ids as the text encoder feeds them to the model (every chunk, in order)."""
        chunks, _ = self._text_model().tokenize_line(prompt)
        return [int(t) for chunk in chunks for t in chunk.tokens]

    def word_token_ids(self, p, word: str) -> list[int]:
        """The token ids of `word` alone (no start or end token)."""
        return [int(t) for t in self._text_model().tokenize([word])[0]]

    @abstractmethod
    def encode_image(self, p, image: Image.Image) -> Tensor: ...

    def _tokenizer(self):
        """The CLIP tokenizer behind `prompt_token_ids` (None where it cannot be reached)."""
        return None

    def token_strings(self, ids: Sequence[int]) -> list[str] | None:
        """The BPE strings of token ids ('cat</w>' ends a word), or None without a reachable tokenizer."""
        tokenizer = self._tokenizer()
        if tokenizer is None or not hasattr(tokenizer, "convert_ids_to_tokens"):
            return None
        return [str(t) for t in tokenizer.convert_ids_to_tokens([int(i) for i in ids])]

    def strip_extra_networks(self, prompt: str) -> str:
        """Remove `<lora:...>`-style tags, as the WebUI does for the main prompt before encoding it."""
        from modules import extra_networks

        return extra_networks.parse_prompt(prompt)[0]

    def generation_frame(self, p, image: Image.Image) -> Image.Image:
        """`image`, given in the img2img source's frame, as the generation sees the source.

        - *Inpaint area: Only masked*: the WebUI crops the region around the mask (`p.paste_to`) and resizes
          it to the generation size (processing.py l.1636-1645, l.1690-1693; Forge l.1718-1727).
        - Otherwise, an image whose aspect ratio is not the generation's (the source's own, say) is resized as
          the WebUI resizes the source, by the request's resize mode (l.1679-1680); one with the generation's
          aspect ratio is returned unchanged."""
        from modules import images

        region = getattr(p, "paste_to", None)
        if region and getattr(p, "inpaint_full_res", False):
            x, y, w, h = region
            frame = p.init_images[0].size
            if image.size != frame:
                image = image.resize(frame, Image.BILINEAR)
            return images.resize_image(2, image.crop((x, y, x + w, y + h)), p.width, p.height)
        if same_aspect(image.size, (p.width, p.height)):
            return image
        mode = getattr(p, "resize_mode", 0)
        return images.resize_image(0 if mode == 3 else mode, image, p.width, p.height)  # 3: latent upscale

    # ------------------------------------------------------------------------------------------ sampling
    def take_over_sampling(self, p, fn: Callable[..., Tensor]) -> SamplerTakeover | None:
        return replace_sample_img2img(p, fn)

    def prepare_unet(self, p, latent: Tensor, rows: int) -> None:
        """Called right before FGAT's UNet calls for one image, after its prompts and target were encoded
        (which may have moved other models in and the UNet out); `rows` is the largest batch FGAT will run.
        A1111 keeps the UNet where it is (its lowvram hooks move modules on each forward)."""
        return None

    # ------------------------------------------------------------------------------------------ progress
    def report_progress(self, stage: str, done: int, total: int) -> None:
        from modules import shared

        state = shared.state
        if state.interrupted or state.skipped:
            raise FGATInterrupted("interrupted" if state.interrupted else "skipped")
        state.sampling_steps = total
        state.sampling_step = done
        state.textinfo = f"FGAT {stage} {done}/{total}"

    def end_progress(self) -> None:
        from modules import shared

        shared.state.textinfo = None

    def check_interrupted(self) -> None:
        from modules import shared

        if shared.state.interrupted or shared.state.skipped:
            raise FGATInterrupted("interrupted" if shared.state.interrupted else "skipped")


class A1111Backend(WebUIBackend):
    """AUTOMATIC1111 WebUI 1.10.x with an SD 1.x / 2.x / XL (eps or v) checkpoint.

    SDXL (sgm `DiffusionEngine`, `modules/sd_models_xl.py`): `get_learned_conditioning` returns
    {"crossattn", "vector"} with the size read from the prompt list (`SdConditioning` width/height),
    `apply_model` takes that dict, `cond_stage_model` is the conditioner (its CLIP-L embedder tokenizes),
    and `encode_first_stage` returns a scaled posterior *sample* (the target is encoded with the mean)."""

    name = "A1111"

    @classmethod
    def is_active(cls) -> bool:
        from modules import shared

        return not hasattr(shared.sd_model, "forge_objects")

    def check_model(self, p) -> None:
        model = self._model()
        if getattr(model, "is_sd3", False):
            raise ValueError(
                "the loaded checkpoint is SD3, which FGAT does not support: load an SD 1.x, 2.x or SDXL checkpoint"
            )
        key = getattr(getattr(model, "model", None), "conditioning_key", "crossattn")
        if key != "crossattn" or getattr(model, "cond_stage_key", "txt") == "edit" or getattr(
            model, "is_sdxl_inpaint", False
        ):
            raise ValueError(
                f"the loaded checkpoint is an inpainting, depth or instruct-pix2pix model ('{key}' conditioning); "
                "FGAT needs a regular text-to-image checkpoint: load a normal SD 1.x/2.x/XL model"
            )
        embedders = getattr(getattr(model, "conditioner", None), "embedders", None) or []
        if any(getattr(e, "input_key", None) == "aesthetic_score" for e in embedders):
            raise ValueError(REFINER_MESSAGE)  # sgm's refiner conditioner (sd_models_xl.py:19-28)
        param = getattr(model, "parameterization", "eps")
        if param not in ("eps", "v"):
            raise ValueError(f"the loaded checkpoint predicts {param!r}; FGAT supports eps and v prediction")

    def denoiser(self, p) -> Denoiser:
        return LDMDenoiser(self._model(), interrupt_check=self.check_interrupted)

    def encode_prompts(self, p, prompts: Sequence[str]) -> list[Cond]:
        """One batched `get_learned_conditioning` call: the WebUI pads shorter prompts with empty 77-token
        chunks (`sd_hijack_clip.py` TextConditionalModel.forward), so all rows share one length. The prompt
        list carries the generation's size, which SDXL embeds (`sd_models_xl.py:12-34`)."""
        from modules import devices, prompt_parser

        model = self._model()
        size = {"width": getattr(p, "width", None), "height": getattr(p, "height", None)}
        texts = prompt_parser.SdConditioning(list(prompts), **size)
        with devices.autocast():
            out = model.get_learned_conditioning(texts)
        if isinstance(out, dict):
            return [{CONTEXT: out["crossattn"][i : i + 1], VECTOR: out[VECTOR][i : i + 1]} for i in range(len(prompts))]
        return [{CONTEXT: out[i : i + 1]} for i in range(out.shape[0])]

    def _text_model(self):
        """The prompt-chunking text encoder: `cond_stage_model`, or for SDXL (where that is sgm's conditioner,
        `sd_hijack.py` hijack) its first text embedder (CLIP-L), whose token positions CLIP-G shares."""
        model = self._model().cond_stage_model
        for embedder in getattr(model, "embedders", []):
            if hasattr(embedder, "tokenize_line"):
                return embedder
        return model

    def _tokenizer(self):
        model = self._text_model()
        return getattr(model, "tokenizer", None) or getattr(getattr(model, "wrapped", None), "tokenizer", None)

    def encode_image(self, p, image: Image.Image) -> Tensor:
        """The posterior mean through the WebUI's VAE (`encode_first_stage` + `get_first_stage_encoding`),
        as `images_tensor_to_samples` does (`sd_samplers_common.py:87-112`) but without the posterior noise."""
        from modules import devices, shared

        model = self._model()
        arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        x = torch.from_numpy(arr).permute(2, 0, 1)[None] * 2.0 - 1.0
        x = x.to(shared.device, dtype=devices.dtype_vae)
        with devices.without_autocast():
            if getattr(model, "is_sdxl", False):
                # sgm's AutoencoderKLInferenceWrapper.encode samples the posterior (autoencoder.py:319-321);
                # its parent AutoencoderKL.encode returns the posterior itself (l.304-311)
                from sgm.models.autoencoder import AutoencoderKL

                vae_to_device(model)
                posterior = AutoencoderKL.encode(model.first_stage_model, x)
                return (model.scale_factor * posterior.mode()).float()
            posterior = model.encode_first_stage(x)
            mean = posterior.mode() if hasattr(posterior, "mode") else posterior
            return model.get_first_stage_encoding(mean).float()


REFINER_MESSAGE = ("the loaded checkpoint is an SDXL refiner, which FGAT does not support (it has no CLIP-L "
                   "text encoder for the object word): load an SDXL base checkpoint (or a finetune of it)")


def vae_to_device(model) -> None:
    """Under --medvram / --medvram-sdxl / --lowvram the VAE waits on the CPU until its `encode` wrapper moves it
    (`modules/lowvram.py:62-70`, and the text encoder FGAT ran just before sent it back). Calling the
    class's `encode` (for the posterior, not a sample) skips that wrapper, so move it the way it does."""
    if not getattr(model, "lowvram", False):
        return
    from modules import devices, lowvram

    vae = model.first_stage_model
    if lowvram.module_in_gpu is not vae:
        if lowvram.module_in_gpu is not None:
            lowvram.module_in_gpu.to(lowvram.cpu)
        vae.to(devices.device)
        lowvram.module_in_gpu = vae
