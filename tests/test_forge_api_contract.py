"""What only Forge shows of the API contract (test_webui_api_contract.py runs in every fake WebUI): its UNet
adds residuals in place (backend/nn/unet.py:240,272,278), which broke null-text inversion's autograd."""

import numpy as np
import pytest
from fake_forge.harness import fake_forge
from test_webui_api_contract import _fgat, _ok, _payload, _pixels

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def webui(tiny_pipe):
    with fake_forge(tiny_pipe) as w:
        yield w


def test_null_text_inversion_preset_works_through_forges_in_place_unet(webui, images):
    """The 'Paper (null-text inversion)' preset over the API: HTTP 200, and the optimised null text changed
    the image (against plain DDIM inversion of the same request)."""
    src, tar = images
    null_text = _ok(webui, _payload(src, [_fgat(tar, preset="Paper (null-text inversion)", null_text_steps=2)]))
    ddim = _ok(webui, _payload(src, [_fgat(tar, preset="Paper (null-text inversion)", inversion="ddim")]))
    assert not np.array_equal(_pixels(null_text)[0], _pixels(ddim)[0])
