"""Semantic matching: known translations, chunking, gather, DIFT features from up_blocks[1]."""

import torch

from fgat_core.host import CONTEXT
from fgat_core.matching import correspondence, dift_features, dift_noise, gather_matched


def _shifted_pair(seed: int, c: int, h: int, w: int, dy: int, dx: int):
    """Target features F_t and source features F_s with F_s[y, x] = F_t[y + dy, x + dx] (borders random)."""
    g = torch.Generator().manual_seed(seed)
    tar = torch.randn(c, h, w, generator=g)
    src = torch.randn(c, h, w, generator=g)
    src[:, max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)] = tar[
        :, max(0, dy) : h - max(0, -dy), max(0, dx) : w - max(0, -dx)
    ]
    return src, tar


def _interior_hits(corr, h, w, dy, dx, margin):
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    expect = (ys + dy) * w + (xs + dx)
    inner = (ys >= margin) & (ys < h - margin) & (xs >= margin) & (xs < w - margin)
    inner &= (ys + dy >= 0) & (ys + dy < h) & (xs + dx >= 0) & (xs + dx < w)
    return (corr.view(h, w)[inner] == expect[inner]).float().mean().item()


def test_recovers_known_translation_of_features():
    src, tar = _shifted_pair(0, 32, 24, 20, dy=3, dx=-2)
    corr = correspondence(src, tar)
    assert _interior_hits(corr, 24, 20, 3, -2, margin=3) >= 0.95


def test_recovers_known_translation_of_smooth_noisy_features():
    """Smooth feature fields (neighbours alike) plus independent noise on the source: still >= 95 %."""
    g = torch.Generator().manual_seed(1)
    field = torch.nn.functional.interpolate(torch.randn(1, 64, 12, 12, generator=g), size=(48, 48), mode="bicubic")[0]
    dy, dx = -4, 5
    tar = field[:, 8:40, 8:40]
    src = field[:, 8 + dy : 40 + dy, 8 + dx : 40 + dx] + 0.05 * torch.randn(64, 32, 32, generator=g)
    corr = correspondence(src, tar, chunk_size=100)
    assert _interior_hits(corr, 32, 32, dy, dx, margin=2) >= 0.95


def test_chunked_equals_unchunked_exactly():
    g = torch.Generator().manual_seed(2)
    src, tar = torch.randn(64, 17, 13, generator=g), torch.randn(64, 11, 19, generator=g)
    full = correspondence(src, tar)
    for chunk in (1, 7, 100, 10_000):
        assert torch.equal(correspondence(src, tar, chunk_size=chunk), full)


def test_correspondence_is_cosine_argmax():
    """Independent brute force: for each source position the target position of highest cosine."""
    g = torch.Generator().manual_seed(3)
    src, tar = torch.randn(8, 5, 6, generator=g) * 3, torch.randn(8, 4, 7, generator=g)
    corr = correspondence(src, tar, chunk_size=4)
    for p in range(30):
        a = src[:, p // 6, p % 6]
        cos = [float(torch.nn.functional.cosine_similarity(a, tar[:, q // 7, q % 7], dim=0)) for q in range(28)]
        best = max(range(28), key=cos.__getitem__)
        assert int(corr[p]) == best


def test_correspondence_keeps_float32_inside_an_autocast_region():
    """Under the WebUI's half-precision autocast the similarities stay float32: near-ties are decided as in
    full precision (bf16 autocast on the CPU stands in for CUDA fp16, which blurs them as the check shows)."""
    g = torch.Generator().manual_seed(0)
    fs, ft = torch.randn(64, 32, 32, generator=g), torch.randn(64, 32, 32, generator=g)
    exact = correspondence(fs, ft, chunk_size=100)
    src = torch.nn.functional.normalize(fs.flatten(1).t(), dim=1)
    tar = torch.nn.functional.normalize(ft.flatten(1), dim=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        blurred = (src @ tar).argmax(dim=1)
        got = correspondence(fs, ft, chunk_size=100)
    assert (blurred != exact).sum() > 10
    assert torch.equal(got, exact)


def test_gather_moves_target_vectors_to_source_grid():
    x0_tar = torch.arange(2 * 3 * 4, dtype=torch.float32).view(1, 2, 3, 4)
    corr = torch.tensor([11, 0, 5, 6, 7, 1])  # source grid 2x3
    out = gather_matched(x0_tar, corr, (2, 3))
    for p, q in enumerate(corr.tolist()):
        assert torch.equal(out[0, :, p // 3, p % 3], x0_tar[0, :, q // 4, q % 4])


def test_dift_features_come_from_up_blocks_1(tiny_pipe):
    """Features equal the output of up_blocks[1] of a full forward pass, averaged over the ensemble."""
    unet, host = tiny_pipe.unet, tiny_pipe.host
    cond = tiny_pipe.encode_prompt("a cat")
    g = torch.Generator().manual_seed(4)
    x0 = torch.randn(1, 4, 16, 16, generator=g)
    noise = dift_noise((4, 16, 16), 3, seed=5, device="cpu", dtype=torch.float32, images=1)
    (feat,) = dift_features(host, x0, [cond], 261, noise)
    a = float(host.alphas_cumprod[261])
    seen = []
    handle = unet.up_blocks[1].register_forward_hook(lambda m, i, o: seen.append(o))
    try:
        with torch.no_grad():
            for k in range(3):
                xk = a**0.5 * x0 + (1 - a) ** 0.5 * noise[0, k : k + 1]
                unet(xk, torch.tensor([261]), encoder_hidden_states=cond[CONTEXT])
    finally:
        handle.remove()
    ref = torch.stack([s[0] for s in seen]).mean(0)
    torch.testing.assert_close(feat, ref, rtol=1e-4, atol=1e-5)
    up1 = unet.config.block_out_channels[::-1][1]
    assert feat.shape == (up1, 8, 8)  # 1/2 of the latent grid, as up_blocks[1] of SD at 1/16 image
