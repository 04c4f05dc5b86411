"""The script inside the fake Forge Neo without generating, what only Neo shows (test_webui_ui.py runs in every fake
WebUI, Neo included): how FGAT tells Neo from Forge 2. Neo runs gradio 4.40 +
gradio_rangeslider (its launch_utils.py GRADIO_PACKAGE), as Forge 2 does: tests/gradio4/smoke.py builds the section
under that pin in CI, and test_forge_ui.py checks the UI code for gradio-3-only API."""

from conftest import webui_fixture

webui = webui_fixture("neo")


def test_neo_is_detected_by_what_the_model_offers(webui):
    """Detected by what the model offers (a KModel predictor, a VAE patcher without Forge 2's regulation hook),
    not by modules_forge.forge_version, which the fake sets to Neo's "neo" all the same."""
    from modules_forge import forge_version

    from fgat_webui.detect import detect_backend

    assert forge_version.version == "neo"
    assert not hasattr(webui.sd_model.forge_objects.vae.patcher, "set_model_vae_regulation")
    assert detect_backend().name == "Forge Neo"


def test_forge_2_is_still_detected_as_forge(tiny_pipe):
    from fake_forge.harness import fake_forge

    from fgat_webui.detect import detect_backend

    with fake_forge(tiny_pipe):
        assert detect_backend().name == "Forge"
