"""The script's arguments as one typed settings object.

Three ways in, one way out (`FGATSettings`):

- the UI (and the API given positional args): values in the order of `CONTROLS`, in UI units
  (windows in % of the steps, the mask source by its UI label);
- the API given one dict as the first arg: keys are the `FGATConfig` fields (fractions, config values)
  plus `enabled`, `target_image`, `target_prompt`, `mask_image`, `preset` and `diagnostics`;
- X/Y/Z plot overrides (`apply_overrides`).

Unknown keys and bad values raise `ValueError` with a message naming them.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from PIL import Image, UnidentifiedImageError

from fgat_core import images as core_images
from fgat_core.config import (
    BACKGROUND_LOCKS,
    DIFT_PROMPTS,
    GAMMA_ON,
    INVERSIONS,
    MASK_LAYERS,
    MASK_LEVELS,
    MASK_THRESHOLD_MODES,
    MATCHINGS,
    TARGET_MASKS,
    FGATConfig,
)
from fgat_core.errors import ConfigError
from fgat_core.prepare import parse_bool, parse_number, parse_text, shorten

# UI label of each FGATConfig.mask_source value
MASK_SOURCE_LABELS = {"attention": "attention", "user": "inpaint mask", "none": "none"}
# the WebUI's own controls drive these FGATConfig fields: Sampling steps, CFG Scale, Seed
WEBUI_OWNED = ("steps", "guidance_scale", "seed")
CONFIG_KEYS = tuple(f.name for f in fields(FGATConfig))
EXTRA_KEYS = ("enabled", "target_image", "target_prompt", "mask_image", "preset", "diagnostics")
API_KEYS = EXTRA_KEYS + CONFIG_KEYS


@dataclass(frozen=True)
class Control:
    """One UI control, in the order the script's `ui()` returns them (= positional arg order)."""

    name: str  # FGATSettings / FGATConfig field
    label: str
    kind: str  # bool | image | text | choice | float | int | percent
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    choices: tuple[str, ...] = ()
    advanced: bool = False

    @property
    def elem_id(self) -> str:
        return f"fgat_{self.name}"


_D = FGATConfig()
CONTROLS: tuple[Control, ...] = (
    Control("enabled", "Fine-grained Appearance Transfer", "bool", False),
    Control("target_image", "Target image (appearance to transfer)", "image", None),
    Control("target_prompt", "Target prompt", "text", ""),
    Control("mask_word", "Object word (empty: last word of the prompt)", "text", _D.mask_word),
    Control("mask_source", "Mask source", "choice", MASK_SOURCE_LABELS[_D.mask_source],
            choices=tuple(MASK_SOURCE_LABELS.values())),
    Control("delta", "δ transfer strength", "float", _D.delta, 0.0, 1.0, 0.01),
    Control("lam", "λ latent balance", "float", _D.lam, 0.0, 1.0, 0.01),
    Control("gamma", "γ noise balance", "float", _D.gamma, 0.0, 1.0, 0.01),
    # float defaults: the API's infotext path coerces a pasted value to the type of the component's value
    # (modules/api/api.py:392-397), and an int there would truncate a recorded 24.5 % to 24 %
    Control("window_start", "Window start (% of steps)", "percent", float(round(_D.window_start * 100)), 0, 99, 1),
    Control("window_end", "Window end (% of steps)", "percent", float(round(_D.window_end * 100)), 1, 100, 1),
    Control("matching", "Matching", "choice", _D.matching, choices=MATCHINGS),
    Control("inversion", "Inversion", "choice", _D.inversion, choices=INVERSIONS),
    Control("dift_ensemble", "DIFT ensemble", "int", _D.dift_ensemble, 1, 32, 1),
    Control("diagnostics", "Diagnostics images", "bool", False),
    Control("mask_threshold", "Mask threshold", "float", _D.mask_threshold, 0.0, 0.95, 0.05, advanced=True),
    Control("mask_dilate", "Mask dilation (latent px)", "int", _D.mask_dilate, 0, 8, 1, advanced=True),
    Control("mask_layers", "Attention layers for the mask", "choice", _D.mask_layers, choices=MASK_LAYERS,
            advanced=True),
    Control("dift_timestep", "DIFT timestep", "int", _D.dift_timestep, 0, 999, 1, advanced=True),
    Control("dift_prompt", "DIFT prompt", "choice", _D.dift_prompt, choices=DIFT_PROMPTS, advanced=True),
    Control("gamma_on", "γ mixes", "choice", _D.gamma_on, choices=GAMMA_ON, advanced=True),
    Control("null_text_steps", "Null-text iterations", "int", _D.null_text_steps, 1, 100, 1, advanced=True),
    Control("null_text_lr", "Null-text learning rate", "float", _D.null_text_lr, 0.0001, 0.1, 0.0001,
            advanced=True),
    Control("null_text_epsilon", "Null-text early stop", "float", _D.null_text_epsilon, 0.0, 0.001, 0.000001,
            advanced=True),
    Control("match_chunk", "Matching chunk (rows)", "int", _D.match_chunk, 64, 16384, 64, advanced=True),
    # issue 21 (appended, so that the positional API order of the controls above stays)
    Control("target_mask", "Target-side mask", "choice", _D.target_mask, choices=TARGET_MASKS),
    Control("target_mask_word", "Target object word (empty: last word of the target prompt)", "text",
            _D.target_mask_word),
    Control("background_lock", "Background lock", "choice", _D.background_lock, choices=BACKGROUND_LOCKS),
    Control("mask_threshold_mode", "Mask threshold mode", "choice", _D.mask_threshold_mode,
            choices=MASK_THRESHOLD_MODES, advanced=True),
    Control("mask_levels", "Attention levels for the mask", "choice", _D.mask_levels, choices=MASK_LEVELS,
            advanced=True),
)
CONTROL_NAMES = tuple(c.name for c in CONTROLS)
CONFIG_CONTROLS = tuple(c for c in CONTROLS if c.name in CONFIG_KEYS)


@dataclass
class FGATSettings:
    """Everything the script needs for one generation, validated."""

    enabled: bool = False
    config: FGATConfig = field(default_factory=FGATConfig)
    target_image: Image.Image | None = None
    target_prompt: str = ""
    mask_image: Image.Image | None = None
    preset: str | None = None
    diagnostics: bool = False
    given: frozenset[str] = frozenset()  # API dict keys set explicitly (to check WebUI-owned fields)


# ---------------------------------------------------------------------------------------------- images
def decode_image(value: Any, what: str) -> Image.Image | None:
    """A PIL image, a numpy array, or base64 PNG/JPEG (a `data:image/...;base64,` prefix is allowed)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, dict):  # gradio image editors hand {"image": ..., "mask": ...}
        return decode_image(value.get("image", value.get("background")), what)
    if hasattr(value, "__array_interface__"):
        import numpy as np

        return Image.fromarray(np.asarray(value))
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a base64-encoded PNG or JPEG string, got {type(value).__name__}")
    text = value.strip()
    if text.startswith(("http://", "https://")):
        raise ValueError(f"{what} must be the image itself as base64 PNG or JPEG, not a URL")
    if text.startswith("data:"):
        head, _, text = text.partition(",")
        if not head.startswith("data:image/") or ";base64" not in head:
            raise ValueError(f"{what} is a data URL but not a base64 image (expected 'data:image/png;base64,...')")
    text = "".join(text.split())  # line-wrapped base64 (`base64 file.png`, MIME) is still base64
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not valid base64: send the PNG or JPEG file's bytes, base64-encoded") from None
    limit = core_images.MAX_PIXELS
    try:
        img = Image.open(io.BytesIO(raw))
    except Image.DecompressionBombError:
        raise ValueError(f"{what} is far larger than the limit of {limit / 1e6:.1f} MP: downscale it") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise ValueError(f"{what} decodes from base64 but is not a readable PNG or JPEG image") from None
    w, h = img.size
    if w * h > limit:  # checked on the header, before the pixels are decoded into memory
        raise ValueError(f"{what} is {w}x{h} ({w * h / 1e6:.1f} MP); the limit is {limit / 1e6:.1f} MP: downscale it")
    try:
        img.load()
    except (OSError, ValueError, SyntaxError):
        raise ValueError(f"{what} decodes from base64 but is not a readable PNG or JPEG image") from None
    return img


# ---------------------------------------------------------------------------------------------- values
def mask_source_value(value: Any) -> str:
    """A UI label ('inpaint mask') or a config value ('user') -> the config value."""
    for key, label in MASK_SOURCE_LABELS.items():
        if value in (key, label):
            return key
    raise ValueError(
        f"mask source must be one of {', '.join(MASK_SOURCE_LABELS.values())} (API: "
        f"{', '.join(MASK_SOURCE_LABELS)}); got {shorten(value)}"
    )


def control_value(control: Control, value: Any, position: int | None = None) -> Any:
    """One UI value -> its settings/config value (percent -> fraction, mask label -> config value)."""
    what = f"FGAT argument {position} ({control.name})" if position is not None else f"FGAT '{control.name}'"
    if control.kind == "bool":
        return parse_bool(value, what)
    if control.kind == "image":
        return decode_image(value, what)
    if control.kind == "text":
        return parse_text(value, what)
    if control.kind == "choice":
        if control.name == "mask_source":
            return mask_source_value(value)
        if value not in control.choices:
            raise ValueError(f"{what} must be one of {', '.join(control.choices)}; got {shorten(value)}")
        return value
    if control.kind == "percent":
        return parse_number(value, what, integer=False) / 100.0
    return parse_number(value, what, integer=control.kind == "int")


def ui_value(control: Control, settings: FGATSettings) -> Any:
    """The inverse of `control_value`: the value a UI control shows for these settings."""
    if control.name in CONFIG_KEYS:
        v = getattr(settings.config, control.name)
        if control.kind == "percent":
            return round(v * 100, 6)
        if control.name == "mask_source":
            return MASK_SOURCE_LABELS[v]
        return v
    return getattr(settings, control.name)


def _config(base: FGATConfig, changes: Mapping[str, Any]) -> FGATConfig:
    try:
        return base.replace(**changes)
    except TypeError as e:  # a wrong type FGATConfig's checks did not catch
        raise ValueError(f"invalid FGAT settings: {e}") from None


# ---------------------------------------------------------------------------------------------- parsers
def settings_from_positional(args: Sequence[Any]) -> FGATSettings:
    """UI order, UI units. Missing trailing args take the UI defaults; a disabled run reads nothing else."""
    values = list(args) + [None] * (len(CONTROLS) - len(args))
    enabled = control_value(CONTROLS[0], values[0] if values[0] is not None else False, 0)
    if not enabled:
        return FGATSettings(enabled=False)
    parsed: dict[str, Any] = {}
    for i, control in enumerate(CONTROLS):
        raw = values[i]
        if raw is None and control.kind != "image":
            raw = control.default
        parsed[control.name] = control_value(control, raw, i)
    try:
        config = _config(FGATConfig(), {k: v for k, v in parsed.items() if k in CONFIG_KEYS})
    except ValueError as e:
        if isinstance(e, ConfigError) and e.field == "window_end" and parsed["window_end"] <= parsed["window_start"]:
            by_name = {c.name: c for c in CONTROLS}
            start, end = (round(parsed[n] * 100, 4) for n in ("window_start", "window_end"))
            raise ValueError(f"'{by_name['window_end'].label}' ({end:g} %) must be greater than "
                             f"'{by_name['window_start'].label}' ({start:g} %)") from None
        raise
    return FGATSettings(
        enabled=True,
        config=config,
        target_image=parsed["target_image"],
        target_prompt=parsed["target_prompt"],
        diagnostics=parsed["diagnostics"],
    )


def settings_from_dict(data: Mapping[str, Any], presets=None) -> FGATSettings:
    """The API dict: FGATConfig fields + enabled/target_image/target_prompt/mask_image/preset/diagnostics."""
    unknown = sorted(str(k) for k in data if k not in API_KEYS)
    if unknown:
        raise ValueError(
            f"unknown FGAT API key(s): {', '.join(unknown)}; accepted keys: {', '.join(API_KEYS)}"
        )
    preset = data.get("preset")
    base = FGATConfig()
    if preset not in (None, ""):
        if not isinstance(preset, str):
            raise ValueError(f"FGAT 'preset' must be a preset name, got {shorten(preset)}")
        if presets is None:
            raise ValueError("FGAT 'preset' was given but no presets are available")
        base = presets.get(preset)
    changes = {k: data[k] for k in CONFIG_KEYS if k in data}
    if "mask_source" in changes:
        changes["mask_source"] = mask_source_value(changes["mask_source"])
    config = _config(base, changes)
    if data.get("mask_image") not in (None, "") and config.mask_source != "user":
        raise ValueError(
            f"FGAT 'mask_image' was given but 'mask_source' is {config.mask_source!r}, so it would be ignored: "
            "set 'mask_source': 'user' to use it, or leave 'mask_image' out"
        )
    return FGATSettings(
        enabled=parse_bool(data.get("enabled", True), "FGAT 'enabled'"),
        config=config,
        target_image=decode_image(data.get("target_image"), "FGAT 'target_image'"),
        target_prompt=parse_text(data.get("target_prompt"), "FGAT 'target_prompt'"),
        mask_image=decode_image(data.get("mask_image"), "FGAT 'mask_image'"),
        preset=preset or None,
        diagnostics=parse_bool(data.get("diagnostics", False), "FGAT 'diagnostics'"),
        given=frozenset(str(k) for k in data),
    )


def settings_from_script_args(args: Sequence[Any], presets=None) -> FGATSettings:
    """The script's args as the WebUI hands them: one dict first (API), else positional (UI order)."""
    if args and isinstance(args[0], Mapping):
        return settings_from_dict(args[0], presets)
    return settings_from_positional(args)


# ---------------------------------------------------------------------------------------------- overrides
# X/Y/Z axes: axis name -> (settings field, UI control used to read the value)
OVERRIDES = {"delta": "delta", "lam": "lam", "gamma": "gamma", "window_end": "window_end", "preset": "preset"}


def apply_overrides(settings: FGATSettings, overrides: Mapping[str, Any], presets=None) -> FGATSettings:
    """X/Y/Z plot values (UI units): a preset replaces the config first, then single values apply."""
    unknown = sorted(set(overrides) - set(OVERRIDES))
    if unknown:
        raise ValueError(f"unknown FGAT X/Y/Z override(s): {', '.join(unknown)}")
    config = settings.config
    preset = settings.preset
    if overrides.get("preset") not in (None, ""):
        preset = overrides["preset"]
        if presets is None:
            raise ValueError("an X/Y/Z preset was given but no presets are available")
        config = presets.get(preset)
    by_name = {c.name: c for c in CONTROLS}
    changes = {
        name: control_value(by_name[name], overrides[name]) for name in ("delta", "lam", "gamma", "window_end")
        if name in overrides
    }
    if not changes and config is settings.config:
        return settings
    return FGATSettings(
        enabled=settings.enabled, config=_config(config, changes), target_image=settings.target_image,
        target_prompt=settings.target_prompt, mask_image=settings.mask_image, preset=preset,
        diagnostics=settings.diagnostics, given=settings.given,
    )
