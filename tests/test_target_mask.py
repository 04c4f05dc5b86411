"""Issue 21: target-side masking (gate / restrict), the background lock, Otsu's mask threshold, the finer mask
layers and levels, and the infotext of an image made before them. Identities on the tiny model; the rest on
hand-made cases."""

import itertools

import numpy as np
import pytest
import torch

from fgat_core.config import FGATConfig
from fgat_core.engine import FGATInputs, gate_mask, lock_background, run_fgat
from fgat_core.errors import InputError
from fgat_core.infotext import parse_infotext
from fgat_core.mask import otsu_threshold, threshold_mask, word_token_indices
from fgat_core.matching import correspondence
from fgat_core.presets import BUILTIN, PAPER_SETTINGS

SRC_PROMPT, TAR_PROMPT = "a photo of a cat sitting on grass", "a photo of a dog"
# the infotext today's main (59a71da) writes for FGATConfig(steps=20, seed=7, delta=0.7): a fixed record
OLD_INFOTEXT = (
    'delta=0.7; lam=0.2; gamma=0.2; window_start=0.24; window_end=0.44; steps=20; guidance_scale=7.5; '
    'inversion="direct"; matching="progressive"; mask_source="attention"; mask_word=""; mask_threshold=0.3; '
    'dift_timestep=261; dift_ensemble=1; gamma_on="guided"; seed=7; mask_layers="quarter"; mask_dilate=1; '
    'dift_prompt="own"; null_text_steps=10; null_text_lr=0.01; null_text_epsilon=1e-05; match_chunk=1024; '
    'target_prompt="a photo of a cat"; target_hash="0123456789ab"'
)


@pytest.fixture(scope="module")
def inputs(tiny_pipe, example_images):
    pipe = tiny_pipe
    src_img, tar_img = pipe.prepare_images(*example_images)
    return FGATInputs(
        source_latent=pipe.encode_image(src_img), target_latent=pipe.encode_image(tar_img),
        source_cond=pipe.encode_prompt(SRC_PROMPT), target_cond=pipe.encode_prompt(TAR_PROMPT),
        uncond=pipe.encode_prompt(""), mask_tokens=word_token_indices(SRC_PROMPT, "cat", pipe.tokens),
        target_mask_tokens=word_token_indices(TAR_PROMPT, "dog", pipe.tokens),
    )


def _with(inputs, **kw):
    return FGATInputs(**{**inputs.__dict__, **kw})


# ---------------------------------------------------------------------------------------------- pure parts
def _brute_otsu(values):
    """Between-class variance of every cut of the sorted values, maximised by enumeration."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    best, level = -1.0, v[-1]
    for k in range(1, len(v)):
        if v[k] == v[k - 1]:
            continue
        lo, hi = v[:k], v[k:]
        between = len(lo) * len(hi) / len(v) ** 2 * (lo.mean() - hi.mean()) ** 2
        if between > best:
            best, level = between, v[k]
    return level


def test_otsu_splits_two_clusters_and_matches_enumeration():
    assert otsu_threshold(torch.tensor([0.1] * 10 + [0.9] * 6)) == pytest.approx(0.9)
    rng = np.random.default_rng(0)
    for _ in range(20):
        vals = np.concatenate([rng.normal(0.2, 0.05, 30), rng.normal(0.7, 0.1, rng.integers(3, 30))])
        assert otsu_threshold(torch.tensor(vals)) == pytest.approx(_brute_otsu(vals))
    assert otsu_threshold(torch.full((5,), 0.4)) == pytest.approx(0.4)  # one value: nothing to split


def test_otsu_mask_of_a_blob_on_a_weak_halo_is_the_blob():
    """A fixed threshold of 0.3 also keeps a halo at 0.35 of the peak; Otsu's level keeps the blob only."""
    m = torch.full((16, 16), 0.05)
    m[3:13, 3:13] = 0.35
    m[6:10, 6:10] = 1.0
    blob = torch.zeros(16, 16)
    blob[6:10, 6:10] = 1
    assert torch.equal(threshold_mask(m, 0.3, 0, "otsu"), blob)
    assert threshold_mask(m, 0.3, 0, "fixed").sum() == 100


def test_gate_drops_matches_that_land_on_the_target_background():
    """Source cells 0..3 match target cells 3, 0, 2, 1; the target's object is cells 0 and 1."""
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.5]])
    target_object = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    corr = torch.tensor([3, 0, 2, 1])
    assert torch.equal(gate_mask(mask, target_object, corr), torch.tensor([[0.0, 1.0], [0.0, 0.5]]))
    assert torch.equal(gate_mask(mask, torch.ones(2, 2), corr), mask)  # T all ones: M itself


def test_restricted_matching_is_the_argmax_over_the_allowed_cells():
    torch.manual_seed(0)
    fs, ft = torch.randn(8, 4, 5), torch.randn(8, 3, 3)
    allowed = torch.zeros(3, 3, dtype=torch.bool)
    allowed[0, :2] = allowed[2, 2] = True
    got = correspondence(fs, ft, 3, allowed)
    src = torch.nn.functional.normalize(fs.flatten(1).t(), dim=1)
    tar = torch.nn.functional.normalize(ft.flatten(1), dim=0)
    ids = allowed.flatten().nonzero().flatten()
    assert torch.equal(got, ids[(src @ tar[:, ids]).argmax(1)])
    assert allowed.flatten()[got].all()
    free = correspondence(fs, ft, 3)
    assert not allowed.flatten()[free].all()  # unrestricted, some matches land outside
    assert torch.equal(correspondence(fs, ft, 3, torch.ones(3, 3, dtype=torch.bool)), free)


def test_lock_is_the_blend_and_exact_at_both_ends():
    x, traj = torch.randn(1, 4, 2, 2), torch.randn(1, 4, 2, 2)
    keep = torch.tensor([[1.0, 0.0], [0.5, 0.0]])
    out = lock_background(x, traj, keep)
    assert torch.equal(out[..., 0, 0], x[..., 0, 0]) and torch.equal(out[..., 0, 1], traj[..., 0, 1])
    assert torch.allclose(out[..., 1, 0], (x[..., 1, 0] + traj[..., 1, 0]) / 2)


# ---------------------------------------------------------------------------------------------- identities
@pytest.mark.parametrize("mode", ["gate", "restrict"])
def test_target_mask_of_all_ones_gives_todays_result_bit_exactly(tiny_pipe, inputs, mode):
    cfg = FGATConfig(steps=12, target_mask="none")
    ref = run_fgat(tiny_pipe.host, inputs, cfg)
    out = run_fgat(tiny_pipe.host, _with(inputs, target_user_mask=torch.ones(16, 16)), cfg.replace(target_mask=mode))
    assert torch.equal(out.latent, ref.latent) and torch.equal(out.correspondence, ref.correspondence)


def test_gate_with_no_target_object_is_the_reconstruction(tiny_pipe, inputs):
    cfg = FGATConfig(steps=12, inversion="direct", background_lock="off")
    ref = run_fgat(tiny_pipe.host, inputs, cfg, transfer=False).latent
    out = run_fgat(tiny_pipe.host, _with(inputs, target_user_mask=torch.zeros(16, 16)), cfg.replace(target_mask="gate"))
    assert torch.equal(out.latent, ref)


def test_restrict_matches_only_the_target_object(tiny_pipe, inputs):
    half = torch.zeros(16, 16)
    half[:, :8] = 1
    out = run_fgat(tiny_pipe.host, _with(inputs, target_user_mask=half), FGATConfig(steps=12, target_mask="restrict"))
    assert half.flatten()[out.correspondence].all()


@pytest.mark.parametrize("inversion", ["direct", "negative-prompt", "ddim"])
def test_background_lock_with_no_mask_is_still_the_reconstruction(tiny_pipe, inputs, inversion):
    """With direct inversion the reconstruction is the source latent, and so is a locked run with M = 0 or
    delta = 0. With the other inversions a locked run with M = 0 still ends on the source latent (the
    trajectory's last level), where their reconstruction only approximates it."""
    cfg = FGATConfig(steps=12, inversion=inversion, background_lock="on")
    ref = run_fgat(tiny_pipe.host, inputs, cfg, transfer=False).latent
    zero = _with(inputs, user_mask=torch.zeros(16, 16))
    locked = run_fgat(tiny_pipe.host, zero, cfg.replace(mask_source="user")).latent
    assert torch.equal(locked, inputs.source_latent)  # the lock's last level is the source latent itself
    if inversion == "direct":
        assert torch.equal(locked, ref)
        assert torch.equal(run_fgat(tiny_pipe.host, inputs, cfg.replace(delta=0.0)).latent, ref)


def test_background_lock_keeps_the_source_latent_outside_the_mask(tiny_pipe, inputs):
    cfg = FGATConfig(steps=12, mask_source="user", background_lock="off")
    left = torch.zeros(16, 16)
    left[:, :6] = 1
    free = run_fgat(tiny_pipe.host, _with(inputs, user_mask=left), cfg).latent
    locked = run_fgat(tiny_pipe.host, _with(inputs, user_mask=left), cfg.replace(background_lock="on")).latent
    outside = left == 0
    assert torch.equal(locked[..., outside], inputs.source_latent[..., outside])
    assert not torch.equal(free[..., outside], inputs.source_latent[..., outside])  # without it, it drifts
    assert not torch.equal(locked[..., ~outside], inputs.source_latent[..., ~outside])  # inside: transferred


@pytest.mark.parametrize("levels", ["before-window", "all"])
def test_target_mask_costs_no_unet_call(tiny_pipe, inputs, levels):
    cfg = FGATConfig(steps=12, mask_levels=levels, target_mask="none", background_lock="off")
    plain = run_fgat(tiny_pipe.host, inputs, cfg).stats
    masked = run_fgat(tiny_pipe.host, inputs, cfg.replace(target_mask="gate", background_lock="on")).stats
    for stage in ("inversion", "sampling"):
        assert (masked[stage].calls, masked[stage].rows) == (plain[stage].calls, plain[stage].rows)


def test_target_attention_mask_follows_the_target_word_and_is_cached(tiny_pipe, inputs):
    from fgat_core.cache import InversionCache

    cfg = FGATConfig(steps=12, target_mask="gate", mask_levels="all", mask_threshold_mode="otsu")
    keyed = _with(inputs, source_key="s", target_key="t")
    cache = InversionCache(4)
    first = run_fgat(tiny_pipe.host, keyed, cfg, cache=cache)
    again = run_fgat(tiny_pipe.host, keyed, cfg, cache=cache)
    assert again.stats["inversion"].calls == 0  # both sides from the cache, the target's attention with them
    assert torch.equal(first.target_mask, again.target_mask) and torch.equal(first.latent, again.latent)
    assert first.target_mask.shape == (16, 16) and 0 < first.target_mask.sum() < 256


def test_target_mask_without_target_word_or_mask_says_so(tiny_pipe, inputs):
    with pytest.raises(ValueError, match="target's object word"):
        run_fgat(tiny_pipe.host, _with(inputs, target_mask_tokens=None), FGATConfig(steps=12, target_mask="gate"))
    with pytest.raises(InputError, match="target prompt") as e:
        word_token_indices(TAR_PROMPT, "cat", tiny_pipe.tokens, fields=("target_prompt", "target_mask_word"))
    assert e.value.field == "target_mask_word"


def test_a_target_prompt_naming_nothing_uses_the_whole_target_and_says_so(tiny_pipe, inputs):
    cfg = FGATConfig(steps=12, target_mask="none")
    ref = run_fgat(tiny_pipe.host, inputs, cfg)
    out = run_fgat(tiny_pipe.host, _with(inputs, target_mask_tokens=[]), cfg.replace(target_mask="restrict"))
    assert torch.equal(out.latent, ref.latent)
    assert any("target prompt names no object" in m for m in out.messages)


def test_pipeline_takes_the_target_prompts_last_word(tiny_pipe, example_images):
    src, tar = example_images
    out = tiny_pipe.transfer(src, tar, SRC_PROMPT, TAR_PROMPT, FGATConfig(steps=10, target_mask="restrict"))
    assert out.result.target_mask is not None
    with pytest.raises(InputError, match="target mask word"):
        tiny_pipe.transfer(src, tar, SRC_PROMPT, TAR_PROMPT,
                           FGATConfig(steps=10, target_mask="gate", target_mask_word="zebra"))


# ---------------------------------------------------------------------------------------------- records
def test_an_infotext_from_before_issue_21_restores_the_old_behaviour():
    cfg, extras = parse_infotext(OLD_INFOTEXT)
    assert (cfg.target_mask, cfg.background_lock, cfg.mask_threshold_mode, cfg.mask_levels) == (
        "none", "off", "fixed", "before-window")
    assert cfg == FGATConfig.from_dict({**PAPER_SETTINGS, "steps": 20, "seed": 7, "delta": 0.7})
    assert extras == {"target_prompt": "a photo of a cat", "target_hash": "0123456789ab"}
    trimmed, _ = parse_infotext("delta=0.7")  # a hand-trimmed record: the rest as the version that wrote it
    assert (trimmed.inversion, trimmed.mask_layers, trimmed.background_lock) == ("direct", "quarter", "off")


def test_the_new_defaults_keep_the_identities(tiny_pipe, inputs):
    """Issue 21's defaults (negative-prompt inversion, restrict, lock on): delta = 0 and lambda = gamma = 1
    leave x_t untouched, so outside the mask the lock's trajectory and inside it the sampling's reconstruction;
    with direct inversion (both the same) the whole reconstruction, bit-exactly."""
    cfg = FGATConfig(steps=12, inversion="direct")
    ref = run_fgat(tiny_pipe.host, inputs, cfg, transfer=False).latent
    assert not torch.equal(run_fgat(tiny_pipe.host, inputs, cfg).latent, ref)
    assert torch.equal(run_fgat(tiny_pipe.host, inputs, cfg.replace(delta=0.0)).latent, ref)
    assert torch.equal(run_fgat(tiny_pipe.host, inputs, cfg.replace(lam=1.0, gamma=1.0)).latent, ref)


def test_paper_preset_keeps_the_papers_settings():
    paper = FGATConfig.from_dict(BUILTIN["Paper"])
    assert (paper.delta, paper.lam, paper.gamma, paper.window_start, paper.window_end) == (0.6, 0.2, 0.2, 0.24, 0.44)
    assert (paper.inversion, paper.target_mask, paper.background_lock) == ("direct", "none", "off")
    assert all(isinstance(v, (str, int, float)) for v in itertools.chain(BUILTIN["Paper"].values()))
