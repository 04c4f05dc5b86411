"""Paste-back of the one "FGAT" infotext key into every UI control ("Send to img2img", PNG Info, API infotext).

The WebUI parses the infotext into `params` (key -> text) and calls each script infotext field's callable
with it (A1111 `modules/infotext_utils.py:486-517`); a returned plain value is coerced to the component's
type, None leaves the component as it is. So each control gets `paste_value(control, params)`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from fgat_core.infotext import INFOTEXT_KEY, parse_infotext

from .args import Control, FGATSettings, ui_value


@lru_cache(maxsize=32)
def settings_from_infotext(text: str) -> FGATSettings:
    """The settings recorded by one FGAT infotext value (`fgat_core.infotext.format_infotext`)."""
    config, extras = parse_infotext(text)
    return FGATSettings(
        enabled=True,
        config=config,
        target_prompt=str(extras.get("target_prompt", "")),
        diagnostics=bool(extras.get("diagnostics", False)),
    )


def paste_value(control: Control, params: Mapping[str, Any]) -> Any:
    """The value `control` takes when this infotext is pasted (None: leave the control unchanged).

    No FGAT key: FGAT was off for that image, so the enable toggle turns off and the rest stays.
    The target image cannot come back from text (the infotext records only its hash)."""
    text = params.get(INFOTEXT_KEY)
    if not text:
        return False if control.name == "enabled" else None
    if control.kind == "image":
        return None
    try:
        settings = settings_from_infotext(str(text))
    except ValueError as e:
        _report_unreadable(str(text), str(e))
        return None
    return ui_value(control, settings)


@lru_cache(maxsize=32)
def _report_unreadable(text: str, reason: str) -> None:
    """Once per pasted value, in the WebUI's console: the paste leaves FGAT's controls as they were."""
    print(f"FGAT: the infotext's {INFOTEXT_KEY} value cannot be read ({reason}); FGAT's settings were left as "
          "they were", file=sys.stderr)
