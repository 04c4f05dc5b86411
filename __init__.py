"""ComfyUI entry point: a clone of this repository in `ComfyUI/custom_nodes/` is a node pack (docs/comfyui.md).

ComfyUI imports this file as a package under a name of its own; the packages beside it (`fgat_core`,
`fgat_comfy`) are imported by their own names, so the clone's folder goes on sys.path first. Nothing else
imports this file: the A1111 / Forge WebUIs load `scripts/fgat.py` by path and pytest collects `tests/`
(which has no `__init__.py`), so the same clone stays a WebUI extension and a test tree."""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from fgat_comfy import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
