"""What an API user of a real WebUI meets (issue 10: defects found on a real A1111 1.10.1 and Forge f2.0.1,
which the fakes now reproduce): a repeatable image, one seed per image, FGAT's notes in the infotext,
client errors answered as HTTP 422 with the message and one console line, inputs not echoed whole,
failures named after FGAT, and the X/Y/Z axes on an API-only server. Every test that takes `webui` (or
`api_only_start`) runs in every fake WebUI (conftest.py: A1111, Forge, Forge Neo); what only Forge or Neo
shows is in test_forge_api_contract.py."""

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fgat_webui.run as fgat_run
from fgat_core.infotext import INFOTEXT_KEY, parse_infotext
from fgat_webui.xyz import AXES

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
PROMPT, TARGET_PROMPT = "a photo of a cat", "a photo of a dog"
STEPS = 8
PREFIX = "Fine-grained Appearance Transfer"
NOTES_KEY = "FGAT notes"  # the infotext key API users read (docs/webui.md, Infotext)
DOCS = Path(__file__).resolve().parents[1] / "docs"


def _b64(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _payload(src, fgat_args, **extra):
    body = dict(init_images=[_b64(src)], prompt=PROMPT, steps=STEPS, cfg_scale=7.5, seed=11, sampler_name="DDIM",
                denoising_strength=1.0, width=64, height=64)
    body.update(extra)
    body["alwayson_scripts"] = {"Fine-grained Appearance Transfer": {"args": fgat_args}}
    return body


def _fgat(tar, **values):
    return {"target_image": _b64(tar), "target_prompt": TARGET_PROMPT, "mask_word": "cat", **values}


def _pixels(body) -> list[np.ndarray]:
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(b))).convert("RGB")) for b in body["images"]]


def _params(infotext: str) -> dict:
    from modules.infotext_utils import parse_generation_parameters

    return parse_generation_parameters(infotext)


def _ok(webui, payload, **kwargs):
    status, body = webui.api_img2img(payload, **kwargs)
    assert status == 200, body
    return body


# ---------------------------------------------------------------------------------------------- item 2
def test_the_same_request_gives_the_same_image_whatever_ran_before(webui, images):
    """The WebUI's `p.init_latent` is a VAE posterior *sample* from the global generator (the harness seeds it
    per request as earlier requests would leave it): FGAT encodes the source deterministically instead."""
    src, tar = images
    first = _ok(webui, _payload(src, [_fgat(tar)]), seed_global=0)
    again = _ok(webui, _payload(src, [_fgat(tar)]), seed_global=1234)
    assert np.array_equal(_pixels(first)[0], _pixels(again)[0])


def test_the_source_latent_is_the_posterior_mean_of_the_pixels_the_webui_encoded(webui, images):
    from modules import shared

    src, tar = images
    _ok(webui, _payload(src, [_fgat(tar)]), seed_global=5)
    model = shared.sd_model
    pixels = np.asarray(src, dtype=np.float32) / 255.0 * 2 - 1
    import torch

    x = torch.from_numpy(pixels).permute(2, 0, 1)[None]
    vae = model.forge_objects.vae.clone() if hasattr(model, "forge_objects") else None
    if vae is not None and hasattr(vae.patcher, "set_model_vae_regulation"):  # Forge 2: a mode regulation
        vae.patcher.set_model_vae_regulation(lambda posterior: posterior.mode())
        with torch.inference_mode():
            mean = vae.first_stage_model.process_in(vae.encode(x.movedim(1, -1) * 0.5 + 0.5))
    elif vae is not None:  # Neo: no regulation hook; the mean half of the encoder's moments
        vae_model = vae.first_stage_model
        with torch.inference_mode():
            moments = vae_model.quant_conv(vae_model.encoder(x))
            mean = vae_model.process_in(moments.chunk(2, dim=1)[0])
    else:
        mean = model.get_first_stage_encoding(model.encode_first_stage(x).mode())
    assert torch.allclose(webui.init_latents[0].float(), mean.float(), atol=1e-5)


# ---------------------------------------------------------------------------------------------- item 3
def test_each_image_of_a_batch_count_has_its_own_seed_and_a_single_run_reproduces_it(webui, images):
    src, tar = images
    body = _ok(webui, _payload(src, [_fgat(tar)], n_iter=2))
    info = json.loads(body["info"])
    assert info["all_seeds"] == [11, 12]
    seeds = [parse_infotext(_params(t)[INFOTEXT_KEY])[0].seed for t in info["infotexts"]]
    assert seeds == [11, 12]  # the FGAT value records the image's own seed
    first, second = _pixels(body)
    assert not np.array_equal(first, second)  # DIFT noise from each image's seed
    single = _ok(webui, _payload(src, [_fgat(tar)], seed=12), seed_global=99)
    assert np.array_equal(_pixels(single)[0], second)
    infotext = json.loads(single["info"])["infotexts"][0]
    assert parse_infotext(_params(infotext)[INFOTEXT_KEY])[0].seed == 12


# ---------------------------------------------------------------------------------------------- item 5
def test_an_all_black_mask_is_said_in_the_infotext(webui, images):
    src, tar = images
    black = Image.new("L", (64, 64), 0)
    body = _ok(webui, _payload(src, [_fgat(tar, mask_source="user", mask_image=_b64(black))]))
    info = json.loads(body["info"])
    assert "comments" not in info  # A1111 1.10.1's `info` has none (processing.py:571-607)
    assert "the mask is all black" in _params(info["infotexts"][0])[NOTES_KEY]


def test_an_interrupted_image_and_a_masked_content_fill_are_said_in_the_infotext(webui, images, monkeypatch):
    from fgat_core.engine import FGATInterrupted

    src, tar = images

    def interrupted(*args, **kwargs):
        raise FGATInterrupted("interrupted")

    monkeypatch.setattr(fgat_run, "run_fgat", interrupted)
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (0, 0, 32, 64))
    body = _ok(webui, _payload(src, [_fgat(tar)], mask=_b64(mask), inpainting_fill=3, mask_blur=0))
    notes = _params(json.loads(body["info"])["infotexts"][0])[NOTES_KEY]
    assert "FGAT was interrupted" in notes and "'Masked content: latent nothing'" in notes


def test_an_image_without_notes_has_no_notes_key(webui, images):
    src, tar = images
    body = _ok(webui, _payload(src, [_fgat(tar)]))
    assert NOTES_KEY not in _params(json.loads(body["info"])["infotexts"][0])


# ---------------------------------------------------------------------------------------------- items 6, 7
@pytest.mark.parametrize(
    ("args", "message"),
    [({"deltaa": 0.5}, r"unknown FGAT API key\(s\): deltaa"),  # found in process()
     ({"mask_word": "zebra"}, r"object word 'zebra' is not in the prompt")],  # found in process() too
)
def test_a_bad_input_is_a_422_with_the_message_and_one_console_line(webui, images, capfd, args, message):
    src, tar = images
    capfd.readouterr()
    status, body = webui.api_img2img(_payload(src, [_fgat(tar, **args)]))
    assert status == 422, body
    assert body["detail"].startswith(f"{PREFIX}: ") and re.search(message, body["detail"])
    if "errors" in body:  # A1111's handler repeats str(e) there (Forge: `detail` only)
        assert body["errors"] == body["detail"]
    printed = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    assert len(printed) == 1 and re.search(message, printed[0]), printed


def _api_with_failing_engine(webui, images, monkeypatch, error: Exception):
    """An API img2img whose FGAT run raises `error` once sampling has started."""
    src, tar = images

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(fgat_run, "run_fgat", fail)
    return webui.api_img2img(_payload(src, [_fgat(tar)]))


def test_an_input_found_bad_during_sampling_is_a_422_too(webui, images, monkeypatch):
    status, body = _api_with_failing_engine(webui, images, monkeypatch, ValueError("the mask image is unusable here"))
    assert status == 422 and body["detail"] == f"{PREFIX}: the mask image is unusable here", body


def test_a_failure_inside_fgat_is_a_500_named_after_fgat(webui, images, monkeypatch):
    error = RuntimeError("one of the variables needed for gradient computation has been modified")
    status, body = _api_with_failing_engine(webui, images, monkeypatch, error)
    assert status == 500, body
    text = body.get("errors") or body.get("message")  # A1111: `errors`, Forge: `message`
    assert text == f"{PREFIX} failed: RuntimeError: one of the variables needed for gradient computation has been " \
                   "modified", body


def test_a_takeover_that_fails_in_process_batch_is_a_500_not_a_silent_plain_image(webui, images, monkeypatch):
    """The WebUIs only log what a script's `process_batch` / `process_before_every_sampling` raises and then sample
    on their own (issue 22 item 7a: HTTP 200, no FGAT infotext): a takeover that fails there is raised when
    sampling starts, named after FGAT."""
    from fgat_webui.detect import backend_classes

    def broken(self, p, fn):
        raise AttributeError("'PredictionFlux' object has no attribute 'log_sigmas'")

    for cls in backend_classes():
        monkeypatch.setattr(cls, "take_over_sampling", broken)
    src, tar = images
    status, body = webui.api_img2img(_payload(src, [_fgat(tar)]))
    assert status == 500, body
    assert body["detail"] == f"{PREFIX} failed: AttributeError: 'PredictionFlux' object has no attribute 'log_sigmas'"
    assert webui.latents == []


def test_an_image_sent_where_a_number_belongs_is_not_echoed_whole(webui, images):
    src, tar = images
    image = _b64(tar)
    positional = [True, image, TARGET_PROMPT, "cat", "attention", image]  # δ is the 6th control
    status, body = webui.api_img2img(_payload(src, positional))
    assert status == 422, body
    assert "must be a number" in body["detail"] and image not in body["detail"]
    assert len(body["detail"]) < 300 and f"…({len(repr(image))} characters)" in body["detail"], body["detail"]


def test_a_long_prompt_is_cut_short_in_the_error(webui, images):
    src, tar = images
    prompt = "a photo of a cat " + "very " * 200
    status, body = webui.api_img2img(_payload(src, [_fgat(tar, mask_word="zebra")], prompt=prompt))
    assert status == 422 and len(body["detail"]) < 600 and "characters)" in body["detail"], body


# ---------------------------------------------------------------------------------------------- item 4
def test_the_xyz_axes_reach_an_api_only_server(tiny_pipe, images, api_only_start):
    """With --nowebui the API builds the scripts' choices before the before-UI callbacks (webui.py:26-38):
    the FGAT axes are among the X/Y/Z plot's options the API knows, and a plot over δ runs."""
    with api_only_start(tiny_pipe) as webui:
        xyz = next(s for s in webui.runner.selectable_scripts if s.title() == "X/Y/Z plot")
        labels = [o.label for o in xyz.current_axis_options]
        assert all(label in labels for label, _, _ in AXES)
        src, tar = images
        axis = labels.index("[FGAT] δ transfer strength")
        gen = webui.img2img(src, PROMPT, [True, tar, TARGET_PROMPT, "cat"], steps=STEPS,
                            script_index=webui.runner.selectable_scripts.index(xyz) + 1,
                            script_args=[axis, "0, 0.8"])
        deltas = [parse_infotext(_params(t)[INFOTEXT_KEY])[0].delta for t in gen.processed.infotexts]
        assert deltas == [0.0, 0.8]


# ---------------------------------------------------------------------------------------------- item 8
def test_readme_api_example_sets_the_sampler_and_strength_and_says_where_notes_and_errors_are():
    api = (DOCS / "api.md").read_text(encoding="utf-8")
    example = api[api.index("```python"):]
    example = example[:example.index("```", 3)]
    assert '"sampler_name": "DDIM"' in example and '"denoising_strength": 1.0' in example
    assert "infotexts" in example and '"detail"' in example
    assert "HTTP 422" in api and "`detail`" in api and "`errors`" in api and "`message`" in api
    assert NOTES_KEY in api
    webui = (DOCS / "webui.md").read_text(encoding="utf-8")
    infotext = webui[webui.index("## Infotext"):webui.index("## Presets")]
    assert "Forge" in infotext and "send the settings themselves" in infotext
