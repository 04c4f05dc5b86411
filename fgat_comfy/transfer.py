"""One FGAT transfer in ComfyUI: check the request, encode, run `fgat_core.engine.run_fgat` on a clone of the
MODEL, decode. Every check that needs no UNet call runs first (`fgat_core.prepare.check_request`), so a bad
input fails the prompt before any model work, with one message naming the node input to change."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import Image
from torch import Tensor

from fgat_core.config import FGATConfig
from fgat_core.engine import FGATInputs, FGATResult, run_fgat
from fgat_core.errors import InputError, render_error
from fgat_core.images import fit_to
from fgat_core.metering import STAGES
from fgat_core.prepare import (
    TARGET_FIELDS,
    Request,
    check_request,
    default_mask_word,
    locate_word_ids,
    shorten,
    target_object_tokens,
)

from .host import (
    ComfyDenoiser,
    encode_prompt,
    load_unet,
    prompt_token_ids,
    same_length,
    to_device,
    word_token_ids,
)
from .inputs import crop_to_multiple, first_image, from_pil, mask_to_pil, to_pil

# node input names of the settings the transfer node owns (the rest are the FGAT Settings node's, same names)
INPUT_NAMES = {"guidance_scale": "cfg", "target": "target", "mask": "mask"}
ROWS = 4  # the largest batch FGAT's UNet calls make (cond + uncond at x, + the source trajectory's rows)


class FGATError(ValueError):
    """A bad input or setting, worded with the node's input names (ComfyUI shows the message as it is)."""


def input_name(field_name: str) -> str:
    return f"'{INPUT_NAMES.get(field_name, field_name)}'"


@dataclass
class Job:
    """What the transfer node was given, checked."""

    config: FGATConfig
    source: Tensor  # (1, H, W, 3), cropped to multiples of 8
    target: Tensor  # (1, H, W, 3), fitted to the source
    source_prompt: str
    target_prompt: str
    negative_prompt: str
    user_mask: Tensor | None = None  # (H, W) in [0, 1]


@dataclass
class RunInfo:
    """What the FGAT Diagnostics node draws: the run's result and the images as the model saw them."""

    result: FGATResult
    source: Image.Image
    target: Image.Image
    image: Image.Image
    vae: Any
    model: Any  # the BaseModel (its latent format)
    prompts: tuple[str, str]
    config: FGATConfig
    notes: list[str] = field(default_factory=list)


def build_config(settings: dict | None, steps: int, cfg: float, seed: int, mask_word: str,
                 has_mask: bool) -> FGATConfig:
    """The node's settings with its own steps, CFG and seed; a connected MASK makes the mask source 'user'."""
    data = dict(settings or {})
    data.update(steps=steps, guidance_scale=cfg, seed=seed, mask_word=mask_word)
    if has_mask:
        data["mask_source"] = "user"
    return FGATConfig.from_dict(data)


def locate(clip: Any, prompt: str, word: str, fields: tuple[str, str] = ("source_prompt", "mask_word")) -> list[int]:
    """Context positions of the mask word's tokens in the source prompt (empty word: its last word); `fields`
    `prepare.TARGET_FIELDS`: the target-side mask's word in the target prompt."""
    target = fields == TARGET_FIELDS
    off, side = ("set 'target_mask' to none", "target") if target else ("connect a 'mask'", "source")
    if not word.strip():
        word = default_mask_word(prompt)
        if word is None:
            raise InputError(fields[0], prompt, "{name} has no word to take the attention mask from: name the object "
                             f"in it, type the object word in '{fields[1]}', or {off}", problem="no word")
    ids, strings = prompt_token_ids(clip, prompt)
    hits = locate_word_ids(ids, word_token_ids(clip, word.strip()), strings)
    if not hits:
        raise InputError(fields[1], word, "the mask word {short} is not in the {side} prompt {prompt}: type a word "
                         f"that appears in '{fields[0]}' as plain text (it names the object whose appearance "
                         f"changes), or {off}", problem="not found", short=shorten(word), side=side,
                         prompt=shorten(prompt, 120))
    return hits


def target_tokens(job: Job, clip: Any) -> list[int] | None:
    """The target-side mask word's positions in the target prompt (`prepare.target_object_tokens`)."""
    return target_object_tokens(job.config, job.target_prompt, lambda q, w: locate(clip, q, w, TARGET_FIELDS))


def check_job(job: Job, clip: Any) -> None:
    """`check_request` with the source's frame for the user mask and the CLIP tokenizer for the mask word."""
    h, w = job.source.shape[1:3]
    mask = mask_to_pil(job.user_mask) if job.user_mask is not None else None
    request = Request(job.config, [job.source_prompt], to_pil(job.target), mask=mask, mask_value=None,
                      mask_frames=[(w, h)])
    check_request(request, lambda prompt, word: locate(clip, prompt, word))
    target_tokens(job, clip)


def make_job(source: Tensor, target: Tensor, prompts: tuple[str, str, str], config: FGATConfig,
             mask: Tensor | None) -> Job:
    src = crop_to_multiple(first_image(source, "source"))
    h, w = src.shape[1:3]
    tar = from_pil(fit_to(to_pil(first_image(target, "target")), (w, h)))
    user_mask = None if mask is None else (mask[0] if mask.dim() == 3 else mask)
    return Job(config, src, tar, *prompts, user_mask=user_mask)


def encode_inputs(job: Job, patcher: Any, clip: Any, vae: Any) -> FGATInputs:
    """Prompts through CLIP, images through the VAE (latents in the model's space), on the model's device."""
    model = patcher.model
    device = patcher.load_device
    latents = [model.process_latent_in(vae.encode(img)).float().to(device) for img in (job.source, job.target)]
    size = tuple(latents[0].shape[-2:])
    texts = (job.source_prompt, job.target_prompt, job.negative_prompt, "")
    conds = same_length([encode_prompt(clip, model, t, size) for t in texts])
    source, target, uncond, empty = (to_device(c, device) for c in conds)
    tokens = None
    if job.config.mask_source == "attention":
        tokens = locate(clip, job.source_prompt, job.config.mask_word)
    user_mask = None if job.user_mask is None else job.user_mask.float().to(device)
    return FGATInputs(latents[0], latents[1], source, target, uncond, empty_cond=empty, mask_tokens=tokens,
                      user_mask=user_mask, target_mask_tokens=target_tokens(job, clip))


class Progress:
    """ComfyUI's progress bar over inversion (first half: DDIM inversion, then null-text's optimisation, which
    reports its own steps) and sampling (second half); it never moves back."""

    def __init__(self) -> None:
        import comfy.utils

        self.bar = comfy.utils.ProgressBar(100)
        self.value = 0

    def __call__(self, stage: str, done: int, total: int) -> None:
        base = 50 if stage == "sampling" else 0
        self.value = max(self.value, base + round(50 * done / max(1, total)))
        self.bar.update_absolute(self.value)


def run(job: Job, model: Any, clip: Any, vae: Any) -> tuple[Tensor, FGATResult]:
    """The transfer on a clone of `model`, loaded through memory management; the result's latent is in
    ComfyUI's LATENT space (raw VAE latent)."""
    import comfy.model_management

    patcher = model.clone()
    inputs = encode_inputs(job, patcher, clip, vae)
    load_unet(patcher, inputs.source_latent, ROWS)
    denoiser = ComfyDenoiser(patcher, comfy.model_management.throw_exception_if_processing_interrupted)
    result = run_fgat(denoiser, inputs, job.config, progress=Progress())
    return patcher.model.process_latent_out(result.latent.float()).cpu(), result


def decode(vae: Any, latent: Tensor) -> Tensor:
    """A LATENT through `VAE.decode`: a ComfyUI IMAGE (1, H, W, 3) in [0, 1] on the CPU."""
    return vae.decode(latent).float().clamp(0, 1).cpu()


def summary(result: FGATResult) -> list[str]:
    """One line on the UNet calls per stage (the cost), then the run's notes."""
    stats = result.stats
    calls = ", ".join(f"{s} {stats[s].calls}+{stats[s].feature_calls} partial" for s in STAGES if s in stats)
    total = sum(stats[s].calls for s in stats)
    return [f"FGAT UNet calls: {total} full ({calls}); window steps {result.window[0]}-{result.window[1] - 1}",
            *result.messages]


def user_message(err: ValueError) -> FGATError:
    return FGATError(f"FGAT: {render_error(err, input_name)}")
