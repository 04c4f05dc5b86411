"""Mirrors backend/sampling/sampling_function.py (Neo 3df257ae): Forge 2's batching and CFG (the fake Forge's
file, run here) with Neo's entry points: `sampling_function(..., extra_model_options=None)` (l.328-365, the
options joined with the patcher's), `sampling_prepare(unet, x)` (l.367-395: memory for a 2x batch, online-LoRA
memory, `load_models_gpu(models, memory_required=..., minimum_memory_required=...)`) and `sampling_cleanup`
(l.398-404: `soft_empty_cache`). `prepared` / `cleaned` record the patchers given (test instrumentation)."""
from pathlib import Path

_FORGE = Path(__file__).resolve().parents[3] / "fake_forge" / "backend" / "sampling" / "sampling_function.py"
exec(compile(_FORGE.read_text(encoding="utf-8"), str(_FORGE), "exec"))

_forge_sampling_function = sampling_function  # noqa: F821


def sampling_function(self, denoiser_params, cond_scale, cond_composition, extra_model_options=None):
    assert not extra_model_options, "the fake Neo joins no extra model options"
    return _forge_sampling_function(self, denoiser_params, cond_scale, cond_composition)


def sampling_prepare(unet, x):
    shape = list(x.shape)
    mem_shape = [2 * shape[0]] + shape[1:]
    unet_inference_memory = unet.memory_required(mem_shape)
    additional_inference_memory = unet.extra_preserved_memory_during_sampling
    memory_management.load_models_gpu(  # noqa: F821
        models=[unet] + unet.extra_model_patchers_during_sampling,
        memory_required=unet_inference_memory + additional_inference_memory,
        minimum_memory_required=unet_inference_memory // 2 + additional_inference_memory)
    prepared.append(unet)  # noqa: F821


def sampling_cleanup(unet):
    memory_management.soft_empty_cache()  # noqa: F821
    cleaned.append(unet)  # noqa: F821
