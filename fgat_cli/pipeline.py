"""FGATPipeline: the standalone (diffusers) pipeline, image in to image out."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from fgat_core.config import FGATConfig
from fgat_core.engine import FGATInputs, FGATResult, InversionStore, Progress, run_fgat
from fgat_core.errors import InputError
from fgat_core.host import CONTEXT, Cond
from fgat_core.images import as_image, fit_to, mask_from_image, snap_size, to_pil, to_rgb, to_tensor
from fgat_core.infotext import image_hash
from fgat_core.mask import word_token_indices
from fgat_core.prepare import TARGET_FIELDS, Request, check_request, target_object_tokens
from fgat_core.schedule import scaled_linear_alphas_cumprod
from fgat_core.settings import MaskSource

from .diffusers_host import DiffusersDenoiser


def cast(module: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """`module` in `dtype`, through torch's own `Module.to`: diffusers' override warns about 'modules that should
    be kept in float32' even when its list of them is empty, which alarms users for nothing."""
    return torch.nn.Module.to(module, dtype=dtype)


@dataclass
class TransferOutput:
    image: Image.Image
    latent: torch.Tensor
    result: FGATResult
    config: FGATConfig
    source: Image.Image  # the source as the model saw it (snapped size)
    target: Image.Image  # the target after the resize policy
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def messages(self) -> list[str]:
        return self.result.messages


class FGATPipeline:
    """UNet + VAE + text encoder(s) + tokenizer(s). SDXL when `text_encoder_2` is given."""

    def __init__(
        self, unet, vae, text_encoder, tokenizer, *, alphas_cumprod: torch.Tensor | None = None,
        prediction_type: str = "epsilon", text_encoder_2=None, tokenizer_2=None,
        device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, name: str = "model",
    ) -> None:
        self.unet, self.vae = unet, vae
        self.text_encoder, self.tokenizer = text_encoder, tokenizer
        self.text_encoder_2, self.tokenizer_2 = text_encoder_2, tokenizer_2
        self.device, self.dtype, self.name = torch.device(device), dtype, name
        ac = alphas_cumprod if alphas_cumprod is not None else scaled_linear_alphas_cumprod()
        self.host = DiffusersDenoiser(unet, ac, prediction_type)
        self.prediction_type = prediction_type
        self.weights_changed()
        for m in self._modules():
            m.to(self.device).eval().requires_grad_(False)
            if next(m.parameters()).dtype != self.dtype:
                cast(m, self.dtype)

    def weights_changed(self) -> None:
        """Call after changing the networks' weights in place (a LoRA merged, a checkpoint loaded into them):
        inversions cached under the old weights are never reused. Each pipeline has its own token, so two
        pipelines never share cache entries (object ids can be reused after a model is freed; tokens are not)."""
        self.cache_token = uuid.uuid4().hex

    def _modules(self):
        return [m for m in (self.unet, self.vae, self.text_encoder, self.text_encoder_2) if m is not None]

    @property
    def is_sdxl(self) -> bool:
        return self.text_encoder_2 is not None

    @property
    def vae_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def size_multiple(self) -> int:
        return self.vae_factor * 2 ** (len(self.unet.config.block_out_channels) - 1)

    # ------------------------------------------------------------------ text
    def tokens(self, text: str) -> list[str]:
        return self.tokenizer.tokenize(text)

    def _ids(self, tokenizer, prompt: str) -> torch.Tensor:
        return tokenizer(
            prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
            return_tensors="pt",
        ).input_ids.to(self.device)

    @torch.no_grad()
    def encode_prompt(self, prompt: str, size: tuple[int, int] | None = None) -> Cond:
        if not self.is_sdxl:
            ctx = self.text_encoder(self._ids(self.tokenizer, prompt))[0]
            return {CONTEXT: ctx.to(self.dtype)}
        out1 = self.text_encoder(self._ids(self.tokenizer, prompt), output_hidden_states=True)
        out2 = self.text_encoder_2(self._ids(self.tokenizer_2, prompt), output_hidden_states=True)
        ctx = torch.cat([out1.hidden_states[-2], out2.hidden_states[-2]], dim=-1)
        h, w = size or (1024, 1024)
        time_ids = torch.tensor([[h, w, 0, 0, h, w]], dtype=self.dtype, device=self.device)
        return {CONTEXT: ctx.to(self.dtype), "text_embeds": out2.text_embeds.to(self.dtype), "time_ids": time_ids}

    # ------------------------------------------------------------------ images
    @torch.no_grad()
    def encode_image(self, img: Image.Image) -> torch.Tensor:
        x = to_tensor(img).to(self.device, self.dtype)
        lat = self.vae.encode(x).latent_dist.mean
        return lat * self.vae.config.scaling_factor

    @torch.no_grad()
    def decode(self, latent: torch.Tensor) -> Image.Image:
        x = self.vae.decode((latent / self.vae.config.scaling_factor).to(self.dtype)).sample
        return to_pil(x)

    def prepare_images(self, source: Image.Image, target: Image.Image) -> tuple[Image.Image, Image.Image]:
        """Source: snapped to the model's size multiple. Target: centre-cropped to the source's aspect
        ratio and resized to the source's size."""
        src = to_rgb(source, "source image")
        tar = to_rgb(target, "target image")
        size = snap_size(*src.size, self.size_multiple)
        if size != src.size:
            src = src.resize(size, Image.LANCZOS)
        return src, fit_to(tar, size)

    # ------------------------------------------------------------------ run
    def transfer(
        self, source: Image.Image, target: Image.Image, source_prompt: str, target_prompt: str,
        config: FGATConfig | None = None, *, negative_prompt: str = "", mask: Image.Image | None = None,
        progress: Progress | bool | None = None, transfer: bool = True, latents: dict | None = None,
        cache: InversionStore | None = None, mask_tokens: list[int] | None = None,
        target_mask_tokens: list[int] | None = None,
    ) -> TransferOutput:
        """Run FGAT on two images. `latents` may carry cached {'source': z, 'target': z} encodings.

        `progress`: a callback progress(stage, done, total), or True for a progress bar per stage on stderr.
        `cache` (e.g. `fgat_core.cache.InversionCache`) lets runs share inversions: an image already
        inverted with the same prompt, model and settings is not inverted again. `mask_tokens` (and
        `target_mask_tokens`, the target-side mask word's): the mask word's token positions where the caller
        already located them (the CLI does, while checking the request), so the word is located once per
        request; None locates it here."""
        if progress is True:
            from .progress import StageBars

            bars = StageBars()
            try:
                return self.transfer(source, target, source_prompt, target_prompt, config,
                                     negative_prompt=negative_prompt, mask=mask, progress=bars, transfer=transfer,
                                     latents=latents, cache=cache, mask_tokens=mask_tokens,
                                     target_mask_tokens=target_mask_tokens)
            finally:
                bars.close()
        prompts = {"source_prompt": source_prompt, "target_prompt": target_prompt, "negative_prompt": negative_prompt}
        cfg, source, target, mask = check_arguments(config, source, target, mask, prompts, progress=progress,
                                                    cache=cache, transfer=transfer, latents=latents)
        try:  # the checks every front end shares (the mask word is located below, with the model's tokenizer)
            frames = [to_rgb(source, "source image").size] if mask is not None else []
            check_request(Request(cfg, [source_prompt], target, mask=mask, mask_frames=frames, transfer=transfer))
        except InputError as e:
            if e.field == "mask" and e.problem == "unused":  # in the library's words
                raise ValueError(f"a mask image was given but mask_source is {cfg.mask_source!r}: set "
                                 "FGATConfig(mask_source='user') to use it, or drop the mask") from None
            raise
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        src_img, tar_img = self.prepare_images(source, target)
        inputs = self._inputs(src_img, tar_img, prompts, cfg, mask, latents or {}, cache,
                              (mask_tokens, target_mask_tokens))
        timings["encode"] = time.perf_counter() - t0
        result = run_fgat(self.host, inputs, cfg, transfer=transfer, progress=progress or None, cache=cache)
        for k, s in result.stats.items():
            timings[k] = s.seconds
        t1 = time.perf_counter()
        image = self.decode(result.latent)
        timings["decode"] = time.perf_counter() - t1
        timings["total"] = time.perf_counter() - t0
        return TransferOutput(image, result.latent, result, cfg, src_img, tar_img, timings)

    def _inputs(self, src_img: Image.Image, tar_img: Image.Image, prompts: dict[str, str], cfg: FGATConfig,
                mask: Image.Image | None, cached: dict, cache: InversionStore | None,
                located: tuple[list[int] | None, list[int] | None] = (None, None)) -> FGATInputs:
        """The engine's inputs: latents (encoded unless `cached`), conditionings, mask tokens (`located`: the
        mask word's and the target-side mask word's, where the caller located them) or the user mask, and the
        cache keys."""
        source_prompt, target_prompt = prompts["source_prompt"], prompts["target_prompt"]
        negative_prompt = prompts["negative_prompt"]
        size_hw = (src_img.size[1], src_img.size[0])
        z_src, z_tar = cached.get("source"), cached.get("target")
        z_src = self.encode_image(src_img) if z_src is None else z_src
        z_tar = self.encode_image(tar_img) if z_tar is None else z_tar
        tokens, (mask_tokens, target_tokens) = None, located
        if cfg.mask_source is MaskSource.ATTENTION:
            tokens = mask_tokens
            if tokens is None:
                tokens = word_token_indices(source_prompt, cfg.mask_word, self.tokens, self.tokenizer.model_max_length)
        if target_tokens is None:
            target_tokens = target_object_tokens(cfg, target_prompt, lambda q, w: word_token_indices(
                q, w, self.tokens, self.tokenizer.model_max_length, TARGET_FIELDS))
        user_mask = None
        if cfg.mask_source is MaskSource.USER:
            if mask is None:
                raise InputError("mask", None, "{names[mask_source]} is 'user' but no mask image was given: "
                                 "pass {name}", related=("mask_source",))
            user_mask = mask_from_image(mask)
        inputs = FGATInputs(
            source_latent=z_src, target_latent=z_tar,
            source_cond=self.encode_prompt(source_prompt, size_hw),
            target_cond=self.encode_prompt(target_prompt, size_hw),
            uncond=self.encode_prompt(negative_prompt, size_hw),
            empty_cond=self.encode_prompt("", size_hw),
            mask_tokens=tokens, user_mask=user_mask, target_mask_tokens=target_tokens,
        )
        if cache is not None and not cached:  # keys identify the images only when we encoded them
            model = (self.name, self.cache_token, str(self.device), str(self.dtype), self.prediction_type)
            inputs.source_key = (*model, image_hash(src_img), source_prompt, negative_prompt)
            inputs.target_key = (*model, image_hash(tar_img), target_prompt)
        return inputs


def check_prompt(text: Any, name: str) -> str:
    """A prompt as text the tokenizer can take: a str without undecodable bytes (a Latin-1 terminal or prompt
    file gives Python lone surrogates, on which the tokenizer fails with a TypeError)."""
    if not isinstance(text, str):
        raise ValueError(f"{name} must be text (\"\" for none), got {type(text).__name__}")
    bad = next((i for i, ch in enumerate(text) if "\ud800" <= ch <= "\udfff"), None)
    if bad is not None:
        near = text[max(0, bad - 20):bad + 20].encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        raise InputError(name, near, "{name} holds a byte that is not UTF-8 at "
                         "character {at} (near {value!r}): save the prompt as UTF-8 or set the terminal to UTF-8 "
                         "(e.g. LANG=C.UTF-8)", at=bad + 1)
    return text


def check_arguments(config: Any, source: Any, target: Any, mask: Any, prompts: dict[str, Any], *, progress: Any,
                    cache: Any, transfer: Any, latents: Any) -> tuple[FGATConfig, Image.Image, Image.Image, Any]:
    """`FGATPipeline.transfer`'s arguments checked before any work, each refusal saying what is accepted;
    the images as PIL images (`images.as_image`: a path, a PIL image or a uint8 array)."""
    if config is not None and not isinstance(config, FGATConfig):
        hint = " (FGATConfig(**settings) or FGATConfig.from_dict(settings))" if isinstance(config, dict) else ""
        raise ValueError(f"config must be an FGATConfig or None{hint}; got {type(config).__name__}")
    for name, text in prompts.items():
        check_prompt(text, name)
    if not (progress is None or isinstance(progress, bool) or callable(progress)):
        raise ValueError(f"progress must be True (progress bars), False/None, or a callable progress(stage, done, "
                         f"total); got {type(progress).__name__} {_short(progress)}")
    if cache is not None and not all(callable(getattr(cache, m, None)) for m in ("get", "put")):
        raise ValueError(f"cache must be an InversionCache (fgat_core.cache.InversionCache()) or None; got "
                         f"{type(cache).__name__}")
    if not isinstance(transfer, bool):
        raise ValueError(f"transfer must be True or False; got {type(transfer).__name__} {_short(transfer)}")
    if latents is not None and not isinstance(latents, dict):
        raise ValueError(f"latents must be a dict {{'source': z, 'target': z}} or None; got {type(latents).__name__}")
    return (config or FGATConfig(), as_image(source, "source image"), as_image(target, "target image"),
            None if mask is None else as_image(mask, "mask image"))


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def tiny_pipeline(
    seed: int = 0, prediction_type: str = "epsilon", sdxl: bool = False,
    device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
) -> FGATPipeline:
    """The bundled demo model: tiny SD-architecture networks with seeded random weights, built in code."""
    from .tiny import tiny_text_encoder, tiny_tokenizer, tiny_unet, tiny_vae

    tok = tiny_tokenizer()
    if sdxl:
        te = tiny_text_encoder(len(tok), seed + 1, hidden=16)
        te2 = tiny_text_encoder(len(tok), seed + 2, hidden=16, projection=True)
        return FGATPipeline(
            tiny_unet(seed, cross_attention_dim=32, sdxl=True), tiny_vae(seed + 3), te, tok,
            text_encoder_2=te2, tokenizer_2=tok, prediction_type=prediction_type, name="tiny-sdxl",
            device=device, dtype=dtype,
        )
    return FGATPipeline(
        tiny_unet(seed), tiny_vae(seed + 3), tiny_text_encoder(len(tok), seed + 1), tok,
        prediction_type=prediction_type, name="tiny-sd", device=device, dtype=dtype,
    )
