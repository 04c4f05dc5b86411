"""Mirrors the parts of Forge's modules/sd_models.py processing calls: the loaded engine is
`shared.sd_model` (a ForgeDiffusionEngine: SD1.5 / SDXL), `forge_model_reload` (l.472-: no-op, one model),
apply_token_merging (no-op) and apply_alpha_schedule_override (l.361-: a no-op, as Forge's engines have no
`alphas_cumprod`)."""
from types import SimpleNamespace

from modules import shared

checkpoint_aliases = {}
model_data = SimpleNamespace(sd_model=None, forge_loading_parameters={}, forge_hash="")


def load_model(sd_model, name="tiny-forge"):
    sd_model.sd_checkpoint_info = SimpleNamespace(name_for_extra=name, short_title=name, title=name)
    sd_model.sd_model_hash = "0000000000"
    model_data.sd_model = sd_model
    shared.sd_model = sd_model
    return sd_model


def forge_model_reload():
    return model_data.sd_model, False


def reload_model_weights(sd_model=None, info=None, forced_reload=False):
    pass


def apply_token_merging(sd_model, token_merging_ratio):
    pass


def apply_alpha_schedule_override(sd_model, p=None):
    if not hasattr(sd_model, "alphas_cumprod") or not hasattr(sd_model, "alphas_cumprod_original"):
        return
