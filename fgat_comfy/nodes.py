"""FGAT's ComfyUI nodes (V1 node API: INPUT_TYPES / RETURN_TYPES / FUNCTION / CATEGORY, `nodes.py` of
ComfyUI 0.33.0 l.44-90 for the conventions), under the category "FGAT":

- FGAT Appearance Transfer: MODEL, CLIP, VAE, source and target IMAGE, prompts, mask word, seed, steps, CFG,
  optional FGAT_SETTINGS and MASK -> IMAGE, the MASK used, LATENT, FGAT_RUN (for the diagnostics);
- FGAT Settings: the method's parameters (built from `fgat_core.settings.SETTINGS`) -> FGAT_SETTINGS;
- FGAT Preset: a built-in or user preset (the CLI's and WebUI's, `fgat_core.presets`) -> FGAT_SETTINGS;
- FGAT Diagnostics: FGAT_RUN -> the sheet (source, target, mask, target warped by the matching, result, x0
  at each window step).

Nodes are cached by ComfyUI on their inputs; only FGAT Preset says when it changed (the user presets file)."""

from __future__ import annotations

from typing import Any

import torch

from fgat_core.config import FGATConfig
from fgat_core.diagnostics import diagnostics_sheet, mask_summary
from fgat_core.settings import SETTING

from .host import check_model
from .inputs import (
    SETTINGS_TYPE,
    from_pil,
    mask_image,
    preset_store,
    presets_fingerprint,
    settings_inputs,
    settings_of,
    to_pil,
    tooltip,
)
from .transfer import FGATError, RunInfo, build_config, check_job, decode, make_job, summary, user_message
from .transfer import run as run_transfer

CATEGORY = "FGAT"
RUN_TYPE = "FGAT_RUN"
MAX_SEED = SETTING["seed"].valid.high


def _owned(name: str, kind: str, **options: Any) -> tuple:
    return kind, {"default": SETTING[name].default, "tooltip": tooltip(SETTING[name]), **options}


class FGATAppearanceTransfer:
    """Transfer the target's appearance onto the source's object (Ye et al., Fine-grained Appearance Transfer)."""

    DESCRIPTION = ("Fine-grained appearance transfer: the source image keeps its structure and takes the "
                   "appearance of the matching parts of the target image (SD 1.x / SDXL).")
    CATEGORY = CATEGORY
    FUNCTION = "transfer"
    RETURN_TYPES = ("IMAGE", "MASK", "LATENT", RUN_TYPE)
    RETURN_NAMES = ("image", "mask", "latent", "fgat_run")
    OUTPUT_TOOLTIPS = ("the source with the target's appearance", "the mask M that limited the transfer (white = "
                       "transferred)", "the result as a latent (e.g. for an upscaler)", "the run, for FGAT Diagnostics")

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        text = {"multiline": True}
        return {
            "required": {
                "model": ("MODEL", {"tooltip": "an SD 1.x or SDXL model (LoRAs applied before this node count)"}),
                "clip": ("CLIP", {"tooltip": "the checkpoint's text encoder (the prompts and the mask word)"}),
                "vae": ("VAE", {"tooltip": "the checkpoint's VAE"}),
                "source": ("IMAGE", {"tooltip": "the image whose structure is kept (one image)"}),
                "target": ("IMAGE", {"tooltip": "the image whose appearance is transferred (fitted to the source)"}),
                "source_prompt": ("STRING", {**text, "default": "a photo of a cat",
                                             "tooltip": "describes the source image; names the object"}),
                "target_prompt": ("STRING", {**text, "default": "a photo of a cat",
                                             "tooltip": "describes the target image"}),
                "mask_word": ("STRING", {"default": "", "tooltip": tooltip(SETTING["mask_word"])}),
                "seed": _owned("seed", "INT", min=0, max=MAX_SEED, control_after_generate=True),
                "steps": _owned("steps", "INT", min=1, max=999),
                "cfg": _owned("guidance_scale", "FLOAT", min=0.0, max=50.0, step=0.1, round=0.01),
            },
            "optional": {
                "settings": (SETTINGS_TYPE, {"tooltip": "from FGAT Settings or FGAT Preset (default: the paper's)"}),
                "mask": ("MASK", {"tooltip": "white = transfer; connecting a mask makes it the mask M (mask source "
                                             "'user'), of the source's aspect ratio"}),
                "negative_prompt": ("STRING", {**text, "default": "",
                                               "tooltip": "the unconditional prompt of classifier-free guidance"}),
            },
        }

    def transfer(self, model, clip, vae, source, target, source_prompt, target_prompt, mask_word, seed, steps, cfg,
                 settings=None, mask=None, negative_prompt=""):
        try:
            check_model(model)  # first: a DiT's text encoder is not CLIP, so the prompt checks would not apply
            config = build_config(settings, steps, cfg, seed, mask_word, mask is not None)
            job = make_job(source, target, (source_prompt, target_prompt, negative_prompt), config, mask)
            check_job(job, clip)
            latent, result = run_transfer(job, model, clip, vae)
        except ValueError as e:
            raise user_message(e) from None
        image = decode(vae, latent)
        h, w = image.shape[1:3]
        info = RunInfo(result, to_pil(job.source), to_pil(job.target), to_pil(image), vae, model.model,
                                (source_prompt, target_prompt), config, summary(result))
        outputs = (image, mask_image(result.mask, (h, w)), {"samples": latent}, info)
        return {"ui": {"text": info.notes}, "result": outputs}


class _SettingsNode:
    """A node whose one output is FGAT_SETTINGS (for the transfer node's `settings` input)."""

    CATEGORY = CATEGORY
    RETURN_TYPES = (SETTINGS_TYPE,)
    RETURN_NAMES = ("settings",)


class FGATSettings(_SettingsNode):
    """FGAT's parameters; inputs, ranges, defaults and tooltips come from the one table of setting metadata."""

    DESCRIPTION = "FGAT's method parameters (defaults: the paper's). Connect to FGAT Appearance Transfer."
    FUNCTION = "settings"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        # optional, each with its default: a workflow saved before a setting was added still validates
        return {"required": {}, "optional": settings_inputs()}

    def settings(self, **values):
        try:
            config = FGATConfig().replace(**values)
        except ValueError as e:
            raise user_message(e) from None
        return (settings_of(config),)


class FGATPreset(_SettingsNode):
    """A named preset: the CLI's and the WebUI's built-in presets and the user presets file."""

    DESCRIPTION = ("A built-in or user FGAT preset (user presets: presets.json in $FGAT_PRESETS_DIR, else in "
                   "ComfyUI's user directory under fgat/).")
    FUNCTION = "preset"

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        names = preset_store().names()
        return {"required": {"preset": (names, {"default": names[0], "tooltip": "the preset's settings"})}}

    @classmethod
    def IS_CHANGED(cls, preset):
        return presets_fingerprint()

    def preset(self, preset):
        try:
            config = preset_store().get(preset)
        except ValueError as e:
            raise FGATError(f"FGAT: {e}") from None
        return (settings_of(config),)


class FGATDiagnostics:
    """The run's sheet: what FGAT saw and did, panel by panel."""

    DESCRIPTION = "Source, target, mask, the target warped by the semantic matching, result, x0 per window step."
    CATEGORY = CATEGORY
    FUNCTION = "sheet"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("sheet",)

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {"required": {"fgat_run": (RUN_TYPE, {"tooltip": "the fgat_run output of FGAT Appearance Transfer"})}}

    def sheet(self, fgat_run: RunInfo):
        r = fgat_run.result

        def decode_x0(x0: torch.Tensor):
            latent = fgat_run.model.process_latent_out(x0.float())
            return to_pil(decode(fgat_run.vae, latent))

        caption = [f"source: {fgat_run.prompts[0]}", f"target: {fgat_run.prompts[1]}",
                   mask_summary(r.mask, fgat_run.config), *fgat_run.notes]
        sheet = diagnostics_sheet(fgat_run.source, fgat_run.target, fgat_run.image, r.mask, r.correspondence,
                                  r.x0_window, r.window, decode_x0, caption)
        return (from_pil(sheet),)


NODE_CLASS_MAPPINGS = {
    "FGATAppearanceTransfer": FGATAppearanceTransfer,
    "FGATSettings": FGATSettings,
    "FGATPreset": FGATPreset,
    "FGATDiagnostics": FGATDiagnostics,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "FGATAppearanceTransfer": "FGAT Appearance Transfer",
    "FGATSettings": "FGAT Settings",
    "FGATPreset": "FGAT Preset",
    "FGATDiagnostics": "FGAT Diagnostics",
}
