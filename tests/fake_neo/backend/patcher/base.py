"""Mirrors backend/patcher/base.py (Neo 3df257ae): the ComfyUI-port ModelPatcher (ComfyUI v0.7.0
comfy/model_patcher.py), over the fake Forge's option setters (the fake Forge's file, run here).

What Neo's patcher adds, and this fake keeps:
- `patches` (weight key -> list of (strength_patch, patch, strength_model, offset, function)) with a
  `patches_uuid`, `backup` shared by every clone (l.169-199, clone l.236-251);
- `add_patches` (l.414-446): with a LoRA file name and `online_mode`, the patches go to `lora_patches` (applied
  by `LoraLoader.refresh`, backend/patcher/lora.py:152-254, called by memory management on every load);
  otherwise to `patches`, merged into the weights when this clone is loaded (`patch_model` l.669-682 -> `load`
  l.555-667 -> `patch_weight_to_device` l.480-506) and undone when another clone of the same model is
  loaded (`partially_load` l.801-825 -> `unpatch_model` l.684-721);
- `is_clone` (l.253-254), `get_model_object` (l.355-363), `detach` (l.827-831).
Patch format: only ("diff", (tensor,)) (merge: weight + strength_patch * diff, strength_model = 1), as
merge_lora_to_weight computes for a "diff" patch (backend/patcher/lora.py). Weights are set as new
nn.Parameters of inference tensors (the merge runs under the generation's inference mode)."""
import copy
import uuid
from pathlib import Path

import torch
from fake_common.lora import merge_diff_patches

_FORGE = Path(__file__).resolve().parents[3] / "fake_forge" / "backend" / "patcher" / "base.py"
exec(compile(_FORGE.read_text(encoding="utf-8"), str(_FORGE), "exec"))

_ForgeModelPatcher = ModelPatcher  # noqa: F821
# Neo's patcher has no VAE wrappers or regulation (Forge 2 base.py:149-156): the class run above is this
# module's own copy, so removing them leaves the fake Forge untouched
for _name in ("set_model_vae_encode_wrapper", "set_model_vae_decode_wrapper", "set_model_vae_regulation"):
    delattr(_ForgeModelPatcher, _name)


def _set_weight(model, key, weight):
    with torch.inference_mode():
        utils.set_attr_raw(model, key, torch.nn.Parameter(weight.clone(), requires_grad=False))  # noqa: F821


class LoraLoader:
    """backend/patcher/lora.py:141-254: restores the weights it merged before, then merges `lora_patches`."""

    def __init__(self, model):
        self.model = model
        self.backup = {}
        self.loaded_hash = str([])

    def refresh(self, lora_patches, offload_device=None, force_refresh=False):
        hashes = str(list(lora_patches.keys()))
        if hashes == self.loaded_hash and not force_refresh:
            return
        for key, weight in self.backup.items():
            utils.set_attr_raw(self.model, key, weight)  # noqa: F821
        self.backup = {}
        merged = {}
        for _identifier, patches in lora_patches.items():
            for key, current in patches.items():
                merged[key] = merged.get(key, []) + current
        for key, current in merged.items():
            weight = utils.get_attr(self.model, key)  # noqa: F821
            self.backup.setdefault(key, weight)
            _set_weight(self.model, key, merge_diff_patches(current, weight))
        self.loaded_hash = hashes


class ModelPatcher(_ForgeModelPatcher):
    def __init__(self, model, load_device, offload_device, size=0, current_device=None, weight_inplace_update=False):
        super().__init__(model, load_device, offload_device, size, current_device)
        self.parent = None
        self.patches = {}
        self.backup = {}
        self.patches_uuid = uuid.uuid4()
        if not hasattr(model, "lora_loader"):
            model.lora_loader = LoraLoader(model)
        self.lora_loader = model.lora_loader
        if not hasattr(model, "current_weight_patches_uuid"):
            model.current_weight_patches_uuid = None

    def clone(self):
        n = self.__class__(self.model, self.load_device, self.offload_device, self.model_size(), self.current_device)
        n.patches = copy.copy(self.patches)
        n.lora_patches = copy.copy(self.lora_patches)
        n.patches_uuid = self.patches_uuid
        n.backup = self.backup
        n.object_patches = copy.copy(self.object_patches)
        n.model_options = copy.deepcopy(self.model_options)
        n.parent = self
        return n

    def is_clone(self, other):
        return self.model is getattr(other, "model", None)

    def add_patches(self, patches, strength_patch=1.0, strength_model=1.0, *, filename=None, online_mode=None):
        lora = filename is not None and online_mode is not None
        lora_patches = {}
        model_sd = self.model.state_dict()
        added = set()
        for key in patches:
            if key in model_sd:
                added.add(key)
                current = self.patches.get(key, []) + [(strength_patch, patches[key], strength_model, None, None)]
                if lora:
                    lora_patches[key] = current
                else:
                    self.patches[key] = current
        if lora:
            self.lora_patches[(filename, strength_patch, strength_model, online_mode)] = lora_patches
        else:
            self.patches_uuid = uuid.uuid4()
        return list(added)

    def refresh_loras(self):
        self.lora_loader.refresh(lora_patches=self.lora_patches, offload_device=self.offload_device)

    def patch_model(self, device_to=None):
        """`partially_load`: another clone's weight patches are undone, then this clone's are merged."""
        if self.model.current_weight_patches_uuid not in (None, self.patches_uuid):
            self.unpatch_model()
        if self.model.current_weight_patches_uuid is None:
            for key, current in self.patches.items():
                weight = utils.get_attr(self.model, key)  # noqa: F821
                self.backup.setdefault(key, weight)
                _set_weight(self.model, key, merge_diff_patches(current, weight))
            self.model.current_weight_patches_uuid = self.patches_uuid
        return self.model

    def unpatch_model(self, device_to=None, unpatch_weights=True):
        if unpatch_weights:
            for key, weight in self.backup.items():
                utils.set_attr_raw(self.model, key, weight)  # noqa: F821
            self.backup.clear()
            self.model.current_weight_patches_uuid = None

    def detach(self, unpatch_all=True):
        if unpatch_all:
            self.unpatch_model(unpatch_weights=True)
        return self.model
