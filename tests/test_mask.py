"""The attention mask: a synthetic attention blob, thresholding, token positions, user masks; the mask word in
odd prompts (empty, without letters, beyond the token limit) and user masks through the pipeline."""

import math
import re

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from fgat_cli.tiny import DEMO_WORDS, tiny_tokenizer
from fgat_core.config import FGATConfig
from fgat_core.host import AttentionLayer
from fgat_core.mask import (
    AttentionRecorder,
    downsampled_size,
    locate_word_ids,
    prepare_user_mask,
    threshold_mask,
    word_token_indices,
)


def _blob(h, w, cy, cx, r):
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    return ((ys - cy) ** 2 + (xs - cx) ** 2 <= r * r).float()


def _iou(a, b):
    return float((a * b).sum() / ((a + b) > 0).float().sum())


def test_mask_of_synthetic_attention_blob():
    """An attention layer at 1/4 of a 64x64 latent whose queries inside a disc attend to token 3.

    q and k are identity projections; the query features put mass on the object token inside the disc,
    so the recomputed softmax is high there. The thresholded, dilated mask must match the disc."""
    latent = (64, 64)
    gh, gw = downsampled_size(latent, 4)
    assert (gh, gw) == (16, 16)
    dim, heads, tokens = 8, 2, 6
    blob = _blob(gh, gw, 8.0, 7.5, 6.0)
    hidden = torch.zeros(2, gh * gw, dim)  # rows: 0 = source cond, 1 = another row that must be ignored
    hidden[0, :, 1] = 2.0
    hidden[0, blob.flatten() > 0, 0] = 6.0
    hidden[1, :, 0] = 6.0
    context = torch.zeros(2, tokens, dim)
    context[:, 3, 0] = 2.0  # the object token: aligned with feature 0
    context[:, [1, 2, 4, 5], 1] = 2.0
    to_q, to_k = nn.Identity(), nn.Identity()
    off_grid_q, off_grid_k = nn.Identity(), nn.Identity()  # a layer at 1/2 resolution: not recorded
    layers = [AttentionLayer("a.attn2", to_q, to_k, heads), AttentionLayer("b.attn2", off_grid_q, off_grid_k, heads)]
    with AttentionRecorder(layers, [3], latent, "quarter") as rec, rec.recording([0]):
        for _ in range(3):  # three steps
            to_q(hidden), to_k(context)
            off_grid_q(torch.ones(2, 32 * 32, dim)), off_grid_k(context)
        m = rec.mean_map()
    assert rec.counts == {(16, 16): 3}
    mask = threshold_mask(m, 0.3, dilate=1)
    truth = torch.nn.functional.interpolate(blob[None, None], size=latent, mode="nearest")[0, 0]
    assert _iou(mask, truth) >= 0.9
    assert not to_q._forward_hooks and not to_k._forward_hooks  # hooks removed on exit


def test_recorder_ignores_inactive_calls_and_other_rows():
    to_q, to_k = nn.Identity(), nn.Identity()
    rec = AttentionRecorder([AttentionLayer("x", to_q, to_k, 1)], [1], (8, 8), "quarter")
    with rec:
        to_q(torch.randn(1, 4, 4)), to_k(torch.randn(1, 3, 4))  # hooks installed, but not recording
        assert rec.sums == {}
    with pytest.raises(RuntimeError, match="no cross-attention map"):
        rec.mean_map()


def test_recorder_records_only_inside_recording_and_only_its_rows():
    """`recording(rows)` switches the hooks on for the calls inside the block, for those batch rows only, and
    off again when the block ends, also when it ends with an exception."""
    to_q, to_k = nn.Identity(), nn.Identity()
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 4, 8, generator=g), torch.randn(2, 3, 8, generator=g)
    rec = AttentionRecorder([AttentionLayer("x", to_q, to_k, 1)], [1], (8, 8), "quarter")
    with rec:
        with rec.recording([1]):
            to_q(q), to_k(k)
        to_q(q), to_k(k)  # after the block: not recorded
        with pytest.raises(KeyError), rec.recording([0]):
            to_q(q)
            raise KeyError("a failing UNet call between to_q and to_k")
        assert not rec.active and rec.rows == []
        to_q(q), to_k(k)  # the failed block left nothing behind
    assert rec.counts == {(2, 2): 1}
    ref = torch.softmax(q[1] @ k[1].t() / math.sqrt(8), dim=-1)[:, 1].view(2, 2)  # row 1 only
    torch.testing.assert_close(rec.sums[(2, 2)], ref)


def test_recorder_softmax_matches_explicit_attention():
    """The recorded map equals softmax(q k^T / sqrt(d)) of the token, averaged over heads (explicit)."""
    g = torch.Generator().manual_seed(0)
    heads, d, nq, nk = 2, 4, 16, 5
    q_lin, k_lin = nn.Linear(6, heads * d, bias=False), nn.Linear(7, heads * d, bias=False)
    hs, ctx = torch.randn(1, nq, 6, generator=g), torch.randn(1, nk, 7, generator=g)
    with AttentionRecorder([AttentionLayer("l", q_lin, k_lin, heads)], [2, 3], (16, 16), "quarter") as rec, \
            rec.recording([0]):
        q, k = q_lin(hs), k_lin(ctx)
    qh, kh = q.view(nq, heads, d).transpose(0, 1), k.view(nk, heads, d).transpose(0, 1)
    p = torch.softmax(qh @ kh.transpose(1, 2) / math.sqrt(d), dim=-1)
    ref = p[:, :, [2, 3]].sum(-1).mean(0).view(4, 4)
    torch.testing.assert_close(rec.sums[(4, 4)], ref.detach(), rtol=1e-5, atol=1e-6)


def test_recorder_keeps_float32_inside_an_autocast_region():
    """A1111 samples under fp16 autocast: the projections come out in half precision, but the probabilities
    are still computed from them in float32 (bf16 autocast on the CPU stands in for CUDA fp16)."""
    g = torch.Generator().manual_seed(1)
    heads, d, nq, nk = 2, 32, 16, 5
    q_lin, k_lin = nn.Linear(64, heads * d, bias=False), nn.Linear(64, heads * d, bias=False)
    hs, ctx = torch.randn(1, nq, 64, generator=g) * 3, torch.randn(1, nk, 64, generator=g) * 3
    with AttentionRecorder([AttentionLayer("l", q_lin, k_lin, heads)], [2, 3], (16, 16), "quarter") as rec, \
            rec.recording([0]):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            q, k = q_lin(hs), k_lin(ctx)
    assert q.dtype == torch.bfloat16
    qh, kh = q.float().view(nq, heads, d).transpose(0, 1), k.float().view(nk, heads, d).transpose(0, 1)
    ref = torch.softmax(qh @ kh.transpose(1, 2) / math.sqrt(d), dim=-1)[:, :, [2, 3]].sum(-1).mean(0).view(4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # what the math would give without leaving autocast
        blurred = torch.softmax(qh @ kh.transpose(1, 2) / math.sqrt(d), dim=-1)[:, :, [2, 3]].sum(-1).mean(0)
    assert (blurred.float().view(4, 4) - ref).abs().max() > 1e-4
    torch.testing.assert_close(rec.sums[(4, 4)], ref.detach(), rtol=1e-6, atol=1e-7)


def test_threshold_and_dilation():
    m = torch.zeros(9, 9)
    m[4, 4], m[1, 1], m[7, 2] = 1.0, 0.29, 0.31
    out = threshold_mask(m, 0.3, dilate=0)
    assert out.sum() == 2 and out[4, 4] == 1 and out[7, 2] == 1
    dil = threshold_mask(m, 0.3, dilate=1)
    assert dil[3:6, 3:6].sum() == 9 and dil.sum() == 9 + 9 - 0  # two 3x3 squares, not touching
    assert threshold_mask(torch.zeros(4, 4)).sum() == 0


def test_user_mask_resize_and_errors():
    m = torch.zeros(64, 32)
    m[:32] = 1.0
    out = prepare_user_mask(m, (16, 8))
    assert out.shape == (16, 8) and out[:8].min() == 1 and out[8:].max() == 0
    with pytest.raises(ValueError, match="aspect ratio"):
        prepare_user_mask(torch.ones(10, 40), (16, 16))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        prepare_user_mask(torch.full((8, 8), 255.0), (8, 8))


def test_word_token_indices_with_a_real_bpe_tokenizer(tiny_pipe):
    tok = tiny_pipe.tokens
    assert word_token_indices("a photo of a cat", "cat", tok) == [5]
    assert word_token_indices("a photo of a cat", "", tok) == [5]  # empty: the last word
    assert word_token_indices("A Cat on the grass", "CAT", tok) == [2]
    # a word outside the tiny vocabulary splits into several BPE tokens: all of them are used
    n = len(tok("zebra"))
    assert n > 1
    assert word_token_indices("a zebra on grass", "zebra", tok) == list(range(2, 2 + n))
    assert word_token_indices("a cat, a red cat", "cat", tok) == [2, 6]
    with pytest.raises(ValueError, match="not in the source prompt.*a, photo, of, cat"):
        word_token_indices("a photo of a cat", "dog", tok)
    with pytest.raises(ValueError, match="source prompt is empty"):
        word_token_indices("  ", "", tok)


CFG = FGATConfig(steps=6)  # the pipeline tests below: few steps
SRC_PROMPT, TAR_PROMPT = "a photo of a cat sitting on grass", "a photo of a dog"


# ============================================================================ prompts and the mask word
@pytest.mark.parametrize("prompt, says", [("", "is empty"), ("   ", "is empty"),
                                          (" , ! ", "' , ! ' has no word with letters"),
                                          ("!!!", "'!!!' has no word with letters")])
def test_empty_source_prompt_with_attention_mask_says_what_to_do(tiny_pipe, example_images, prompt, says):
    """A prompt of punctuation is not called empty: the message quotes it and says what it lacks."""
    with pytest.raises(ValueError, match=f"the source prompt {re.escape(says)}.*mask source 'user' or 'none'"):
        tiny_pipe.transfer(*example_images, prompt, TAR_PROMPT, CFG)


def test_empty_prompts_are_fine_where_no_word_is_needed(tiny_pipe, example_images):
    a = tiny_pipe.transfer(*example_images, "", "", CFG.replace(mask_source="none"))
    b = tiny_pipe.transfer(*example_images, SRC_PROMPT, "", CFG)
    assert torch.isfinite(a.latent).all() and torch.isfinite(b.latent).all()
    assert not torch.equal(a.latent, b.latent)  # the prompts did reach the model


def test_mask_word_not_in_prompt_lists_the_prompts_words(tiny_pipe, example_images):
    with pytest.raises(ValueError) as e:
        tiny_pipe.transfer(*example_images, "a photo of a cat, sitting", TAR_PROMPT, CFG.replace(mask_word="cats"))
    msg = str(e.value)
    assert "'cats' is not in the source prompt" in msg
    assert msg.endswith("a, photo, of, cat, sitting")


def _token_tokenizer():
    return tiny_tokenizer(tuple(DEMO_WORDS) + ("((", "))", "!!"))


@pytest.mark.parametrize(
    "prompt,word",
    [
        ("a photo of a cat", "cat"),
        ("a photo of a cat", ""),  # empty word: the last word
        ("A Photo of a CAT on grass", "cat"),
        ("a zebra on grass", "zebra"),  # not in the vocabulary: spelled in several tokens
        ("wow!! a ((cat)) on grass", "cat"),  # punctuation runs merge into one token
        ("a red car, a blue car", "blue car"),
    ],
)
def test_mask_token_positions_spell_the_word(prompt, word):
    tok = _token_tokenizer()
    pos = word_token_indices(prompt, word, tok.tokenize)
    ids = tok(prompt).input_ids
    spelled = "".join(tok.convert_ids_to_tokens([ids[p] for p in pos])).replace("</w>", " ").split()
    want = (word or prompt.split()[-1]).lower().split()
    assert spelled == want
    assert pos == list(range(pos[0], pos[0] + len(pos)))  # one contiguous run


@pytest.mark.parametrize("prompt, word", [("a photo of a cat", "cat"), ("a bobcat and a cat", "cat"),
                                          ("wow!! a ((cat)) on grass", "cat"), ("a red car, a blue car", "blue car")])
def test_the_cli_locates_the_word_as_the_webui_does_on_token_ids(prompt, word):
    """One algorithm: the CLI's positions are the WebUI's token-id search (`mask_token_positions`) on the same
    tokenizer; 'cat' is not found inside 'bobcat'."""
    tok = _token_tokenizer()
    ids = tok(prompt).input_ids
    webui = locate_word_ids(ids, tok(word, add_special_tokens=False).input_ids, tok.convert_ids_to_tokens(ids))
    assert webui and word_token_indices(prompt, word, tok.tokenize) == webui


def test_mask_word_beyond_the_token_limit_is_an_error():
    tok = _token_tokenizer()
    prompt = " ".join(["grass"] * 80) + " cat"
    with pytest.raises(ValueError, match="beyond the first 75 tokens.*move it earlier"):
        word_token_indices(prompt, "cat", tok.tokenize)
    assert word_token_indices("a cat " + " ".join(["grass"] * 80), "cat", tok.tokenize) == [2]


# ============================================================================ masks
def test_attention_mask_that_thresholds_to_nothing_falls_back_and_says_so(tiny_pipe, example_images, monkeypatch):
    none = tiny_pipe.transfer(*example_images, SRC_PROMPT, TAR_PROMPT, CFG.replace(mask_source="none"))
    for empty in (torch.zeros, lambda s: torch.full(s, float("nan"))):
        monkeypatch.setattr(AttentionRecorder, "mean_map", lambda self, e=empty: e(self.latent_size))
        out = tiny_pipe.transfer(*example_images, SRC_PROMPT, TAR_PROMPT, CFG)
        assert any("thresholded to nothing" in m and "whole image" in m for m in out.messages)
        assert (out.result.mask == 1).all()
        assert torch.equal(out.latent, none.latent)  # M = 1 exactly as with mask source 'none'


def test_threshold_mask_of_empty_or_broken_maps_is_empty():
    for m in (torch.zeros(8, 8), torch.full((8, 8), float("nan")), -torch.ones(8, 8)):
        assert threshold_mask(m).sum() == 0


def test_user_mask_of_same_aspect_is_area_resized():
    rng = np.random.default_rng(10)
    m = rng.random((32, 64)).astype(np.float32)
    out = prepare_user_mask(torch.from_numpy(m), (8, 16))
    expected = m.reshape(8, 4, 16, 4).mean(axis=(1, 3))  # 4x4 block means
    assert np.allclose(out.numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("shape", [(32, 32), (64, 16)])
def test_user_mask_of_other_aspect_is_rejected(shape):
    with pytest.raises(ValueError, match="other aspect ratio.*same aspect ratio as the source"):
        prepare_user_mask(torch.ones(shape), (8, 16))


def test_user_mask_through_the_pipeline(tiny_pipe, example_images):
    cfg = CFG.replace(mask_source="user")
    half = np.zeros((256, 256), np.uint8)
    half[:, 128:] = 255
    out = tiny_pipe.transfer(*example_images, SRC_PROMPT, TAR_PROMPT, cfg, mask=Image.fromarray(half))
    h, w = out.latent.shape[-2:]
    expected = np.zeros((h, w))
    expected[:, w // 2:] = 1
    assert np.allclose(out.result.mask.numpy(), expected)
    with pytest.raises(ValueError, match="aspect ratio"):
        tiny_pipe.transfer(*example_images, SRC_PROMPT, TAR_PROMPT, cfg, mask=Image.new("L", (256, 128), 255))
    with pytest.raises(ValueError, match="no mask image was given"):
        tiny_pipe.transfer(*example_images, SRC_PROMPT, TAR_PROMPT, cfg)


def test_all_black_user_mask_changes_nothing_and_says_so(tiny_pipe, example_images):
    cfg = CFG.replace(mask_source="user", background_lock="off")
    black = Image.new("L", (128, 128), 0)
    out = tiny_pipe.transfer(*example_images, SRC_PROMPT, TAR_PROMPT, cfg, mask=black)
    recon = tiny_pipe.transfer(*example_images, SRC_PROMPT, TAR_PROMPT, cfg, transfer=False, mask=black)
    assert any("all black" in m for m in out.messages)
    assert torch.allclose(out.latent, recon.latent, atol=1e-5)
    # with the background lock (the default) the whole image is background: the source latent itself
    locked = tiny_pipe.transfer(*example_images, SRC_PROMPT, TAR_PROMPT, cfg.replace(background_lock="on"), mask=black)
    assert torch.equal(locked.latent, tiny_pipe.encode_image(locked.source))
