"""The Forge path equals the core path (done-when 1 and 2 for Forge): the script in the fake Forge (Forge's
own model code: KModel x0 in k-diffusion space, the predictor's sigma table, its text engine and VAE, all
under inference mode with inference-tensor weights) and the fgat_core pipeline give the same final latent
on the same tiny model, for SD1 eps, SD1 v-prediction and SDXL (dict conditioning), and for null-text
inversion, which needs gradients through Forge's inference-mode weights.

As in the A1111 equivalence test (test_webui_equivalence.py, whose images and helpers are reused), both
paths see the same source latent (the WebUI's `p.init_latent`) and the same schedule: Forge has no
`alphas_cumprod`, so the core is given a = 1 / (1 + sigma^2) of the predictor's float32 sigmas."""

import pytest
import torch
from fake_forge.harness import fake_forge
from test_webui_equivalence import PROMPT, TARGET_PROMPT, _relative

from fgat_cli.pipeline import FGATPipeline
from fgat_core.config import FGATConfig


def _core_like(pipe, alphas) -> FGATPipeline:
    return FGATPipeline(pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer, alphas_cumprod=alphas,
                        prediction_type=pipe.prediction_type, text_encoder_2=pipe.text_encoder_2,
                        tokenizer_2=pipe.tokenizer_2)


def _forge_run(pipe, src, tar, steps, **fgat):
    with fake_forge(pipe) as forge:
        unet = forge.unet_patcher.model.diffusion_model
        assert all(w.is_inference() for w in unet.parameters())  # as Forge's loader leaves them
        hooks = forge.hook_count()
        settings = {"enabled": True, "target_image": tar, "target_prompt": TARGET_PROMPT, "mask_word": "cat",
                    "delta": 0.8, **fgat}
        gen = forge.img2img(src, PROMPT, forge.fgat_args(settings), steps=steps, cfg_scale=7.5, seed=3,
                            sampler_name="Euler a", denoising_strength=0.6)
        alphas = forge.model_alphas_cumprod()
        assert forge.hook_count() == hooks  # nothing left on the model
        assert all(w.is_inference() for w in unet.parameters())  # the autograd aliases were put back
        from backend.sampling import sampling_function

        assert sampling_function.prepared and sampling_function.cleaned  # loaded through memory management
    return gen, alphas


@pytest.mark.parametrize(
    ("model", "steps"), [("tiny_pipe", 50), ("tiny_pipe_v", 12), ("tiny_pipe_xl", 12)],
    ids=["sd-eps", "sd-v", "sdxl"],
)
def test_forge_path_matches_core_path(request, images, model, steps):  # noqa: F811
    pipe = request.getfixturevalue(model)
    src, tar = images
    gen, alphas = _forge_run(pipe, src, tar, steps)
    core = _core_like(pipe, alphas)
    config = FGATConfig(steps=steps, guidance_scale=7.5, seed=gen.p.all_seeds[0], mask_word="cat", delta=0.8)
    out = core.transfer(src, tar, PROMPT, TARGET_PROMPT, config, latents={"source": gen.init_latents[0]})

    assert gen.latent.shape == out.latent.shape == gen.init_latents[0].shape
    assert _relative(gen.latent, out.latent) <= 1e-5
    recon = core.transfer(src, tar, PROMPT, TARGET_PROMPT, config, latents={"source": gen.init_latents[0]},
                          transfer=False)
    assert _relative(out.latent, recon.latent) > 1e-3  # not a vacuous match


def test_forge_null_text_inversion_runs_under_inference_mode_and_matches_core(tiny_pipe_xl, images):  # noqa: F811
    """Forge's weights are inference tensors and generation runs under inference mode; null-text inversion
    still optimises the unconditional embedding (through autograd-safe aliases of the weights) and gives
    the core's result."""
    src, tar = images
    fgat = {"inversion": "null-text", "null_text_steps": 3}
    gen, alphas = _forge_run(tiny_pipe_xl, src, tar, 8, **fgat)
    core = _core_like(tiny_pipe_xl, alphas)
    config = FGATConfig(steps=8, guidance_scale=7.5, seed=gen.p.all_seeds[0], mask_word="cat", delta=0.8,
                        inversion="null-text", null_text_steps=3)
    out = core.transfer(src, tar, PROMPT, TARGET_PROMPT, config, latents={"source": gen.init_latents[0]})
    assert _relative(gen.latent, out.latent) <= 1e-4
    plain = core.transfer(src, tar, PROMPT, TARGET_PROMPT, config.replace(inversion="ddim"),
                          latents={"source": gen.init_latents[0]})
    assert _relative(out.latent, plain.latent) > 1e-4  # the optimised null text changed the result


def test_autograd_safe_weights_alias_without_copy_and_restore():
    from fgat_webui.forge_backend import autograd_safe_weights

    with torch.inference_mode():
        layer = torch.nn.Linear(4, 3)
    x = torch.randn(2, 4, requires_grad=True)
    with pytest.raises(RuntimeError, match="Inference tensors cannot be saved for backward"):
        layer(x).sum().backward()
    weight = layer.weight
    with autograd_safe_weights(layer):
        assert layer.weight is not weight and not layer.weight.is_inference()
        assert layer.weight.data_ptr() == weight.data_ptr()  # the same memory: nothing copied
        layer(x).sum().backward()
    assert layer.weight is weight and layer.weight.is_inference()
    torch.testing.assert_close(x.grad, weight.sum(0).expand(2, 4))  # d(sum(W x + b))/dx = column sums of W
    with torch.no_grad(), autograd_safe_weights(layer):
        assert layer.weight is weight  # nothing to do without grad mode
