"""Mirrors modules/lowvram.py (A1111 1.10.1): with --medvram (--medvram-sdxl for SDXL) or --lowvram only one
big module is on the GPU at a time.

- `is_needed` / `apply` (l.20-31); `is_enabled` (l.167-168).
- `setup_for_low_vram` (l.34-165), the medvram layout: the text encoder (SDXL: `conditioner`, l.117-118;
  SD1: `cond_stage_model.transformer`, l.124-126), `first_stage_model` and `model` (the UNet wrapper,
  l.138-139) stay on the CPU; a forward pre-hook on each (`send_me_to_gpu`, l.41-57) sends it to the GPU
  and the module that was there back to the CPU. The VAE runs through `encode`/`decode`, not `forward`, so
  those two are replaced on the instance by wrappers that do the same (l.62-70, l.136-137).

The fake has no GPU, so it only keeps the books: `module_in_gpu` is the module "on the GPU", and a layer of an
offloaded module that runs raises the device-mismatch RuntimeError the real one would (a check hook on every
submodule that holds parameters, fake instrumentation). `undo(sd_model)` (fake only) removes hooks and
wrappers, for the next test."""
import torch

from modules import shared

module_in_gpu = None
cpu = torch.device("cpu")
_handles: list = []


def send_everything_to_cpu():
    global module_in_gpu
    module_in_gpu = None


def _check_resident(owner):
    def check(module, _):
        if module_in_gpu is not owner:
            raise RuntimeError("Expected all tensors to be on the same device, but found at least two devices, "
                               f"cuda:0 and cpu! ({type(owner).__name__} is offloaded to the CPU by --medvram)")
    return check


def is_needed(sd_model):
    opts = shared.cmd_opts
    return getattr(opts, "lowvram", False) or getattr(opts, "medvram", False) or (
        getattr(opts, "medvram_sdxl", False) and hasattr(sd_model, "conditioner"))


def apply(sd_model):
    if is_needed(sd_model):
        setup_for_low_vram(sd_model, not getattr(shared.cmd_opts, "lowvram", False))
    else:
        sd_model.lowvram = False


def _big_modules(sd_model):
    """(module whose forward triggers the move, module moved): SD1's CLIP transformer moves its parent, the
    hijacked `cond_stage_model` (real: `medvram_modules()` / `parents`, l.106-115)."""
    if hasattr(sd_model, "conditioner"):
        text = [(sd_model.conditioner, sd_model.conditioner)]
    else:
        text = [(sd_model.cond_stage_model.wrapped.transformer, sd_model.cond_stage_model)]
    return text + [(sd_model.first_stage_model, sd_model.first_stage_model), (sd_model.model, sd_model.model)]


def setup_for_low_vram(sd_model, use_medvram=True):
    if getattr(sd_model, "lowvram", False):
        return
    sd_model.lowvram = True

    parents = {hooked: moved for hooked, moved in _big_modules(sd_model)}

    def send_me_to_gpu(module, _):
        global module_in_gpu
        module = parents.get(module, module)
        if module_in_gpu is module:
            return
        module_in_gpu = module  # real: the previous one .to(cpu), this one .to(devices.device)

    first_stage_model = sd_model.first_stage_model
    first_stage_model_encode, first_stage_model_decode = first_stage_model.encode, first_stage_model.decode

    def first_stage_model_encode_wrap(x):
        send_me_to_gpu(first_stage_model, None)
        return first_stage_model_encode(x)

    def first_stage_model_decode_wrap(z):
        send_me_to_gpu(first_stage_model, None)
        return first_stage_model_decode(z)

    for hooked, moved in _big_modules(sd_model):
        _handles.append(hooked.register_forward_pre_hook(send_me_to_gpu))
        for layer in moved.modules():
            if any(True for _ in layer.parameters(recurse=False)):
                _handles.append(layer.register_forward_pre_hook(_check_resident(moved)))
    first_stage_model.encode = first_stage_model_encode_wrap
    first_stage_model.decode = first_stage_model_decode_wrap


def is_enabled(sd_model):
    return getattr(sd_model, "lowvram", False)


def undo(sd_model):
    """Fake only: hooks and wrappers removed."""
    global module_in_gpu
    for handle in _handles:
        handle.remove()
    _handles.clear()
    for name in ("encode", "decode"):
        sd_model.first_stage_model.__dict__.pop(name, None)
    sd_model.lowvram = False
    module_in_gpu = None
