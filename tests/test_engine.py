"""End-to-end engine checks on the tiny model: identities, reconstruction, counts, errors, and that a run
which fails or is interrupted at any stage leaves the model as it was."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fgat_cli.diffusers_host import DiffusersDenoiser
from fgat_core.config import FGATConfig
from fgat_core.engine import FGATInputs, FGATInterrupted, ddim_sample, run_fgat
from fgat_core.infotext import format_infotext, parse_infotext
from fgat_core.mask import AttentionRecorder, word_token_indices
from fgat_core.presets import paper_config
from fgat_core.schedule import Schedule, v_from_eps

SRC_PROMPT, TAR_PROMPT = "a photo of a cat sitting on grass", "a photo of a dog"


def make_inputs(pipe, images, **kw):
    src_img, tar_img = pipe.prepare_images(*images)
    return FGATInputs(
        source_latent=pipe.encode_image(src_img), target_latent=pipe.encode_image(tar_img),
        source_cond=pipe.encode_prompt(SRC_PROMPT), target_cond=pipe.encode_prompt(TAR_PROMPT),
        uncond=pipe.encode_prompt(""), mask_tokens=word_token_indices(SRC_PROMPT, "cat", pipe.tokens), **kw,
    )


def rel(a, b):
    return float((a - b).norm() / b.norm())


@pytest.fixture(scope="module")
def inputs(tiny_pipe, example_images):
    return make_inputs(tiny_pipe, example_images)


def test_direct_inversion_reconstructs_at_cfg_7_5(tiny_pipe, inputs):
    """50 steps, CFG 7.5, sampled from step 0: the source latent comes back to 1e-4 (plain DDIM does not)."""
    cfg = paper_config(steps=50, guidance_scale=7.5)
    out = run_fgat(tiny_pipe.host, inputs, cfg, transfer=False, first_step=0)
    assert rel(out.latent, inputs.source_latent) <= 1e-4
    ddim = run_fgat(tiny_pipe.host, inputs, cfg.replace(inversion="ddim"), transfer=False)
    assert rel(ddim.latent, inputs.source_latent) > 100 * rel(out.latent, inputs.source_latent)


def test_null_text_reconstructs_better_than_ddim(tiny_pipe, inputs):
    cfg = paper_config(steps=10, guidance_scale=7.5, null_text_steps=10)
    nti = run_fgat(tiny_pipe.host, inputs, cfg.replace(inversion="null-text"), transfer=False)
    ddim = run_fgat(tiny_pipe.host, inputs, cfg.replace(inversion="ddim"), transfer=False)
    e_nti, e_ddim = rel(nti.latent, inputs.source_latent), rel(ddim.latent, inputs.source_latent)
    assert e_nti < 0.5 * e_ddim, (e_nti, e_ddim)


def test_half_precision_latents_are_stepped_in_float32(tiny_pipe, inputs):
    """The CLI on CUDA encodes fp16 latents: the engine's arithmetic still runs in float32 (x0 divides by
    sqrt(a_t) ~ 0.2 in the window, which multiplies fp16 rounding), so the result equals the run on the same
    latents given in float32."""
    cfg = paper_config(steps=10)
    halves = FGATInputs(**{**inputs.__dict__, "source_latent": inputs.source_latent.half(),
                           "target_latent": inputs.target_latent.half()})
    widened = FGATInputs(**{**inputs.__dict__, "source_latent": halves.source_latent.float(),
                            "target_latent": halves.target_latent.float()})
    got = run_fgat(tiny_pipe.host, halves, cfg)
    assert got.latent.dtype == torch.float32
    assert torch.equal(got.latent, run_fgat(tiny_pipe.host, widened, cfg).latent)


def test_null_text_optimises_a_half_precision_unet_like_a_float32_one(tiny_pipe):
    """Null-text losses are tiny, and a half-precision UNet (a WebUI's fp16 model, the CLI on CUDA) loses their
    gradients to underflow unless the loss is scaled for the backward pass: the fp16 optimisation must move the
    embeddings as the fp32 one does (within 5 %; unscaled it is off by ~17 % on this model, and entirely, every
    gradient zero, at the ~1e-6 losses of a real model). Loss scales are powers of two, so fp32 is unchanged."""
    from fgat_cli.pipeline import cast, tiny_pipeline
    from fgat_core.host import CONTEXT
    from fgat_core.inversion import ddim_invert, loss_scale, null_text_optimize

    half = tiny_pipeline(0)
    for m in half._modules():
        cast(m, torch.float16)
    z = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    cond, uncond = tiny_pipe.encode_prompt("a photo of a cat"), tiny_pipe.encode_prompt("")
    sched = Schedule.ddim(tiny_pipe.host.alphas_cumprod, 4)
    moved = {}
    for pipe, dtype in ((tiny_pipe, torch.float32), (half, torch.float16)):
        c, u = ({k: v.to(dtype) for k, v in d.items()} for d in (cond, uncond))
        with torch.no_grad():
            trajectory = ddim_invert(pipe.host, [z.to(dtype)], [c], sched, [1]).latents[0]
        out = null_text_optimize(pipe.host, trajectory, c, u, sched, 7.5, inner_steps=3)
        moved[dtype] = torch.stack([o[CONTEXT].float() - uncond[CONTEXT].float() for o in out])
    assert moved[torch.float32].abs().max() > 1e-2  # Adam moved the embeddings
    assert rel(moved[torch.float16], moved[torch.float32]) < 0.05
    assert loss_scale(torch.tensor(1e-6)) == 2.0**20 and loss_scale(torch.tensor(3.0)) == 1.0


def test_negative_prompt_inversion_equals_guidance_one(tiny_pipe, inputs):
    """With the source prompt as the unconditional embedding, CFG reduces to the conditional eps, so
    negative-prompt inversion reconstructs exactly like guidance-1 DDIM (up to float rounding)."""
    cfg = paper_config(steps=20, guidance_scale=7.5)
    npi = run_fgat(tiny_pipe.host, inputs, cfg.replace(inversion="negative-prompt"), transfer=False)
    g1 = run_fgat(tiny_pipe.host, inputs, cfg.replace(inversion="ddim", guidance_scale=1.0), transfer=False)
    assert rel(npi.latent, g1.latent) < 1e-5


@pytest.mark.parametrize("inversion", ["direct", "ddim"])
def test_no_transfer_identities(tiny_pipe, inputs, inversion):
    """delta = 0, M = 0 and lambda = gamma = 1 each give the no-transfer result, bit-exactly.

    Bit-exact because T = 0 exactly (Eq. 3 is evaluated as x0 + M d (C - x0)), the mixes of Eqs. 6-7
    as x + (1-l)(x' - x), and eps(x'_t) comes from a call of the same batch layout as eps(x_t) (on
    this CPU backend equal inputs in equal layouts give equal bits)."""
    cfg = paper_config(steps=12, inversion=inversion)
    ref = run_fgat(tiny_pipe.host, inputs, cfg, transfer=False).latent
    full = run_fgat(tiny_pipe.host, inputs, cfg).latent
    assert rel(full, ref) > 1e-2  # the transfer does change the result
    assert torch.equal(run_fgat(tiny_pipe.host, inputs, cfg.replace(lam=1.0, gamma=1.0)).latent, ref)
    assert torch.equal(run_fgat(tiny_pipe.host, inputs, cfg.replace(delta=0.0)).latent, ref)
    zero_mask = FGATInputs(**{**inputs.__dict__, "user_mask": torch.zeros(16, 16)})
    assert torch.equal(run_fgat(tiny_pipe.host, zero_mask, cfg.replace(mask_source="user")).latent, ref)


def test_same_seed_bit_identical_and_seed_matters(tiny_pipe, inputs):
    cfg = paper_config(steps=10, dift_ensemble=2)
    a = run_fgat(tiny_pipe.host, inputs, cfg)
    b = run_fgat(tiny_pipe.host, inputs, cfg)
    assert torch.equal(a.latent, b.latent) and torch.equal(a.correspondence, b.correspondence)
    c = run_fgat(tiny_pipe.host, inputs, cfg.replace(seed=123))
    assert not torch.equal(a.correspondence, c.correspondence)


class _VUNet(torch.nn.Module):
    """Wraps an eps UNet so it predicts v = sqrt(a) eps - sqrt(1-a) x0 = (eps - sqrt(1-a) x)/sqrt(a)."""

    def __init__(self, unet, alphas_cumprod):
        super().__init__()
        self.inner, self.ac = unet, alphas_cumprod
        self.up_blocks = unet.up_blocks

    def forward(self, x, t, encoder_hidden_states=None, added_cond_kwargs=None):
        eps = self.inner(x, t, encoder_hidden_states=encoder_hidden_states).sample
        a = self.ac[t].view(-1, 1, 1, 1).float()
        return type("Out", (), {"sample": v_from_eps(x, eps, a)})()


def test_v_prediction_host_equals_eps_host(tiny_pipe, inputs):
    eps_host = tiny_pipe.host
    v_host = DiffusersDenoiser(_VUNet(tiny_pipe.unet, eps_host.alphas_cumprod), eps_host.alphas_cumprod, "v_prediction")
    cfg = paper_config(steps=10)
    a = run_fgat(eps_host, inputs, cfg)
    b = run_fgat(v_host, inputs, cfg)
    assert rel(b.latent, a.latent) < 1e-4
    assert torch.equal(a.mask, b.mask)


@pytest.mark.parametrize("steps,inversion", [(50, "direct"), (20, "ddim")])
def test_unet_call_counts_follow_the_cost_model(tiny_pipe, inputs, steps, inversion):
    """docs/DESIGN.md §2.7 (cost): direct inversion skips sampling before the window and batches every pair."""
    cfg = paper_config(steps=steps, inversion=inversion)
    st = run_fgat(tiny_pipe.host, inputs, cfg).stats
    n, (s, e) = steps, cfg.window(steps)
    w = e - s
    assert st["inversion"].calls == n  # source levels N..1; the target rides in the same calls
    assert st["inversion"].rows == n + (n - s + 1)
    if inversion == "direct":
        assert st["sampling"].calls == (n - s) + w
        # cond, uncond, source-trajectory uncond; at the first window step x is still the trajectory,
        # so its source row is skipped
        assert st["sampling"].rows == 3 * (n - s) + 2 * w - 1
    else:
        assert st["sampling"].calls == n + w
        assert st["sampling"].rows == 2 * n + 2 * w
    assert st["matching"].feature_calls == w and st["matching"].feature_rows == 2 * w
    plain_rows = 2 * n
    if inversion == "direct" and n == 50:
        work = (st["inversion"].rows + st["sampling"].rows) / plain_rows
        assert work < 2.35  # the floor in UNet work quoted by docs/DESIGN.md §2.7, before DIFT's partial calls


def test_initial_matching_matches_once(tiny_pipe, inputs):
    st = run_fgat(tiny_pipe.host, inputs, paper_config(steps=10, matching="initial")).stats
    assert st["matching"].feature_calls == 1


def test_errors_say_what_to_change(tiny_pipe, inputs):
    bad = FGATInputs(**{**inputs.__dict__, "target_latent": torch.zeros(1, 4, 8, 16)})
    with pytest.raises(ValueError, match="resize the target"):
        run_fgat(tiny_pipe.host, bad, paper_config(steps=10))
    with pytest.raises(ValueError, match="window is empty"):
        run_fgat(tiny_pipe.host, inputs, paper_config(steps=2, window_start=0.1, window_end=0.4))
    with pytest.raises(ValueError, match="no mask was given"):
        run_fgat(tiny_pipe.host, inputs, paper_config(steps=10, mask_source="user"))
    with pytest.raises(ValueError, match="not in the source prompt"):
        word_token_indices(SRC_PROMPT, "dog", tiny_pipe.tokens)


@pytest.mark.parametrize(
    "field,value,pattern",
    [
        ("delta", 1.5, r"delta must be in \[0.0, 1.0\]"),
        ("lam", -0.1, r"lam must be in"),
        ("steps", 0, r"steps must be in \[1, 999\]"),
        ("inversion", "magic", r"inversion must be one of direct, null-text"),
        ("window_end", 0.1, r"window_end \(0.1\) must be greater than window_start"),
        ("gamma", True, r"gamma must be a number"),
        ("dift_ensemble", 2.5, r"dift_ensemble must be an integer"),
    ],
)
def test_config_validation_names_field_and_range(field, value, pattern):
    with pytest.raises(ValueError, match=pattern):
        paper_config(**{field: value})


def test_config_dict_and_infotext_round_trip():
    cfg = paper_config(delta=0.45, mask_word='cat; "x"', inversion="null-text", seed=7)
    assert FGATConfig.from_dict(cfg.to_dict()) == cfg
    assert parse_infotext(format_infotext(cfg)) == (cfg, {})
    with pytest.raises(ValueError, match="unknown FGAT setting.*colour"):
        FGATConfig.from_dict({"colour": 1})


def test_fgat_core_imports_no_webui_gradio_or_diffusers():
    code = (
        "import pkgutil, importlib, sys, fgat_core\n"
        "for m in pkgutil.walk_packages(fgat_core.__path__, 'fgat_core.'):\n"
        "    if m.name != 'fgat_core.__main__':\n"
        "        importlib.import_module(m.name)\n"
        "bad = sorted(k for k in sys.modules if k.split('.')[0] in ('modules', 'gradio', 'diffusers'))\n"
        "print(bad)\n"
        "assert not bad, bad\n"
    )
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(root))
    assert r.returncode == 0, r.stderr + r.stdout


def test_plain_ddim_sampling_is_cfg_ddim(tiny_pipe, inputs):
    """The benchmark baseline: CFG DDIM from noise; one step checked against an explicit formula."""
    sched = Schedule.ddim(tiny_pipe.host.alphas_cumprod, 1)
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    out = ddim_sample(tiny_pipe.host, x, inputs.source_cond, inputs.uncond, sched, 7.5)
    t = torch.tensor([int(sched.timesteps[0])])
    ec = tiny_pipe.host.eps(x, t, inputs.source_cond)
    eu = tiny_pipe.host.eps(x, t, inputs.uncond)
    e = eu + 7.5 * (ec - eu)
    a, an = sched.a(0), sched.a(1)
    ref = an**0.5 * (x - (1 - a) ** 0.5 * e) / a**0.5 + (1 - an) ** 0.5 * e
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_phases_compose_to_run_fgat_and_one_inversion_serves_many_samplings(tiny_pipe, inputs):
    """`invert` then `sample` is `run_fgat`, bit for bit; the inversions depend on no knob of the window step, so
    one `Inversions` sampled with other delta / lam / gamma gives what a fresh run with those knobs gives, and
    sampling makes no inversion call."""
    from dataclasses import replace

    from fgat_core.engine import invert, plan_run, sample

    cfg = paper_config(steps=10, mask_source="none")
    plan = plan_run(tiny_pipe.host.alphas_cumprod, inputs, cfg)
    with torch.no_grad():
        inversions = invert(tiny_pipe.host, inputs, plan)
    assert sorted(inversions.source_latents) == list(range(11))
    assert sorted(inversions.target_x0) == list(range(plan.start, plan.end))  # the window's levels only
    for c in (cfg, cfg.replace(delta=0.3), cfg.replace(lam=0.5, gamma=0.7, gamma_on="uncond")):
        with torch.no_grad():
            got = sample(tiny_pipe.host, inversions, inputs, replace(plan, config=c))
        want = run_fgat(tiny_pipe.host, inputs, c)
        assert torch.equal(got.latent, want.latent)
        assert got.stats["inversion"].calls == 0 and got.stats["sampling"].calls == want.stats["sampling"].calls


@pytest.mark.parametrize("window_start,mask_calls", [(0.1, 1), (0.24, 0)])
def test_the_attention_mask_costs_one_explicit_call_only_when_the_window_starts_at_step_1(
    tiny_pipe, inputs, window_start, mask_calls
):
    """Direct inversion records the object word's attention at levels 1..start-1; tau_0 is never visited, so a
    window starting at step 1 needs one conditional call at X[0] (counted under 'mask'), and no other start does."""
    cfg = paper_config(steps=10, window_start=window_start)
    assert cfg.window(10)[0] == (1 if mask_calls else 3)
    st = run_fgat(tiny_pipe.host, inputs, cfg).stats
    assert (st["mask"].calls, st["mask"].rows) == (mask_calls, mask_calls)


CFG = paper_config(steps=6)  # few steps: the fault tests below rerun the engine often


def module_hooks(*models) -> int:
    """Forward / pre-forward / backward hooks on every submodule, plus torch's global module hooks."""
    n = 0
    for model in models:
        for m in model.modules():
            n += len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
    g = torch.nn.modules.module
    return n + len(g._global_forward_hooks) + len(g._global_forward_pre_hooks)


# ============================================================================ faults leave nothing behind
@pytest.fixture(scope="module")
def small(tiny_pipe, example_images):
    """FGAT inputs at 64x64 pixels (an 8x8 latent), built once: the fault tests rerun the engine often."""
    src, tar = (im.resize((64, 64)) for im in example_images)
    return FGATInputs(
        source_latent=tiny_pipe.encode_image(src), target_latent=tiny_pipe.encode_image(tar),
        source_cond=tiny_pipe.encode_prompt(SRC_PROMPT), target_cond=tiny_pipe.encode_prompt(TAR_PROMPT),
        uncond=tiny_pipe.encode_prompt(""), mask_tokens=word_token_indices(SRC_PROMPT, "cat", tiny_pipe.tokens),
    )


@pytest.fixture(scope="module")
def probe(tiny_pipe):
    """A fixed UNet call whose output must not change after any failed run."""
    g = torch.Generator().manual_seed(11)
    x = torch.randn(1, 4, 8, 8, generator=g)
    cond = tiny_pipe.encode_prompt(SRC_PROMPT)
    t = torch.tensor([500])

    def run() -> torch.Tensor:
        with torch.no_grad():
            return tiny_pipe.host.eps(x, t, cond).clone()

    return run


def _state(pipe):
    mods = pipe._modules()
    return {
        "hooks": module_hooks(*mods),
        "grad": torch.is_grad_enabled(),
        "inference": torch.is_inference_mode_enabled(),
        "rng": torch.get_rng_state(),
        "training": [m.training for model in mods for m in model.modules()],
        "requires_grad": [p.requires_grad for model in mods for p in model.parameters()],
    }


def _assert_same_state(after, before, where: str) -> None:
    assert after["hooks"] == before["hooks"], f"hooks left behind after {where}"
    assert after["grad"] == before["grad"] and after["inference"] == before["inference"], f"grad mode, {where}"
    assert torch.equal(after["rng"], before["rng"]), f"global RNG state changed after {where}"
    assert after["training"] == before["training"], f"train/eval flags changed after {where}"
    assert after["requires_grad"] == before["requires_grad"], f"requires_grad changed after {where}"


def _stage_of(event, cfg: FGATConfig) -> str:
    """inversion / before / inside / after the window, from a progress event."""
    stage, done, total = event
    if stage != "sampling":
        return stage
    start, end = cfg.window()
    i = cfg.steps - total + done - 1  # sampling covers the last `total` steps
    return "before" if i < start else "inside" if i < end else "after"


@pytest.mark.parametrize(
    "cfg",
    [
        paper_config(steps=6),  # direct: sampling starts at the window
        paper_config(steps=6, inversion="ddim"),  # samples from step 0: steps before the window
        paper_config(steps=3, inversion="null-text", null_text_steps=2),  # autograd inside
    ],
    ids=["direct", "ddim", "null-text"],
)
def test_interrupt_at_every_stage_leaves_the_model_as_it_was(tiny_pipe, small, probe, cfg):
    events: list[tuple[str, int, int]] = []
    before, plain = _state(tiny_pipe), probe()
    full = run_fgat(tiny_pipe.host, small, cfg, progress=lambda *e: events.append(e))
    stages = [_stage_of(e, cfg) for e in events]
    expected = {"inversion", "inside", "after"} | ({"before"} if cfg.inversion != "direct" else set())
    assert set(stages) == expected
    # the first and the last event of every stage
    picks = sorted({stages.index(s) for s in expected} | {len(stages) - 1 - stages[::-1].index(s) for s in expected})
    for k in picks:
        seen = []

        def stop(*e, k=k, seen=seen):
            seen.append(e)
            if len(seen) == k + 1:
                raise FGATInterrupted("Interrupted")

        with pytest.raises(FGATInterrupted):
            run_fgat(tiny_pipe.host, small, cfg, progress=stop)
        _assert_same_state(_state(tiny_pipe), before, f"an interrupt at {stages[k]} event {events[k]}")
    assert torch.equal(probe(), plain)
    assert torch.equal(run_fgat(tiny_pipe.host, small, cfg).latent, full.latent)


@pytest.mark.parametrize(
    "where,error", [("eps", torch.cuda.OutOfMemoryError), ("features", RuntimeError)], ids=["eps", "features"]
)
def test_out_of_memory_at_every_unet_call_leaves_the_model_as_it_was(tiny_pipe, small, probe, where, error,
                                                                   monkeypatch):
    host = tiny_pipe.host
    original = getattr(host, where)
    calls = [0]
    fail_at = [-1]

    def wrapped(*a, **kw):
        calls[0] += 1
        if calls[0] == fail_at[0]:
            raise error("CUDA out of memory. Tried to allocate 20.00 MiB")
        return original(*a, **kw)

    monkeypatch.setattr(host, where, wrapped)
    full = run_fgat(host, small, CFG)
    total = calls[0]
    assert total >= 1
    before, plain = _state(tiny_pipe), probe()
    for k in range(1, total + 1):
        calls[0], fail_at[0] = 0, k
        with pytest.raises(error, match="out of memory"):
            run_fgat(host, small, CFG)
        _assert_same_state(_state(tiny_pipe), before, f"out of memory at {where} call {k} of {total}")
    fail_at[0] = -1
    assert torch.equal(probe(), plain)
    assert torch.equal(run_fgat(host, small, CFG).latent, full.latent)


def test_exception_inside_the_attention_hook_removes_every_hook(tiny_pipe, small, probe, monkeypatch):
    before, plain = _state(tiny_pipe), probe()

    def k_hook(self, i, heads):
        def hook(*_):
            if self.active:
                raise RuntimeError("boom inside the attention hook")

        return hook

    monkeypatch.setattr(AttentionRecorder, "_k_hook", k_hook)
    with pytest.raises(RuntimeError, match="boom"):
        run_fgat(tiny_pipe.host, small, CFG)
    _assert_same_state(_state(tiny_pipe), before, "an exception in a hook")
    assert torch.equal(probe(), plain)


def test_a_successful_run_leaves_global_state_alone(tiny_pipe, small):
    before = _state(tiny_pipe)
    run_fgat(tiny_pipe.host, small, CFG.replace(inversion="null-text", steps=3, null_text_steps=2))
    run_fgat(tiny_pipe.host, small, CFG)
    _assert_same_state(_state(tiny_pipe), before, "successful runs")
