"""Mirrors modules/sd_hijack_optimizations.py: the cross-attention optimisation is chosen once and swaps
the attention implementation for every attention layer (real: CrossAttention.forward at class level,
l.59-143). Here the tiny diffusers UNet's attention processors are swapped instead:

- "sdp"            torch scaled_dot_product_attention (diffusers AttnProcessor2_0; real l.88-92, 508-546);
- "sub-quadratic"  attention in query chunks, never the full probability matrix (real l.103-107 with
                   modules/sub_quadratic_attention.py);
- "none"           the plain softmax(q k^T) attention (real: undo_optimizations, l.43-48).
Every variant projects with to_q / to_k / to_v, as the real ones do."""
import math

import torch

from modules import shared

current = None


class SubQuadraticAttnProcessor:
    """Softmax attention computed `query_chunk` rows at a time."""

    def __init__(self, query_chunk=16):
        self.query_chunk = query_chunk

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        q = attn.head_to_batch_dim(attn.to_q(hidden_states))
        k = attn.head_to_batch_dim(attn.to_k(context))
        v = attn.head_to_batch_dim(attn.to_v(context))
        scale = 1.0 / math.sqrt(q.shape[-1])
        out = torch.empty_like(q[..., :1]).expand(q.shape[0], q.shape[1], v.shape[-1]).contiguous()
        for i in range(0, q.shape[1], self.query_chunk):
            scores = torch.bmm(q[:, i:i + self.query_chunk], k.transpose(1, 2)) * scale
            out[:, i:i + self.query_chunk] = torch.bmm(scores.softmax(dim=-1), v)
        out = attn.batch_to_head_dim(out)
        return attn.to_out[1](attn.to_out[0](out))


def apply_optimizations(option=None):
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    global current
    option = option or shared.opts.data.get("cross_attention_optimization", "sdp")
    processors = {"sdp": AttnProcessor2_0, "sub-quadratic": SubQuadraticAttnProcessor, "none": AttnProcessor}
    if option not in processors:
        raise ValueError(f"unknown cross attention optimization {option!r}")
    unet = shared.sd_model.model.diffusion_model.unet
    unet.set_attn_processor(processors[option]())
    current = option
    return option
