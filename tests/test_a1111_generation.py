"""Generations through the fake A1111 WebUI that only A1111 shows: how it flags the models FGAT refuses (ldm's
`conditioning_key`, the SD3 flag). The tests every WebUI shares are in test_webui_generation.py."""

import pytest
from conftest import webui_fixture
from test_webui_generation import PROMPT, STEPS, _fgat

from fgat_webui.run import FGATError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # gradio 3.41 on new FastAPI


webui = webui_fixture("a1111")


@pytest.mark.parametrize(
    ("attribute", "value", "message"),
    [("is_sd3", True, "SD3"), ("conditioning_key", "hybrid", "inpainting, depth or instruct-pix2pix")],
)
def test_unsupported_models_are_refused(webui, images, monkeypatch, attribute, value, message):
    src, tar = images
    owner = webui.sd_model.model if attribute == "conditioning_key" else webui.sd_model
    monkeypatch.setattr(owner, attribute, value)
    with pytest.raises(FGATError, match=message):
        webui.img2img(src, PROMPT, _fgat(webui, tar), steps=STEPS)
