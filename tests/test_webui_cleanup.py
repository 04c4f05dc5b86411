"""Done-when 3: after a FGAT generation, after FGAT generations that raise midway (in the engine, in the
UNet) or before sampling, and after an interrupted one, a plain generation is bit-identical to one made
before FGAT ever ran, and nothing is left behind: no forward hook, no script callback, no patched
class or sampler attribute, no state on the script, no gradient, no changed attention kernel or schedule."""

import pytest
import torch
from fake_webui.harness import fake_webui

import fgat_core.engine

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
PROMPT = "a photo of a cat"


def _webui_state(w):
    """Everything a FGAT run could leave behind, as comparable values."""
    from modules import processing, sd_samplers_kdiffusion, sd_samplers_timesteps

    unet = w.sd_model.model.diffusion_model.unet
    return {
        "hooks": w.hook_count(),
        "callbacks": w.callback_counts(),
        "script_attrs": sorted(vars(w.script)),
        "class_methods": (
            sd_samplers_kdiffusion.KDiffusionSampler.sample_img2img,
            sd_samplers_timesteps.CompVisSampler.sample_img2img,
            processing.StableDiffusionProcessingImg2Img.sample,
            type(w.sd_model).apply_model,
        ),
        "instance_overrides": sorted(k for k in ("apply_model", "forward") if k in vars(w.sd_model)),
        "processors": sorted({type(p).__name__ for p in unet.attn_processors.values()}),
        "alphas": w.sd_model.alphas_cumprod.clone(),
        "grads": [p.grad is not None for p in w.sd_model.parameters()].count(True),
        "requires_grad": [p.requires_grad for p in w.sd_model.parameters()].count(True),
        "textinfo": w.shared.state.textinfo,
    }


def _assert_same_state(a, b):
    assert torch.equal(a.pop("alphas"), b.pop("alphas"))
    assert a == b


def test_plain_generation_is_bit_identical_after_fgat_runs_of_every_outcome(tiny_pipe, images, monkeypatch):
    src, tar = images
    with fake_webui(tiny_pipe) as w:
        from modules import sd_samplers

        created = []
        real_create = sd_samplers.create_sampler

        def create_and_record(name, model):
            sampler = real_create(name, model)
            created.append(sampler)
            return sampler

        monkeypatch.setattr(sd_samplers, "create_sampler", create_and_record)

        def plain():
            return w.img2img(src, PROMPT, None, steps=8, seed=21, sampler_name="Euler a", denoising_strength=0.8)

        before = plain()
        baseline = _webui_state(w)
        fgat = w.fgat_args({"enabled": True, "target_image": tar, "target_prompt": "a photo of a dog"})

        # 1. a FGAT run that succeeds (null-text inversion: autograd runs inside the WebUI's no_grad)
        nt = w.fgat_args({"enabled": True, "target_image": tar, "inversion": "null-text", "null_text_steps": 2,
                          "diagnostics": True})
        ok = w.img2img(src, PROMPT, nt, steps=8, seed=21)
        assert not torch.equal(ok.latent, ok.init_latents[0]) and len(ok.processed.images) == 3

        # 2. one that raises midway in the engine (during matching, inside the window)
        with monkeypatch.context() as mp:
            def boom(*args, **kwargs):
                raise RuntimeError("boom in matching")

            mp.setattr(fgat_core.engine, "correspondence", boom)
            with pytest.raises(RuntimeError, match="boom in matching"):
                w.img2img(src, PROMPT, fgat, steps=8, seed=21)

        # 3. one whose UNet fails midway (e.g. out of memory) while the attention-mask hooks are on
        calls = []

        def fail_on_fifth(module, inputs, output):
            calls.append(1)
            if len(calls) == 5:
                raise torch.cuda.OutOfMemoryError("simulated out of memory")

        handle = w.sd_model.model.diffusion_model.register_forward_hook(fail_on_fifth)
        try:
            with pytest.raises(torch.cuda.OutOfMemoryError):
                w.img2img(src, PROMPT, fgat, steps=8, seed=21)
        finally:
            handle.remove()

        # 4. one that fails before sampling (bad settings)
        from fgat_webui.run import FGATError

        with pytest.raises(FGATError, match="not in the prompt"):
            w.img2img(src, PROMPT, w.fgat_args({"enabled": True, "target_image": tar, "mask_word": "zebra"}), steps=8)

        # 5. one that is interrupted during the inversion
        def interrupt(module, inputs, output):
            w.shared.state.interrupted = True

        handle = w.sd_model.model.diffusion_model.register_forward_hook(interrupt)
        try:
            stopped = w.img2img(src, PROMPT, fgat, steps=8, seed=21)
        finally:
            handle.remove()
        assert torch.equal(stopped.latent, stopped.init_latents[0])

        after = plain()
        assert torch.equal(after.latent, before.latent)
        assert after.processed.images[0].tobytes() == before.processed.images[0].tobytes()
        assert after.processed.infotexts == before.processed.infotexts
        _assert_same_state(_webui_state(w), baseline)
        # every sampler FGAT took over got its own sample_img2img back
        assert len(created) == 7 and all("sample_img2img" not in vars(s) for s in created)
