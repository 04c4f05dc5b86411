"""The ComfyUI node pack over the fake ComfyUI (tests/fake_comfy): the Comfy path equals the core path within 1e-5
on the same tiny weights (SD 1.x eps and v-prediction, SDXL eps, SDXL v-prediction with zero terminal SNR), the
MODEL is never mutated and nothing stays patched, interrupt stops within one UNet call, bad inputs fail with
one message naming the node input, LoRA patches take effect, DiT families are refused by name."""

import copy

import numpy as np
import pytest
import torch
from fake_comfy import harness
from PIL import Image

from fgat_cli.pipeline import FGATPipeline
from fgat_core.config import FGATConfig

PROMPT, TARGET_PROMPT = "a photo of a cat", "a photo of a dog"


def _image(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0)[None]


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


def _core_like(pipe, alphas, tokenizer_2=None) -> FGATPipeline:
    return FGATPipeline(pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer, alphas_cumprod=alphas,
                        prediction_type=pipe.prediction_type, text_encoder_2=pipe.text_encoder_2,
                        tokenizer_2=tokenizer_2 or pipe.tokenizer_2)


def _transfer(ckpt, src, tar, steps, settings=None, **kwargs):
    from fgat_comfy.nodes import FGATAppearanceTransfer

    args = dict(model=ckpt.model, clip=ckpt.clip, vae=ckpt.vae, source=_image(src), target=_image(tar),
                source_prompt=PROMPT, target_prompt=TARGET_PROMPT, mask_word="cat", seed=3, steps=steps, cfg=7.5,
                settings=settings)
    args.update(kwargs)
    return harness.run_node(FGATAppearanceTransfer().transfer, **args)


def _hooks(module: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in module.modules())


@pytest.fixture(scope="module")
def tiny_pipe_xl_v():
    from fgat_cli.pipeline import tiny_pipeline

    return tiny_pipeline(seed=0, sdxl=True, prediction_type="v_prediction")


@pytest.mark.parametrize(
    ("model", "steps", "zsnr"),
    [("tiny_pipe", 20, False), ("tiny_pipe_v", 12, False), ("tiny_pipe_xl", 12, False), ("tiny_pipe_xl_v", 12, True)],
    ids=["sd15-eps", "sd15-v", "sdxl-eps", "sdxl-v-zsnr"],
)
def test_comfy_path_matches_core_path(request, images, model, steps, zsnr):
    pipe = request.getfixturevalue(model)
    src, tar = images
    with harness.fake_comfy(pipe, zsnr=zsnr) as ckpt:
        options, patches = copy.deepcopy(ckpt.model.model_options), dict(ckpt.model.patches)
        unet = ckpt.model.model.diffusion_model
        hooks = _hooks(unet)
        out = _transfer(ckpt, src, tar, steps, settings={"delta": 0.8})["result"]
        latents = [ckpt.model.model.process_latent_in(ckpt.vae.encode(_image(img))) for img in (src, tar)]
        sigmas = ckpt.model.get_model_object("model_sampling").sigmas
        assert ckpt.model.model_options == options and ckpt.model.patches == patches  # the MODEL is untouched
        assert _hooks(unet) == hooks  # nothing left on the UNet
        from comfy import model_management

        assert model_management.loads and model_management.loads[-1][0].parent is ckpt.model  # a clone, loaded
    alphas = 1.0 / (1.0 + sigmas.double() ** 2)
    if zsnr:
        assert float(alphas[-1]) == pytest.approx(4.8973451890853435e-08, rel=1e-3)  # the rescaled schedule
    tok2 = None
    if pipe.is_sdxl:  # ComfyUI pads clip_g's tokens with 0 (sdxl_clip.py:21); the core is given the same
        tok2 = copy.deepcopy(pipe.tokenizer_2)
        tok2.pad_token = tok2.convert_ids_to_tokens(0)
    core = _core_like(pipe, alphas, tok2)
    config = FGATConfig(steps=steps, guidance_scale=7.5, seed=3, mask_word="cat", delta=0.8)
    ref = core.transfer(src, tar, PROMPT, TARGET_PROMPT, config, latents={"source": latents[0], "target": latents[1]})
    comfy_latent = ckpt.model.model.process_latent_in(out[2]["samples"])
    assert _relative(comfy_latent, ref.latent) <= 1e-5
    recon = core.transfer(src, tar, PROMPT, TARGET_PROMPT, config, latents={"source": latents[0],
                                                                             "target": latents[1]}, transfer=False)
    assert _relative(ref.latent, recon.latent) > 1e-3  # not a vacuous match
    image, mask = out[0], out[1]
    assert image.shape == (1, 64, 64, 3) and mask.shape == (1, 64, 64)
    torch.testing.assert_close(mask[0, ::8, ::8], ref.result.mask.float())  # the mask that was used


# ---------------------------------------------------------------------------------------------- conventions
def _node_error(ckpt, src, tar, **kwargs) -> str:
    from fgat_comfy.transfer import FGATError

    with pytest.raises(FGATError) as err:
        _transfer(ckpt, src, tar, 8, **kwargs)
    assert err.value.__traceback__ is not None and err.value.__cause__ is None  # one message, no chained error
    return str(err.value)


def test_bad_inputs_fail_with_one_message_naming_the_input_and_touch_nothing(tiny_pipe, images):
    src, tar = images
    wide = torch.zeros(1, 32, 64)
    with harness.fake_comfy(tiny_pipe) as ckpt:
        from comfy import model_management

        unet = ckpt.model.model.diffusion_model
        weights = {k: v.clone() for k, v in unet.state_dict().items()}
        message = _node_error(ckpt, src, tar, mask_word="zebra")
        assert message.startswith("FGAT: the mask word 'zebra' is not in the source prompt 'a photo of a cat'")
        assert "'source_prompt'" in message
        message = _node_error(ckpt, src, tar, mask=wide)
        assert "'mask' is 64x32 px, but the source image is 64x64 px" in message
        message = _node_error(ckpt, src, tar, settings={"window_start": 0.5, "window_end": 0.3})
        assert message == "FGAT: 'window_end' (0.3) must be greater than 'window_start' (0.5)"
        message = _node_error(ckpt, src, tar, source=_image(src).repeat(2, 1, 1, 1))
        assert "'source' is a batch of 2 images" in message
        assert model_management.loads == []  # every check ran before any model was loaded
        assert all(torch.equal(v, unet.state_dict()[k]) for k, v in weights.items())


def test_dit_families_are_refused_by_name(tiny_pipe, images):
    src, tar = images
    with harness.fake_comfy(tiny_pipe) as ckpt:
        from comfy import model_base, model_sampling

        flux = copy.copy(ckpt.model)
        flux.model = model_base.Flux(ckpt.model.model.model_config, unet_model=ckpt.model.model.diffusion_model)
        assert "the MODEL is a Flux.1 model (Flux)" in _node_error(ckpt, src, tar, model=flux)
        x0 = ckpt.model.clone()

        class ModelSamplingAdvanced(model_sampling.ModelSamplingDiscrete, model_sampling.X0):  # nodes_model_advanced
            pass

        x0.add_object_patch("model_sampling", ModelSamplingAdvanced())
        assert "samples with ModelSamplingDiscrete + X0" in _node_error(ckpt, src, tar, model=x0)


def test_interrupt_stops_within_one_unet_call_and_leaves_nothing_patched(tiny_pipe, images):
    src, tar = images
    with harness.fake_comfy(tiny_pipe) as ckpt:
        from comfy import model_management

        unet = ckpt.model.model.diffusion_model
        hooks, options = _hooks(unet), copy.deepcopy(ckpt.model.model_options)
        calls = []
        original = type(unet).forward

        def forward(self, x, *args, **kwargs):
            calls.append(x.shape[0])
            if len(calls) == 5:
                model_management.interrupt_current_processing()  # the Cancel button, during the 5th call
            return original(self, x, *args, **kwargs)

        type(unet).forward = forward
        try:
            with pytest.raises(model_management.InterruptProcessingException):
                _transfer(ckpt, src, tar, 20)
        finally:
            type(unet).forward = original
        assert len(calls) == 5  # the check before the next call stopped the run
        assert not model_management.processing_interrupted()  # the flag was consumed, as ComfyUI's samplers do
        assert _hooks(unet) == hooks and ckpt.model.model_options == options
        out = _transfer(ckpt, src, tar, 8)["result"]  # the next run works
        assert torch.isfinite(out[0]).all()


def test_same_seed_same_image_and_progress_bar_reaches_the_end(tiny_pipe, images):
    src, tar = images
    with harness.fake_comfy(tiny_pipe) as ckpt:
        from comfy import utils

        seen = []
        utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: seen.append((value, total)))
        first = _transfer(ckpt, src, tar, 8)
        values = [v for v, _ in seen]  # the first run's updates
        second = _transfer(ckpt, src, tar, 8)
    assert torch.equal(first["result"][0], second["result"][0])
    assert seen[-1] == (100, 100) and 50 in values and values == sorted(values)  # inversion, then sampling
    assert first["ui"]["text"][0].startswith("FGAT UNet calls: ")


def test_a_lora_patch_on_the_model_takes_effect(tiny_pipe, images):
    """A weight patch (what LoraLoader adds) on the MODEL changes the result, equal to the core on merged weights."""
    src, tar = images
    key = "diffusion_model.unet.conv_in.weight"
    diff = torch.randn(tiny_pipe.unet.conv_in.weight.shape, generator=torch.Generator().manual_seed(1)) * 0.2
    with harness.fake_comfy(tiny_pipe) as ckpt:
        lora = ckpt.model.clone()
        assert lora.add_patches({key: ("diff", (diff,))}, 1.0) == [key]
        patched = _transfer(ckpt, src, tar, 8, model=lora)["result"]
        plain = _transfer(ckpt, src, tar, 8)["result"]  # the unpatched MODEL after the patched clone
        latents = [ckpt.model.model.process_latent_in(ckpt.vae.encode(_image(img))) for img in (src, tar)]
        sigmas = ckpt.model.get_model_object("model_sampling").sigmas
    assert _relative(patched[2]["samples"], plain[2]["samples"]) > 1e-3
    merged = copy.deepcopy(tiny_pipe)
    with torch.no_grad():
        merged.unet.conv_in.weight += diff
    core = _core_like(merged, 1.0 / (1.0 + sigmas.double() ** 2))
    config = FGATConfig(steps=8, guidance_scale=7.5, seed=3, mask_word="cat")
    ref = core.transfer(src, tar, PROMPT, TARGET_PROMPT, config, latents={"source": latents[0], "target": latents[1]})
    assert _relative(patched[2]["samples"] * float(tiny_pipe.vae.config.scaling_factor), ref.latent) <= 1e-5


def test_null_text_inversion_runs_under_comfys_inference_mode(tiny_pipe, images):
    src, tar = images
    with harness.fake_comfy(tiny_pipe) as ckpt:
        assert all(w.is_inference() for w in ckpt.model.model.diffusion_model.parameters())
        null = _transfer(ckpt, src, tar, 8, settings={"inversion": "null-text", "null_text_steps": 2})["result"]
        ddim = _transfer(ckpt, src, tar, 8, settings={"inversion": "ddim"})["result"]
        assert all(w.is_inference() for w in ckpt.model.model.diffusion_model.parameters())
    assert _relative(null[2]["samples"], ddim[2]["samples"]) > 1e-4  # the optimised null text changed the result


def test_diagnostics_sheet_and_user_mask(tiny_pipe, images):
    from fgat_comfy.nodes import FGATDiagnostics

    src, tar = images
    mask = torch.zeros(1, 64, 64)
    mask[:, 16:48, 16:48] = 1.0
    with harness.fake_comfy(tiny_pipe) as ckpt:
        out = _transfer(ckpt, src, tar, 8, mask=mask)["result"]
        (sheet,) = harness.run_node(FGATDiagnostics().sheet, out[3])
    torch.testing.assert_close(out[1], mask)  # the user mask (on the 8x8 latent grid, block aligned) was used
    assert out[3].config.mask_source == "user"
    assert sheet.dim() == 4 and sheet.shape[0] == 1 and sheet.shape[-1] == 3 and sheet.shape[2] >= 5 * 64
