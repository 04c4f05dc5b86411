"""The FGAT WebUI adapter: everything between `scripts/fgat.py` and `fgat_core`.

Layout (one responsibility per module):

- `args`        the typed settings object and its parsers (UI positional args, the API dict, XYZ overrides)
- `backend`     the WebUI backend interface and the A1111 backend (model access, prompt and image encoding,
                sampler takeover, progress/interrupt); `detect_backend()` picks the backend in one place
- `ldm_host`    a `fgat_core.host.Denoiser` over an ldm/sgm model as the WebUI holds it
- `run`         the per-generation lifecycle (created in `process()`, torn down however the run ends)
- `infotext`    the "FGAT" infotext value and its paste-back into the UI controls
- `ui`          the gradio controls and the preset actions
- `xyz`         X/Y/Z plot axes
- `errors`      the WebUI's HTTP errors for FGAT (422 input, 500 failure)

Checks, value parsing, the mask word's location and the diagnostics images are `fgat_core`'s
(`fgat_core.prepare`, `fgat_core.diagnostics`), shared with the CLI and the library.

Nothing here imports the WebUI (`modules`) at import time, and nothing imports diffusers at all: the
WebUI's own model does all the work. `modules` is imported inside functions, when a generation runs.
"""

from __future__ import annotations

import os
from pathlib import Path

TITLE = "Fine-grained Appearance Transfer"
EXTENSION_DIR = Path(__file__).resolve().parents[1]
PRESETS_ENV = "FGAT_PRESETS_DIR"


def presets_dir() -> Path:
    """User presets live in `<extension>/presets` unless FGAT_PRESETS_DIR names another folder."""
    return Path(os.environ.get(PRESETS_ENV) or EXTENSION_DIR / "presets")


def preset_store():
    from fgat_core.presets import PresetStore

    return PresetStore(presets_dir())
