"""fgat_demo/train.py's pieces that decide what the demo model learns: prompt positions and the word-attention loss
(checked on hand-made maps and against an explicit softmax, not on trained numbers)."""

import math
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def train_demo():
    from fgat_demo import train

    return train


def test_prompt_table_points_at_each_prompts_category_word(train_demo):
    tok = train_demo.tokenizer()
    prompts, ctx, word = train_demo.prompt_table(train_demo.build_text_encoder(1), tok)
    assert prompts[0] == "" and word[0] == -1 and ctx.shape == (len(prompts), 77, 32)
    for p, w in zip(prompts[1:], word[1:].tolist(), strict=True):
        ids = tok(p).input_ids
        assert tok.convert_ids_to_tokens(ids[w]) == p.split()[-1] + "</w>"


def test_attention_loss_prefers_maps_on_the_object_and_ignores_unnamed_rows(train_demo):
    masks = torch.zeros(2, 64, 64, dtype=torch.uint8)
    masks[:, 16:48, 16:48] = 1  # the object: the middle half of the image
    on = torch.zeros(2, 8, 8)
    on[:, 2:6, 2:6] = 0.9
    on = on + 0.01
    off = 0.9 - on + 0.02  # attention on the background instead
    flat = torch.full((2, 8, 8), 1 / 77)
    both = torch.tensor([True, True])
    loss = {name: train_demo.attention_loss([m], masks, both).item() for name, m in
            (("on", on), ("off", off), ("flat", flat))}
    assert loss["on"] < loss["flat"] < loss["off"]
    # explicit binary cross-entropy of the 'on' map
    target = torch.zeros(8, 8)
    target[2:6, 2:6] = 1
    ref = -(target * on[0].log() + (1 - target) * (1 - on[0]).log()).mean()
    assert loss["on"] == pytest.approx(ref.item(), rel=1e-5)
    # a row whose prompt is empty does not count; a 2x2 (mid-block) grid is left free
    mixed = torch.stack([on[0], off[0]])
    assert train_demo.attention_loss([mixed], masks, torch.tensor([True, False])).item() == pytest.approx(ref.item())
    two = torch.zeros(2, 2, 2)
    assert train_demo.attention_loss([on, two], masks, both).item() == pytest.approx(loss["on"], rel=1e-6)


def test_word_attention_hooks_give_the_softmax_probability_of_each_rows_word(train_demo):
    torch.manual_seed(0)
    unet = train_demo.build_unet().eval()
    watch = train_demo.WordAttention(unet)
    layer = unet.down_blocks[1].attentions[0].transformer_blocks[0].attn2
    seen = {}
    layer.to_q.register_forward_hook(lambda m, i, o: seen.__setitem__("q", o.detach()))
    layer.to_k.register_forward_hook(lambda m, i, o: seen.__setitem__("k", o.detach()))
    ctx = torch.randn(2, 77, 32)
    watch.maps, watch.tokens = [], torch.tensor([5, 2])
    with torch.no_grad():
        unet(torch.randn(2, 4, 16, 16), torch.tensor([10, 500]), encoder_hidden_states=ctx)
    heads, (b, nq, inner) = layer.heads, seen["q"].shape
    d = inner // heads
    q = seen["q"].view(b, nq, heads, d).transpose(1, 2)
    k = seen["k"].view(b, 77, heads, d).transpose(1, 2)
    p = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), -1).mean(1)  # (b, nq, 77)
    ref = torch.stack([p[0, :, 5], p[1, :, 2]]).view(2, 8, 8)
    grid8 = [m for m in watch.maps if m.shape[-1] == 8]
    torch.testing.assert_close(grid8[0], ref)
    for h in watch.handles:
        h.remove()
