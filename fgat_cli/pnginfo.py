"""PNG text chunks of a FGAT result: A1111-style "parameters" (so the WebUI's PNG Info reads it) and "fgat".

The "parameters" chunk follows AUTOMATIC1111's `create_infotext` layout::

    <source prompt>
    Negative prompt: <negative prompt>            (only when there is one)
    Steps: 50, Sampler: DDIM, CFG scale: 7.5, Seed: 0, Size: 512x512, Model: <name>, FGAT: <value>

where <value> is `fgat_core.infotext.format_infotext(config, target_prompt=..., target_hash=...)`, the
very string the WebUI extension writes, quoted as A1111's `infotext_utils.quote` does (JSON string when
it holds a comma, colon or newline). The "fgat" chunk holds the bare value."""

from __future__ import annotations

import io
import json
import re
from os import PathLike
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

from fgat_core.config import FGATConfig
from fgat_core.infotext import INFOTEXT_KEY, parse_infotext

PARAMETERS_CHUNK = "parameters"
FGAT_CHUNK = "fgat"
# A1111 infotext_utils.re_param_code: `Key: value` pairs, values optionally JSON-quoted
_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def quote(value: Any) -> str:
    """A1111's `infotext_utils.quote`: JSON-quote a value holding `,`, `:` or a newline."""
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def unquote(text: str) -> str:
    """A1111's `infotext_utils.unquote`."""
    if len(text) == 0 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def generation_parameters(
    source_prompt: str,
    negative_prompt: str,
    config: FGATConfig,
    size: tuple[int, int],
    model: str,
    fgat_value: str,
) -> str:
    """The A1111 infotext of a FGAT result (see the module docstring)."""
    params = {
        "Steps": config.steps,
        "Sampler": "DDIM",
        "CFG scale": config.guidance_scale,
        "Seed": config.seed,
        "Size": f"{size[0]}x{size[1]}",
        "Model": model,
        INFOTEXT_KEY: fgat_value,
    }
    line = ", ".join(f"{k}: {quote(v)}" for k, v in params.items())
    negative = f"\nNegative prompt: {negative_prompt}" if negative_prompt else ""
    return f"{source_prompt}{negative}\n{line}".strip()


def parse_generation_parameters(text: str) -> dict[str, str]:
    """The `Key: value` pairs of an A1111 infotext's last line (values unquoted), plus "Prompt" and
    "Negative prompt" from the lines above it."""
    lines = text.strip().split("\n")
    last = lines[-1]
    if len(_PARAM.findall(last)) < 3:  # as A1111: not a parameters line, so all of it is prompt
        prompt_lines, last = lines, ""
    else:
        prompt_lines = lines[:-1]
    found = {m.group(1).strip(): unquote(m.group(2).strip()) for m in _PARAM.finditer(last)}
    prompt, negative, in_negative = [], [], False
    for line in prompt_lines:
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:") :].strip()
        (negative if in_negative else prompt).append(line)
    found["Prompt"] = "\n".join(prompt)
    if negative:
        found["Negative prompt"] = "\n".join(negative)
    return found


def png_bytes(image: Image.Image, parameters: str, fgat_value: str) -> bytes:
    """`image` encoded as PNG with the "parameters" and "fgat" text chunks."""
    info = PngImagePlugin.PngInfo()
    info.add_text(PARAMETERS_CHUNK, parameters)
    info.add_text(FGAT_CHUNK, fgat_value)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def read_png_settings(path: str | PathLike) -> tuple[FGATConfig, dict[str, Any]]:
    """Read a FGAT result PNG back into (FGATConfig, extras such as target_prompt and target_hash).

    Uses the "fgat" chunk, else the FGAT entry of the A1111 "parameters" chunk (so PNGs written by the
    WebUI extension work too). Raises ValueError when the PNG records no FGAT settings."""
    p = Path(path)
    try:
        with Image.open(p) as img:
            text = dict(getattr(img, "text", {}) or img.info)
    except FileNotFoundError:
        raise ValueError(f"{p} does not exist") from None
    except OSError as e:
        raise ValueError(f"{p} is not a readable image ({e})") from None
    value = text.get(FGAT_CHUNK)
    if not value and PARAMETERS_CHUNK in text:
        value = parse_generation_parameters(str(text[PARAMETERS_CHUNK])).get(INFOTEXT_KEY)
    if not value:
        raise ValueError(f"{p} holds no FGAT settings (no 'fgat' text chunk and no FGAT entry in 'parameters')")
    return parse_infotext(str(value))
