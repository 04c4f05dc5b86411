"""comfy/model_management.py (ComfyUI 0.33.0): `get_torch_device` (l.194, the CPU here), `load_models_gpu`
(l.909-1009: each model's weight and object patches merged as it is loaded, `ModelPatcher.patch_model`; a model
whose clone with other patches was loaded is re-patched), `InterruptProcessingException` (l.2098, a
BaseException), `interrupt_current_processing` (l.2104), `processing_interrupted` (l.2110),
`throw_exception_if_processing_interrupted` (l.2116: raises once and clears the flag).

`loads` records every load (the test checks FGAT loads its model through here)."""
import threading

import torch

loads = []


def get_torch_device():
    return torch.device("cpu")


def load_models_gpu(models, memory_required=0, force_patch_weights=False, minimum_memory_required=None,
                    force_full_load=False):
    for m in models:
        m.patch_model(get_torch_device())
        loads.append((m, memory_required, minimum_memory_required))


def load_model_gpu(model):
    return load_models_gpu([model])


class InterruptProcessingException(BaseException):
    pass


interrupt_processing_mutex = threading.RLock()
interrupt_processing = False


def interrupt_current_processing(value=True):
    global interrupt_processing
    with interrupt_processing_mutex:
        interrupt_processing = value


def processing_interrupted():
    with interrupt_processing_mutex:
        return interrupt_processing


def throw_exception_if_processing_interrupted():
    global interrupt_processing
    with interrupt_processing_mutex:
        if interrupt_processing:
            interrupt_processing = False
            raise InterruptProcessingException()
