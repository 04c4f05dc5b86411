"""Mirrors backend/patcher/unet.py (Neo 3df257ae): UnetPatcher as Forge 2's (the fake Forge's file, run here),
except `clone` (l.28-34), which is the ComfyUI patcher's clone (weight patches, backup, parent) plus the
UNet's own fields."""
from pathlib import Path

_FORGE = Path(__file__).resolve().parents[3] / "fake_forge" / "backend" / "patcher" / "unet.py"
exec(compile(_FORGE.read_text(encoding="utf-8"), str(_FORGE), "exec"))


def _clone(self):
    n = ModelPatcher.clone(self)  # noqa: F821
    n.controlnet_linked_list = self.controlnet_linked_list
    n.extra_preserved_memory_during_sampling = self.extra_preserved_memory_during_sampling
    n.extra_model_patchers_during_sampling = self.extra_model_patchers_during_sampling.copy()
    n.extra_concat_condition = self.extra_concat_condition
    return n


UnetPatcher.clone = _clone  # noqa: F821
