"""Test support: diffusers / transformers state dicts -> the ORIGINAL single-file layout (CompVis ldm for
SD 1.x/2.x, Stability sgm for SDXL), so that tests can write the files WebUI users have without downloading one.

Written from the original architectures (ldm `openaimodel.UNetModel`, `autoencoder.AutoencoderKL`,
`FrozenCLIPEmbedder`, OpenCLIP's `TextTransformer`), independently of diffusers' ldm -> diffusers converter,
which the loader under test uses: a round trip through both checks each against the other."""

from __future__ import annotations

import torch
from torch import Tensor

_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0", "conv2": "out_layers.3",
           "time_emb_proj": "emb_layers.1", "conv_shortcut": "skip_connection"}


def _resnet(sub: str) -> str:
    head, _, tail = sub.partition(".")
    return f"{_RESNET[head]}.{tail}"


def unet_to_ldm(sd: dict[str, Tensor], config) -> dict[str, Tensor]:
    """A diffusers UNet2DConditionModel state dict -> `model.diffusion_model.*` keys.

    ldm numbering: input_blocks.0 = conv_in; then per level b and layer j, input_blocks.{1 + b(L+1) + j} =
    [resnet, attention]; the level's downsampler is input_blocks.{1 + b(L+1) + L}.0.op. output_blocks.{b(L+1)+j}
    = [resnet, attention, upsampler (last layer only)]; middle_block = [resnet, attention, resnet]."""
    L = config["layers_per_block"]
    levels = len(config["block_out_channels"])
    fixed = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
             "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2",
             "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
    out: dict[str, Tensor] = {}
    for key, value in sd.items():
        parts = key.split(".")
        new = None
        stem = key.rsplit(".", 1)[0]
        if stem in fixed:
            new = f"{fixed[stem]}.{parts[-1]}"
        elif parts[0] == "down_blocks":
            b, kind = int(parts[1]), parts[2]
            rest = ".".join(parts[4:])
            if kind == "resnets":
                new = f"input_blocks.{1 + b * (L + 1) + int(parts[3])}.0.{_resnet(rest)}"
            elif kind == "attentions":
                new = f"input_blocks.{1 + b * (L + 1) + int(parts[3])}.1.{rest}"
            elif kind == "downsamplers":  # downsamplers.0.conv.weight
                new = f"input_blocks.{1 + b * (L + 1) + L}.0.op.{parts[-1]}"
        elif parts[0] == "mid_block":
            i, rest = int(parts[2]), ".".join(parts[3:])
            if parts[1] == "resnets":
                new = f"middle_block.{2 * i}.{_resnet(rest)}"
            else:
                new = f"middle_block.1.{rest}"
        elif parts[0] == "up_blocks":
            b, kind = int(parts[1]), parts[2]
            rest = ".".join(parts[4:])
            has_attn = "CrossAttn" in config["up_block_types"][b]
            if kind == "resnets":
                new = f"output_blocks.{b * (L + 1) + int(parts[3])}.0.{_resnet(rest)}"
            elif kind == "attentions":
                new = f"output_blocks.{b * (L + 1) + int(parts[3])}.1.{rest}"
            elif kind == "upsamplers":
                new = f"output_blocks.{b * (L + 1) + L}.{2 if has_attn else 1}.conv.{parts[-1]}"
        if new is None:
            raise KeyError(f"no ldm name for diffusers key {key}")
        out["model.diffusion_model." + new] = value
    assert levels == len(config["down_block_types"])
    return out


_VAE_RESNET = {"conv_shortcut": "nin_shortcut"}
_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def vae_to_ldm(sd: dict[str, Tensor], config) -> dict[str, Tensor]:
    """A diffusers AutoencoderKL state dict -> `first_stage_model.*` keys (decoder levels run in reverse in
    ldm: diffusers up_blocks[i] = ldm up[n-1-i]; attention projections are 1x1 convolutions there)."""
    n = len(config["up_block_types"])
    out: dict[str, Tensor] = {}
    for key, value in sd.items():
        parts = key.split(".")
        side = parts[0]
        new = None
        if parts[0] in ("quant_conv", "post_quant_conv"):
            new = key
        elif parts[1] in ("conv_in", "conv_out"):
            new = key
        elif parts[1] == "conv_norm_out":
            new = f"{side}.norm_out.{parts[2]}"
        elif parts[1] in ("down_blocks", "up_blocks"):
            i = int(parts[2])
            level = i if parts[1] == "down_blocks" else n - 1 - i
            word = "down" if parts[1] == "down_blocks" else "up"
            if parts[3] == "resnets":
                layer = _VAE_RESNET.get(parts[5], parts[5])
                new = f"{side}.{word}.{level}.block.{parts[4]}.{layer}.{parts[6]}"
            else:  # downsamplers.0.conv / upsamplers.0.conv
                new = f"{side}.{word}.{level}.{'downsample' if word == 'down' else 'upsample'}.conv.{parts[-1]}"
        elif parts[1] == "mid_block":
            if parts[2] == "resnets":
                layer = _VAE_RESNET.get(parts[4], parts[4])
                new = f"{side}.mid.block_{int(parts[3]) + 1}.{layer}.{parts[5]}"
            else:  # attentions.0.<proj>.<param>
                proj = ".".join(parts[4:-1])
                new = f"{side}.mid.attn_1.{_VAE_ATTN[proj]}.{parts[-1]}"
                if value.dim() == 2:
                    value = value[:, :, None, None]
        if new is None:
            raise KeyError(f"no ldm name for diffusers VAE key {key}")
        out["first_stage_model." + new] = value
    return out


def clip_to_ldm(sd: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """transformers CLIPTextModel -> `<prefix>text_model.*` (the ldm FrozenCLIPEmbedder wraps the same module),
    plus the position_ids buffer that real checkpoints carry."""
    out = {}
    for key, value in sd.items():
        bare = key.removeprefix("text_model.")
        out[f"{prefix}text_model.{bare}"] = value
    pos = next(v for k, v in sd.items() if k.endswith("position_embedding.weight"))
    out[f"{prefix}text_model.embeddings.position_ids"] = torch.arange(pos.shape[0]).unsqueeze(0)
    return out


def open_clip_to_ldm(sd: dict[str, Tensor], prefix: str, extra_blocks: int = 0) -> dict[str, Tensor]:
    """transformers CLIP text model -> OpenCLIP's TextTransformer keys under `prefix` (SD 2.x
    `cond_stage_model.model.`, SDXL `conditioner.embedders.1.model.`): fused in_proj q|k|v, resblocks,
    ln_final, text_projection as (width, dim) matrix, logit_scale. `extra_blocks` copies of the last block are
    appended (SD 2.x files hold one more block than the encoder uses)."""
    bare = {k.removeprefix("text_model."): v for k, v in sd.items()}
    out: dict[str, Tensor] = {
        prefix + "token_embedding.weight": bare["embeddings.token_embedding.weight"],
        prefix + "positional_embedding": bare["embeddings.position_embedding.weight"],
        prefix + "ln_final.weight": bare["final_layer_norm.weight"],
        prefix + "ln_final.bias": bare["final_layer_norm.bias"],
        prefix + "logit_scale": torch.tensor(4.6052),
    }
    if "text_projection.weight" in bare:
        out[prefix + "text_projection"] = bare["text_projection.weight"].T.contiguous()
    layers = sorted({int(k.split(".")[2]) for k in bare if k.startswith("encoder.layers.")})
    names = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
             "self_attn.out_proj": "attn.out_proj"}
    blocks = layers + [layers[-1]] * extra_blocks
    for j, i in enumerate(blocks):
        src = f"encoder.layers.{i}."
        dst = f"{prefix}transformer.resblocks.{j}."
        for p in ("weight", "bias"):
            out[dst + f"attn.in_proj_{p}"] = torch.cat(
                [bare[src + f"self_attn.{q}_proj.{p}"] for q in ("q", "k", "v")], dim=0
            )
            for hf, oc in names.items():
                out[dst + f"{oc}.{p}"] = bare[src + f"{hf}.{p}"].clone()
    return out
