"""Mirrors backend/diffusion_engine/base.py (Neo 3df257ae): ForgeObjects (l.13-21) and ForgeDiffusionEngine
(l.24-88). What differs from Forge 2: the WebUI-legacy flags are only is_sd1 / is_sdxl / is_wan (SD2 and SD3 are
gone, l.63-69), `first_stage_model` / `cond_stage_model` are properties reaching into forge_objects (l.71-83),
and the engine keeps `ini_latent` / `ref_latents` for edit models (l.39-40)."""


class ForgeObjects:
    def __init__(self, unet, clip, vae, clipvision):
        self.unet = unet
        self.clip = clip
        self.vae = vae
        self.clipvision = clipvision

    def shallow_copy(self):
        return ForgeObjects(self.unet, self.clip, self.vae, self.clipvision)


class ForgeDiffusionEngine:
    matched_guesses = []

    def __init__(self, estimated_config, huggingface_components):
        self.model_config = estimated_config
        self.is_inpaint = estimated_config.inpaint_model()
        self.forge_objects = None
        self.forge_objects_original = None
        self.forge_objects_after_applying_lora = None
        self.current_lora_hash = str([])
        self.fix_for_webui_backward_compatibility()
        self.ini_latent = None
        self.ref_latents = []

    def set_clip_skip(self, clip_skip):
        pass

    def get_first_stage_encoding(self, x):
        return x

    def get_learned_conditioning(self, prompt):
        raise NotImplementedError

    def encode_first_stage(self, x):
        raise NotImplementedError

    def decode_first_stage(self, x):
        raise NotImplementedError

    def get_prompt_lengths_on_ui(self, prompt):
        return 0, 75

    def is_webui_legacy_model(self):
        return self.is_sd1 or self.is_sdxl

    def fix_for_webui_backward_compatibility(self):
        self.tiling_enabled = False
        self.use_distilled_cfg_scale = False
        self.use_shift = False
        self.is_sd1 = False
        self.is_sdxl = False
        self.is_wan = False

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
