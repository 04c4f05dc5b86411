"""Tiny, seeded, offline models with the SD architectures (tests, benchmarks and the CLI's demo model).

Random weights: their images demonstrate the wiring, not the method's quality."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

DEMO_WORDS = (
    "a photo of the an with cat dog bird fish car flower stripes spots red blue green yellow "
    "orange black white sitting standing on in grass table background toy painting"
).split()


def _bytes_to_unicode() -> list[str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def tiny_tokenizer(words: tuple[str, ...] | list[str] = DEMO_WORDS, max_length: int = 77):
    """A CLIP BPE tokenizer whose vocabulary is the byte alphabet plus `words` (merged whole)."""
    from transformers import CLIPTokenizer

    chars = _bytes_to_unicode()
    vocab: dict[str, int] = {}
    for tok in ["<|startoftext|>", "<|endoftext|>", *chars, *[c + "</w>" for c in chars]]:
        vocab.setdefault(tok, len(vocab))
    merges: list[str] = []
    for word in dict.fromkeys(words):
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        cur = parts[0]
        for p in parts[1:]:
            merge = f"{cur} {p}"
            if merge not in merges:
                merges.append(merge)
            cur = cur + p
            vocab.setdefault(cur, len(vocab))
    # the tokenizer reads its two files when built; the folder is removed at once (no temp folder outlives us)
    with tempfile.TemporaryDirectory(prefix="fgat-tok-") as d:
        folder = Path(d)
        (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
        (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
        # positional file paths: accepted by transformers 4.x (the WebUI's) and 5.x alike
        return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=max_length)


def _seeded(seed: int):
    return torch.random.fork_rng(devices=[])


def tiny_text_encoder(vocab_size: int, seed: int = 0, hidden: int = 32, projection: bool = False):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cfg = CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden, num_attention_heads=4,
        num_hidden_layers=2, max_position_embeddings=77, projection_dim=hidden, bos_token_id=0,
        eos_token_id=1, pad_token_id=1,
    )
    with _seeded(seed):
        torch.manual_seed(seed)
        model = (CLIPTextModelWithProjection if projection else CLIPTextModel)(cfg)
    return model.eval()


def tiny_unet(
    seed: int = 0, cross_attention_dim: int = 32, sdxl: bool = False, pooled_dim: int = 16, out_scale: float = 0.05
):
    """SD1.x layout (4 levels, up_blocks[1] = CrossAttnUpBlock2D at 1/2 latent) or SDXL layout (3 levels).

    `out_scale` shrinks the output convolution: a random UNet's eps has a large Jacobian, which makes
    50-step CFG 7.5 sampling chaotic (float rounding grows without bound); a small output keeps the
    sampling map as tame as a trained model's, so identities can be checked to float tolerance.

    SDXL: the added embedding takes [pooled text embedding (`pooled_dim`, the second text encoder's
    projection), 6 size/crop ids x addition_time_embed_dim], as SDXL's 1280 + 6 x 256 = 2816."""
    from diffusers import UNet2DConditionModel

    if sdxl:
        kw = dict(
            block_out_channels=(32, 64, 64),
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            transformer_layers_per_block=(1, 1, 1),
            addition_embed_type="text_time",
            addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=6 * 8 + pooled_dim,
            attention_head_dim=(2, 4, 4),
            use_linear_projection=True,
        )
    else:
        kw = dict(
            block_out_channels=(32, 32, 64, 64),
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            attention_head_dim=2,
        )
    with _seeded(seed):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=16, in_channels=4, out_channels=4, layers_per_block=1,
            cross_attention_dim=cross_attention_dim, norm_num_groups=8, **kw,
        )
        with torch.no_grad():
            unet.conv_out.weight.mul_(out_scale)
            unet.conv_out.bias.mul_(out_scale)
    return unet.eval()


def tiny_vae(seed: int = 0):
    from diffusers import AutoencoderKL

    with _seeded(seed):
        torch.manual_seed(seed)
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, norm_num_groups=8,
            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
            block_out_channels=(8, 16, 16, 16), sample_size=128,
        )
    return vae.eval()
