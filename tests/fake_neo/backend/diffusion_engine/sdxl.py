"""Mirrors backend/diffusion_engine/sdxl.py (Neo 3df257ae) StableDiffusionXL: as Forge 2's (the fake Forge's
file, run here) except `get_learned_conditioning` (l.67-101): the empty negative prompt is zeroed only with
`opts.sdxl_zero_neg` (default False, modules/shared_options.py:336), and cond_l / cond_g are zero-padded to the
same token length before they are concatenated (l.91-94)."""
from pathlib import Path

import torch

_FORGE = Path(__file__).resolve().parents[3] / "fake_forge" / "backend" / "diffusion_engine" / "sdxl.py"
exec(compile(_FORGE.read_text(encoding="utf-8"), str(_FORGE), "exec"))


@torch.inference_mode()
def _get_learned_conditioning(self, prompt):
    memory_management.load_model_gpu(self.forge_objects.clip.patcher)  # noqa: F821
    cond_l = self.text_processing_engine_l(prompt)
    cond_g, clip_pooled = self.text_processing_engine_g(prompt)
    flat = size_vector(self.embedder, prompt, clip_pooled)  # noqa: F821  (l.74-84)
    if opts.sdxl_zero_neg and getattr(prompt, "is_negative_prompt", False) and all(x == "" for x in prompt):  # noqa: F821
        clip_pooled = torch.zeros_like(clip_pooled)
        cond_l = torch.zeros_like(cond_l)
        cond_g = torch.zeros_like(cond_g)
    max_len = max(cond_l.shape[1], cond_g.shape[1])
    cond_l = torch.cat([cond_l, cond_l.new_zeros(cond_l.size(0), max_len - cond_l.shape[1], cond_l.size(2))], dim=1)
    cond_g = torch.cat([cond_g, cond_g.new_zeros(cond_g.size(0), max_len - cond_g.shape[1], cond_g.size(2))], dim=1)
    return dict(crossattn=torch.cat([cond_l, cond_g], dim=2), vector=torch.cat([clip_pooled, flat], dim=1))


StableDiffusionXL.get_learned_conditioning = _get_learned_conditioning  # noqa: F821
