"""Mirrors the parts of backend/memory_management.py the sampling path calls, for `--always-cpu`:
device/dtype pickers (l.86, 785-840: everything on the CPU in fp32), `module_size` (l.356),
`load_models_gpu` / `load_model_gpu` (l.614-695), `get_free_memory` (l.1008), `soft_empty_cache` (l.1194).

Residency: `current_loaded_models` lists the models "on the GPU". With `always_offload_from_vram` (real:
`--always-offload-from-vram`, l.249; a card short of VRAM behaves the same way, `free_memory` l.562-612),
loading models first unloads every other loaded one, and `KModel.apply_model` then fails on an unloaded UNet
as the real one does (its weights are on the CPU, its input on the GPU: a device-mismatch RuntimeError).

Test instrumentation: `loads` records every `load_models_gpu` call (the patchers it was given), so a test
can check that the UNet was loaded through Forge's memory management before it ran."""
import torch

cpu = torch.device("cpu")
signal_empty_cache = False
OOM_EXCEPTION = torch.cuda.OutOfMemoryError
loads: list = []
always_offload_from_vram = False
current_loaded_models: list = []  # the patchers' models (not the patchers) that are loaded


def get_torch_device():
    return cpu


def text_encoder_device():
    return cpu


def text_encoder_offload_device():
    return cpu


def text_encoder_dtype(device=None):
    return torch.float32


def vae_device():
    return cpu


def vae_offload_device():
    return cpu


def vae_dtype(device=None, allowed_dtypes=()):
    return torch.float32


def intermediate_device():
    return cpu


def unet_offload_device():
    return cpu


def dtype_size(dtype):
    return torch.tensor([], dtype=dtype).element_size()


def module_size(module, exclude_device=None, include_device=None, return_split=False):
    return sum(p.numel() * p.element_size() for p in module.parameters())


def get_free_memory(dev=None, torch_free_too=False):
    return 1 << 40


def soft_empty_cache(force=False):
    global signal_empty_cache
    signal_empty_cache = False


def load_models_gpu(models, memory_required=0, hard_memory_preservation=0):
    """Real: moves the patchers' models to the GPU and applies their LoRA patches (`refresh_loras`)."""
    loads.append(list(models))
    wanted = [m.model for m in models]
    if always_offload_from_vram:  # free_memory(..., keep_loaded=already loaded models of this call)
        current_loaded_models[:] = [m for m in current_loaded_models if any(m is w for w in wanted)]
    for m in models:
        if not is_loaded(m.model):
            current_loaded_models.append(m.model)
        m.refresh_loras()


def is_loaded(model) -> bool:
    return any(model is m for m in current_loaded_models)


def check_loaded(model) -> None:
    """Raises as a model run while its weights sit on the offload device would."""
    if always_offload_from_vram and not is_loaded(model):
        raise RuntimeError("Expected all tensors to be on the same device, but found at least two devices, cuda:0 "
                           "and cpu! (the UNet was offloaded from VRAM when another model was loaded)")


def load_model_gpu(model):
    return load_models_gpu([model])
