"""Mirrors the parts of modules/sd_models.py processing calls: model loading (the fake loads a tiny
in-memory ldm model and hijacks it like load_model, l.788-860), reload_model_weights (no-op: one model),
apply_token_merging (no-op), apply_alpha_schedule_override (l.647-667: restores alphas_cumprod_original)."""
from types import SimpleNamespace

from modules import shared, sd_hijack

checkpoint_aliases = {}


def load_model(sd_model, name="tiny-sd"):
    sd_model.sd_checkpoint_info = SimpleNamespace(name_for_extra=name, short_title=name, title=name)
    sd_model.sd_model_hash = "0000000000"
    sd_model.alphas_cumprod_original = sd_model.alphas_cumprod
    shared.sd_model = sd_model
    sd_hijack.model_hijack.hijack(sd_model)
    return sd_model


def reload_model_weights(sd_model=None, info=None, forced_reload=False):
    pass


def apply_token_merging(sd_model, token_merging_ratio):
    pass


def apply_alpha_schedule_override(sd_model, p=None):
    if not hasattr(sd_model, "alphas_cumprod") or not hasattr(sd_model, "alphas_cumprod_original"):
        return
    sd_model.alphas_cumprod = sd_model.alphas_cumprod_original.to(shared.device)
