"""Offline model loading: single-file checkpoints in the original layout (SD 1.x, SD 2.x, SDXL), diffusers
folders, hub ids offline, shipped configs, and the errors for files that are not what FGAT needs."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from fgat_cli.diffusers_host import DiffusersDenoiser
from fgat_cli.loading import (
    CONFIG_ROOT,
    alphas_cumprod_from_config,
    clip_tokenizer,
    detect_family,
    load_pipeline,
    pick_device,
    read_safetensors_shapes,
    unet_predicts_v,
)
from fgat_cli.pipeline import tiny_pipeline
from fgat_core import FGATConfig
from fgat_core.schedule import scaled_linear_alphas_cumprod
from tests.ldm_layout import clip_to_ldm, open_clip_to_ldm, unet_to_ldm, vae_to_ldm

SD1_CLIP = "cond_stage_model.transformer."
SD2_CLIP = "cond_stage_model.model."
XL_CLIP = "conditioner.embedders.0.transformer."
XL_OPENCLIP = "conditioner.embedders.1.model."
SCHED = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "num_train_timesteps": 1000}


# ---------------------------------------------------------------------------------------------- fixtures
def _sd(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in module.state_dict().items()}


def _write_configs(pipe, folder: Path, prediction_type: str = "epsilon") -> Path:
    """A config folder for the tiny models, laid out like fgat_cli/model_configs/<family>/."""
    pipe.unet.save_config(folder / "unet")
    pipe.vae.save_config(folder / "vae")
    pipe.text_encoder.config.save_pretrained(folder / "text_encoder")
    pipe.tokenizer.save_pretrained(folder / "tokenizer")
    if pipe.text_encoder_2 is not None:
        pipe.text_encoder_2.config.save_pretrained(folder / "text_encoder_2")
        pipe.tokenizer_2.save_pretrained(folder / "tokenizer_2")
    _write_scheduler(folder, prediction_type)
    return folder


def _write_scheduler(folder: Path, prediction_type: str) -> None:
    (folder / "scheduler").mkdir(parents=True, exist_ok=True)
    text = json.dumps({**SCHED, "prediction_type": prediction_type})
    (folder / "scheduler" / "scheduler_config.json").write_text(text)


def _ldm_state_dict(pipe, text: str = "sd1") -> dict[str, torch.Tensor]:
    sd = {**unet_to_ldm(_sd(pipe.unet), pipe.unet.config), **vae_to_ldm(_sd(pipe.vae), pipe.vae.config)}
    if text == "sd1":
        sd.update(clip_to_ldm(_sd(pipe.text_encoder), SD1_CLIP))
    elif text == "sd2":  # OpenCLIP ViT-H layout: one block more than the encoder reads, plus a projection
        sd.update(open_clip_to_ldm(_sd(pipe.text_encoder), SD2_CLIP, extra_blocks=1))
        width = pipe.text_encoder.config.hidden_size
        sd[SD2_CLIP + "text_projection"] = torch.randn(width, width)
    else:
        sd.update(clip_to_ldm(_sd(pipe.text_encoder), XL_CLIP))
        sd.update(open_clip_to_ldm(_sd(pipe.text_encoder_2), XL_OPENCLIP))
    return sd


@pytest.fixture(scope="module")
def sd1_pipe():
    return tiny_pipeline(seed=0)


@pytest.fixture(scope="module")
def sdxl_pipe():
    return tiny_pipeline(seed=0, sdxl=True)


@pytest.fixture(scope="module")
def sd1_file(sd1_pipe, tmp_path_factory):
    d = tmp_path_factory.mktemp("sd1")
    save_file(_ldm_state_dict(sd1_pipe, "sd1"), str(d / "tiny-sd1.safetensors"))
    return d / "tiny-sd1.safetensors", _write_configs(sd1_pipe, d / "configs")


def _assert_same_weights(a, b, what: str) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys(), what
    for k in sa:
        assert torch.equal(sa[k].float(), sb[k].float()), f"{what}: {k} differs"


@pytest.fixture(scope="module")
def small_images():
    """64 x 64 source and target (the tiny models' size multiple): a 8 x 8 latent keeps the runs fast."""
    from PIL import Image

    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:64, 0:64]
    src = np.stack([xx * 4, yy * 4, (xx + yy) * 2], -1) % 256
    tar = np.stack([255 - yy * 4, (xx * 6) % 256, np.full_like(xx, 90)], -1)
    noisy = [(a + rng.integers(0, 30, a.shape)).clip(0, 255).astype(np.uint8) for a in (src, tar)]
    return Image.fromarray(noisy[0]), Image.fromarray(noisy[1])


def _assert_same_function(pipe, ref, image) -> None:
    """Same prompt embeddings, image latents and guided noise prediction as the original models."""
    with torch.no_grad():
        for a, b in zip(pipe.encode_prompt("a photo of a cat", (64, 64)).values(),
                        ref.encode_prompt("a photo of a cat", (64, 64)).values(), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
        z = pipe.encode_image(image)
        torch.testing.assert_close(z, ref.encode_image(image), rtol=0, atol=1e-6)
        cond = pipe.encode_prompt("a photo of a cat", (64, 64))
        t = torch.tensor([501])
        ref_host = DiffusersDenoiser(ref.unet, ref.host.alphas_cumprod, pipe.prediction_type)
        torch.testing.assert_close(pipe.host.eps(z, t, cond), ref_host.eps(z, t, cond), rtol=0, atol=1e-6)


def _transfer_latent(pipe, images, **cfg):
    src, tar = images
    out = pipe.transfer(src, tar, "a photo of a cat", "a photo of a dog", FGATConfig(steps=4, **cfg))
    return out.latent


# ---------------------------------------------------------------------------------------------- round trips
def test_sd1_single_file_loads_the_same_weights_and_runs(sd1_pipe, sd1_file, small_images):
    path, conf = sd1_file
    pipe = load_pipeline(str(path), "cpu", "fp32", config_dir=conf)
    assert pipe.name == "tiny-sd1" and not pipe.is_sdxl and pipe.prediction_type == "epsilon"
    _assert_same_weights(pipe.unet, sd1_pipe.unet, "unet")
    _assert_same_weights(pipe.vae, sd1_pipe.vae, "vae")
    _assert_same_weights(pipe.text_encoder, sd1_pipe.text_encoder, "text encoder")
    assert torch.equal(pipe.host.alphas_cumprod, sd1_pipe.host.alphas_cumprod)
    _assert_same_function(pipe, sd1_pipe, small_images[0])
    assert torch.isfinite(_transfer_latent(pipe, small_images)).all()


@pytest.fixture(scope="module")
def sdxl_file(sdxl_pipe, tmp_path_factory):
    d = tmp_path_factory.mktemp("sdxl")
    save_file(_ldm_state_dict(sdxl_pipe, "sdxl"), str(d / "tiny-xl.safetensors"))
    return d / "tiny-xl.safetensors", _write_configs(sdxl_pipe, d / "configs")


def test_sdxl_single_file_loads_both_text_encoders_and_runs(sdxl_pipe, sdxl_file, small_images):
    path, conf = sdxl_file
    assert detect_family(read_safetensors_shapes(path)) == "sdxl"
    pipe = load_pipeline(str(path), "cpu", "fp32", config_dir=conf)
    assert pipe.is_sdxl
    _assert_same_weights(pipe.unet, sdxl_pipe.unet, "unet")
    _assert_same_weights(pipe.vae, sdxl_pipe.vae, "vae")
    _assert_same_weights(pipe.text_encoder, sdxl_pipe.text_encoder, "text encoder")
    _assert_same_weights(pipe.text_encoder_2, sdxl_pipe.text_encoder_2, "text encoder 2")
    _assert_same_function(pipe, sdxl_pipe, small_images[0])
    assert torch.isfinite(_transfer_latent(pipe, small_images)).all()


def test_sdxl_vae_runs_in_fp32_inside_an_fp16_pipeline(sdxl_pipe, sdxl_file, sd1_file, small_images):
    from fgat_cli.loading import UpcastVAE

    path, conf = sdxl_file
    pipe = load_pipeline(str(path), "cpu", "fp16", config_dir=conf)
    assert isinstance(pipe.vae, UpcastVAE) and pipe.vae.config.force_upcast
    assert {p.dtype for p in pipe.vae.parameters()} == {torch.float32}
    assert {p.dtype for p in pipe.unet.parameters()} == {torch.float16}
    src = small_images[0]
    z = pipe.encode_image(src)
    assert z.dtype == torch.float16
    with torch.no_grad():  # the reference: the original fp32 VAE on the same image
        want = sdxl_pipe.encode_image(src)
    torch.testing.assert_close(z.float(), want, rtol=0, atol=2e-3)
    assert np.asarray(pipe.decode(z)).shape == (64, 64, 3)
    # SD 1.x VAEs stay in the pipeline's dtype
    sd1 = load_pipeline(str(sd1_file[0]), "cpu", "fp16", config_dir=sd1_file[1])
    assert not isinstance(sd1.vae, UpcastVAE)
    assert {p.dtype for p in sd1.vae.parameters()} == {torch.float16}


def test_sd2_single_file_reads_openclip_and_v_prediction_from_sibling_yaml(sd1_pipe, tmp_path):
    path = tmp_path / "tiny-sd2.safetensors"
    sd = _ldm_state_dict(sd1_pipe, "sd2")
    save_file(sd, str(path))
    assert detect_family(read_safetensors_shapes(path)) == "sd2"
    # the 24th block of the file (here: the 3rd) is not part of the encoder, as in SD 2.x
    assert f"{SD2_CLIP}transformer.resblocks.2.ln_1.weight" in sd
    path.with_suffix(".yaml").write_text("model:\n  params:\n    parameterization: \"v\"\n")
    pipe = load_pipeline(str(path), "cpu", "fp32", config_dir=_write_configs(sd1_pipe, tmp_path / "conf"))
    assert pipe.prediction_type == "v_prediction" and pipe.host.prediction_type == "v_prediction"
    _assert_same_weights(pipe.text_encoder, sd1_pipe.text_encoder, "OpenCLIP text encoder")
    _assert_same_weights(pipe.unet, sd1_pipe.unet, "unet")
    # an explicit override wins over the yaml
    pipe = load_pipeline(str(path), "cpu", "fp32", config_dir=tmp_path / "conf", prediction_type="epsilon")
    assert pipe.prediction_type == "epsilon"


def test_sdxl_v_prediction_markers_and_sgm_yaml(sdxl_pipe, tmp_path):
    """v-prediction SDXL finetunes: the `v_pred` marker key (ComfyUI / Forge) wins even beside a yaml, an sgm-style
    yaml (Stability's: the denoiser's scaling is a VScaling) says v, and the `ztsnr` marker puts the schedule to
    zero terminal SNR, as diffusers' DDIMScheduler(rescale_betas_zero_snr=True) computes it (the oracle)."""
    from diffusers import DDIMScheduler

    conf = _write_configs(sdxl_pipe, tmp_path / "conf")
    sd = _ldm_state_dict(sdxl_pipe, "sdxl")
    marked = tmp_path / "vpred.safetensors"
    save_file({**sd, "v_pred": torch.tensor([]), "ztsnr": torch.tensor([])}, str(marked))
    marked.with_suffix(".yaml").write_text("model:\n  params:\n    parameterization: eps\n")
    pipe = load_pipeline(str(marked), "cpu", "fp32", config_dir=conf)
    assert pipe.prediction_type == "v_prediction"
    ddim = DDIMScheduler(**SCHED, rescale_betas_zero_snr=True)
    torch.testing.assert_close(pipe.host.alphas_cumprod, ddim.alphas_cumprod.double(), rtol=1e-5, atol=1e-6)
    assert pipe.host.alphas_cumprod[-1] < 1e-12 and pipe.host.alphas_cumprod[981] > 0  # DDIM's top step stays finite
    plain = tmp_path / "sgm.safetensors"
    save_file(sd, str(plain))
    plain.with_suffix(".yaml").write_text(
        "model:\n  target: sgm.models.diffusion.DiffusionEngine\n  params:\n    denoiser_config:\n"
        "      target: sgm.modules.diffusionmodules.denoiser.DiscreteDenoiser\n      params:\n"
        "        scaling_config:\n          target: sgm.modules.diffusionmodules.denoiser_scaling.VScaling\n")
    pipe = load_pipeline(str(plain), "cpu", "fp32", config_dir=conf)
    assert pipe.prediction_type == "v_prediction"
    torch.testing.assert_close(pipe.host.alphas_cumprod, scaled_linear_alphas_cumprod())  # no marker: the SD schedule


def test_a_diffusers_folder_with_zero_terminal_snr_keeps_it(sdxl_pipe, tmp_path):
    from diffusers import DDIMScheduler

    folder = _diffusers_folder(sdxl_pipe, tmp_path / "ztsnr")
    config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps({**config, "rescale_betas_zero_snr": True}))
    pipe = load_pipeline(str(folder), "cpu", "fp32")
    ddim = DDIMScheduler(**SCHED, rescale_betas_zero_snr=True)
    torch.testing.assert_close(pipe.host.alphas_cumprod, ddim.alphas_cumprod.double(), rtol=1e-5, atol=1e-6)


def test_prediction_type_from_the_environment(sd1_file, monkeypatch):
    monkeypatch.setenv("FGAT_PREDICTION_TYPE", "v")
    pipe = load_pipeline(str(sd1_file[0]), "cpu", "fp32", config_dir=sd1_file[1])
    assert pipe.prediction_type == "v_prediction"
    monkeypatch.setenv("FGAT_PREDICTION_TYPE", "x0")
    with pytest.raises(ValueError, match="unknown prediction type 'x0': use epsilon or v_prediction"):
        load_pipeline(str(sd1_file[0]), "cpu", "fp32", config_dir=sd1_file[1])


def test_sd2_without_yaml_asks_the_unet(sd1_pipe, tmp_path, monkeypatch):
    import fgat_cli.loading as loading

    path = tmp_path / "tiny-sd2.safetensors"
    save_file(_ldm_state_dict(sd1_pipe, "sd2"), str(path))
    conf = _write_configs(sd1_pipe, tmp_path / "conf")
    calls: list = []
    answer = {"v": True}
    monkeypatch.setattr(loading, "unet_predicts_v", lambda unet: calls.append(unet) or answer["v"])
    for v, expected in ((True, "v_prediction"), (False, "epsilon")):
        answer["v"] = v
        calls.clear()
        assert load_pipeline(str(path), "cpu", "fp32", config_dir=conf).prediction_type == expected
        assert len(calls) == 1
    # SD 1.x files never run the check: epsilon unless told otherwise
    sd1 = tmp_path / "tiny-sd1.safetensors"
    save_file(_ldm_state_dict(sd1_pipe, "sd1"), str(sd1))
    calls.clear()
    assert load_pipeline(str(sd1), "cpu", "fp32", config_dir=conf).prediction_type == "epsilon"
    assert calls == []


class _FakeUNet(torch.nn.Module):
    """Returns x + shift, like a model whose prediction at t=999 lies `shift` away from its input."""

    def __init__(self, shift: float) -> None:
        super().__init__()
        self.shift = shift
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.config = type("C", (), {"in_channels": 4, "cross_attention_dim": 8})()
        self.seen = None

    def forward(self, x, t, encoder_hidden_states):
        self.seen = (x.clone(), t.clone(), encoder_hidden_states.clone())
        return type("O", (), {"sample": x + self.shift + 0 * self.w})()


def test_v_prediction_check_follows_the_webui_rule():
    eps_like, v_like = _FakeUNet(0.05), _FakeUNet(-1.5)
    assert unet_predicts_v(eps_like) is False
    assert unet_predicts_v(v_like) is True
    assert unet_predicts_v(_FakeUNet(-0.99)) is False
    x, t, ctx = v_like.seen
    assert x.shape == (1, 4, 8, 8) and torch.all(x == 0.5)
    assert t.tolist() == [999] and ctx.shape == (1, 2, 8) and torch.all(ctx == 0.5)


def _diffusers_folder(pipe, folder: Path, prediction_type: str = "v_prediction") -> Path:
    for name in ("unet", "vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2"):
        getattr(pipe, name).save_pretrained(folder / name)
    _write_scheduler(folder, prediction_type)
    return folder


def test_diffusers_folder_loads(sdxl_pipe, tmp_path, small_images):
    folder = _diffusers_folder(sdxl_pipe, tmp_path / "xl-diffusers")
    pipe = load_pipeline(str(folder), "cpu", "fp32")
    assert pipe.is_sdxl and pipe.prediction_type == "v_prediction" and pipe.name == "xl-diffusers"
    _assert_same_weights(pipe.unet, sdxl_pipe.unet, "unet")
    _assert_same_weights(pipe.text_encoder_2, sdxl_pipe.text_encoder_2, "text encoder 2")
    _assert_same_function(pipe, sdxl_pipe, small_images[0])


def test_dtype_argument_is_applied(sd1_file):
    path, conf = sd1_file
    pipe = load_pipeline(str(path), "cpu", "bf16", config_dir=conf)
    for m in (pipe.unet, pipe.vae, pipe.text_encoder):
        assert {p.dtype for p in m.parameters()} == {torch.bfloat16}


# ---------------------------------------------------------------------------------------------- errors
def _error(model, **kw) -> str:
    with pytest.raises(ValueError) as e:
        load_pipeline(str(model), "cpu", "fp32", **kw)
    return str(e.value)


def test_pickles_are_refused_without_unpickling(tmp_path):
    for suffix in (".ckpt", ".pt", ".bin"):
        f = tmp_path / f"model{suffix}"
        f.write_bytes(b"\x80\x04this would be a pickle")
        msg = _error(f)
        assert f"model{suffix}" in msg and "pickle" in msg and ".safetensors" in msg


def test_corrupt_files_get_a_clear_error(sd1_file, tmp_path):
    rnd = tmp_path / "random.safetensors"
    rnd.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    msg = _error(rnd)
    assert "random.safetensors" in msg and "not a readable .safetensors file" in msg

    data = sd1_file[0].read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    msg = _error(cut, config_dir=sd1_file[1])
    assert "cut.safetensors" in msg and ("truncated" in msg or "corrupt" in msg)

    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    assert "empty.safetensors" in _error(empty)


@pytest.mark.parametrize(
    "tensors, expected",
    [
        ({"fc.weight": torch.zeros(2, 2)}, "not a Stable Diffusion checkpoint"),
        ({"lora_unet_down_blocks_0.lora_down.weight": torch.zeros(2, 2)}, "a LoRA"),
        ({"encoder.down.0.block.0.conv1.weight": torch.zeros(2, 2)}, "a VAE on its own"),
        ({"model.diffusion_model.out.2.weight": torch.zeros(2)}, "no text encoder"),
        ({"model.diffusion_model.out.2.weight": torch.zeros(2),
          "conditioner.embedders.0.model.ln_final.weight": torch.zeros(2)}, "refiner"),
        ({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(320, 9, 3, 3),
          SD1_CLIP + "text_model.final_layer_norm.weight": torch.zeros(2)}, "9 input channels"),
        ({"model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight": torch.zeros(2)}, "an SD3 (MMDiT) model"),
        ({"model.diffusion_model.double_blocks.0.img_attn.qkv.weight": torch.zeros(2)}, "a Flux model"),
        ({"model.diffusion_model.out.2.weight": torch.zeros(2), XL_CLIP + "text_model.final_layer_norm.weight":
          torch.zeros(2), XL_OPENCLIP + "ln_final.weight": torch.zeros(2), "edm_vpred.sigma_max": torch.zeros(1)},
         "an EDM-schedule model (CosXL"),
    ],
)
def test_files_that_are_not_sd_checkpoints_are_named(tmp_path, tensors, expected):
    f = tmp_path / "other.safetensors"
    save_file(tensors, str(f))
    msg = _error(f)
    assert "other.safetensors" in msg and expected in msg


def test_weights_that_do_not_fit_the_architecture_are_reported(sd1_pipe, tmp_path):
    sd = _ldm_state_dict(sd1_pipe, "sd1")
    del sd["model.diffusion_model.out.2.bias"]
    sd["model.diffusion_model.input_blocks.0.0.bias"] = torch.zeros(7)
    f = tmp_path / "broken.safetensors"
    save_file(sd, str(f))
    msg = _error(f, config_dir=_write_configs(sd1_pipe, tmp_path / "conf"))
    assert "broken.safetensors" in msg and "UNet" in msg and "do not fit" in msg
    assert "conv_out.bias" in msg and "conv_in.bias" in msg and "(7,)" in msg


def test_missing_paths_bad_options_and_offline_hub_ids(tmp_path, monkeypatch):
    assert "model not found" in _error(tmp_path / "nope.safetensors")
    assert "not a diffusers model folder" in _error(tmp_path)
    (tmp_path / "m.onnx").write_bytes(b"x")
    assert "unsupported model file type" in _error(tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="fp16, bf16, fp32"):
        pick_device("cpu", "int8")
    with pytest.raises(ValueError, match="prediction type"):
        load_pipeline(str(tmp_path / "m.onnx"), "cpu", "fp32", prediction_type="x0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    msg = _error("fgat-tests/no-such-model-anywhere")
    assert "offline" in msg and "local diffusers folder" in msg and ".safetensors" in msg
    assert time.perf_counter() - t0 < 30  # answered from the cache lookup, no network wait


def test_default_device_is_cpu_fp32_without_cuda():
    if torch.cuda.is_available():
        assert pick_device(None, None) == (torch.device("cuda"), torch.float16)
    else:
        assert pick_device(None, None) == (torch.device("cpu"), torch.float32)
        with pytest.raises(ValueError, match="CUDA is not available"):
            pick_device("cuda", None)
    assert pick_device("cpu", "fp16") == (torch.device("cpu"), torch.float16)


# ---------------------------------------------------------------------------------------------- shipped files
# Published parameter counts of the official models (diffusers' own docs, model cards).
PUBLISHED = {
    "sd15": {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480},
    "sd2": {"unet": 865_910_724, "vae": 83_653_863, "text_encoder": 340_387_840},
    "sd2-v": {"unet": 865_910_724, "vae": 83_653_863, "text_encoder": 340_387_840},
    "sdxl": {"unet": 2_567_463_684, "vae": 83_653_863, "text_encoder": 123_060_480, "text_encoder_2": 694_659_840},
}


@pytest.mark.parametrize("family", sorted(PUBLISHED))
def test_shipped_configs_build_the_published_architectures(family):
    import fgat_cli.loading as loading

    conf = CONFIG_ROOT / family
    counts = {
        "unet": loading._build(loading._diffusers_cls("UNet2DConditionModel"), conf / "unet"),
        "vae": loading._build(loading._diffusers_cls("AutoencoderKL"), conf / "vae"),
        "text_encoder": loading._build_text_encoder(conf / "text_encoder"),
    }
    if family == "sdxl":
        counts["text_encoder_2"] = loading._build_text_encoder(conf / "text_encoder_2", projection=True)
    got = {k: sum(p.numel() for p in m.parameters()) for k, m in counts.items()}
    assert got == PUBLISHED[family]
    # the full-size UNet in the ldm layout converts back to exactly its own keys and shapes
    unet = counts["unet"]
    ldm = unet_to_ldm(unet.state_dict(), unet.config)
    if family == "sd15":
        assert len(ldm) == 686  # tensors under model.diffusion_model. in SD 1.5's own checkpoint
    back = loading._convert_unet(ldm, unet.config)
    assert {k: tuple(v.shape) for k, v in back.items()} == {k: tuple(v.shape) for k, v in unet.state_dict().items()}
    sched = json.loads((conf / "scheduler" / "scheduler_config.json").read_text())
    assert sched["prediction_type"] == ("v_prediction" if family == "sd2-v" else "epsilon")


def test_shipped_configs_stay_small():
    total = sum(f.stat().st_size for f in CONFIG_ROOT.rglob("*") if f.is_file())
    assert total < 3 * 1024 * 1024


def test_shipped_clip_tokenizer_gives_the_official_token_ids():
    tok = clip_tokenizer()
    assert len(tok) == 49408
    # ids of openai/clip-vit-large-patch14's tokenizer for this text (published in many SD examples)
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    padded = clip_tokenizer("!")("a cat", padding="max_length", max_length=77).input_ids
    assert padded[:4] == [49406, 320, 2368, 49407] and set(padded[4:]) == {0}  # OpenCLIP pads with "!" (id 0)


def test_alphas_cumprod_from_config_matches_the_formula():
    n = 1000
    b = np.linspace(0.00085**0.5, 0.012**0.5, n) ** 2
    want = np.cumprod(1 - b)
    np.testing.assert_allclose(alphas_cumprod_from_config(SCHED).numpy(), want, rtol=1e-12)
    lin = alphas_cumprod_from_config({"beta_schedule": "linear", "beta_start": 1e-4, "beta_end": 2e-2})
    np.testing.assert_allclose(lin.numpy(), np.cumprod(1 - np.linspace(1e-4, 2e-2, n)), rtol=1e-12)
    with pytest.raises(ValueError, match="beta_schedule"):
        alphas_cumprod_from_config({"beta_schedule": "squaredcos_cap_v2"})


def test_no_network_variable_leaks(monkeypatch):
    # the loader decides "offline" from the environment at call time, not from import-time constants
    from fgat_cli.loading import hub_offline

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.delenv("DIFFUSERS_OFFLINE", raising=False)
    assert hub_offline() is False
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_offline() is True
    assert os.environ["HF_HUB_OFFLINE"] == "1"
