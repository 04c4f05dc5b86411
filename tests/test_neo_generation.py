"""Generations through the fake Forge Neo that only Neo shows: it names its architectures by engine class
(backend/diffusion_engine/*.py), and Forge 1.x backends are refused. The tests every WebUI shares (Neo included)
are in test_webui_generation.py."""

import re

import pytest
from conftest import webui_fixture
from test_webui_generation import PROMPT, STEPS, _b64, _fgat, _payload

from fgat_webui.run import FGATError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


webui = webui_fixture("neo")


# Neo 3df257ae backend/diffusion_engine/<file>: class <name>(ForgeDiffusionEngine), none an SD 1.5 / SDXL one
NEO_ENGINES = [("flux.py", "Flux", "Flux.1"), ("flux2.py", "Flux2", "Flux.2 (Klein)"),
               ("chroma.py", "Chroma", "Chroma"), ("lumina.py", "Lumina2", "Lumina 2"),
               ("qwen.py", "QwenImage", "Qwen-Image"), ("wan.py", "Wan", "Wan"), ("zimage.py", "ZImage", "Z-Image"),
               ("anima.py", "Anima", "Anima")]


@pytest.mark.parametrize(("file", "engine", "family"), NEO_ENGINES, ids=[e[1] for e in NEO_ENGINES])
def test_neo_architectures_fgat_cannot_run_are_named(webui, images, monkeypatch, file, engine, family):
    """An engine of that class (over the SD 1.5 one, so that img2img can still encode the source) with the
    predictor it builds (`flow_predictor`: PredictionFlux & kin, which have no `log_sigmas`) is refused with a
    message naming the family, through the API (HTTP 422) and the UI, before anything reads the predictor: nothing
    is sampled and the script runner logs nothing (issue 22 item 7a: the takeover read `log_sigmas` inside
    process_batch, whose exception Neo's runner only logs, and the WebUI sampled on its own, HTTP 200)."""
    from fake_neo.harness import flow_predictor
    from modules import errors

    src, tar = images
    monkeypatch.setattr(webui.sd_model, "__class__", type(engine, (type(webui.sd_model),), {}))
    monkeypatch.setattr(webui.sd_model, "is_sd1", False)  # fix_for_webui_backward_compatibility leaves it False
    monkeypatch.setitem(webui.unet_patcher.model._modules, "predictor", flow_predictor(engine))  # a submodule
    assert not hasattr(webui.unet_patcher.model.predictor, "log_sigmas")
    message = rf"is a {re.escape(family)} model, which FGAT does not support.*SD 1\.5 or SDXL"
    errors.reported.clear()
    status, body = webui.api_img2img(_payload(src, [{"target_image": _b64(tar), "mask_word": "cat"}]))
    assert status == 422 and re.search(message, body["detail"]), body
    with pytest.raises(FGATError, match=message):
        webui.img2img(src, PROMPT, _fgat(webui, tar), steps=STEPS)
    assert webui.latents == [] and errors.reported == []  # refused before anything was sampled or logged


@pytest.mark.parametrize(
    ("attribute", "value", "message"),
    [("is_inpaint", True, "inpainting model"), ("prediction_type", "edm", "predicts 'edm'")],
)
def test_unsupported_sd_models_are_refused_in_neo(webui, images, monkeypatch, attribute, value, message):
    src, tar = images
    owner = webui.unet_patcher.model.predictor if attribute == "prediction_type" else webui.sd_model
    monkeypatch.setattr(owner, attribute, value)
    with pytest.raises(FGATError, match=message):
        webui.img2img(src, PROMPT, _fgat(webui, tar), steps=STEPS)


def test_forge_1x_backends_get_a_message_naming_the_supported_webuis(webui, images, monkeypatch):
    """reForge / Forge Classic: `forge_objects.unet.model` is an ldm_patched BaseModel (`model_sampling`, no
    `predictor`). FGAT's `process()` keeps the message and raises it when sampling starts, naming the WebUIs it
    supports. (Only FGAT's part is run: the fake's own sampler needs the predictor.)"""
    import torch

    from fgat_webui.detect import detect_backend
    from fgat_webui.run import start_run

    src, tar = images
    kmodel = webui.unet_patcher.model
    monkeypatch.delattr(kmodel, "predictor")
    monkeypatch.setattr(kmodel, "model_sampling", object(), raising=False)
    message = r"supports AUTOMATIC1111 1\.10\.x, Forge 2\.x .* and Forge Neo.*Forge 1\.x backend"
    with pytest.raises(ValueError, match=message):
        detect_backend()
    p = webui.make_p(src, PROMPT, steps=STEPS)
    run = start_run(p, _fgat(webui, tar))
    x = torch.zeros(1, 4, 8, 8)
    with pytest.raises(FGATError, match=message):
        run.sample_img2img(p, x, x, None, None)
