"""Forge's modules/sd_samplers_common.py: A1111's (the fake A1111's file, run in this namespace) except
- `samples_to_images_tensor` (Forge l.39-68): full decoding is `model.decode_first_stage(sample)` (Forge's
  engine has no `first_stage_model` whose dtype A1111 reads);
- `Sampler.__init__` (Forge l.239-266): `conditioning_key` is the constant 'crossattn' (l.258: Forge's
  engine has no `model.conditioning_key`), through `model_conditioning_key`."""
from pathlib import Path

_A1111 = Path(__file__).resolve().parents[2] / "fake_webui" / "modules" / "sd_samplers_common.py"
exec(compile(_A1111.read_text(encoding="utf-8"), str(_A1111), "exec"))


def samples_to_images_tensor(sample, approximation=None, model=None):
    if model is None:
        model = shared.sd_model  # noqa: F821
    return model.decode_first_stage(sample)


def model_conditioning_key(sd_model):  # Sampler.__init__, Forge l.258: Forge's engine has no `model`
    return "crossattn"
