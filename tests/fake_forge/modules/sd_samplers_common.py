"""Forge's modules/sd_samplers_common.py: A1111's (the fake A1111's file, run in this namespace) except
- `samples_to_images_tensor` (Forge l.39-68): full decoding is `model.decode_first_stage(sample)` (Forge's
  engine has no `first_stage_model` whose dtype A1111 reads);
- `Sampler.__init__` (Forge l.239-266): `conditioning_key` is the constant 'crossattn' (Forge's engine has
  no `model.conditioning_key`)."""
from pathlib import Path

_A1111 = Path(__file__).resolve().parents[2] / "fake_webui" / "modules" / "sd_samplers_common.py"
exec(compile(_A1111.read_text(encoding="utf-8"), str(_A1111), "exec"))


def samples_to_images_tensor(sample, approximation=None, model=None):
    if model is None:
        model = shared.sd_model  # noqa: F821
    return model.decode_first_stage(sample)


class Sampler(Sampler):  # noqa: F821
    def __init__(self, funcname):
        self.funcname = funcname
        self.func = funcname
        self.extra_params = []
        self.sampler_noises = None
        self.stop_at = None
        self.eta = None
        self.config = None
        self.last_latent = None
        self.s_min_uncond = None
        self.s_churn = 0.0
        self.s_tmin = 0.0
        self.s_tmax = float("inf")
        self.s_noise = 1.0
        self.eta_option_field = "eta_ancestral"
        self.eta_infotext_field = "Eta"
        self.eta_default = 1.0
        self.conditioning_key = "crossattn"
        self.p = None
        self.model_wrap_cfg = None
        self.sampler_extra_args = None
        self.options = {}
