"""Mirrors modules/shared.py: `opts`, `state`, `sd_model`, `device`, `cmd_opts` and friends.

`opts` holds the defaults of the options the fake code reads (modules/shared_options.py)."""
from types import SimpleNamespace

import torch

from modules import shared_state

cmd_opts = SimpleNamespace(no_prompt_history=True, hide_ui_dir_config=True, embeddings_dir="", api=True)


class Options:
    """Attribute access over `data` with defaults (modules/options.py Options, reduced)."""

    defaults = dict(
        img2img_fix_steps=False, enable_quantization=False, batch_cond_uncond=True, skip_early_cond=0.0,
        s_min_uncond=0.0, s_min_uncond_all=False, pad_cond_uncond=False, pad_cond_uncond_v0=False,
        live_preview_content="Prompt", live_previews_enable=False, show_progress_every_n_steps=10,
        img2img_extra_noise=0.0, eta_ddim=0.0, eta_ancestral=1.0, eta_noise_seed_delta=0,
        always_discard_next_to_last_sigma=False, use_old_karras_scheduler_sigmas=False, sigma_min=0.0,
        sigma_max=0.0, rho=0.0, initial_noise_multiplier=1.0, randn_source="CPU", sd_vae_encode_method="Full",
        sd_vae_decode_method="Full", img2img_color_correction=False, img2img_background_color="#ffffff",
        samples_save=False, grid_save=False, return_grid=False, enable_pnginfo=True, face_restoration=False,
        tiling=False, overlay_inpaint=True, return_mask=False, return_mask_composite=False, save_mask=False,
        save_mask_composite=False, emphasis="Original", CLIP_stop_at_last_layers=1, infotext_skip_pasting=[],
        sdxl_crop_top=0, sdxl_crop_left=0, sdxl_refiner_low_aesthetic_score=2.5, sdxl_refiner_high_aesthetic_score=6.0,
        sdxl_clip_l_skip=False,
        use_old_scheduling=False, persistent_cond_cache=True, s_churn=0.0, s_tmin=0.0, s_tmax=0.0, s_noise=1.0,
        token_merging_ratio=0.0, inpainting_mask_weight=1.0, grid_only_if_multiple=True,
        api_enable_requests=False, save_init_img=False, live_preview_fast_interrupt=False,
        show_progress_type="Full",
    )

    def __init__(self):
        self.__dict__["data"] = {}

    def __getattr__(self, item):
        if item in self.data:
            return self.data[item]
        if item in self.defaults:
            return self.defaults[item]
        raise AttributeError(item)

    def __setattr__(self, key, value):
        self.data[key] = value

    def get_default(self, key):
        return self.defaults.get(key)

    def set(self, key, value, is_api=False, run_callbacks=True):
        self.data[key] = value


class _TotalTQDM:
    def update(self):
        pass

    def clear(self):
        pass


class _PromptStyles:
    def apply_styles_to_prompt(self, prompt, styles):
        return prompt

    def apply_negative_styles_to_prompt(self, prompt, styles):
        return prompt


opts = Options()
state = shared_state.State()
sd_model = None
device = torch.device("cpu")
total_tqdm = _TotalTQDM()
prompt_styles = _PromptStyles()
parallel_processing_allowed = True
