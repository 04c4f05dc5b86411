"""The API contract of test_webui_api_contract.py, run again unchanged against the fake Forge Neo (its `webui`
and API-only fixtures replace the A1111 ones), plus null-text inversion through Neo's UNet, which adds its
residuals in place as Forge's does (Neo 3df257ae backend/nn/unet.py l.234, 266, 272)."""

import inspect

import numpy as np
import pytest
import test_webui_api_contract as _a1111
from fake_neo.harness import fake_neo
from test_webui_api_contract import _fgat, _ok, _payload, _pixels

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_null_text_inversion_preset_works_through_neos_in_place_unet(webui, images):  # noqa: F811
    """The 'Paper (null-text inversion)' preset over the API: HTTP 200, and the optimised null text changed
    the image (against plain DDIM inversion of the same request)."""
    src, tar = images
    null_text = _ok(webui, _payload(src, [_fgat(tar, preset="Paper (null-text inversion)", null_text_steps=2)]))
    ddim = _ok(webui, _payload(src, [_fgat(tar, preset="Paper (null-text inversion)", inversion="ddim")]))
    assert not np.array_equal(_pixels(null_text)[0], _pixels(ddim)[0])


# the API-only test starts its own fake (stopping the module's): it comes last, as in the A1111 module
for _name, _test in vars(_a1111).items():
    params = inspect.signature(_test).parameters if _name.startswith("test_") else {}
    if "webui" in params or "api_only_start" in params:
        globals()[_name] = _test  # collected again in this module, with this module's fixtures


@pytest.fixture(scope="module")
def webui(tiny_pipe):
    with fake_neo(tiny_pipe) as w:
        yield w


@pytest.fixture(scope="module")
def api_only_start():
    return lambda pipe: fake_neo(pipe, api_only=True)
