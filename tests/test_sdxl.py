"""SDXL through the core: dict conditioning, DIFT layer, determinism, inversion, v-prediction, matching memory.

The tiny SDXL model (fgat_cli.tiny, seeded, built in code) has SDXL's architecture at toy width: three
levels, `addition_embed_type="text_time"`, two text encoders whose penultimate hidden states are joined.
The real SDXL layout is checked on the meta device (shapes only, no weights, no download)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from fgat_cli.diffusers_host import DiffusersDenoiser
from fgat_core import FGATConfig, FGATInputs, run_fgat
from fgat_core.host import CONTEXT
from fgat_core.mask import word_token_indices
from fgat_core.matching import correspondence
from fgat_core.presets import paper_config
from fgat_core.schedule import v_from_eps

STEPS = 10


@pytest.fixture(scope="module")
def xl(tiny_pipe_xl):
    return tiny_pipe_xl


def _sinusoid(t: torch.Tensor, dim: int) -> torch.Tensor:
    """diffusers/sgm timestep embedding with flip_sin_to_cos (cos first), written out independently."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def _inputs(pipe, images, src_prompt="a photo of a cat", tar_prompt="a photo of a dog"):
    src, tar = pipe.prepare_images(*images)
    hw = (src.size[1], src.size[0])
    return FGATInputs(
        source_latent=pipe.encode_image(src), target_latent=pipe.encode_image(tar),
        source_cond=pipe.encode_prompt(src_prompt, hw), target_cond=pipe.encode_prompt(tar_prompt, hw),
        uncond=pipe.encode_prompt("", hw), mask_tokens=word_token_indices(src_prompt, "", pipe.tokens),
    )


# ----------------------------------------------------------------------------------- conditioning
def test_sdxl_prompt_is_a_dict_with_size_ids(xl, example_images):
    """Cross-attention context joins both encoders' hidden states; time_ids are the image's (h, w, 0, 0, h, w)."""
    src, _ = xl.prepare_images(*example_images)
    h, w = src.size[1], src.size[0]
    cond = xl.encode_prompt("a photo of a cat", (h, w))
    assert set(cond) == {CONTEXT, "text_embeds", "time_ids"}
    d1, d2 = xl.text_encoder.config.hidden_size, xl.text_encoder_2.config.hidden_size
    assert cond[CONTEXT].shape == (1, 77, d1 + d2) and d1 + d2 == xl.unet.config.cross_attention_dim
    assert cond["text_embeds"].shape == (1, xl.text_encoder_2.config.projection_dim)
    assert cond["time_ids"].tolist() == [[h, w, 0, 0, h, w]]


def test_sdxl_added_conditioning_reaches_the_unet(xl):
    """The UNet's added embedding receives [pooled text, sinusoid(time_ids)], and each part changes eps."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 4, 16, 16, generator=g)
    t = torch.tensor([501])
    cond = xl.encode_prompt("a red car", (128, 96))
    seen = {}
    handle = xl.unet.add_embedding.register_forward_pre_hook(lambda _m, args: seen.setdefault("in", args[0]))
    try:
        eps = xl.host.eps(x, t, cond)
    finally:
        handle.remove()
    dim = xl.unet.config.addition_time_embed_dim
    expected = torch.cat([cond["text_embeds"], _sinusoid(cond["time_ids"].flatten(), dim).reshape(1, -1)], dim=1)
    torch.testing.assert_close(seen["in"], expected, rtol=1e-5, atol=1e-5)

    other_size = {**cond, "time_ids": torch.tensor([[64.0, 64.0, 0, 0, 64.0, 64.0]])}
    other_pool = {**cond, "text_embeds": cond["text_embeds"] + 1.0}
    assert (xl.host.eps(x, t, other_size) - eps).abs().max() > 1e-4
    assert (xl.host.eps(x, t, other_pool) - eps).abs().max() > 1e-4


# ----------------------------------------------------------------------------------- DIFT layer
def _up1_expected(block_out_channels, latent_hw):
    """up_blocks[1] = ldm output_blocks[5]: the second-deepest level's width, after that level's upsampler.

    With L levels the deepest runs at latent / 2^(L-1); up_blocks[1] works at latent / 2^(L-2) and ends
    with an upsampler, so its output is at latent / 2^(L-3)."""
    levels = len(block_out_channels)
    ch = list(reversed(block_out_channels))[1]
    scale = 2 ** (levels - 3)
    return ch, latent_hw[0] // scale, latent_hw[1] // scale


def test_sdxl_dift_features_are_up_blocks_1(xl):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 4, 16, 24, generator=g)
    t = torch.tensor([261, 261])
    cond = {k: torch.cat([v, v]) for k, v in xl.encode_prompt("a cat", (128, 192)).items()}
    feats = xl.host.features(x, t, cond)
    ch, fh, fw = _up1_expected(xl.unet.config.block_out_channels, (16, 24))
    assert feats.shape == (2, ch, fh, fw) == (2, 64, 16, 24)  # 3 levels: full latent grid, like SDXL
    # the same tensor as a full forward's up_blocks[1] output (captured by an independent hook)
    seen = {}
    handle = xl.unet.up_blocks[1].register_forward_hook(lambda _m, _i, out: seen.setdefault("f", out))
    try:
        xl.host.eps(x, t, cond)
    finally:
        handle.remove()
    torch.testing.assert_close(feats, seen["f"], rtol=0, atol=0)


SDXL_BASE_UNET = dict(  # stabilityai/stable-diffusion-xl-base-1.0 unet/config.json (architecture fields)
    block_out_channels=(320, 640, 1280), layers_per_block=2, cross_attention_dim=2048,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), use_linear_projection=True,
    addition_embed_type="text_time", addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816,
    sample_size=128,
)
SD15_UNET = dict(  # runwayml/stable-diffusion-v1-5 unet/config.json (architecture fields)
    block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, cross_attention_dim=768, attention_head_dim=8,
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, sample_size=64,
)


@pytest.mark.parametrize(
    "config,image,expected",
    [(SDXL_BASE_UNET, 1024, (640, 128)), (SD15_UNET, 512, (1280, 32))],
    ids=["sdxl-1024: 640ch at 1/8", "sd15-512: 1280ch at 1/16"],
)
def test_real_architectures_dift_layer_on_meta_device(config, image, expected):
    """DiffusersDenoiser.features on the real SDXL / SD1.5 UNet layouts (meta tensors: shapes only)."""
    from diffusers import UNet2DConditionModel

    alphas = torch.linspace(0.99, 0.01, 1000)
    with torch.device("meta"):
        unet = UNet2DConditionModel(in_channels=4, out_channels=4, **config)
        host = DiffusersDenoiser(unet, alphas)
        lat = image // 8
        cond = {CONTEXT: torch.empty(1, 77, config["cross_attention_dim"])}
        if "addition_embed_type" in config:
            cond |= {"text_embeds": torch.empty(1, 1280), "time_ids": torch.empty(1, 6)}
        feats = host.features(torch.empty(1, 4, lat, lat), torch.tensor([261]), cond)
    ch, res = expected
    assert tuple(feats.shape) == (1, ch, res, res)
    assert (ch, res, res) == _up1_expected(config["block_out_channels"], (lat, lat))
    assert res * (8 if ch == 640 else 16) == image


# ----------------------------------------------------------------------------------- end to end
def test_sdxl_transfer_is_deterministic(xl, example_images):
    from fgat_cli.pipeline import tiny_pipeline

    cfg = paper_config(steps=STEPS)
    a = xl.transfer(*example_images, "a photo of a cat", "a photo of a dog", cfg)
    b = xl.transfer(*example_images, "a photo of a cat", "a photo of a dog", cfg)
    c = tiny_pipeline(seed=0, sdxl=True).transfer(*example_images, "a photo of a cat", "a photo of a dog", cfg)
    assert torch.equal(a.latent, b.latent) and torch.equal(a.latent, c.latent)
    assert a.image.size == example_images[0].size
    # the transfer did something: it differs from the reconstruction of the same run
    rec = xl.transfer(*example_images, "a photo of a cat", "a photo of a dog", cfg, transfer=False)
    assert (a.latent - rec.latent).abs().max() > 1e-3


def test_sdxl_direct_inversion_reconstructs_the_source(xl, example_images):
    """In float64 (so that float rounding cannot hide a wrong identity): direct inversion reconstructs the
    source latent; lambda = gamma = 1 and delta = 0 each give that reconstruction."""
    import copy

    host = DiffusersDenoiser(copy.deepcopy(xl.unet).double(), xl.host.alphas_cumprod)
    inp = _inputs(xl, example_images)
    f64 = lambda c: {k: v.double() for k, v in c.items()}  # noqa: E731
    inp = FGATInputs(inp.source_latent.double(), inp.target_latent.double(), f64(inp.source_cond),
                     f64(inp.target_cond), f64(inp.uncond), mask_tokens=inp.mask_tokens)
    cfg = paper_config(steps=STEPS)
    rec = run_fgat(host, inp, cfg, transfer=False)
    torch.testing.assert_close(rec.latent, inp.source_latent, rtol=0, atol=1e-10)
    full = run_fgat(host, inp, cfg)
    assert (full.latent - rec.latent).norm() / rec.latent.norm() > 1e-3  # the transfer changes the result
    for inert in (dict(lam=1.0, gamma=1.0), dict(delta=0.0)):
        out = run_fgat(host, inp, cfg.replace(**inert)).latent
        assert (out - rec.latent).norm() / rec.latent.norm() < 1e-10, inert


class _VFromEps(torch.nn.Module):
    """A v-prediction model made from an eps model: v = (eps - sqrt(1-a) x) / sqrt(a)."""

    def __init__(self, unet, alphas_cumprod):
        super().__init__()
        self.unet, self.ac = unet, alphas_cumprod

    def forward(self, x, t, **kw):
        out = self.unet(x, t, **kw)
        a = self.ac[t].float().view(-1, 1, 1, 1)
        out.sample = v_from_eps(x, out.sample, a)
        return out


def test_sdxl_v_prediction_is_converted_to_eps(xl, example_images):
    """The same network seen as a v-model gives the same FGAT result (eps conversion is exact up to fp)."""
    v_host = DiffusersDenoiser(_VFromEps(xl.unet, xl.host.alphas_cumprod), xl.host.alphas_cumprod, "v_prediction")
    v_host.unet.up_blocks = xl.unet.up_blocks  # features() hooks up_blocks[1]
    inp = _inputs(xl, example_images)
    cfg = paper_config(steps=STEPS, mask_source="none")
    ref = run_fgat(xl.host, inp, cfg)
    out = run_fgat(v_host, inp, cfg)
    torch.testing.assert_close(out.latent, ref.latent, rtol=1e-3, atol=1e-3)


def test_sdxl_null_text_inversion_under_inference_mode(xl, example_images):
    """Forge runs generation under torch.inference_mode(); null-text inversion must leave it for its Adam."""
    cfg = paper_config(steps=4, window_start=0.25, window_end=0.75, inversion="null-text", null_text_steps=2,
                     mask_source="none")
    inp = _inputs(xl, example_images)
    plain = run_fgat(xl.host, inp, cfg)
    with torch.inference_mode():
        inf_inp = _inputs(xl, example_images)
        assert inf_inp.source_latent.is_inference()
        inside = run_fgat(xl.host, inf_inp, cfg)
    torch.testing.assert_close(inside.latent, plain.latent, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------------- matching memory
SDXL_1024 = dict(channels=640, positions=128 * 128)  # DIFT features at 1/8 of a 1024² image
GIB = 1 << 30


def matching_extra_bytes(channels: int, positions: int, chunk: int, elem: int = 4) -> int:
    """Tensors `correspondence` allocates beyond its inputs: the two L2-normalised (P, C) copies, one
    chunk of the similarity matrix (chunk x Q) and its argmax, and the (P,) int64 result."""
    normalised = 2 * channels * positions * elem
    block = chunk * positions * elem + chunk * 8
    return normalised + block + positions * 8


def test_sdxl_1024_matching_memory_fits_in_1gb_with_the_default_chunk():
    p, c = SDXL_1024["positions"], SDXL_1024["channels"]
    full_matrix = p * p * 4
    assert full_matrix == GIB  # the unchunked similarity matrix alone would already take 1 GiB
    chunk = paper_config().match_chunk
    extra = matching_extra_bytes(c, p, chunk)
    assert extra <= GIB, f"{extra / 2**20:.0f} MiB"
    assert extra < 0.2 * GIB  # 80 MiB of normalised features + 64 MiB per chunk: ~144 MiB


class _LargestOutput(TorchDispatchMode):
    """Records the element count of every tensor an aten op returns (CPU allocations are invisible to
    tracemalloc, so the shapes themselves are checked)."""

    def __init__(self):
        super().__init__()
        self.sizes: list[tuple[str, int]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for o in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(o, torch.Tensor):
                self.sizes.append((str(func), o.numel()))
        return out


@pytest.mark.parametrize("chunk", [100, 256, 1000])
def test_correspondence_never_builds_more_than_one_chunk_of_similarities(chunk):
    g = torch.Generator().manual_seed(0)
    c, h, w = 640, 32, 32  # SDXL's channel count on a 1024-position grid
    fs, ft = torch.randn(c, h, w, generator=g), torch.randn(c, h, w, generator=g)
    with _LargestOutput() as rec:
        got = correspondence(fs, ft, chunk)
    p = h * w
    largest = max(n for _, n in rec.sizes)
    assert largest <= max(c * p, chunk * p), rec.sizes
    sims = [n for f, n in rec.sizes if "mm" in f]
    assert sims and max(sims) == min(chunk, p) * p
    # chunking changes nothing: the argmax equals the one over the full cosine matrix, written out here
    a = fs.flatten(1).t() / fs.flatten(1).t().norm(dim=1, keepdim=True)
    b = ft.flatten(1) / ft.flatten(1).norm(dim=0, keepdim=True)
    full = (a @ b).argmax(dim=1)
    assert torch.equal(got, full)


# ----------------------------------------------------------------------------------- SDXL in the WebUIs
WEBUIS = ["A1111", "Forge"]


def _harness(name):
    if name == "A1111":
        from fake_webui.harness import fake_webui

        return fake_webui
    from fake_forge.harness import fake_forge

    return fake_forge


@pytest.mark.parametrize("webui_name", WEBUIS)
def test_sdxl_webui_conditioning_is_the_core_dict(xl, webui_name):
    """A1111 (sgm conditioner + sd_models_xl) and Forge (its SDXL engine) encode prompts into the same
    crossattn + vector as the core pipeline's SDXL encoding at the same image size."""
    from types import SimpleNamespace

    from fgat_webui.detect import detect_backend

    prompts = ["a photo of a cat", "", "a red car with stripes"]
    with _harness(webui_name)(xl):
        backend = detect_backend()
        assert backend.name == webui_name
        with torch.no_grad():
            conds = backend.encode_prompts(SimpleNamespace(width=96, height=64), prompts)
    for prompt, cond in zip(prompts, conds, strict=True):
        ref = xl.encode_prompt(prompt, (64, 96))
        torch.testing.assert_close(cond[CONTEXT], ref[CONTEXT], rtol=0, atol=1e-6)
        dim = xl.unet.config.addition_time_embed_dim
        vector = torch.cat([ref["text_embeds"], _sinusoid(ref["time_ids"].flatten(), dim).reshape(1, -1)], dim=1)
        torch.testing.assert_close(cond["vector"], vector, rtol=0, atol=1e-6)


@pytest.mark.parametrize("webui_name", WEBUIS)
def test_sdxl_webui_path_matches_core_path(xl, example_images, webui_name):
    """Done-when 2: the tiny SDXL model through the script in each fake WebUI gives the core's latent."""
    from PIL import Image

    from fgat_cli.pipeline import FGATPipeline

    src, tar = (im.resize((64, 64), Image.BOX) for im in example_images)
    prompt, target_prompt, steps = "a photo of a cat", "a photo of a dog", 12
    with _harness(webui_name)(xl) as webui:
        args = webui.fgat_args({"enabled": True, "target_image": tar, "target_prompt": target_prompt,
                                "mask_word": "cat", "delta": 0.8})
        gen = webui.img2img(src, prompt, args, steps=steps, cfg_scale=7.5, seed=3, sampler_name="Euler a",
                            denoising_strength=0.6)
        alphas = webui.model_alphas_cumprod()
    core = FGATPipeline(xl.unet, xl.vae, xl.text_encoder, xl.tokenizer, alphas_cumprod=alphas,
                        text_encoder_2=xl.text_encoder_2, tokenizer_2=xl.tokenizer_2)
    config = FGATConfig(steps=steps, guidance_scale=7.5, seed=gen.p.all_seeds[0], mask_word="cat", delta=0.8)
    out = core.transfer(src, tar, prompt, target_prompt, config, latents={"source": gen.init_latents[0]})
    rel = lambda a, b: float((a.double() - b.double()).norm() / b.double().norm())  # noqa: E731
    assert rel(gen.latent, out.latent) <= 1e-5
    recon = core.transfer(src, tar, prompt, target_prompt, config, latents={"source": gen.init_latents[0]},
                          transfer=False)
    assert rel(out.latent, recon.latent) > 1e-3


@pytest.mark.parametrize("model", ["sd1", "sdxl"])
def test_a1111_medvram_runs_fgat_with_the_modules_it_moves(tiny_pipe, xl, example_images, model):
    """--medvram / --medvram-sdxl keep one of text encoder, VAE and UNet on the GPU at a time (modules/lowvram.py):
    FGAT encodes its prompts right before the target image, so the VAE must be moved back through the WebUI's
    own `encode` wrapper. In the fake a layer of an offloaded module raises the device-mismatch error when it runs;
    the result equals the same generation without medvram."""
    from fake_webui.harness import fake_webui
    from PIL import Image

    src, tar = (im.resize((64, 64), Image.BOX) for im in example_images)
    with fake_webui(xl if model == "sdxl" else tiny_pipe) as webui:
        from modules import lowvram

        args = webui.fgat_args({"enabled": True, "target_image": tar, "target_prompt": "a photo of a dog"})
        reference = webui.img2img(src, "a photo of a cat", args, steps=8, seed=3)
        lowvram.setup_for_low_vram(webui.sd_model, use_medvram=True)
        try:
            assert lowvram.module_in_gpu is None
            gen = webui.img2img(src, "a photo of a cat", args, steps=8, seed=3)
        finally:
            lowvram.undo(webui.sd_model)
    assert torch.equal(gen.latent, reference.latent)
