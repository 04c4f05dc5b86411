"""The A1111 host (`fgat_webui.ldm_host.LDMDenoiser`) over the WebUI's ldm-shaped model: eps (eps and v
models), DIFT features and attention layers against the diffusers host on the same networks, and the
attention mask under every attention kernel the WebUI can switch to (SDP, sub-quadratic, plain)."""

import pytest
import torch
from fake_webui.harness import fake_webui

from fgat_cli.diffusers_host import DiffusersDenoiser
from fgat_core.mask import AttentionRecorder, downsampled_size, upsample_map
from fgat_webui.backend import A1111Backend
from fgat_webui.ldm_host import LDMDenoiser

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def webui(tiny_pipe):
    with fake_webui(tiny_pipe) as w:
        yield w


@pytest.fixture(scope="module")
def batch(tiny_pipe):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 4, 8, 8, generator=g)
    ctx = torch.cat([tiny_pipe.encode_prompt("a photo of a cat")["context"], tiny_pipe.encode_prompt("")["context"]])
    t = torch.tensor([601, 601])
    return x, t, {"context": ctx}


def _unet_hooks(webui) -> int:
    unet = webui.sd_model.model.diffusion_model
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in unet.modules())


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_ldm_host_equals_the_diffusers_host(webui, tiny_pipe, batch, monkeypatch, prediction):
    monkeypatch.setattr(webui.sd_model, "parameterization", prediction)
    ldm = LDMDenoiser(webui.sd_model)
    ref = DiffusersDenoiser(tiny_pipe.unet, webui.sd_model.alphas_cumprod,
                            "epsilon" if prediction == "eps" else "v_prediction")
    x, t, cond = batch
    with torch.no_grad():
        assert torch.equal(ldm.eps(x, t, cond), ref.eps(x, t, cond))
        if prediction == "eps":
            feats = ldm.features(x, t, cond)
            assert torch.equal(feats, ref.features(x, t, cond).float())
            # output_blocks[5] = up_blocks[1]: its channels and a 1/2-latent grid for the tiny 4-level UNet
            assert feats.shape == (2, tiny_pipe.unet.config.block_out_channels[-2], 4, 4)
    assert [a.to_q for a in ldm.attention_layers()] == [a.to_q for a in ref.attention_layers()]
    assert _unet_hooks(webui) == 0  # the features hook is gone


def test_ldm_host_checks_interrupt_before_every_unet_call(webui, batch):
    from fgat_core.engine import FGATInterrupted

    calls = []

    def check():
        calls.append(1)
        if len(calls) == 2:
            raise FGATInterrupted("interrupted")

    host = LDMDenoiser(webui.sd_model, interrupt_check=check)
    x, t, cond = batch
    with torch.no_grad():
        host.eps(x, t, cond)
        with pytest.raises(FGATInterrupted):
            host.features(x, t, cond)
    assert _unet_hooks(webui) == 0


def _recorded_map(host, x, t, cond, tokens):
    recorder = AttentionRecorder(host.attention_layers(), tokens, (8, 8), "all")
    with torch.no_grad(), recorder, recorder.recording([0]):
        eps = host.eps(x, t, cond)
    return recorder.mean_map(), eps


def test_attention_mask_is_the_same_under_every_attention_kernel(webui, batch, monkeypatch):
    from diffusers.models.attention_processor import Attention
    from modules import sd_hijack

    x, t, cond = batch
    tokens = [5]  # "cat" in "a photo of a cat" (BOS = 0)
    host = LDMDenoiser(webui.sd_model)
    unet = webui.sd_model.model.diffusion_model.unet
    results = {}
    try:
        for kernel in ("sdp", "sub-quadratic", "none"):
            sd_hijack.model_hijack.apply_optimizations(kernel)
            kinds = {type(p) for p in unet.attn_processors.values()}
            results[kernel] = (_recorded_map(host, x, t, cond, tokens), kinds)

        # the plain kernel forms the probabilities itself: record them where it does, independently of the hooks
        probs = []
        real_scores = Attention.get_attention_scores

        def keep_scores(self, query, key, attention_mask=None):
            out = real_scores(self, query, key, attention_mask)
            if key.shape[1] == 77:  # cross-attention
                probs.append((self.heads, out))
            return out

        monkeypatch.setattr(Attention, "get_attention_scores", keep_scores)
        with torch.no_grad():
            host.eps(x, t, cond)
    finally:
        sd_hijack.model_hijack.apply_optimizations("sdp")

    kernels = [k for _, k in results.values()]
    assert len({frozenset(k) for k in kernels}) == 3  # three different implementations really ran
    (sdp_map, sdp_eps), _ = results["sdp"]
    for name in ("sub-quadratic", "none"):
        (m, eps), _ = results[name]
        assert torch.allclose(m, sdp_map, atol=1e-6), name
        assert torch.allclose(eps, sdp_eps, atol=1e-5), name

    grids = [downsampled_size((8, 8), f) for f in (1, 2, 4, 8, 16)]
    per_grid: dict = {}
    for heads, p in probs:
        b_h, nq, nk = p.shape
        token_map = p.reshape(b_h // heads, heads, nq, nk)[0, :, :, tokens].sum(-1).mean(0)  # cond row, mean heads
        grid = next(g for g in grids if g[0] * g[1] == nq)
        per_grid.setdefault(grid, []).append(token_map.reshape(grid))
    expected = torch.stack([upsample_map(torch.stack(v).mean(0), (8, 8)) for _, v in sorted(per_grid.items())]).mean(0)
    assert torch.allclose(sdp_map, expected, atol=1e-6)
    assert sdp_map.max() > sdp_map.min()  # a real map, not a constant


def test_backend_encodes_like_the_webui(webui, tiny_pipe, example_images):
    backend = A1111Backend()
    with torch.no_grad():
        conds = backend.encode_prompts(None, ["a photo of a cat", "", "a dog"])
        for prompt, cond in zip(["a photo of a cat", "", "a dog"], conds, strict=True):
            assert torch.equal(cond["context"], tiny_pipe.encode_prompt(prompt)["context"])
        src = example_images[0].resize((64, 64))
        assert torch.equal(backend.encode_image(None, src), tiny_pipe.encode_image(src))
    assert backend.word_token_ids(None, "cat") == tiny_pipe.tokenizer("cat", add_special_tokens=False).input_ids
    ids = backend.prompt_token_ids(None, "a photo of a cat")
    assert len(ids) == 77 and ids[0] == tiny_pipe.tokenizer.bos_token_id
