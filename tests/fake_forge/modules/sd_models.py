"""Mirrors the parts of Forge's modules/sd_models.py processing calls: A1111's (the fake A1111's file, run here:
reload_model_weights and apply_token_merging no-ops with one model, apply_alpha_schedule_override l.361-372, which
returns at once on Forge's engines: they have no `alphas_cumprod_original`) except that the loaded engine is
`shared.sd_model` (a ForgeDiffusionEngine: SD1.5 / SDXL), kept in `model_data` (SdModelData, l.395-408), without ldm's hijack,
and `forge_model_reload` (l.472-: no-op, one model)."""
from pathlib import Path
from types import SimpleNamespace

_A1111 = Path(__file__).resolve().parents[2] / "fake_webui" / "modules" / "sd_models.py"
exec(compile(_A1111.read_text(encoding="utf-8"), str(_A1111), "exec"))

model_data = SimpleNamespace(sd_model=None, forge_loading_parameters={}, forge_hash="")


def load_model(sd_model, name="tiny-forge"):
    sd_model.sd_checkpoint_info = SimpleNamespace(name_for_extra=name, short_title=name, title=name)
    sd_model.sd_model_hash = "0000000000"
    model_data.sd_model = sd_model
    shared.sd_model = sd_model  # noqa: F821
    return sd_model


def forge_model_reload():
    return model_data.sd_model, False
