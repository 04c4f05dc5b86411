"""What only Neo shows of the API contract (test_webui_api_contract.py runs in every fake WebUI): null-text
inversion through Neo's UNet, which adds its residuals in place as Forge's does (Neo 3df257ae
backend/nn/unet.py l.234, 266, 272)."""

import numpy as np
import pytest
from fake_neo.harness import fake_neo
from test_webui_api_contract import _fgat, _ok, _payload, _pixels

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def webui(tiny_pipe):
    with fake_neo(tiny_pipe) as w:
        yield w


def test_null_text_inversion_preset_works_through_neos_in_place_unet(webui, images):
    """The 'Paper (null-text inversion)' preset over the API: HTTP 200, and the optimised null text changed
    the image (against plain DDIM inversion of the same request)."""
    src, tar = images
    null_text = _ok(webui, _payload(src, [_fgat(tar, preset="Paper (null-text inversion)", null_text_steps=2)]))
    ddim = _ok(webui, _payload(src, [_fgat(tar, preset="Paper (null-text inversion)", inversion="ddim")]))
    assert not np.array_equal(_pixels(null_text)[0], _pixels(ddim)[0])
