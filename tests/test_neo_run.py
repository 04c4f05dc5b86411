"""FGAT generations inside the fake Forge Neo, what only Neo shows.

test_forge_run.py's tests run in the fake Neo as well (its `forge` fixture is parametrised over Forge and Neo):
FGAT runs between `sampling_prepare` and `sampling_cleanup`, reloads a UNet that encoding
offloaded (low VRAM), lets other extensions' block modifiers see Neo's transformer_options, and a generation that
succeeds, fails or is interrupted (null-text included) leaves Neo exactly as it was, the next plain generation
bit-identical. Then what is Neo's own: the ComfyUI-port patcher's weight patches and LoRA apply to FGAT's UNet
calls, the target encode is the posterior mean without drawing a random number, and a failed run on a
zero-terminal-SNR model leaves the schedule as it was."""

import pytest
import torch
from conftest import webui_fixture
from fake_neo.harness import fake_neo
from test_forge_run import PROMPT, STEPS, _fgat, _state

from fgat_webui.run import FGATError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

forge = webui_fixture("neo", name="forge")


WEIGHT = "diffusion_model.unet.conv_out.weight"  # a KModel state-dict key (the UNet's output conv)


@pytest.mark.parametrize("kind", ["weight patch", "LoRA"])
def test_patches_of_the_sampled_clone_apply_to_fgat_and_are_undone(forge, images, kind):
    """A clone of the UNet patcher with a weight patch (an extension's `add_patches`) or a LoRA (`add_patches` with
    a file name, as extra networks do, networks.py:69) set on `forge_objects_after_applying_lora` is what Neo
    samples with: FGAT's UNet calls see the merged weight (the result equals a run on the UNet whose weight was
    changed by hand), and the next plain generation without it is bit-identical to one made before."""
    src, tar = images
    objects = forge.sd_model.forge_objects_after_applying_lora
    original = objects.unet
    weight = forge.unet_patcher.model.state_dict()[WEIGHT]
    diff = 0.05 * torch.randn(weight.shape, generator=torch.Generator().manual_seed(0))
    plain = forge.img2img(src, PROMPT, None, steps=STEPS, seed=7).latent
    before = forge.img2img(src, PROMPT, _fgat(forge, tar), steps=STEPS, seed=7).latent

    conv_out = forge.unet_patcher.model.diffusion_model.unet.conv_out
    saved = conv_out.weight.clone()
    with torch.inference_mode():
        conv_out.weight.add_(0.5 * diff)
    try:
        by_hand = forge.img2img(src, PROMPT, _fgat(forge, tar), steps=STEPS, seed=7).latent
    finally:
        with torch.inference_mode():
            conv_out.weight.copy_(saved)
    patched = original.clone()
    lora = {"filename": "test.safetensors", "online_mode": False} if kind == "LoRA" else {}
    assert patched.add_patches({WEIGHT: ("diff", (diff,))}, 0.5, **lora) == [WEIGHT]
    objects.unet = patched
    try:
        with_patch = forge.img2img(src, PROMPT, _fgat(forge, tar), steps=STEPS, seed=7).latent
    finally:
        objects.unet = original
    assert not torch.equal(with_patch, before)
    assert torch.allclose(with_patch, by_hand, rtol=0, atol=1e-5)
    assert torch.equal(forge.img2img(src, PROMPT, None, steps=STEPS, seed=7).latent, plain)
    assert torch.equal(forge.img2img(src, PROMPT, _fgat(forge, tar), steps=STEPS, seed=7).latent, before)


def test_target_encode_is_the_posterior_mean_and_draws_no_random_number(forge, images):
    """Neo's VAE only samples (nn/vae.py:304-311); FGAT's encode goes through Neo's `VAE.encode` (its memory
    management) and gives the mean, scaled: what diffusers' VAE gives as `latent_dist.mean * scaling_factor`."""
    import numpy as np

    from fgat_webui.neo_backend import NeoBackend

    _, tar = images
    from backend import memory_management

    loads = len(memory_management.loads)
    state = torch.get_rng_state()
    latent = NeoBackend().encode_image(None, tar)
    assert torch.equal(torch.get_rng_state(), state)
    assert len(memory_management.loads) == loads + 1  # loaded through memory management
    pixels = torch.from_numpy(np.asarray(tar, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]
    vae = forge.pipe.vae
    with torch.no_grad():
        expected = vae.encode(pixels).latent_dist.mean * vae.config.scaling_factor
    torch.testing.assert_close(latent, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(NeoBackend().encode_image(None, tar), latent)


def test_a_failed_run_on_a_ztsnr_model_leaves_the_schedule_as_it_was(tiny_pipe, images):
    """Neo rescales the sigmas to zero terminal SNR around `p.sample` and restores them only when it returns
    (processing.py:985-997); FGAT's error inside `p.sample` must not leave them rescaled."""
    src, tar = images
    with fake_neo(tiny_pipe, ztsnr=True) as neo:
        predictor = neo.unet_patcher.model.predictor
        sigmas = predictor.sigmas.clone()
        plain = neo.img2img(src, PROMPT, None, steps=STEPS, seed=7)
        assert plain.processed.extra_generation_params["Noise Schedule"] == "Zero Terminal SNR"
        state = _state(neo)
        with pytest.raises(FGATError, match="object word 'zebra' is not in the prompt"):
            neo.img2img(src, PROMPT, _fgat(neo, tar, mask_word="zebra"), steps=STEPS, seed=7)
        assert torch.equal(predictor.sigmas, sigmas) and _state(neo) == state
        assert torch.equal(neo.img2img(src, PROMPT, None, steps=STEPS, seed=7).latent, plain.latent)
        ok = neo.img2img(src, PROMPT, _fgat(neo, tar), steps=STEPS, seed=7)
        assert not torch.equal(ok.latent, ok.init_latents[0]) and torch.equal(predictor.sigmas, sigmas)
