"""Generations through the fake Forge that only Forge shows: it flags the models FGAT refuses differently
(`is_sd1`, `is_inpaint`, the predictor's prediction type). The tests every WebUI shares (Forge included) are
in test_webui_generation.py."""

import pytest
from conftest import webui_fixture
from test_webui_generation import PROMPT, STEPS, _fgat

from fgat_webui.run import FGATError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


webui = webui_fixture("forge")


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
        webui.img2img(src, PROMPT, _fgat(webui, tar), steps=STEPS)
