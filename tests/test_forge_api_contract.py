"""What only Forge and Forge Neo show of the API contract (test_webui_api_contract.py runs in every fake WebUI):
their UNet adds residuals in place (Forge backend/nn/unet.py:240,272,278; Neo 3df257ae l.234, 266, 272), which
broke null-text inversion's autograd. Each test runs in both (ids [forge], [neo])."""

import numpy as np
import pytest
from conftest import webui_fixture
from test_webui_api_contract import _fgat, _ok, _payload, _pixels

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
webui = webui_fixture("forge", "neo")


def test_null_text_inversion_preset_works_through_the_in_place_unet(webui, images):
    """The 'Paper (null-text inversion)' preset over the API: HTTP 200, and the optimised null text changed
    the image (against plain DDIM inversion of the same request)."""
    src, tar = images
    null_text = _ok(webui, _payload(src, [_fgat(tar, preset="Paper (null-text inversion)", null_text_steps=2)]))
    ddim = _ok(webui, _payload(src, [_fgat(tar, preset="Paper (null-text inversion)", inversion="ddim")]))
    assert not np.array_equal(_pixels(null_text)[0], _pixels(ddim)[0])
