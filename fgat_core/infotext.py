"""The one infotext value that records a FGAT run (WebUI infotext and the CLI's PNG text chunk alike)."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from PIL import Image

from .config import FGATConfig
from .settings import SETTINGS

INFOTEXT_KEY = "FGAT"
# one `key=value` item: a JSON string (which may hold `;`) or anything up to the next `;`
_ITEM = re.compile(r'\s*(\w+)=("(?:[^"\\]|\\.)*"|[^;]*)\s*(?:;|$)')


def image_hash(img: Image.Image) -> str:
    """Short SHA-256 of an image's RGB pixels and size (records which target was used)."""
    rgb = img.convert("RGB")
    h = hashlib.sha256(f"{rgb.size[0]}x{rgb.size[1]}".encode())
    h.update(rgb.tobytes())
    return h.hexdigest()[:12]


def parse_items(text: str) -> dict[str, Any]:
    """`k=v; k=v` with JSON values -> dict (raises ValueError on anything unreadable)."""
    text = (text or "").strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"FGAT infotext is not valid JSON: {e}") from None
        if not isinstance(data, dict):
            raise ValueError("FGAT infotext JSON must be an object")
        return data
    data: dict[str, Any] = {}
    pos = 0
    for m in _ITEM.finditer(text):
        if m.end() == m.start():
            break
        if text[pos : m.start()].strip(" ;"):
            raise ValueError(f"cannot read FGAT infotext near {text[pos:m.start()]!r}")
        key, raw = m.group(1), m.group(2).strip()
        try:
            data[key] = json.loads(raw)
        except json.JSONDecodeError:
            raise ValueError(f"FGAT infotext value for {key!r} is not readable: {raw!r}") from None
        pos = m.end()
    if text[pos:].strip(" ;"):
        raise ValueError(f"cannot read FGAT infotext near {text[pos:]!r}")
    return data


def format_infotext(config: FGATConfig, **extras: Any) -> str:
    """Every setting under its infotext key, then extras (target_prompt, target_hash, sampler_note, ...)."""
    values = config.to_dict()
    items = {**{s.infotext_key: values[s.name] for s in SETTINGS},
             **{k: v for k, v in extras.items() if v is not None}}
    parts = [f"{k}={json.dumps(v)}" for k, v in items.items()]
    return "; ".join(parts)


# What a setting absent from a recorded infotext meant when that infotext was written: the settings added
# (or whose default changed) after the format began, at the value that gave the behaviour of the versions
# before them. A fixed historical record: never derive it from today's defaults.
LEGACY_DEFAULTS: dict[str, Any] = {
    "target_mask": "none",  # issue 21: target-side masking
    "target_mask_word": "",
    "background_lock": "off",
    "mask_threshold_mode": "fixed",
    "mask_levels": "before-window",
    # defaults changed by issue 21, recorded in every infotext since the format began: kept here so that a
    # hand-trimmed record still means the paper's settings
    "inversion": "direct",
    "mask_layers": "quarter",
    "mask_threshold": 0.3,
    "mask_dilate": 1,
    "delta": 0.6,
    "window_start": 0.24,
    "window_end": 0.44,
}


def parse_infotext(text: str) -> tuple[FGATConfig, dict[str, Any]]:
    """Inverse of `format_infotext`: (config, extras). A setting the text does not record takes its
    `LEGACY_DEFAULTS` value (what it meant before the setting existed), else today's default."""
    data = parse_items(text)
    names = {s.infotext_key: s.name for s in SETTINGS}
    recorded = {names[k]: v for k, v in data.items() if k in names}
    cfg = FGATConfig.from_dict({**LEGACY_DEFAULTS, **recorded})
    return cfg, {k: v for k, v in data.items() if k not in names}
