"""Mirrors backend/diffusion_engine/base.py (Neo 3df257ae): ForgeObjects (l.13-21, Forge 2's: the fake Forge's
file, run here) and ForgeDiffusionEngine (l.24-88). What differs from Forge 2: the WebUI-legacy flags are only
is_sd1 / is_sdxl / is_wan (SD2 and SD3 are gone, l.63-69), `first_stage_model` / `cond_stage_model` are
properties reaching into forge_objects (l.71-83), the engine keeps `ini_latent` / `ref_latents` for edit models
(l.39-40), and the stubs raise NotImplementedError (l.48-55)."""
from pathlib import Path

_FORGE = Path(__file__).resolve().parents[3] / "fake_forge" / "backend" / "diffusion_engine" / "base.py"
exec(compile(_FORGE.read_text(encoding="utf-8"), str(_FORGE), "exec"))


class ForgeDiffusionEngine(ForgeDiffusionEngine):  # noqa: F821
    def __init__(self, estimated_config, huggingface_components):  # l.27-40
        super().__init__(estimated_config, huggingface_components)
        self.ini_latent = None
        self.ref_latents = []

    def get_learned_conditioning(self, prompt):
        raise NotImplementedError

    def encode_first_stage(self, x):
        raise NotImplementedError

    def decode_first_stage(self, x):
        raise NotImplementedError

    def is_webui_legacy_model(self):
        return self.is_sd1 or self.is_sdxl

    def fix_for_webui_backward_compatibility(self):  # l.63-69
        self.tiling_enabled = self.use_distilled_cfg_scale = self.use_shift = False
        self.is_sd1 = self.is_sdxl = self.is_wan = False

    @property
    def first_stage_model(self):
        try:
            return self.forge_objects.vae.first_stage_model
        except Exception:
            return None

    @property
    def cond_stage_model(self):
        try:
            return self.forge_objects.clip.cond_stage_model
        except Exception:
            return None
