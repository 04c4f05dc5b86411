"""The script inside the fake Forge Neo without generating: every test of test_webui_ui.py that drives the WebUI
(UI build, API default args, presets through the UI's event handlers, infotext paste-back, X/Y/Z axes) is collected
here again and run against the fake Neo (as test_forge_ui.py does for Forge). Neo runs gradio 4.40 +
gradio_rangeslider (its launch_utils.py GRADIO_PACKAGE), as Forge 2 does: tests/gradio4/smoke.py builds the section
under that pin in CI, and test_forge_ui.py checks the UI code for gradio-3-only API."""

import inspect

import pytest
import test_webui_ui as _a1111
from fake_neo.harness import fake_neo

from fgat_webui import PRESETS_ENV

for _name, _test in vars(_a1111).items():
    if _name.startswith("test_") and "webui" in inspect.signature(_test).parameters:
        globals()[_name] = _test  # collected again in this module, with this module's `webui` fixture


@pytest.fixture(scope="module")
def webui(tiny_pipe, tmp_path_factory):
    presets = tmp_path_factory.mktemp("presets")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(PRESETS_ENV, str(presets))
        with fake_neo(tiny_pipe) as w:
            w.presets_dir = presets
            yield w


def test_the_neo_tests_really_run_in_neo(webui):
    """Detected by what the model offers (a KModel predictor, a VAE patcher without Forge 2's regulation hook),
    not by modules_forge.forge_version, which the fake sets to Neo's "neo" all the same."""
    from modules_forge import forge_version

    from fgat_webui.backend import detect_backend

    assert forge_version.version == "neo"
    assert not hasattr(webui.sd_model.forge_objects.vae.patcher, "set_model_vae_regulation")
    assert detect_backend().name == "Forge Neo"
    reused = [n for n, f in globals().items() if n.startswith("test_") and f.__module__ == _a1111.__name__]
    assert len(reused) >= 5


def test_forge_2_is_still_detected_as_forge(tiny_pipe):
    from fake_forge.harness import fake_forge

    from fgat_webui.backend import detect_backend

    with fake_forge(tiny_pipe):
        assert detect_backend().name == "Forge"
