"""Diagnostics images, shown after the result like ControlNet's detected maps."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import Tensor


def mask_overlay(source: Image.Image, mask: Tensor, color: tuple[int, int, int] = (255, 40, 40)) -> Image.Image:
    """The source image with the transfer mask M tinted in `color` (half opacity where M = 1)."""
    m = mask.detach().float().clamp(0, 1).cpu().numpy()
    m_img = Image.fromarray((m * 255).round().astype(np.uint8), "L").resize(source.size, Image.NEAREST)
    alpha = np.asarray(m_img, dtype=np.float32)[..., None] / 255.0 * 0.5
    base = np.asarray(source.convert("RGB"), dtype=np.float32)
    out = base * (1 - alpha) + np.array(color, dtype=np.float32) * alpha
    return Image.fromarray(out.round().clip(0, 255).astype(np.uint8), "RGB")


def correspondence_image(target: Image.Image, correspondence: Tensor, latent_size: tuple[int, int]) -> Image.Image:
    """The target rearranged by the semantic correspondence: each source position shows the target colour
    it was matched to (on the latent grid, upscaled). Where matching works, it resembles the source's layout
    painted with the target's appearance."""
    h, w = latent_size
    small = np.asarray(target.convert("RGB").resize((w, h), Image.BOX)).reshape(h * w, 3)
    idx = torch.as_tensor(correspondence).long().cpu().numpy()
    if idx.shape != (h * w,) or idx.min() < 0 or idx.max() >= h * w:
        raise ValueError(f"the correspondence does not match the {w}x{h} latent grid")
    warped = small[idx].reshape(h, w, 3)
    return Image.fromarray(warped, "RGB").resize(target.size, Image.NEAREST)
