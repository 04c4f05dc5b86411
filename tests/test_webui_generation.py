"""Generations through every fake WebUI (the `webui` fixture of conftest.py: A1111, Forge, Forge Neo): API dict
and positional args, infotext round trip, sampler policy, X/Y/Z plot, batches, masks, errors, progress and
Interrupt/Skip at every stage. What one WebUI does its own way is in test_a1111_generation.py,
test_forge_generation.py and test_neo_generation.py."""

import base64
import io
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

import fgat_webui.run as fgat_run
from fgat_core.infotext import INFOTEXT_KEY, parse_infotext
from fgat_core.mask import prepare_user_mask
from fgat_webui.args import CONTROLS
from fgat_webui.run import FGATError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # gradio 3.41 on new FastAPI
PROMPT, TARGET_PROMPT = "a photo of a cat", "a photo of a dog"
STEPS = 8


def _b64(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _fgat(webui, target, **values):
    return webui.fgat_args({"enabled": True, "target_image": target, "target_prompt": TARGET_PROMPT, **values})


def _relative(a, b) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def _payload(src, fgat_args, **extra):
    body = dict(init_images=[_b64(src)], prompt=PROMPT, steps=STEPS, cfg_scale=7.5, seed=11, sampler_name="Euler",
                denoising_strength=0.75, width=64, height=64)
    body.update(extra)
    body["alwayson_scripts"] = {"fine-grained appearance transfer": {"args": fgat_args}}  # titles match any case
    return body


def _fgat_infotext(processed) -> str:
    from modules.infotext_utils import parse_generation_parameters

    return parse_generation_parameters(processed.infotexts[0])[INFOTEXT_KEY]


# ---------------------------------------------------------------------------------------------- API / args
def test_api_infotext_request_rebuilds_the_same_settings(webui, images):
    """An API request with `infotext` (a previous image's) and only the target image as args gets every
    recorded FGAT setting back, fractional window percentages included (the API coerces each value to its
    component's type: an int slider would truncate 24.5 % to 24 %)."""
    src, tar = images
    first = {"target_image": _b64(tar), "target_prompt": TARGET_PROMPT, "delta": 0.45, "lam": 0.3,
             "window_start": 0.245, "window_end": 0.555, "mask_threshold": 0.35, "dift_ensemble": 2}
    status, body = webui.api_img2img(_payload(src, [first]))
    assert status == 200, body
    recorded = json.loads(body["info"])["infotexts"][0]
    status, again = webui.api_img2img(_payload(src, [True, _b64(tar)], infotext=recorded))
    assert status == 200, again
    fgat = [json.loads(b["info"])["extra_generation_params"][INFOTEXT_KEY] for b in (body, again)]
    assert parse_infotext(fgat[1]) == parse_infotext(fgat[0])
    assert parse_infotext(fgat[1])[0].window_start == 0.245


def test_api_dict_positional_and_ui_args_give_the_same_image(webui, images):
    src, tar = images
    ui = webui.img2img(src, PROMPT, _fgat(webui, tar, delta=0.5, window_end=50), steps=STEPS, seed=11)

    status, body = webui.api_img2img(_payload(src, [{
        "target_image": _b64(tar), "target_prompt": TARGET_PROMPT, "delta": 0.5, "window_end": 0.5,
        "diagnostics": True}]))
    assert status == 200, body
    assert torch.equal(webui.latents[-1], ui.latent)
    info = json.loads(body["info"])
    config, extras = parse_infotext(info["extra_generation_params"][INFOTEXT_KEY])
    assert (config.delta, config.window_end, config.steps, extras["target_prompt"]) == (0.5, 0.5, STEPS, TARGET_PROMPT)
    # the result, then the two diagnostics images (mask overlay, correspondence) with aligned infotexts
    assert len(body["images"]) == 3 and len(info["infotexts"]) == 3
    assert all(Image.open(io.BytesIO(base64.b64decode(b))).size == (64, 64) for b in body["images"])

    positional = [True, _b64(tar), TARGET_PROMPT] + [c.default for c in CONTROLS[3:]]
    positional[[c.name for c in CONTROLS].index("delta")] = 0.5
    positional[[c.name for c in CONTROLS].index("window_end")] = 50
    status, body = webui.api_img2img(_payload(src, positional))
    assert status == 200, body
    assert torch.equal(webui.latents[-1], ui.latent)


@pytest.mark.parametrize(
    ("args", "message"),
    [({"target_image": "TARGET", "deltaa": 0.5}, r"unknown FGAT API key\(s\): deltaa"),
     ({"target_image": "TARGET", "delta": 3}, r"FGATConfig.delta must be in \[0.0, 1.0\], got 3"),
     ({"target_prompt": "a dog"}, r"no target image"),
     ({"target_image": "TARGET", "steps": 30}, r"FGAT 'steps' \(30\) differs from the generation's own value \(8\)"),
     ({"target_image": "TARGET", "mask_word": "zebra"}, r"object word 'zebra' is not in the prompt"),
     ({"target_image": "data:image/png;base64,AAAA"}, r"not a readable PNG or JPEG")],
)
def test_api_errors_are_clear_and_nothing_is_generated(webui, images, args, message):
    src, tar = images
    args = {k: (_b64(tar) if v == "TARGET" else v) for k, v in args.items()}
    status, body = webui.api_img2img(_payload(src, [args]))
    assert status == 422, body  # a client error, in both WebUIs' answer; the message in `detail` in both
    assert body["detail"].startswith("Fine-grained Appearance Transfer: ")
    import re

    assert re.search(message, body["detail"]), body["detail"]
    assert webui.latents == []  # failed before sampling produced anything


# ---------------------------------------------------------------------------------------------- infotext
def test_infotext_paste_round_trip_reproduces_the_image(webui, images):
    src, tar = images
    values = dict(delta=0.45, lam=0.3, gamma=0.25, window_start=20, window_end=50, mask_word="cat",
                  dift_ensemble=2, mask_threshold=0.4, matching="initial", mask_dilate=0)
    first = webui.img2img(src, PROMPT, _fgat(webui, tar, **values), steps=STEPS, seed=5)
    from modules import paths

    with open(os.path.join(paths.data_path, "params.txt"), encoding="utf8") as f:
        assert f"{INFOTEXT_KEY}: " in f.read()  # written after process_batch: the key is there already

    pasted = webui.paste(first.processed.infotexts[0])
    assert set(pasted) == {c.name for c in CONTROLS} - {"target_image"}
    args = [pasted[c.name] if c.name in pasted else tar for c in CONTROLS]
    second = webui.img2img(src, PROMPT, args, steps=STEPS, seed=5)
    assert torch.equal(second.latent, first.latent)
    assert _fgat_infotext(second.processed) == _fgat_infotext(first.processed)


# ---------------------------------------------------------------------------------------------- sampler policy
def test_sampler_and_denoising_strength_are_replaced_and_said_so(webui, images):
    src, tar = images
    euler = webui.img2img(src, PROMPT, _fgat(webui, tar), steps=STEPS, seed=2, sampler_name="Euler a",
                          denoising_strength=0.6)
    ddim = webui.img2img(src, PROMPT, _fgat(webui, tar), steps=STEPS, seed=2, sampler_name="DDIM",
                         denoising_strength=1.0)
    assert torch.equal(euler.latent, ddim.latent)  # FGAT's own deterministic DDIM path either way
    note = parse_infotext(_fgat_infotext(euler.processed))[1]["sampler_note"]
    assert "own deterministic DDIM" in note and "'Euler a'" in note and "denoising strength 0.6" in note
    assert note in euler.processed.comments  # shown in the UI under the image as well
    ddim_note = parse_infotext(_fgat_infotext(ddim.processed))[1]["sampler_note"]
    assert "own deterministic DDIM" in ddim_note and "not used" not in ddim_note


# ---------------------------------------------------------------------------------------------- X/Y/Z
def _xyz_index(webui):
    return 1 + [s.title() for s in webui.runner.selectable_scripts].index("X/Y/Z plot")


def test_xyz_delta_axis_and_delta_zero_reconstructs_the_source(webui, images):
    src, tar = images
    xyz = webui.runner.selectable_scripts[_xyz_index(webui) - 1]
    axis = xyz.current_axis_options.index(next(o for o in xyz.current_axis_options if "δ" in o.label))
    # direct inversion: its reconstruction is the source latent (the default, negative-prompt, only approximates it)
    gen = webui.img2img(src, PROMPT, _fgat(webui, tar, inversion="direct"), steps=STEPS, seed=4,
                        script_index=_xyz_index(webui), script_args=[axis, "0, 0.7"])
    deltas = [parse_infotext(_fgat_infotext(type("P", (), {"infotexts": [t]})))[0].delta
              for t in gen.processed.infotexts]
    assert deltas == [0.0, 0.7]
    zero, strong = gen.latents
    # delta = 0: no transfer, and direct inversion reconstructs the source latent exactly (float tolerance)
    assert _relative(zero, gen.init_latents[0]) < 1e-4
    assert _relative(strong, gen.init_latents[1]) > 1e-2


def test_xyz_fgat_axis_with_fgat_off_is_an_error(webui, images):
    src, tar = images
    xyz = webui.runner.selectable_scripts[_xyz_index(webui) - 1]
    axis = xyz.current_axis_options.index(next(o for o in xyz.current_axis_options if "γ" in o.label))
    with pytest.raises(FGATError, match="X/Y/Z plot axis sets FGAT values, but FGAT is not enabled"):
        webui.img2img(src, PROMPT, None, steps=STEPS, script_index=_xyz_index(webui), script_args=[axis, "0.3"])


# ---------------------------------------------------------------------------------------------- batches
def _count_unet_calls(webui):
    calls = []
    handle = webui.diffusion_model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    return calls, handle


def test_every_image_of_every_batch_gets_fgat(webui, images):
    src, tar = images
    calls, handle = _count_unet_calls(webui)
    try:
        webui.img2img(src, PROMPT, _fgat(webui, tar), steps=6, seed=8)
        single = len(calls)
        calls.clear()
        gen = webui.img2img(src, PROMPT, _fgat(webui, tar), steps=6, seed=8, batch_size=2, n_iter=2)
    finally:
        handle.remove()
    assert len(gen.latents) == 2 and all(lat.shape[0] == 2 for lat in gen.latents)
    assert len(calls) == 4 * single  # the takeover is re-installed for the second iteration
    assert len(gen.processed.images) == 4



def test_the_mask_word_is_located_once_per_request(webui, images, monkeypatch):
    src, tar = images
    located = []
    real = fgat_run.mask_token_positions
    monkeypatch.setattr(fgat_run, "mask_token_positions", lambda *a: located.append(a[2:]) or real(*a))
    gen = webui.img2img(src, PROMPT, _fgat(webui, tar), steps=6, seed=8, batch_size=2, n_iter=2)
    assert len(gen.processed.images) == 4
    # found while checking the request, handed on to the four rows: the mask word, then the target-side mask's
    assert located == [(PROMPT, "", False), (TARGET_PROMPT, "", True)]

# ---------------------------------------------------------------------------------------------- masks
def _spy_run_fgat(monkeypatch):
    seen = []
    real = fgat_run.run_fgat

    def spy(host, inputs, config, **kw):
        seen.append((inputs, config))
        return real(host, inputs, config, **kw)

    monkeypatch.setattr(fgat_run, "run_fgat", spy)
    return seen


def test_inpaint_mask_is_the_transfer_mask(webui, images, monkeypatch):
    src, tar = images
    seen = _spy_run_fgat(monkeypatch)
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 64))  # left half
    gen = webui.img2img(src, PROMPT, _fgat(webui, tar, mask_source="inpaint mask"), steps=STEPS, seed=6,
                        mask=mask, mask_blur=0, inpainting_fill=1)
    (inputs, config), = seen
    assert config.mask_source == "user"
    expected = torch.zeros(8, 8)
    expected[:, :4] = 1
    assert torch.equal(inputs.user_mask, expected)
    keep = expected == 0  # the WebUI pastes the source back outside the inpaint mask
    assert torch.equal(gen.latent[0][:, keep], gen.init_latents[0][0][:, keep])
    assert _relative(gen.latent[0][:, ~keep], gen.init_latents[0][0][:, ~keep]) > 1e-2


def test_api_mask_image_is_the_transfer_mask(webui, images, monkeypatch):
    src, tar = images
    seen = _spy_run_fgat(monkeypatch)
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 32, 64, 64))  # bottom half
    status, body = webui.api_img2img(_payload(src, [{"target_image": _b64(tar), "mask_source": "user",
                                                      "mask_image": _b64(mask)}]))
    assert status == 200, body
    (inputs, _), = seen
    assert torch.equal(inputs.user_mask, torch.from_numpy(np.asarray(mask, dtype=np.float32) / 255.0))


def test_the_object_word_is_not_found_inside_a_longer_word(webui, images, monkeypatch, tiny_pipe):
    """'cat' in 'a bobcat and a cat' is the second cat only: the BPE splits 'bobcat' as 'b o b cat</w>', whose
    last token equals the word 'cat', but it does not start a word. Positions as the core finds them."""
    from fgat_core.mask import word_token_indices

    src, tar = images
    seen = _spy_run_fgat(monkeypatch)
    prompt = "a photo of a bobcat and a cat"
    webui.img2img(src, prompt, _fgat(webui, tar, mask_word="cat"), steps=STEPS, seed=6)
    (inputs, _), = seen
    expected = word_token_indices(prompt, "cat", tiny_pipe.tokens)
    assert len(expected) == 1 and inputs.mask_tokens == expected


def _square_mask(size: int, box: tuple[int, int, int, int]) -> Image.Image:
    mask = Image.new("L", (size, size), 0)
    mask.paste(255, box)
    return mask


# "Inpaint area: Only masked": a 16-px square at (8, 8) with padding 8 -> the WebUI generates the crop (0, 0, 32, 32)
# at 64 px (x2), where the mask covers pixels 16-48, i.e. latent cells 2-5
ONLY_MASKED = dict(inpaint_full_res=True, inpaint_full_res_padding=8, mask_blur=0, inpainting_fill=1)


def _only_masked_expected() -> torch.Tensor:
    expected = torch.zeros(8, 8)
    expected[2:6, 2:6] = 1
    return expected


def test_only_masked_inpaint_transfers_inside_the_crop_and_pastes_it_back(webui, images, monkeypatch):
    src, tar = images
    seen = _spy_run_fgat(monkeypatch)
    mask = _square_mask(64, (8, 8, 24, 24))
    gen = webui.img2img(src, PROMPT, _fgat(webui, tar, mask_source="inpaint mask", diagnostics=True), steps=STEPS,
                        seed=6, mask=mask, **ONLY_MASKED)
    assert gen.p.paste_to == (0, 0, 32, 32)
    (inputs, _), = seen
    # FGAT works on the crop the WebUI generates, with the inpaint mask in the crop's frame
    assert torch.equal(inputs.source_latent, gen.init_latents[0][:1].float())
    assert torch.equal(inputs.user_mask, _only_masked_expected())
    out = np.asarray(gen.processed.images[0].convert("RGB"), dtype=np.int16)
    source = np.asarray(src.convert("RGB"), dtype=np.int16)
    assert out.shape == source.shape  # pasted back at the source's size
    outside = np.ones((64, 64), bool)
    outside[8:24, 8:24] = False
    assert np.array_equal(out[outside], source[outside])  # the source, untouched, outside the inpaint mask
    assert np.abs(out[8:24, 8:24] - source[8:24, 8:24]).mean() > 2  # the transfer shows inside it
    # the diagnostics mask overlay is drawn on the crop FGAT saw, not on the whole source
    overlay = np.asarray(gen.processed.images[1].convert("RGB"), dtype=np.int16)
    crop = np.asarray(src.convert("RGB").crop((0, 0, 32, 32)).resize((64, 64), Image.LANCZOS), dtype=np.int16)
    untinted = np.ones((64, 64), bool)
    untinted[16:48, 16:48] = False
    assert np.abs(overlay[untinted] - crop[untinted]).max() <= 1
    assert np.abs(overlay[untinted] - source[untinted]).mean() > 5


def test_only_masked_api_mask_image_is_cropped_with_the_source(webui, images, monkeypatch):
    """An API `mask_image` is given in the source image's frame (any size of its aspect ratio) and is cropped
    with it: the same square as a 128-px mask image gives the same transfer mask as the inpaint mask itself."""
    src, tar = images
    seen = _spy_run_fgat(monkeypatch)
    mask = _square_mask(64, (8, 8, 24, 24))
    fgat = {"target_image": _b64(tar), "mask_source": "user", "mask_image": _b64(_square_mask(128, (16, 16, 48, 48)))}
    status, body = webui.api_img2img(_payload(src, [fgat], mask=_b64(mask), **ONLY_MASKED))
    assert status == 200, body
    (inputs, _), = seen
    assert torch.equal(prepare_user_mask(inputs.user_mask, (8, 8)).round(), _only_masked_expected())


def test_api_mask_image_in_the_source_frame_is_resized_as_the_source(webui, images, monkeypatch):
    """A 96x64 source generated at 64x64 ("Just resize" stretches it): a mask image drawn over the source
    (its aspect ratio, any size) is stretched the same way, and the diagnostics overlay shows the stretched
    source; neither is rejected or centre-cropped."""
    src, tar = images
    wide = src.resize((96, 64), Image.BOX)
    seen = _spy_run_fgat(monkeypatch)
    mask = _square_mask(96, (0, 0, 48, 96)).resize((192, 128), Image.NEAREST)  # left half, at twice the size
    status, body = webui.api_img2img(_payload(wide, [{"target_image": _b64(tar), "mask_source": "user",
                                                       "mask_image": _b64(mask), "diagnostics": True}],
                                              resize_mode=0))
    assert status == 200, body
    (inputs, _), = seen
    expected = torch.zeros(8, 8)
    expected[:, :4] = 1  # the left half of the source is the left half of the generation
    assert torch.equal(prepare_user_mask(inputs.user_mask, (8, 8)).round(), expected)
    overlay = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["images"][1]))).convert("RGB"), dtype=np.int16)
    stretched = np.asarray(wide.resize((64, 64), Image.LANCZOS), dtype=np.int16)
    assert np.abs(overlay[:, 40:] - stretched[:, 40:]).max() <= 1  # untinted right part: the stretched source


# ---------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("values", "kwargs", "message"),
    [({"target_image": None}, {}, "no target image"),
     ({"mask_word": "zebra"}, {}, "object word 'zebra' is not in the prompt"),
     ({}, {"steps": 2}, "the FGAT window is empty at 2 steps"),
     ({"mask_source": "inpaint mask"}, {}, "mask source 'inpaint mask' needs a mask"),
     ({"mask_source": "attention"}, {"prompt": "!!!"}, "the prompt has no word to take the attention mask from")],
)
def test_ui_errors_abort_with_a_clear_message(webui, images, values, kwargs, message):
    src, tar = images
    args = _fgat(webui, tar, **values)
    kwargs = dict(kwargs)  # the parameter dict is shared with the Forge run of this test
    prompt = kwargs.pop("prompt", PROMPT)
    with pytest.raises(FGATError, match=message):
        webui.img2img(src, prompt, args, **{"steps": STEPS, **kwargs})
    assert webui.latents == []


def test_an_sdxl_refiner_is_refused(webui, images, monkeypatch):
    """A1111 has no refiner flag: sgm's refiner conditioner carries an aesthetic-score embedder; Forge loads
    it as its StableDiffusionXLRefiner engine class. Both are named in the error."""
    from types import SimpleNamespace

    src, tar = images
    model = webui.sd_model
    if hasattr(model, "forge_objects"):
        monkeypatch.setattr(model, "__class__", type("StableDiffusionXLRefiner", (type(model),), {}))
    else:
        conditioner = SimpleNamespace(embedders=[SimpleNamespace(input_key="aesthetic_score")])
        monkeypatch.setattr(model, "conditioner", conditioner, raising=False)
    with pytest.raises(FGATError, match="is an SDXL refiner, which FGAT does not support"):
        webui.img2img(src, PROMPT, _fgat(webui, tar), steps=STEPS)


# ---------------------------------------------------------------------------------------------- progress
@pytest.mark.parametrize(
    ("flag", "stop_at", "values", "stage"),
    [("interrupted", 3, {}, "inversion"), ("skipped", 11, {}, "sampling"),
     ("interrupted", 10, {"inversion": "null-text", "null_text_steps": 2}, "inversion")],
)
def test_progress_moves_and_interrupt_or_skip_stops_at_any_stage(webui, images, flag, stop_at, values, stage):
    src, tar = images
    state = webui.shared.state
    seen = []

    def watch(module, inputs, output):
        seen.append((state.textinfo, state.sampling_step, state.sampling_steps))
        if len(seen) == stop_at:
            setattr(state, flag, True)

    handle = webui.diffusion_model.register_forward_hook(watch)
    try:
        gen = webui.img2img(src, PROMPT, _fgat(webui, tar, **values), steps=STEPS, seed=9)
    finally:
        handle.remove()
    # the bar moved during the inversion: FGAT's stage text with a growing step count
    inversion = [(step, total) for text, step, total in seen if text and text.startswith("FGAT inversion")]
    assert len(inversion) >= 2 and inversion[-1][0] > inversion[0][0] and inversion[0][1] >= STEPS
    assert seen[stop_at - 1][0].startswith(f"FGAT {stage}") or stop_at <= 2
    # it stopped right there (no further UNet call), and the image is the unchanged source
    assert len(seen) == stop_at
    assert torch.equal(gen.latent, gen.init_latents[0])
    assert "FGAT was interrupted" in gen.processed.comments
    assert state.textinfo is None
