"""The per-generation lifecycle of FGAT inside the WebUI.

    process()                         `start_run`: parse and validate the settings, write the infotext;
                                      any error is kept and raised when sampling starts (the WebUI swallows
                                      exceptions raised in `process()`, so raising there would be a silent no-op)
    process_batch() /
    process_before_every_sampling()   `FGATRun.install`: take over `p.sampler.sample_img2img`
    p.init()                          the WebUI encodes the source into `p.init_latent`, a VAE posterior
                                      *sample*; FGAT keeps the pixels it encoded (`capture_source_pixels`)
    p.sample() -> our sample_img2img  the fgat_core engine runs on the WebUI's model, row by row, from the
                                      source encoded deterministically (posterior mean) and with each
                                      image's own seed; whatever happens (success, error, Interrupt/Skip)
                                      the takeover is undone and the progress text cleared before it
                                      returns or raises; a bad input raises `FGATInputError` (HTTP 422)
    postprocess()                     `finish_run`: diagnostics images, then the run is dropped

Nothing global is touched: the only patches are instance attributes of this generation's sampler and
`p`, the model's forward hooks live inside the engine's calls, and the run itself is an attribute of `p`.

What the user must know about a generation goes into each image's infotext (the API's `info.infotexts`:
A1111 1.10.1's API response carries no comments): the `FGAT` value with that image's own seed, and an
`FGAT notes` value (an all-black mask, an attention mask that thresholded to nothing, an interrupted
image, a masked-content fill that changed the source). The UI also shows them as comments.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from fgat_core.config import FGATConfig
from fgat_core.engine import FGATInputs, FGATInterrupted, run_fgat
from fgat_core.errors import ConfigError, InputError
from fgat_core.images import fit_to, mask_from_image, to_rgb
from fgat_core.infotext import INFOTEXT_KEY, format_infotext, image_hash
from fgat_core.prepare import Request, check_request, default_mask_word, locate_word_ids, target_object_tokens
from fgat_core.settings import MaskSource

from .args import FGATSettings, apply_overrides, settings_from_script_args
from .backend import SamplerTakeover, WebUIBackend, replace_sample_img2img
from .detect import detect_backend
from .errors import FGATError, FGATInputError, failure, input_error, report_rejected, shorten

__all__ = ["FGATError", "FGATInputError", "FGATRun", "start_run", "install_run", "finish_run", "current_run"]

RUN_ATTR = "fgat_run"  # the run of a generation, on its `p`
XYZ_ATTR = "fgat_xyz"  # X/Y/Z plot overrides, on `p` (see xyz.py)
NOTES_KEY = "FGAT notes"  # the infotext key of an image's notes
FILL_NAMES = {0: "fill", 2: "latent noise", 3: "latent nothing"}
CONDITIONING_ATTR = "img2img_image_conditioning"  # the method of `p` that is handed the source pixels
INTERRUPTED_NOTE = "FGAT was interrupted; this image is the unchanged source"


class PerImageText(str):
    """An infotext value that differs per image: as text, the generation's (what `info.extra_generation_params`
    shows); called by the WebUI's `create_infotext` with its locals (A1111 `processing.py:801-809`, Forge
    l.784-787: a callable value is called per image), `per_image(seed)` of that image's own seed."""

    per_image: Callable[[int], str | None]

    def __new__(cls, text: str, per_image: Callable[[int], str | None]) -> PerImageText:
        value = super().__new__(cls, text)
        value.per_image = per_image
        return value

    def __call__(self, **infotext_locals: Any) -> str | None:
        try:
            seed = int(infotext_locals["all_seeds"][infotext_locals["index"]])
        except (KeyError, IndexError, TypeError, ValueError):
            return str(self)
        return self.per_image(seed)


class ImageNotes:
    """The `FGAT notes` infotext value: the generation's notes, then those of the image's seed (None: no notes)."""

    def __init__(self) -> None:
        self.general: list[str] = []
        self.by_seed: dict[int, list[str]] = {}

    def add(self, note: str, seed: int | None = None) -> None:
        notes = self.general if seed is None else self.by_seed.setdefault(seed, [])
        if note not in notes:
            notes.append(note)

    def __call__(self, **infotext_locals: Any) -> str | None:
        try:
            seed = int(infotext_locals["all_seeds"][infotext_locals["index"]])
        except (KeyError, IndexError, TypeError, ValueError):
            seed = None
        notes = self.general + self.by_seed.get(seed, [])
        return " | ".join(notes) if notes else None


@dataclass
class RowResult:
    """What one generated image needs for the diagnostics images."""

    mask: Tensor  # (h, w)
    correspondence: Tensor | None  # flat target index per source position
    latent_size: tuple[int, int]


def mask_token_positions(backend: WebUIBackend, p: Any, prompt: str, word: str, target: bool = False) -> list[int]:
    """Key positions of `word`'s tokens in the prompt as the WebUI's text encoder feeds it to the model
    (empty word: the prompt's last word, `default_mask_word`). Found by searching the word's token ids in the
    prompt's token ids (`locate_word_ids`), which stays right with emphasis syntax, BREAK and prompts longer
    than one 77-token chunk. `target`: the target prompt's object word (target-side masking)."""
    fields, where, off = (("target_prompt", "target_mask_word"), "the target prompt", "target-side mask 'none'") \
        if target else (("source_prompt", "mask_word"), "the img2img prompt", "mask source 'inpaint mask' or 'none'")
    if not word.strip():
        word = default_mask_word(prompt)
        if word is None:
            raise InputError(fields[0], prompt, "the prompt has no word to take the attention mask from: "
                             f"write a prompt naming the object, type the object word, or choose {off}",
                             problem="no word")
    needle = backend.word_token_ids(p, word.strip())
    haystack = backend.prompt_token_ids(p, prompt)
    hits = locate_word_ids(haystack, needle, backend.token_strings(haystack))
    if not hits:
        raise InputError(
            fields[1], word, "the object word {short} is not in the prompt {prompt}: type a word that appears in "
            f"{where} as plain text (it names the object whose appearance changes; a textual-inversion "
            f"embedding or a LoRA tag has no word tokens to find), or choose {off}",
            problem="not found", short=shorten(word), prompt=shorten(prompt, 120))
    return hits


def only_masked(p) -> bool:
    """Inpainting with *Inpaint area: Only masked*: the WebUI generates a crop around the mask."""
    return getattr(p, "image_mask", None) is not None and bool(getattr(p, "inpaint_full_res", False))


def sampler_note(p, steps: int) -> str:
    """What FGAT did instead of the WebUI's sampler, for the infotext and the UI."""
    ignored = []
    if getattr(p, "sampler_name", None) not in (None, "DDIM"):
        ignored.append(f"the selected sampler {p.sampler_name!r}")
    strength = getattr(p, "denoising_strength", None)
    if strength is not None and float(strength) < 1.0:
        ignored.append(f"denoising strength {float(strength):g}")
    note = f"FGAT sampled with its own deterministic DDIM path (eta 0, {steps} steps from a full inversion)"
    return note + (f"; {' and '.join(ignored)} not used" if ignored else "")


OWNED_NAMES = {"guidance_scale": "CFG scale", "steps": "sampling steps", "seed": "seed"}  # the WebUI's controls


def generation_config(settings: FGATSettings, p: Any) -> FGATConfig:
    """The settings' config with the generation's own sampling steps, CFG scale and (first) seed."""
    seeds = getattr(p, "all_seeds", None) or [p.seed]
    owned = {"steps": int(p.steps), "guidance_scale": float(p.cfg_scale), "seed": int(seeds[0])}
    for name, value in owned.items():
        if name in settings.given and getattr(settings.config, name) != value:
            raise ValueError(
                f"FGAT '{name}' ({getattr(settings.config, name)!r}) differs from the generation's own value "
                f"({value!r}): FGAT uses the WebUI's sampling steps, CFG scale and seed; drop '{name}' from "
                "the FGAT args or set it on the request itself"
            )
    try:
        return settings.config.replace(**owned)
    except ConfigError as e:  # the generation's own value is outside FGAT's range: name it as the UI does
        if e.field not in OWNED_NAMES:
            raise
        name = OWNED_NAMES[e.field]
        raise ValueError(f"the generation's {name} {owned[e.field]!r} is outside what FGAT takes"
                         + (f" ({e.allowed})" if e.allowed else "") + f": change the {name}") from None


def mask_frames(p: Any) -> list[tuple[int, int]]:
    """The sizes an API `mask_image` may be drawn at: the source image's frame (resized or cropped with the
    source), or, except for 'Only masked', the generation's."""
    source = p.init_images[0].size
    return [source] if only_masked(p) else [source, (p.width, p.height)]


def in_webui_words(error: ConfigError | InputError, p: Any, cfg: FGATConfig) -> ValueError:
    """`check_request`'s error as the WebUI says it: control names, the inpaint mask, percent windows."""
    if isinstance(error, ConfigError):
        if cfg.window_end <= 0.01:  # 0.24 sent where the UI and positional args take percent (24)
            return ValueError(f"{error} (window start and end are percentages in the UI and in positional API "
                              "args: 24 means 24 %, 0.24 means 0.24 %)")
        return error
    if error.field == "target" and error.problem == "missing":
        return ValueError("FGAT is enabled but has no target image: add the image whose appearance to transfer "
                          "(API: 'target_image', base64 PNG/JPEG)")
    if error.field == "mask" and error.problem == "missing":
        return ValueError("mask source 'inpaint mask' needs a mask: draw one in img2img's Inpaint tab (API: 'mask' "
                          "or FGAT 'mask_image'), or choose mask source 'attention' or 'none'")
    if error.field == "mask" and error.problem == "aspect":
        (w, h), (sw, sh) = (error.extra["mw"], error.extra["mh"]), p.init_images[0].size
        return ValueError(f"the FGAT mask image is {w}x{h}, an aspect ratio neither of the source image ({sw}x{sh})"
                          + ("" if only_masked(p) else f" nor of the generation ({p.width}x{p.height})")
                          + ": draw the mask over the source image, at any size of its aspect ratio")
    if error.field == "mask" and error.problem == "values":
        return ValueError(str(error.extra["reason"]))
    return error


class FGATRun:
    """One generation's FGAT state. Built by `start_run`; holds either valid settings or the error to raise."""

    def __init__(
        self, settings: FGATSettings | None, backend: WebUIBackend | None, error: BaseException | None = None
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.error = error
        self.config: FGATConfig | None = None
        self.takeover: SamplerTakeover | None = None
        self.results: list[RowResult] = []
        self.interrupted = False
        self.notes = ImageNotes()
        self.source_pixels: Tensor | None = None  # (B, 3, H, W) in [-1, 1], as the WebUI encoded them
        self._captured_p = None
        self._target_latents: dict[tuple[int, int], Tensor] = {}
        self._source_latents: dict[int, Tensor] = {}
        self._mask_tokens: dict[tuple[str, str, bool], list[int]] = {}

    # ------------------------------------------------------------------------------------------ setup
    def prepare(self, p: Any) -> None:
        """Validate everything that can be checked before sampling (`fgat_core.prepare.check_request`, in the
        WebUI's words); write the infotext."""
        settings, backend = self.settings, self.backend
        backend.check_model(p)
        cfg = generation_config(settings, p)
        prompts = getattr(p, "all_prompts", None) or [p.prompt]  # as sampling will see them (LoRA tags removed)
        request = Request(cfg, [backend.strip_extra_networks(q) for q in prompts], settings.target_image,
                          mask=settings.mask_image if cfg.mask_source is MaskSource.USER else None,
                          mask_frames=mask_frames(p), host_mask=getattr(p, "image_mask", None) is not None)
        try:
            check_request(request, lambda prompt, word: self.mask_tokens(p, prompt, word))
            self.target_tokens(p, backend.strip_extra_networks(settings.target_prompt), cfg)
        except (ConfigError, InputError) as e:
            raise in_webui_words(e, p, cfg) from None
        self.config = cfg
        note = sampler_note(p, cfg.steps)
        extras = dict(target_prompt=settings.target_prompt, target_hash=image_hash(settings.target_image),
                      diagnostics=True if settings.diagnostics else None, sampler_note=note)

        def for_seed(seed: int) -> str:  # each image records the seed that made it
            return format_infotext(cfg.replace(seed=seed), **extras)

        p.extra_generation_params[INFOTEXT_KEY] = PerImageText(format_infotext(cfg, **extras), for_seed)
        p.extra_generation_params[NOTES_KEY] = self.notes
        p.comment(note)
        fill = getattr(p, "inpainting_fill", 1)
        if getattr(p, "image_mask", None) is not None and fill in FILL_NAMES:
            self.note(p, f"FGAT: 'Masked content: {FILL_NAMES[fill]}' changes the source image under the mask "
                         "before FGAT inverts it; choose 'original' to keep the source's structure there")

    def note(self, p, text: str, seed: int | None = None) -> None:
        """A note for the user: in the image's infotext (`FGAT notes`; all images' when `seed` is None) and
        among the UI's comments."""
        self.notes.add(text, seed)
        p.comment(text)

    def capture_source_pixels(self, p) -> None:
        """Keep the source pixels the WebUI encodes into `p.init_latent`: `init()` hands them, as
        `image * 2 - 1`, to `p.img2img_image_conditioning` (A1111 `processing.py:1757`, Forge l.1842), shadowed
        here by an instance attribute of this generation's `p` (removed by `close()`)."""
        original = getattr(p, CONDITIONING_ATTR, None)
        if original is None:
            return

        def capture(source_image, latent_image, *args, **kwargs):
            self.source_pixels = source_image.detach().float().cpu()
            return original(source_image, latent_image, *args, **kwargs)

        setattr(p, CONDITIONING_ATTR, capture)
        self._captured_p = p

    # ------------------------------------------------------------------------------------------ takeover
    def install(self, p) -> None:
        """Take over this generation's sampler (idempotent; called before every sampling)."""
        sampler = getattr(p, "sampler", None)
        if sampler is None or (self.takeover is not None and self.takeover.owner is sampler):
            return
        self.release()
        if self.backend is not None:
            try:
                self.takeover = self.backend.take_over_sampling(p, self.sample_img2img)
            except Exception as e:  # noqa: BLE001 - the WebUIs only log what process_batch raises: raise it
                self.error = self.error or failure(e)  # when sampling starts, where the user sees it
                self.takeover = replace_sample_img2img(p, self.sample_img2img)
        else:
            self.takeover = replace_sample_img2img(p, self.sample_img2img)

    def release(self) -> None:
        """Undo the takeover and the progress text; safe to call any number of times."""
        if self.takeover is not None:
            self.takeover.restore()
            self.takeover = None
        if self.backend is not None:
            self.backend.end_progress()

    def close(self) -> None:
        self.release()
        if self._captured_p is not None:
            self._captured_p.__dict__.pop(CONDITIONING_ATTR, None)
            self._captured_p = None
        self.source_pixels = None
        self._target_latents.clear()
        self._source_latents.clear()

    # ------------------------------------------------------------------------------------------ sampling
    def sample_img2img(
        self, p, x: Tensor, noise: Tensor, conditioning: Any, unconditional_conditioning: Any,
        steps: int | None = None, image_conditioning: Tensor | None = None,
    ) -> Tensor:
        """Stands in for the sampler's `sample_img2img`: FGAT for each row of the batch. The WebUI's inpaint
        blend reads `p.init_latent` afterwards: it becomes the deterministic source latent FGAT started from.

        Errors: a setting or input to change (ValueError) -> `FGATInputError` (HTTP 422, one console line);
        anything else but out of memory -> `FGATError` (HTTP 500); both messages start with FGAT's name."""
        try:
            if self.error is not None:
                raise self.error
            # a Skip ends this batch only: the WebUI resets it before the next batch, and so do we
            self.interrupted = False
            with torch.no_grad():
                rows = [self._transfer_row(p, x, i) for i in range(x.shape[0])]
            if self.source_pixels is not None:
                p.init_latent = torch.cat([self.source_latent(p, x, i) for i in range(x.shape[0])]).to(x)
            return torch.cat(rows).to(x.dtype)
        except (FGATError, torch.OutOfMemoryError):  # out of memory keeps its type: callers may catch it
            raise
        except ValueError as e:  # the settings' error, or an input only sampling can check
            error = input_error(e)
            report_rejected(error)
            raise error from e
        except Exception as e:  # noqa: BLE001 - any failure inside FGAT reaches the user with FGAT's name
            raise failure(e) from e
        finally:
            self.release()

    def row_seed(self, p, i: int) -> int:
        """The WebUI's seed of row i of this batch (`p.seeds`), which FGAT's DIFT noise uses too."""
        seeds = getattr(p, "seeds", None)
        return int(seeds[i]) if seeds and i < len(seeds) else int(self.config.seed)

    def source_latent(self, p, x: Tensor, i: int) -> Tensor:
        """Row i's source latent, encoded deterministically (the posterior mean, as the target is).

        `p.init_latent` (= `x`) holds a posterior *sample* drawn from the global generator, so the same request
        would give another image after any other request. The pixels the WebUI encoded (after its resize,
        crop and masked-content fill) are encoded again through `encode_image`; 'Resize mode: latent upscale'
        resizes the latent as the WebUI does (A1111 `processing.py:1733-1734`); under the mask, 'latent
        noise' / 'latent nothing' keep the WebUI's latent (l.1749-1754; exact for the default rounded mask)."""
        row = x[i : i + 1].float()
        if self.source_pixels is None:
            return row
        if i not in self._source_latents:
            pixels = self.source_pixels[min(i, self.source_pixels.shape[0] - 1)]
            image = Image.fromarray(((pixels.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy())
            self._source_latents[i] = self.backend.encode_image(p, image).float().cpu()
        latent = self._source_latents[i].to(row.device)
        if latent.shape[-2:] != row.shape[-2:]:
            latent = torch.nn.functional.interpolate(latent, size=tuple(row.shape[-2:]), mode="bilinear")
        mask = getattr(p, "mask", None)
        if mask is not None and getattr(p, "inpainting_fill", 1) in (2, 3):
            keep = mask.float().to(row.device)  # 1 outside the inpaint mask
            latent = latent * keep + row * (1 - keep)
        return latent

    def mask_tokens(self, p, prompt: str, word: str, target: bool = False) -> list[int]:
        """The mask word's token positions in `prompt` (`target`: the target-side mask's word in the target
        prompt), located once per request: found while checking it (`prepare`) and handed on to every row that
        samples that prompt."""
        if (prompt, word, target) not in self._mask_tokens:
            self._mask_tokens[(prompt, word, target)] = mask_token_positions(self.backend, p, prompt, word, target)
        return self._mask_tokens[(prompt, word, target)]

    def target_tokens(self, p, target_prompt: str, cfg: FGATConfig) -> list[int] | None:
        """The target-side mask word's positions (`prepare.target_object_tokens`), located once per request."""
        return target_object_tokens(cfg, target_prompt, lambda q, w: self.mask_tokens(p, q, w, True))

    def _transfer_row(self, p, x: Tensor, i: int) -> Tensor:
        src = self.source_latent(p, x, i)
        seed = self.row_seed(p, i)
        if self.interrupted:
            self.note(p, INTERRUPTED_NOTE, seed)
            return src
        backend, cfg, settings = self.backend, self.config.replace(seed=seed), self.settings
        try:
            backend.check_interrupted()
            h, w = src.shape[-2:]
            prompt = p.prompts[i] if getattr(p, "prompts", None) else p.prompt
            negative = p.negative_prompts[i] if getattr(p, "negative_prompts", None) else p.negative_prompt
            target_prompt = backend.strip_extra_networks(settings.target_prompt)
            source_cond, target_cond, uncond, empty = backend.encode_prompts(
                p, [prompt, target_prompt, negative or "", ""]
            )
            inputs = FGATInputs(
                source_latent=src,
                target_latent=self.target_latent(p, (h, w)).to(src.device),
                source_cond=source_cond,
                target_cond=target_cond,
                uncond=uncond,
                empty_cond=empty,
                mask_tokens=self.mask_tokens(p, prompt, cfg.mask_word)
                if cfg.mask_source is MaskSource.ATTENTION else None,
                user_mask=self.user_mask(p, i) if cfg.mask_source is MaskSource.USER else None,
                target_mask_tokens=self.target_tokens(p, target_prompt, cfg),
            )
            backend.prepare_unet(p, src, rows=max(4, 2 * cfg.dift_ensemble))  # the engine's largest batch
            result = run_fgat(backend.denoiser(p), inputs, cfg, progress=backend.report_progress)
        except FGATInterrupted:
            self.interrupted = True
            self.note(p, INTERRUPTED_NOTE, seed)
            return src
        for message in result.messages:
            self.note(p, message, seed)
        self.results.append(RowResult(result.mask, result.correspondence, (int(h), int(w))))
        return result.latent

    def target_latent(self, p, latent_size: tuple[int, int]) -> Tensor:
        """The target image, centre-cropped and resized to the source's pixel size, through the WebUI's VAE."""
        if latent_size not in self._target_latents:
            f = self.backend.latent_factor
            size = (latent_size[1] * f, latent_size[0] * f)
            image = fit_to(to_rgb(self.settings.target_image, "target image"), size)
            self._target_latents[latent_size] = self.backend.encode_image(p, image)
        return self._target_latents[latent_size]

    def user_mask(self, p, i: int) -> Tensor:
        """The API's `mask_image`, else the WebUI's inpaint mask at latent size (`p.nmask`, 1 = inpaint)."""
        if self.settings.mask_image is not None:
            return mask_from_image(self.backend.generation_frame(p, self.settings.mask_image))
        nmask = getattr(p, "nmask", None)
        if nmask is None and getattr(p, "image_mask", None) is not None:
            # the WebUI drops an all-black mask ('Only masked' finds no region): nothing to transfer, said so
            return torch.zeros(p.height // self.backend.latent_factor, p.width // self.backend.latent_factor)
        if nmask is None:
            raise ValueError("mask source 'inpaint mask' found no inpaint mask on this generation")
        nmask = nmask.float().cpu()
        return nmask[0] if nmask.dim() == 3 else nmask.reshape(nmask.shape[-2:])

    # ------------------------------------------------------------------------------------------ results
    def diagnostic_images(self, p: Any) -> list[Image.Image]:
        """Per image: the mask over the source as FGAT saw it, and the target rearranged by the correspondence
        (the same panels as the CLI's diagnostics sheet, from `fgat_core.diagnostics`)."""
        from fgat_core.diagnostics import mask_overlay, warp_by_correspondence

        out: list[Image.Image] = []
        target = to_rgb(self.settings.target_image, "target image")
        source = self.backend.generation_frame(p, to_rgb(p.init_images[0], "source image"))
        for row in self.results:
            f = self.backend.latent_factor
            size = (row.latent_size[1] * f, row.latent_size[0] * f)
            out.append(mask_overlay(fit_to(source, size), row.mask))
            if row.correspondence is not None:
                out.append(warp_by_correspondence(fit_to(target, size), row.correspondence, row.latent_size))
        return out


# ---------------------------------------------------------------------------------------------- hooks
def start_run(p, args: Sequence[Any], presets=None, backend_factory=detect_backend) -> FGATRun | None:
    """From the script's `process()`: a run for this generation, or None when FGAT is off."""
    stale = getattr(p, RUN_ATTR, None)
    if stale is not None:
        stale.close()
        delattr(p, RUN_ATTR)
    overrides: Mapping[str, Any] = getattr(p, XYZ_ATTR, None) or {}
    backend = None  # kept with an error, so that its takeover (and clean-up on failure) still wraps sampling
    try:
        settings = settings_from_script_args(args, presets)
        if not settings.enabled:
            if not overrides:
                return None
            raise ValueError(
                "an X/Y/Z plot axis sets FGAT values, but FGAT is not enabled: tick 'Fine-grained Appearance "
                "Transfer' in img2img"
            )
        if overrides:
            settings = apply_overrides(settings, overrides, presets)
        backend = backend_factory()
        run = FGATRun(settings, backend)
        run.prepare(p)
    except Exception as e:  # kept and raised when sampling starts, where the WebUI shows it
        run = FGATRun(None, backend, error=e)
    else:
        run.capture_source_pixels(p)
    setattr(p, RUN_ATTR, run)
    return run


def current_run(p) -> FGATRun | None:
    return getattr(p, RUN_ATTR, None)


def install_run(p) -> None:
    """From `process_batch()` and `process_before_every_sampling()`."""
    run = current_run(p)
    if run is not None:
        run.install(p)


def finish_run(p, processed) -> None:
    """From `postprocess()`: add the diagnostics images, then drop the run."""
    run = current_run(p)
    if run is None:
        return
    try:
        if run.settings is not None and run.settings.diagnostics and run.results:
            images = run.diagnostic_images(p)
            processed.images.extend(images)
            infotexts = getattr(processed, "infotexts", None)
            if infotexts is not None:
                infotexts.extend([processed.info] * len(images))
    finally:
        run.close()
        delattr(p, RUN_ATTR)
