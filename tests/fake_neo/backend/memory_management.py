"""Mirrors the parts of backend/memory_management.py (Neo 3df257ae) the sampling path calls: the fake Forge's
devices, dtypes and residency model (that file, run here), with Neo's `load_models_gpu` (l.612-699):

    load_models_gpu(models, memory_required=0, force_patch_weights=False, minimum_memory_required=None,
                    force_full_load=False)

Loading a patcher (`LoadedModel.model_load`, l.464-489) loads it with `partially_load` (the ComfyUI patcher:
its weight `patches` are merged, another clone's undone) and then `refresh_loras()`; a previously loaded clone of
the same model is detached first (l.651-659). With `always_offload_from_vram` (a card short of VRAM, `free_memory`
l.569-610) every other model is unloaded, and the fake KModel then refuses to run an unloaded UNet."""
from pathlib import Path

_FORGE = Path(__file__).resolve().parents[2] / "fake_forge" / "backend" / "memory_management.py"
exec(compile(_FORGE.read_text(encoding="utf-8"), str(_FORGE), "exec"))


def load_models_gpu(models, memory_required=0, force_patch_weights=False, minimum_memory_required=None,
                    force_full_load=False):
    loads.append(list(models))  # noqa: F821
    wanted = [m.model for m in models]
    if always_offload_from_vram:  # noqa: F821
        current_loaded_models[:] = [m for m in current_loaded_models if any(m is w for w in wanted)]  # noqa: F821
    for m in models:
        m.patch_model(m.load_device)
        if not is_loaded(m.model):  # noqa: F821
            current_loaded_models.append(m.model)  # noqa: F821
        m.refresh_loras()


def load_model_gpu(model):
    return load_models_gpu([model])
