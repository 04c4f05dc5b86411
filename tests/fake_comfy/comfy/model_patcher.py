"""comfy/model_patcher.py (ComfyUI 0.33.0) `ModelPatcher` (l.340-): what a MODEL is.

- `__init__` (l.341-390): `patches`, `backup`, `object_patches`, `object_patches_backup`, `model_options =
  {"transformer_options": {}}`, `patches_uuid`, `load_device` / `offload_device`, `parent`; the model gets
  `current_weight_patches_uuid`;
- `clone` (l.430-470): patches and object patches copied, `model_options` deep-copied, backups shared;
- `is_clone` (l.591), `model_size` (l.405), `set_model_unet_function_wrapper` (l.655), `add_object_patch` (l.737),
  `get_model_object` (l.750-770: an object patch, else its backup, else the model's attribute);
- `add_patches` (l.842-862): (strength_patch, patch, strength_model, offset, function) per weight key;
- `patch_model` (l.1113-1128): object patches set on the model (old values backed up), then the weights loaded
  with their patches merged (`load` l.982-); `unpatch_model` (l.1130-): weights and objects put back.
Patch format: only ("diff", (tensor,)) (weight * strength_model + strength_patch * diff, as
comfy/lora.py calculate_weight computes a "diff" patch). Merged weights are set as new parameters."""
import copy
import uuid

import torch

import comfy.utils
from fake_common.lora import merge_diff_patches


class ModelPatcher:
    def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False):
        self.size = size
        self.model = model
        self.patches = {}
        self.backup = {}
        self.object_patches = {}
        self.object_patches_backup = {}
        self.model_options = {"transformer_options": {}}
        self.load_device = load_device
        self.offload_device = offload_device
        self.patches_uuid = uuid.uuid4()
        self.parent = None
        if not hasattr(self.model, "current_weight_patches_uuid"):
            self.model.current_weight_patches_uuid = None

    def model_size(self):
        return self.size

    def clone(self):
        n = self.__class__(self.model, self.load_device, self.offload_device, self.model_size())
        n.patches = {k: self.patches[k][:] for k in self.patches}
        n.patches_uuid = self.patches_uuid
        n.object_patches = self.object_patches.copy()
        n.model_options = copy.deepcopy(self.model_options)
        n.parent = self
        n.backup, n.object_patches_backup = self.backup, self.object_patches_backup
        return n

    def is_clone(self, other):
        return hasattr(other, "model") and self.model is other.model

    def set_model_unet_function_wrapper(self, unet_wrapper_function):
        self.model_options["model_function_wrapper"] = unet_wrapper_function

    def add_object_patch(self, name, obj):
        self.object_patches[name] = obj

    def get_model_object(self, name):
        if name in self.object_patches:
            return self.object_patches[name]
        if name in self.object_patches_backup:
            return self.object_patches_backup[name]
        return comfy.utils.get_attr(self.model, name)

    def add_patches(self, patches, strength_patch=1.0, strength_model=1.0):
        model_sd = self.model.state_dict()
        added = set()
        for key in patches:
            if key in model_sd:
                added.add(key)
                self.patches[key] = self.patches.get(key, []) + [(strength_patch, patches[key], strength_model, None,
                                                                  None)]
        self.patches_uuid = uuid.uuid4()
        return list(added)

    def patch_model(self, device_to=None, lowvram_model_memory=0, load_weights=True, force_patch_weights=False):
        if self.model.current_weight_patches_uuid not in (None, self.patches_uuid):
            self.unpatch_model()  # another clone's patches are loaded (load_models_gpu unloads it first)
        for k in self.object_patches:
            old = comfy.utils.set_attr(self.model, k, self.object_patches[k])
            if k not in self.object_patches_backup:
                self.object_patches_backup[k] = old
        if self.model.current_weight_patches_uuid is None:
            for key, current in self.patches.items():
                weight = comfy.utils.get_attr(self.model, key)
                self.backup.setdefault(key, weight)
                comfy.utils.set_attr(self.model, key, torch.nn.Parameter(merge_diff_patches(current, weight), requires_grad=False))
            self.model.current_weight_patches_uuid = self.patches_uuid
        return self.model

    def unpatch_model(self, device_to=None, unpatch_weights=True):
        if unpatch_weights:
            for key, weight in self.backup.items():
                comfy.utils.set_attr(self.model, key, weight)
            self.backup.clear()
            self.model.current_weight_patches_uuid = None
        for k, old in self.object_patches_backup.items():
            comfy.utils.set_attr(self.model, k, old)
        self.object_patches_backup.clear()
