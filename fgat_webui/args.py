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
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, UnidentifiedImageError

from fgat_core import images as core_images
from fgat_core.config import FGATConfig
from fgat_core.errors import ConfigError
from fgat_core.prepare import parse_bool, parse_number, parse_text, shorten
from fgat_core.settings import SETTING, SETTINGS, MaskSource, Setting

# the WebUI's own controls drive the host-owned settings: Sampling steps, CFG Scale, Seed
WEBUI_OWNED = tuple(s.name for s in SETTINGS if s.host_owned)
CONFIG_KEYS = tuple(s.api_key for s in SETTINGS)
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
    choices: tuple[str, ...] = ()  # as the UI shows them (a choice's label, see `Setting.control.labels`)
    row: str = "advanced"  # where `ui.build_ui` lays it out: image, prompt, strength, window, method, advanced

    @property
    def elem_id(self) -> str:
        return f"fgat_{self.name}"

    @property
    def advanced(self) -> bool:
        return self.row == "advanced"


def setting_control(s: Setting) -> Control:
    """The control of a setting, from the table: its label and slider bounds; windows in % of the steps."""
    c = s.control
    if s.choices:
        return Control(s.name, c.label, "choice", c.choice_label(s.default),
                       choices=tuple(c.choice_label(v) for v in s.choices), row=c.row)
    kind = "percent" if c.percent else {float: "float", int: "int", str: "text"}[s.kind]
    # float defaults: the API's infotext path coerces a pasted value to the type of the component's value
    # (modules/api/api.py:392-397), and an int there would truncate a recorded 24.5 % to 24 %
    default = float(round(s.default * 100)) if c.percent else s.default
    return Control(s.name, c.label, kind, default, c.minimum, c.maximum, c.step, row=c.row)


# the controls only the WebUI has (the others are the table's settings that have a `control`)
_WEBUI_CONTROLS = (
    Control("enabled", "Fine-grained Appearance Transfer", "bool", False, row="enable"),
    Control("target_image", "Target image (appearance to transfer)", "image", None, row="image"),
    Control("target_prompt", "Target prompt", "text", "", row="prompt"),
    Control("diagnostics", "Diagnostics images", "bool", False, row="method"),
)
# The script's positional args are an API contract (scripts call the API with positional args): this order
# never changes, and a control added to the table later comes after these, in table order.
POSITIONAL_ORDER = (
    "enabled", "target_image", "target_prompt", "mask_word", "mask_source", "delta", "lam", "gamma", "window_start",
    "window_end", "matching", "inversion", "dift_ensemble", "diagnostics", "mask_threshold", "mask_dilate",
    "mask_layers", "dift_timestep", "dift_prompt", "gamma_on", "null_text_steps", "null_text_lr",
    "null_text_epsilon", "match_chunk",
)
_ALL_CONTROLS = {c.name: c for c in _WEBUI_CONTROLS} | {s.name: setting_control(s) for s in SETTINGS if s.control}
CONTROLS: tuple[Control, ...] = tuple(_ALL_CONTROLS[n] for n in POSITIONAL_ORDER) + tuple(
    c for n, c in _ALL_CONTROLS.items() if n not in POSITIONAL_ORDER)
CONTROL_NAMES = tuple(c.name for c in CONTROLS)
CONFIG_CONTROLS = tuple(c for c in CONTROLS if c.name in SETTING)
# the UI label of each mask_source value
MASK_SOURCE_LABELS = {v: SETTING["mask_source"].control.choice_label(v) for v in MaskSource.values()}


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
def labelled_value(setting: Setting, value: Any) -> str:
    """A UI label ('inpaint mask') or a config value ('user') of a choice the UI renames -> the config value."""
    label = setting.control.choice_label
    for v in setting.choices:
        if value in (v, label(v)):
            return v
    raise ValueError(
        f"{setting.name.replace('_', ' ')} must be one of {', '.join(map(label, setting.choices))} (API: "
        f"{', '.join(setting.choices)}); got {shorten(value)}"
    )


def mask_source_value(value: Any) -> str:
    """A UI label ('inpaint mask') or a config value ('user') -> the config value."""
    return labelled_value(SETTING["mask_source"], value)


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
        if SETTING[control.name].control.labels:
            return labelled_value(SETTING[control.name], value)
        if value not in control.choices:
            raise ValueError(f"{what} must be one of {', '.join(control.choices)}; got {shorten(value)}")
        return value
    if control.kind == "percent":
        return parse_number(value, what, integer=False) / 100.0
    return parse_number(value, what, integer=control.kind == "int")


def ui_value(control: Control, settings: FGATSettings) -> Any:
    """The inverse of `control_value`: the value a UI control shows for these settings."""
    if control.name in SETTING:
        v = getattr(settings.config, control.name)
        if control.kind == "percent":
            return round(v * 100, 6)
        if control.kind == "choice":
            return SETTING[control.name].control.choice_label(v)  # a plain string, the label where renamed
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
        config = _config(FGATConfig(), {k: v for k, v in parsed.items() if k in SETTING})
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
    changes = {s.name: data[s.api_key] for s in SETTINGS if s.api_key in data}
    for s in SETTINGS:
        if s.name in changes and s.control and s.control.labels:  # the UI's label is accepted too
            changes[s.name] = labelled_value(s, changes[s.name])
    config = _config(base, changes)
    if data.get("mask_image") not in (None, "") and config.mask_source is not MaskSource.USER:
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
# X/Y/Z axes: the settings with an `xyz` axis (values in UI units, read as their control reads them), and the preset
OVERRIDES = (*(s.name for s in SETTINGS if s.xyz), "preset")


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
        name: control_value(by_name[name], overrides[name]) for name in OVERRIDES if name in overrides and
        name != "preset"
    }
    if not changes and config is settings.config:
        return settings
    return FGATSettings(
        enabled=settings.enabled, config=_config(config, changes), target_image=settings.target_image,
        target_prompt=settings.target_prompt, mask_image=settings.mask_image, preset=preset,
        diagnostics=settings.diagnostics, given=settings.given,
    )
