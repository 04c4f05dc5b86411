"""FGAT for ComfyUI: a node pack over `fgat_core` (see docs/comfyui.md). ComfyUI loads it through the
repository root's `__init__.py`, which exports these mappings."""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
