"""Semantic matching with DIFT features (Tang et al. 2023): features, chunked cosine argmax, gather."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .host import Cond, Denoiser, cond_cat, full_precision


def dift_noise(
    shape: tuple[int, ...], ensemble: int, seed: int, device: torch.device | str, dtype: torch.dtype, images: int = 2
) -> Tensor:
    """Fixed-seed noise draws n for `dift_features`: (images, K, *shape), independent per image.

    Independent draws matter: noise shared by source and target at equal positions biases the
    argmax toward the identity map."""
    g = torch.Generator(device="cpu").manual_seed(int(seed) + 7919)
    n = torch.randn((images, ensemble, *shape), generator=g, dtype=torch.float32)
    return n.to(device=device, dtype=dtype)


def dift_features(
    host: Denoiser, x0: Tensor, conds: list[Cond], timestep: int, noise: Tensor
) -> list[Tensor]:
    """F = U(sqrt(a_d) x0 + sqrt(1-a_d) n) averaged over the K draws in `noise`, one per x0 row.

    x0: (B, C, h, w) with one conditioning per row; noise: (B, K, C, h, w). Returns B tensors shaped
    (C_f, h_f, w_f). All B*K UNet rows run in one batched call."""
    b, k = x0.shape[0], noise.shape[1]
    if noise.shape[0] != b:
        raise ValueError(f"need one set of noise draws per image: {noise.shape[0]} sets for {b} images")
    a = float(host.alphas_cumprod[timestep])
    xs = (a**0.5) * x0[:, None] + ((1 - a) ** 0.5) * noise  # (B, K, C, h, w)
    xs = xs.reshape(b * k, *x0.shape[1:])
    cond = cond_cat([c for c in conds for _ in range(k)])
    t = torch.full((b * k,), timestep, dtype=torch.long, device=x0.device)
    feats = host.features(xs, t, cond).float()
    feats = feats.reshape(b, k, *feats.shape[1:]).mean(dim=1)
    return list(feats)


def upsample_features(feat: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear upsampling of (C, h, w) features to the latent grid (C, H, W)."""
    if tuple(feat.shape[-2:]) == tuple(size):
        return feat
    return F.interpolate(feat[None], size=size, mode="bilinear", align_corners=False)[0]


def correspondence(
    feat_src: Tensor, feat_tar: Tensor, chunk_size: int | None = None, allowed: Tensor | None = None
) -> Tensor:
    """C[p] = argmax_q <F_src[p], F_tar[q]> of L2-normalised features (C, h, w); flat target indices.

    `allowed` (h_tar, w_tar) bool: q ranges over the allowed cells only (target-side masking, `restrict`);
    None, all or no cell allowed: every cell. The similarity matrix is built `chunk_size` source rows at a
    time, so memory stays O(chunk_size * h_tar * w_tar); in float32 even inside a WebUI's fp16 autocast region."""
    if feat_src.dim() != 3 or feat_tar.dim() != 3:
        raise ValueError(f"features must be (C, h, w); got {tuple(feat_src.shape)} and {tuple(feat_tar.shape)}")
    if feat_src.shape[0] != feat_tar.shape[0]:
        raise ValueError(
            f"source and target features have different channel counts: {feat_src.shape[0]} vs {feat_tar.shape[0]}"
        )
    src = F.normalize(feat_src.flatten(1).t().float(), dim=1)  # (P, C)
    tar = F.normalize(feat_tar.flatten(1).float(), dim=0)  # (C, Q)
    n = src.shape[0]
    step = n if chunk_size is None else max(1, int(chunk_size))
    out = torch.empty(n, dtype=torch.long, device=src.device)
    barred = None
    if allowed is not None and bool(allowed.any()) and not bool(allowed.all()):
        barred = ~allowed.flatten().to(device=src.device, dtype=torch.bool)
    with full_precision(src.device):
        for i in range(0, n, step):
            sim = src[i : i + step] @ tar
            if barred is not None:
                sim = sim.masked_fill(barred, float("-inf"))
            out[i : i + step] = sim.argmax(dim=1)
    return out


def gather_matched(x0_tar: Tensor, corr: Tensor, size: tuple[int, int]) -> Tensor:
    """C(x0_tar): the target latent vectors at the matched positions, on the source grid (B, C, H, W)."""
    flat = x0_tar.flatten(2)  # (B, C, Q)
    return flat[:, :, corr].reshape(x0_tar.shape[0], x0_tar.shape[1], *size)
