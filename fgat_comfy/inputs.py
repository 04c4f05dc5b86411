"""ComfyUI inputs built from `fgat_core.settings.SETTINGS` (the one table of setting metadata), the presets
folder, and the conversions between ComfyUI's IMAGE / MASK tensors and PIL images.

A setting's input: FLOAT / INT / STRING with the table's default and its control's slider bounds and step (a
percent control, shown as % of the steps in the WebUI, is a fraction here, as the setting itself is), or a
combo of its `Mode` choices; the tooltip is the label, the help and the valid range. Host-owned settings
(steps, CFG scale, seed) and the mask word are inputs of the transfer node itself."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from fgat_core.config import FGATConfig
from fgat_core.presets import PresetStore
from fgat_core.settings import SETTINGS, Setting

PRESETS_ENV = "FGAT_PRESETS_DIR"
NODE_OWNED = ("mask_word",)  # an input of the transfer node (per image), not of the settings node
SETTINGS_TYPE = "FGAT_SETTINGS"


def node_settings() -> list[Setting]:
    """The settings the FGAT Settings node shows: every one with a control that the transfer node does not own."""
    return [s for s in SETTINGS if not s.host_owned and s.control is not None and s.name not in NODE_OWNED]


def tooltip(setting: Setting) -> str:
    text = f"{setting.control.label}: {setting.help}" if setting.control else setting.help
    return f"{text} (valid: {setting.valid.text()})" if setting.valid is not None else text


def setting_input(setting: Setting) -> tuple:
    """One setting as a V1 input spec: (type, options) or (choices, options)."""
    options: dict[str, Any] = {"default": _plain(setting.default), "tooltip": tooltip(setting)}
    if setting.choices:
        return list(setting.choices), options
    if setting.kind is str:
        return "STRING", options
    c = setting.control
    scale = 0.01 if c.percent else 1.0
    for key, value in (("min", c.minimum), ("max", c.maximum), ("step", c.step)):
        if value is not None:
            options[key] = setting.kind(value * scale) if setting.kind is int else float(value) * scale
    if setting.kind is float:
        options["round"] = False  # keep the typed value: the range check is FGATConfig's
        return "FLOAT", options
    return "INT", options


def _plain(value: Any) -> Any:
    return value.value if hasattr(value, "value") else value


def settings_inputs() -> dict[str, tuple]:
    return {s.name: setting_input(s) for s in node_settings()}


# ---------------------------------------------------------------------------------------------- presets
def presets_dir() -> Path:
    """$FGAT_PRESETS_DIR, else `<ComfyUI user directory>/fgat` (the file presets.json there, the same format
    as the CLI's and the WebUI's)."""
    env = os.environ.get(PRESETS_ENV)
    if env:
        return Path(env)
    import folder_paths

    return Path(folder_paths.get_user_directory()) / "fgat"


def preset_store() -> PresetStore:
    return PresetStore(presets_dir())


def presets_fingerprint() -> str:
    """Changes when the user presets file does (ComfyUI's IS_CHANGED: a preset edited on disk is re-read)."""
    path = preset_store().path
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() if path is not None and path.is_file() else "none"
    except OSError as e:
        return f"unreadable: {e}"


def settings_of(config: FGATConfig) -> dict[str, Any]:
    """The FGAT_SETTINGS value of a config: the settings node's names with plain values."""
    data = config.to_dict()
    return {s.name: _plain(data[s.name]) for s in node_settings()}


# ---------------------------------------------------------------------------------------------- images
def first_image(images: Tensor, what: str) -> Tensor:
    """The one (1, H, W, C) image of a ComfyUI IMAGE batch; a batch of several is refused."""
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[-1] not in (1, 3, 4):
        raise ValueError(f"'{what}' must be a ComfyUI IMAGE (batch, height, width, channels)")
    if images.shape[0] != 1:
        raise ValueError(f"'{what}' is a batch of {images.shape[0]} images; FGAT transfers one pair at a time: pick "
                         "one image (e.g. with an 'ImageFromBatch' node)")
    return images[:, :, :, :3] if images.shape[-1] >= 3 else images.expand(-1, -1, -1, 3)


def crop_to_multiple(image: Tensor, multiple: int = 8) -> Tensor:
    """Centre crop (1, H, W, C) to multiples of `multiple`, as `VAE.vae_encode_crop_pixels` does."""
    h, w = image.shape[1] // multiple * multiple, image.shape[2] // multiple * multiple
    if h == 0 or w == 0:
        raise ValueError(f"the source image is {image.shape[2]}x{image.shape[1]} px; it must be at least 8x8")
    top, left = (image.shape[1] % multiple) // 2, (image.shape[2] % multiple) // 2
    return image[:, top : top + h, left : left + w, :]


def to_pil(image: Tensor) -> Image.Image:
    arr = (image[0].detach().float().clamp(0, 1).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def from_pil(img: Image.Image) -> Tensor:
    return torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0)[None]


def mask_to_pil(mask: Tensor) -> Image.Image:
    """A ComfyUI MASK ((H, W) or (1, H, W), 1 = masked) as a greyscale image (white = transfer)."""
    m = mask.detach().float().cpu()
    if m.dim() == 3:
        if m.shape[0] != 1:
            raise ValueError(f"'mask' is a batch of {m.shape[0]} masks; give one mask")
        m = m[0]
    if m.dim() != 2:
        raise ValueError(f"'mask' must be a ComfyUI MASK (height, width), got shape {tuple(mask.shape)}")
    return Image.fromarray((m.clamp(0, 1).numpy() * 255.0 + 0.5).astype(np.uint8), "L")


def mask_image(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """The latent-grid mask (h, w) as a ComfyUI MASK (1, H, W) at the image size, nearest neighbour."""
    out = torch.nn.functional.interpolate(mask.float()[None, None], size=size, mode="nearest")
    return out[0].clamp(0, 1).cpu()
