"""The one kind of LoRA patch the fakes apply: a "diff" patch, merged as `merge_lora_to_weight` does for it
(ComfyUI 0.33.0 comfy/lora.py `calculate_weight`, "diff" branch; Forge Neo's copy in backend/patcher/lora.py):
weight * strength_model + strength_patch * diff. Stateless: shared by the fake ComfyUI and the fake Neo."""

from __future__ import annotations


def merge_diff_patches(patches, weight, who: str = "the fake patcher"):
    out = weight.float()
    for strength_patch, patch, strength_model, _offset, _function in patches:
        kind, (diff,) = patch
        assert kind == "diff", f"{who} knows 'diff' patches only, not {kind!r}"
        out = out * strength_model + strength_patch * diff.to(out)
    return out.to(weight.dtype)
