"""Reliability inside the (fake) A1111 WebUI (issue 6): bad API requests, faults at every stage, checkpoint
switches, batches, and many generations in a row.

After every failure the WebUI must be exactly as it was: the same hooks, callbacks, script attributes,
sampler methods and progress text (`_webui_state` of the cleanup test), and the next plain generation
bit-identical to one made before FGAT ran. The fake WebUI, its harness and the request helpers are the
A1111 tests' own (tests/fake_webui, test_webui_generation, test_webui_cleanup)."""

from __future__ import annotations

import base64
import gc
import html
import io
import json
import re
from collections import Counter

import numpy as np
import pytest
import torch
from fake_webui.harness import fake_webui
from PIL import Image
from test_webui_cleanup import _webui_state
from test_webui_generation import PROMPT, TARGET_PROMPT, _b64, _payload

import fgat_webui.run as fgat_run
from fgat_core import images as core_images
from fgat_core.presets import BUILTIN
from fgat_webui import PRESETS_ENV
from fgat_webui.backend import A1111Backend
from fgat_webui.ldm_host import LDMDenoiser
from fgat_webui.run import FGATError, FGATRun

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # gradio 3.41 on new FastAPI
STEPS = 6


HAND_EDITED_PRESETS = '{"mine": {"delta": 0.5}, "typo": {"delta": "high"}, "<b>x</b>": {}}'


@pytest.fixture(scope="module")
def webui(tiny_pipe, tmp_path_factory):
    """The fake WebUI, its user presets in a temporary folder holding a hand-edited presets file."""
    presets = tmp_path_factory.mktemp("presets")
    (presets / "presets.json").write_text(HAND_EDITED_PRESETS, encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(PRESETS_ENV, str(presets))
        with fake_webui(tiny_pipe) as w:
            w.presets_dir = presets
            yield w


def _same(a: dict, b: dict) -> bool:
    a, b = dict(a), dict(b)
    return torch.equal(a.pop("alphas"), b.pop("alphas")) and a == b


@pytest.fixture(scope="module")
def plain_reference(webui, images):
    """A plain API generation and the WebUI's state, before any FGAT run of this module."""
    status, body = webui.api_img2img(_payload(images[0], []))
    assert status == 200, body
    return body["images"], webui.latents[-1].clone(), _webui_state(webui)


def _assert_untouched(webui, images, reference) -> None:
    """Nothing is left behind, and a plain generation is bit-identical to the one made before FGAT ran."""
    pictures, latent, state = reference
    assert _same(_webui_state(webui), state)
    status, body = webui.api_img2img(_payload(images[0], []))
    assert status == 200 and body["images"] == pictures
    assert torch.equal(webui.latents[-1], latent)


def _png_b64(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _truncated_png_b64(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()[:-40]).decode()


# ---------------------------------------------------------------------------------------------- API errors
T = "TARGET"  # replaced by the target image, base64
BAD_REQUESTS = {
    # wrong types
    "delta text": ([{"target_image": T, "delta": "abc"}], r"delta must be a number, got 'abc'"),
    "delta NaN": ([{"target_image": T, "delta": float("nan")}], r"delta must be a number, got nan"),
    "delta bool": ([{"target_image": T, "delta": True}], r"delta must be a number, got True"),
    "enabled maybe": ([{"target_image": T, "enabled": "maybe"}], r"'enabled' must be true or false, got 'maybe'"),
    "image int": ([{"target_image": 123}], r"must be a base64-encoded PNG or JPEG string, got int"),
    "image list": ([{"target_image": [1, 2]}], r"must be a base64-encoded PNG or JPEG string, got list"),
    "prompt int": ([{"target_image": T, "target_prompt": 5}], r"'target_prompt' must be text, got int"),
    "word int": ([{"target_image": T, "mask_word": 7}], r"mask_word must be a string, got 7"),
    "ensemble 2.5": ([{"target_image": T, "dift_ensemble": 2.5}], r"dift_ensemble must be an integer, got 2.5"),
    "mask source": ([{"target_image": T, "mask_source": "magic"}], r"mask source must be one of attention"),
    "inversion int": ([{"target_image": T, "inversion": 3}], r"inversion must be one of direct.*got 3"),
    "preset int": ([{"target_image": T, "preset": 5}], r"'preset' must be a preset name, got 5"),
    "preset path": ([{"target_image": T, "preset": "../../etc/passwd"}], r"unknown preset '../../etc/passwd'"),
    "window": ([{"target_image": T, "window_start": 0.5, "window_end": 0.4}], r"window_end \(0.4\) must be greater"),
    "negative steps": ([{"target_image": T, "null_text_steps": -1}], r"null_text_steps must be in \[1, 100\]"),
    # bad base64 and images
    "not base64": ([{"target_image": "not base64 !!"}], r"'target_image' is not valid base64"),
    "data url": ([{"target_image": "data:text/plain;base64,AAAA"}], r"data URL but not a base64 image"),
    "url": ([{"target_image": "https://example.com/cat.png"}], r"not a URL"),
    "not an image": ([{"target_image": base64.b64encode(b"hello world").decode()}], r"not a readable PNG or JPEG"),
    "truncated": ([{"target_image": "TRUNCATED"}], r"not a readable PNG or JPEG"),
    "mask not base64": ([{"target_image": T, "mask_source": "user", "mask_image": "%%%"}],
                        r"'mask_image' is not valid base64"),
    # oversized (a 1-bit PNG: a few kB on the wire, 25 MP once decoded)
    "oversized": ([{"target_image": "HUGE"}], r"'target_image' is 5000x5000 \(25.0 MP\); the limit is 16.8 MP"),
    # unknown keys
    "unknown key": ([{"target_image": T, "deltaa": 0.5}], r"unknown FGAT API key\(s\): deltaa; accepted keys:"),
    "case": ([{"target_image": T, "Delta": 0.5}], r"unknown FGAT API key\(s\): Delta"),
    # missing fields
    "empty dict": ([{}], r"FGAT is enabled but has no target image"),
    "only enabled": ([{"enabled": True}], r"no target image"),
    "positional, no image": ([True], r"no target image"),
    "positional enabled": (["yes"], r"FGAT argument 0 \(enabled\) must be true or false"),
    "positional prompt": ([True, T, 5], r"FGAT argument 2 \(target_prompt\) must be text"),
    "positional delta": ([True, T, "", "", "attention", "high"], r"FGAT argument 5 \(delta\) must be a number"),
    # a mask of another aspect ratio than the image
    "mask aspect": ([{"target_image": T, "mask_source": "user", "mask_image": "WIDE_MASK"}],
                    r"mask image is 64x32, an aspect ratio neither of the source image \(64x64\) nor of the "
                    r"generation \(64x64\): draw the mask over the source image"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_api_requests_get_a_clear_error_and_change_nothing(webui, images, plain_reference, case):
    src, tar = images
    args, message = BAD_REQUESTS[case]
    fill = {
        T: _b64(tar),
        "TRUNCATED": _truncated_png_b64(tar),
        "HUGE": _png_b64(Image.new("1", (5000, 5000))),
        "WIDE_MASK": _png_b64(Image.new("L", (64, 32), 255)),
    }

    def resolve(v):
        if isinstance(v, dict):
            return {k: resolve(x) for k, x in v.items()}
        return fill.get(v, v) if isinstance(v, str) else v

    status, body = webui.api_img2img(_payload(src, [resolve(a) for a in args]))
    assert status == 422 and body["error"] == "FGATInputError", body  # a client error, not a server one
    assert body["errors"] == body["detail"] and body["detail"].startswith("Fine-grained Appearance Transfer: ")
    import re

    assert re.search(message, body["detail"]), body["detail"]
    assert "Traceback" not in body["detail"]
    assert webui.latents == []  # refused before sampling produced anything
    _assert_untouched(webui, images, plain_reference)


def test_oversized_image_is_refused_before_it_is_decoded(monkeypatch):
    from fgat_webui.args import decode_image

    huge = _png_b64(Image.new("1", (5000, 5000)))
    decoded = []
    real_load = Image.Image.load
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(self.size) or real_load(self))
    with pytest.raises(ValueError, match="5000x5000"):
        decode_image(huge, "FGAT 'target_image'")
    assert decoded == []
    monkeypatch.setattr(core_images, "MAX_PIXELS", 32 * 32)  # the limit is read at call time
    small = _png_b64(Image.new("RGB", (64, 64)))
    with pytest.raises(ValueError, match="64x64 .* the limit is 0.0 MP"):
        decode_image(small, "FGAT 'target_image'")


# ---------------------------------------------------------------------------------------------- odd targets
def _grey_target_in_modes(tar: Image.Image) -> tuple[Image.Image, dict[str, str]]:
    """One grey picture (with a white patch) as RGB, and as base64 files in other modes that all mean it."""
    g = np.asarray(tar.convert("L")).copy()
    g[10:30, 20:40] = 255
    rgba = np.zeros((*g.shape, 4), np.uint8)
    rgba[..., :3], rgba[..., 3] = g[..., None], 255
    rgba[10:30, 20:40] = [200, 10, 10, 0]  # transparent over white
    wide = np.full((g.shape[0], 2 * g.shape[1]), 7, np.uint8)  # a 2:1 target; its centre is the picture
    wide[:, g.shape[1] // 2 : g.shape[1] // 2 + g.shape[1]] = g
    files = {
        "L": _png_b64(Image.fromarray(g, "L")),
        "RGBA": _png_b64(Image.fromarray(rgba, "RGBA")),
        "I;16": _png_b64(Image.fromarray(g.astype(np.uint16) * 257)),  # a 16-bit greyscale PNG
        "wide": _png_b64(Image.fromarray(wide, "L")),
    }
    return Image.fromarray(np.repeat(g[..., None], 3, axis=-1), "RGB"), files


def test_api_targets_in_any_mode_or_aspect_transfer_like_their_rgb_picture(webui, images):
    src, tar = images
    reference, files = _grey_target_in_modes(tar)
    status, body = webui.api_img2img(_payload(src, [{"target_image": _b64(reference), "target_prompt": ""}]))
    assert status == 200, body
    expected = webui.latents[-1]
    for mode, data in files.items():
        status, body = webui.api_img2img(_payload(src, [{"target_image": data, "target_prompt": ""}]))
        assert status == 200, (mode, body)
        assert torch.equal(webui.latents[-1], expected), mode


def test_an_attention_mask_that_thresholds_to_nothing_is_said_under_the_image(webui, images, monkeypatch):
    from fgat_core.mask import AttentionRecorder

    src, tar = images
    monkeypatch.setattr(AttentionRecorder, "mean_map", lambda self: torch.zeros(self.latent_size))
    gen = webui.img2img(src, PROMPT, _fgat_args(webui, tar), steps=STEPS, seed=3)
    assert "thresholded to nothing; the whole image was used as the mask" in gen.processed.comments


def test_an_object_word_only_in_a_lora_tag_is_refused_before_any_batch_runs(webui, images, plain_reference):
    """The WebUI strips LoRA tags before sampling, so the word check at `process()` does too (it used to pass
    there and fail in the middle of sampling, after earlier batches, without the prefix)."""
    src, tar = images
    status, body = webui.api_img2img(_payload(src, [{"target_image": _b64(tar), "mask_word": "stripes"}],
                                              prompt="a cat <lora:stripes:1>", n_iter=2))
    assert status == 422 and body["error"] == "FGATInputError", body  # a client error, not a server one
    assert body["errors"].startswith("Fine-grained Appearance Transfer: the object word 'stripes' is not in the "
                                     "prompt 'a cat '"), body["errors"]
    assert webui.latents == []
    _assert_untouched(webui, images, plain_reference)


def test_an_input_error_found_during_sampling_gets_the_prefix(webui, images, plain_reference, monkeypatch):
    def bad_encode(self, p, prompts):
        raise ValueError("this input cannot be used: change it")

    src, tar = images
    monkeypatch.setattr(A1111Backend, "encode_prompts", bad_encode)
    status, body = webui.api_img2img(_payload(src, [{"target_image": _b64(tar)}]))
    monkeypatch.undo()
    assert status == 422 and body["error"] == "FGATInputError", body  # a client error, not a server one
    assert body["errors"] == "Fine-grained Appearance Transfer: this input cannot be used: change it"
    _assert_untouched(webui, images, plain_reference)


@pytest.mark.parametrize(("fgat", "extra", "message"), [
    ({}, {"cfg_scale": 60}, r"the generation's CFG scale 60(\.0)? is outside what FGAT takes \(\[0\.0, 50\.0\]\): "
                            r"change the CFG scale"),
    ({"window_start": 0.24, "window_end": 0.44}, {}, None),  # the API dict takes fractions: fine
])
def test_generation_values_and_unit_slips_are_named_as_the_user_sees_them(webui, images, fgat, extra, message):
    src, tar = images
    status, body = webui.api_img2img(_payload(src, [{"target_image": _b64(tar), **fgat}], **extra))
    if message is None:
        assert status == 200, body
        return
    assert status == 422 and re.search(message, body["detail"]), body


def test_positional_window_fractions_get_a_percent_hint(webui, images):
    from fgat_webui.args import CONTROLS

    src, tar = images
    positional = [True, _b64(tar), TARGET_PROMPT] + [c.default for c in CONTROLS[3:]]
    names = [c.name for c in CONTROLS]
    positional[names.index("window_start")], positional[names.index("window_end")] = 0.24, 0.44
    status, body = webui.api_img2img(_payload(src, positional))
    assert status == 422 and "percentages in the UI and in positional API args: 24 means 24 %" in body["detail"]


def test_an_all_black_inpaint_mask_transfers_nothing_and_says_so(webui, images):
    """'Only masked' (the API default) drops an all-black mask; FGAT then transfers nothing, with its note."""
    src, tar = images
    status, body = webui.api_img2img(_payload(src, [{"target_image": _b64(tar), "mask_source": "user"}],
                                              mask=_png_b64(Image.new("L", (64, 64), 0))))
    assert status == 200, body
    assert torch.equal(webui.latents[-1], webui.init_latents[-1])  # the source, unchanged
    infotext = json.loads(body["info"])["infotexts"][0]  # the API's `info` has no comments (A1111 1.10.1)
    assert "FGAT notes: \"" in infotext and "FGAT: the mask is all black, so nothing was transferred" in infotext


def test_masks_for_generation_sizes_off_the_latent_grid(webui):
    """100x36 px -> a 12x4 latent grid (rounded down): a mask of the image's own 100x36 (or 200x72) is placed."""
    src = Image.new("RGB", (100, 36), (120, 90, 60))
    tar = Image.new("RGB", (64, 64), (20, 200, 40))
    for size in ((100, 36), (200, 72)):
        fgat = {"target_image": _b64(tar), "mask_source": "user", "mask_image": _png_b64(Image.new("L", size, 255))}
        status, body = webui.api_img2img(_payload(src, [fgat], width=100, height=36))
        assert status == 200, (size, body)


# ---------------------------------------------------------------------------------------------- presets
def test_a_hand_edited_presets_file_is_reported_in_the_ui_and_ignored(webui):
    """The UI built (the file did not crash it), offers the valid entries, and says what is wrong, as text."""
    by_id = {c.elem_id: c for c in webui.demo.blocks.values() if getattr(c, "elem_id", None)}
    dropdown, status = by_id["fgat_preset"], by_id["fgat_preset_status"]
    assert dropdown.choices[-1] in ("mine", ("mine", "mine")) and len(dropdown.choices) == len(BUILTIN) + 1
    text = html.unescape(status.value)
    assert "preset 'typo'" in text and "delta must be a number, got 'high'" in text and "'<b>x</b>'" in text
    assert "<b>" not in status.value  # shown as text, never rendered
    choices, refreshed = webui.event_handler(by_id["fgat_preset_refresh"], "click")()
    assert refreshed == status.value
    (webui.presets_dir / "presets.json").write_text("{broken", encoding="utf-8")
    try:
        choices, refreshed = webui.event_handler(by_id["fgat_preset_refresh"], "click")()
        assert choices["choices"] == list(BUILTIN) and "cannot be read" in refreshed
        save = webui.event_handler(by_id["fgat_preset_save"], "click")
        _, message = save("new", *webui.fgat_args())
        assert "Preset not saved" in message and "fix it or move it away" in html.unescape(message)
        assert (webui.presets_dir / "presets.json").read_text(encoding="utf-8") == "{broken"
    finally:
        (webui.presets_dir / "presets.json").write_text(HAND_EDITED_PRESETS, encoding="utf-8")


# ---------------------------------------------------------------------------------------------- faults
def _fgat_args(webui, tar, **values):
    return webui.fgat_args({"enabled": True, "target_image": tar, "target_prompt": TARGET_PROMPT, **values})


class _Fault:
    """Counts calls of one method (class-level patch) and does `what` at call `at`."""

    def __init__(self, monkeypatch, cls, name: str, what: str, webui) -> None:
        self.calls, self.at, self.what, self.webui = 0, -1, what, webui
        real = getattr(cls, name)

        def wrapped(obj, *args, **kwargs):
            self.calls += 1
            if self.calls == self.at:
                state = self.webui.shared.state
                if self.what == "interrupt":
                    state.interrupted = True
                elif self.what == "skip":
                    state.skipped = True
                elif self.what == "oom":
                    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
                else:
                    raise RuntimeError(f"boom in {name}")
            return real(obj, *args, **kwargs)

        monkeypatch.setattr(cls, name, wrapped)


@pytest.mark.parametrize(
    ("where", "what", "inversion"),
    [
        ("eps", "interrupt", "direct"), ("eps", "oom", "direct"),
        ("eps", "interrupt", "ddim"),  # ddim samples the steps before the window too
        ("features", "skip", "direct"), ("features", "error", "direct"),
        ("encode_image", "oom", "direct"), ("encode_prompts", "error", "direct"),
    ],
)
def test_faults_at_every_call_leave_the_webui_as_it_was(webui, images, plain_reference, monkeypatch, where,
                                                         what, inversion):
    """Interrupt / Skip / out of memory / an exception at each call of the UNet (inversion, before, inside
    and after the window, DIFT features), the VAE and the text encoder."""
    src, tar = images
    cls = A1111Backend if where.startswith("encode") else LDMDenoiser
    fault = _Fault(monkeypatch, cls, where, what, webui)
    args = _fgat_args(webui, tar, inversion=inversion)
    full = webui.img2img(src, PROMPT, args, steps=STEPS, seed=3)
    total = fault.calls
    assert total >= 1
    stages = set()
    for k in range(1, total + 1):
        fault.calls, fault.at = 0, k
        if what in ("interrupt", "skip"):
            gen = webui.img2img(src, PROMPT, args, steps=STEPS, seed=3)
            assert torch.equal(gen.latent, gen.init_latents[0])  # the unchanged source, said so
            assert "FGAT was interrupted" in gen.processed.comments
            webui.shared.state.interrupted = webui.shared.state.skipped = False
        else:
            error = torch.cuda.OutOfMemoryError if what == "oom" else RuntimeError
            with pytest.raises(error):
                webui.img2img(src, PROMPT, args, steps=STEPS, seed=3)
        stages.add(webui.shared.state.textinfo)
        assert _same(_webui_state(webui), plain_reference[2]), f"{what} at {where} call {k} of {total}"
    assert stages == {None}  # the progress text was cleared every time
    fault.at = -1
    again = webui.img2img(src, PROMPT, args, steps=STEPS, seed=3)
    assert torch.equal(again.latent, full.latent)
    _assert_untouched(webui, images, plain_reference)


def test_interrupt_stops_every_stage_of_the_window(webui, images, monkeypatch):
    """Which stages the call-by-call faults above reach: every one (inversion, before/inside/after window)."""
    src, tar = images
    seen = []
    real = fgat_run.run_fgat

    def spy(host, inputs, config, *, progress=None, **kw):
        def watch(stage, done, total):
            seen.append((stage, config.steps - total + done - 1 if stage == "sampling" else -1))
            if progress is not None:
                progress(stage, done, total)

        return real(host, inputs, config, progress=watch, **kw)

    monkeypatch.setattr(fgat_run, "run_fgat", spy)
    webui.img2img(src, PROMPT, _fgat_args(webui, tar, inversion="ddim"), steps=STEPS, seed=3)
    from fgat_core.config import FGATConfig

    start, end = FGATConfig(steps=STEPS).window()
    steps = {i for stage, i in seen if stage == "sampling"}
    assert {"inversion"} <= {s for s, _ in seen}
    assert steps & set(range(start)) and steps & set(range(start, end)) and steps & set(range(end, STEPS))


def test_skip_ends_only_the_current_batch(webui, images, monkeypatch):
    """Skip during the first of two batches: that batch is the unchanged source, the second still transfers."""
    src, tar = images
    fault = _Fault(monkeypatch, LDMDenoiser, "eps", "skip", webui)
    fault.at = 3
    gen = webui.img2img(src, PROMPT, _fgat_args(webui, tar), steps=STEPS, seed=3, n_iter=2)
    assert len(gen.latents) == 2
    assert torch.equal(gen.latents[0], gen.init_latents[0])
    assert not torch.equal(gen.latents[1], gen.init_latents[1])


@pytest.mark.parametrize("hook", ["prepare", "backend", "denoiser", "attention", "progress", "diagnostics"])
def test_an_exception_inside_any_hook_leaves_the_webui_as_it_was(webui, images, plain_reference, monkeypatch,
                                                                  hook):
    src, tar = images

    def boom(*args, **kwargs):
        raise RuntimeError(f"boom in {hook}")

    if hook == "prepare":  # script.process(): kept and raised when sampling starts
        monkeypatch.setattr(FGATRun, "prepare", boom)
    elif hook == "backend":
        monkeypatch.setattr(fgat_run, "detect_backend", boom)
        monkeypatch.setattr(fgat_run.start_run, "__defaults__", (None, boom))
    elif hook == "denoiser":
        monkeypatch.setattr(A1111Backend, "denoiser", boom)
    elif hook == "attention":  # a forward hook on attn2.to_k, during the source inversion
        from fgat_core.mask import AttentionRecorder

        monkeypatch.setattr(AttentionRecorder, "_k_hook", lambda self, i, heads: boom)
    elif hook == "progress":
        monkeypatch.setattr(A1111Backend, "report_progress", boom)
    else:  # script.postprocess(): the WebUI reports it and keeps the image
        monkeypatch.setattr(FGATRun, "diagnostic_images", boom)
    args = _fgat_args(webui, tar, diagnostics=True)
    if hook == "diagnostics":
        gen = webui.img2img(src, PROMPT, args, steps=STEPS, seed=3)
        assert len(gen.processed.images) == 1 and not torch.equal(gen.latent, gen.init_latents[0])
        assert not hasattr(gen.p, fgat_run.RUN_ATTR)
    else:
        with pytest.raises((RuntimeError, FGATError), match=f"boom in {hook}"):
            webui.img2img(src, PROMPT, args, steps=STEPS, seed=3)
    monkeypatch.undo()
    _assert_untouched(webui, images, plain_reference)


# ---------------------------------------------------------------------------------------------- models
def test_checkpoint_switch_between_runs_uses_the_new_model(webui, images, plain_reference):
    """FGAT on checkpoint A, switch to B, FGAT, switch back to A, FGAT: A's result is bit for bit what it was
    before B was ever loaded, and B's differs (nothing of one model is kept for the next: encodings,
    schedules and hooks all come from the loaded model at each run)."""
    from ldm.models.diffusion.ddpm import LatentDiffusion
    from modules import sd_hijack, sd_models, shared

    from fgat_cli.pipeline import tiny_pipeline

    src, tar = images
    other = tiny_pipeline(seed=1)
    saved_processors = dict(other.unet.attn_processors)
    hijack = sd_hijack.model_hijack
    model_a, clip_a = webui.sd_model, hijack.clip
    model_b = LatentDiffusion(other.unet, other.vae, other.text_encoder, other.tokenizer,
                              alphas_cumprod=other.host.alphas_cumprod)

    def switch_to(model, clip) -> None:  # what the checkpoint menu does, without re-hijacking a loaded model
        shared.sd_model, hijack.clip = model, clip
        hijack.apply_optimizations(webui.attention)

    def fgat():
        return webui.img2img(src, PROMPT, _fgat_args(webui, tar), steps=STEPS, seed=3).latent

    try:
        on_a = fgat()
        sd_models.load_model(model_b, name="tiny-b")
        hijack.apply_optimizations(webui.attention)
        on_b = fgat()
        switch_to(model_a, clip_a)
        again_a = fgat()
        switch_to(model_b, model_b.cond_stage_model)
        again_b = fgat()
    finally:
        switch_to(model_a, clip_a)
        other.unet.set_attn_processor(saved_processors)
    assert torch.equal(again_a, on_a)
    assert torch.equal(again_b, on_b)
    assert not torch.equal(on_b, on_a)
    _assert_untouched(webui, images, plain_reference)


# ---------------------------------------------------------------------------------------------- load
def _census() -> tuple[int, int]:
    """Live FGAT runs and live tensors, after a full collection (one pass over the heap)."""
    gc.collect()
    counts = Counter(type(o) for o in gc.get_objects())
    return counts[FGATRun], counts[torch.Tensor] + counts[torch.nn.Parameter]


def test_fifty_alternating_generations_grow_nothing(webui, images, plain_reference, monkeypatch):
    """25 FGAT and 25 plain generations through the API, alternating: no callback, hook, script attribute,
    FGAT run, tensor or swallowed error accumulates (bench/bench_load.py measures the memory itself)."""
    from modules import errors
    from modules.api import api

    # A1111 builds the scripts' default args once (api.py `default_script_arg_img2img`); the fake, per request
    defaults = api.init_default_script_args(webui.runner)
    monkeypatch.setattr(api, "init_default_script_args", lambda runner: defaults)

    from fgat_webui.infotext import settings_from_infotext

    src, tar = images
    fgat = _payload(src, [{"target_image": _b64(tar), "target_prompt": TARGET_PROMPT}], steps=4)
    plain = _payload(src, [], steps=4)
    state = plain_reference[2]
    runs, _ = _census()  # the failures of earlier tests may still hold runs (the WebUI keeps reported errors)
    reported = len(errors.reported)
    tensors = []
    for i in range(50):
        status, body = webui.api_img2img(fgat if i % 2 == 0 else plain)
        assert status == 200, body
        assert _same(_webui_state(webui), state), f"generation {i}"
        if i in (9, 29, 49):
            live_runs, live_tensors = _census()
            assert live_runs <= runs
            tensors.append(live_tensors)
    assert tensors[-1] <= tensors[0]  # steady state from the first ten on
    assert len(errors.reported) == reported
    assert settings_from_infotext.cache_info().currsize <= 32
    _assert_untouched(webui, images, plain_reference)
