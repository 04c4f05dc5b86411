"""FGAT generations inside the fake Forge and the fake Forge Neo (the `forge` fixture runs each test in both):
the run goes through Forge's memory management, and a generation that succeeds, fails or is interrupted (at
any stage, null-text included) leaves Forge exactly as it was: no hooks, no patched UnetPatcher, no sampler
takeover, weights back to Forge's inference tensors, and the next plain generation identical to one made
before."""

import pytest
import torch
from conftest import webui_fixture
from fake_forge.harness import fake_forge

from fgat_webui.run import FGATError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # gradio 3.41 on new FastAPI
PROMPT, TARGET_PROMPT = "a photo of a cat", "a photo of a dog"
STEPS = 8


# a fake of each WebUI on Forge 2's engine: Forge, and Forge Neo (test_neo_run.py has Neo's own tests)
forge = webui_fixture("forge", "neo", name="forge")


def _fgat(forge, target, **values):
    return forge.fgat_args({"enabled": True, "target_image": target, "target_prompt": TARGET_PROMPT, **values})


def _state(forge):
    """Everything a generation could leave behind."""
    objects = forge.sd_model.forge_objects_after_applying_lora
    unet = objects.unet.model.diffusion_model
    return dict(
        hooks=forge.hook_count(),
        callbacks=forge.callback_counts(),
        unet_patcher=(objects.unet, repr(objects.unet.model_options)),
        vae_patcher=(objects.vae.patcher, repr(objects.vae.patcher.model_options)),
        inference_weights=all(w.is_inference() for w in unet.parameters()),
        weights=[id(w) for w in unet.parameters()],
        textinfo=forge.shared.state.textinfo,
    )


def _unet_log(forge, log):
    """Log UNet calls (a forward hook, removed by the caller) and Forge's prepare/cleanup calls."""
    from backend.sampling import sampling_function

    unet = forge.sd_model.forge_objects_after_applying_lora.unet.model.diffusion_model
    return unet.register_forward_hook(lambda *_: log.append("unet")), sampling_function


def test_fgat_runs_between_forge_sampling_prepare_and_cleanup(forge, images, monkeypatch):
    src, tar = images
    log = []
    handle, sf = _unet_log(forge, log)
    real_prepare, real_cleanup = sf.sampling_prepare, sf.sampling_cleanup
    monkeypatch.setattr(sf, "sampling_prepare", lambda unet, x: (log.append("prepare"), real_prepare(unet, x)))
    monkeypatch.setattr(sf, "sampling_cleanup", lambda unet: (log.append("cleanup"), real_cleanup(unet)))
    try:
        gen = forge.img2img(src, PROMPT, _fgat(forge, tar), steps=STEPS, seed=1)
    finally:
        handle.remove()
    assert log[0] == "prepare" and log[-1] == "cleanup" and log.count("prepare") == log.count("cleanup") == 1
    assert log.count("unet") > STEPS  # inversions, matching and sampling, all inside
    assert gen.latent.shape == gen.init_latents[0].shape and not torch.equal(gen.latent, gen.init_latents[0])


def test_fgat_reloads_the_unet_that_encoding_offloaded(forge, images, monkeypatch):
    """With --always-offload-from-vram (or too little VRAM), loading CLIP or the VAE unloads the UNet; FGAT
    encodes each image's prompts and target after Forge's own prompts, so it must load the UNet again before
    its UNet calls. The fake's KModel raises on an unloaded UNet, as the real one would (device mismatch)."""
    from backend import memory_management

    src, tar = images
    reference = forge.img2img(src, PROMPT, _fgat(forge, tar), steps=STEPS, seed=1, batch_size=2)
    monkeypatch.setattr(memory_management, "always_offload_from_vram", True)
    monkeypatch.setattr(memory_management, "current_loaded_models", [])
    plain = forge.img2img(src, PROMPT, steps=STEPS, seed=1, batch_size=2)  # Forge's own path meets no offloaded UNet
    assert plain.latent.shape == reference.latent.shape
    gen = forge.img2img(src, PROMPT, _fgat(forge, tar), steps=STEPS, seed=1, batch_size=2)
    assert torch.equal(gen.latent, reference.latent)  # where the weights live changes nothing else


def test_block_modifiers_of_other_extensions_see_forge_transformer_options(forge, images):
    """A block modifier (as Forge's built-in ControlNet tile_colorfix preprocessor installs) reads the
    per-call `transformer_options` Forge's sampler sets, `cond_mark` among them (sampling_function.py:256):
    FGAT's own UNet calls set the same keys, every row marked conditional."""
    src, tar = images
    objects = forge.sd_model.forge_objects_after_applying_lora
    original = objects.unet
    seen = []

    def modifier(h, flag, options):
        mark = options["cond_mark"]  # KeyError here is what a real extension would raise
        seen.append((mark.shape[0] == h.shape[0], sorted(set(mark.tolist())), options["cond_or_uncond"]))
        return h

    patched = original.clone()
    patched.add_block_modifier(modifier)
    objects.unet = patched
    try:
        reference = forge.img2img(src, PROMPT, steps=STEPS, seed=1)
        forge_calls = len(seen)
        gen = forge.img2img(src, PROMPT, _fgat(forge, tar), steps=STEPS, seed=1)
    finally:
        objects.unet = original
    assert forge_calls > 0 and len(seen) > forge_calls  # Forge's sampler and FGAT both ran the modifier
    assert all(rows_match for rows_match, _, _ in seen)
    assert all(marks == [0.0] and cu == [0] for _, marks, cu in seen[forge_calls:])
    assert gen.latent.shape == reference.latent.shape


def test_failed_and_interrupted_runs_leave_forge_as_it_was(forge, images):
    src, tar = images
    plain = forge.img2img(src, PROMPT, None, steps=STEPS, seed=7).latent
    before = _state(forge)

    with pytest.raises(FGATError, match="object word 'zebra' is not in the prompt"):
        forge.img2img(src, PROMPT, _fgat(forge, tar, mask_word="zebra"), steps=STEPS, seed=7)
    assert _state(forge) == before

    for values, stop_at in [({}, 4), ({"inversion": "null-text", "null_text_steps": 2}, 12)]:
        calls = []

        def interrupt(*_, calls=calls, stop_at=stop_at):
            calls.append(1)
            if len(calls) == stop_at:
                forge.shared.state.interrupted = True

        unet = forge.sd_model.forge_objects_after_applying_lora.unet.model.diffusion_model
        handle = unet.register_forward_hook(interrupt)
        try:
            gen = forge.img2img(src, PROMPT, _fgat(forge, tar, **values), steps=STEPS, seed=7)
        finally:
            handle.remove()
        assert len(calls) == stop_at  # stopped at that very UNet call
        assert torch.equal(gen.latent, gen.init_latents[0]) and "FGAT was interrupted" in gen.processed.comments
        assert _state(forge) == before

    ok = forge.img2img(src, PROMPT, _fgat(forge, tar, inversion="null-text", null_text_steps=2), steps=STEPS, seed=7)
    assert not torch.equal(ok.latent, ok.init_latents[0])
    assert _state(forge) == before
    assert torch.equal(forge.img2img(src, PROMPT, None, steps=STEPS, seed=7).latent, plain)


def test_sdxl_generation_in_forge_keeps_dict_conditioning(tiny_pipe_xl, images):
    """SDXL's conditioning reaches the UNet as Forge's c_crossattn + y, with the generation's size."""
    src, tar = images
    with fake_forge(tiny_pipe_xl) as forge:
        seen = []
        label_emb = forge.sd_model.forge_objects.unet.model.diffusion_model.label_emb
        # a forward hook sees the input as the label embedding got it (after the UNet's own pre-hook)
        handle = label_emb.register_forward_hook(lambda _m, args, _out: seen.append(args[0].detach().clone()))
        try:
            gen = forge.img2img(src, PROMPT, _fgat(forge, tar), steps=STEPS, seed=3, width=64, height=64)
        finally:
            handle.remove()
        assert seen and all(y.shape[1] == forge.pipe.unet.config.projection_class_embeddings_input_dim for y in seen)
        from backend.nn.unet import timestep_embedding

        dim = forge.pipe.unet.config.addition_time_embed_dim
        sizes = timestep_embedding(torch.tensor([64.0, 64.0, 0.0, 0.0, 64.0, 64.0]), dim).reshape(-1)
        assert all(torch.allclose(y[:, -6 * dim:], sizes.expand(y.shape[0], -1)) for y in seen)
        assert not torch.equal(gen.latent, gen.init_latents[0])


@pytest.mark.parametrize(("sampler", "tolerance"), [("Euler", 1e-3), ("DDIM", 1e-5)])
def test_plain_sampling_in_the_fake_forge_equals_the_fake_a1111(tiny_pipe, images, sampler, tolerance):
    """A cross-check of the two fakes (FGAT off): Forge's path (KModel x0 in k-diffusion space, its predictor,
    sampling_function's uncond-first batches, DDIM's eps estimation) samples what A1111's does. Euler's
    sigma schedules differ by up to 1.3e-5 relative, as in the real WebUIs: A1111's k-diffusion derives the
    sigmas from float32 alphas_cumprod, Forge's predictor in float64 (k_prediction.py:127-132)."""
    from fake_webui.harness import fake_webui

    src, _ = images
    runs = {}
    for name, harness in (("A1111", fake_webui), ("Forge", fake_forge)):
        with harness(tiny_pipe) as w:
            runs[name] = w.img2img(src, PROMPT, None, steps=STEPS, seed=5, sampler_name=sampler,
                                   denoising_strength=0.6)
    a, f = runs["A1111"], runs["Forge"]
    assert torch.equal(a.init_latents[0], f.init_latents[0])  # same VAE sample and seed
    assert float((f.latent - a.latent).norm() / a.latent.norm()) < tolerance
    assert float((a.latent - a.init_latents[0]).norm() / a.init_latents[0].norm()) > 1e-2  # it did sample
