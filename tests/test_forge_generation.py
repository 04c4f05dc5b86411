"""Generations through the fake Forge: every test of test_webui_generation.py (API dict and positional
args, infotext round trip, sampler policy, X/Y/Z plot, batches, masks, errors, progress and Interrupt/Skip at
every stage) is collected here again and run unchanged against the fake Forge, whose `webui` fixture
replaces the A1111 one. Only the unsupported-model test is Forge's own: Forge flags models differently."""

import inspect

import pytest
import test_webui_generation as _a1111
from fake_forge.harness import fake_forge
from test_webui_generation import _fgat

from fgat_webui.run import FGATError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
A1111_ONLY = {"test_unsupported_models_are_refused"}

for _name, _test in vars(_a1111).items():
    if _name.startswith("test_") and _name not in A1111_ONLY and "webui" in inspect.signature(_test).parameters:
        globals()[_name] = _test  # collected again in this module, with this module's `webui` fixture


@pytest.fixture(scope="module")
def webui(tiny_pipe):
    with fake_forge(tiny_pipe) as w:
        yield w


@pytest.mark.parametrize(
    ("attribute", "value", "message"),
    [("is_sd1", False, "not a Stable Diffusion 1.x, 2.x or XL model"),  # e.g. Flux or SD3 in Forge
     ("is_inpaint", True, "inpainting model"),
     ("prediction_type", "edm", "predicts 'edm'")],
)
def test_unsupported_models_are_refused_in_forge(webui, images, monkeypatch, attribute, value, message):  # noqa: F811
    src, tar = images
    owner = webui.unet_patcher.model.predictor if attribute == "prediction_type" else webui.sd_model
    monkeypatch.setattr(owner, attribute, value)
    with pytest.raises(FGATError, match=message):
        webui.img2img(src, _a1111.PROMPT, _fgat(webui, tar), steps=_a1111.STEPS)
