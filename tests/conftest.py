import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# one thread: the tiny models gain nothing from more, and a shared CPU makes threads thrash
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_pipe():
    from fgat_cli.pipeline import tiny_pipeline

    return tiny_pipeline(seed=0)


@pytest.fixture(scope="session")
def tiny_pipe_v():
    from fgat_cli.pipeline import tiny_pipeline

    return tiny_pipeline(seed=0, prediction_type="v_prediction")


@pytest.fixture(scope="session")
def tiny_pipe_xl():
    from fgat_cli.pipeline import tiny_pipeline

    return tiny_pipeline(seed=0, sdxl=True)


@pytest.fixture(scope="session")
def example_images():
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:128, 0:128]
    src = np.stack([xx * 2, yy * 2, (xx + yy)], -1) % 256
    src = (src + rng.integers(0, 30, src.shape)).clip(0, 255).astype(np.uint8)
    tar = np.stack([255 - yy * 2, (xx * 3) % 256, np.full_like(xx, 90)], -1)
    tar = (tar + rng.integers(0, 30, tar.shape)).clip(0, 255).astype(np.uint8)
    return Image.fromarray(src), Image.fromarray(tar)


@pytest.fixture(scope="session")
def images(example_images):
    """The example pair at 64 px (8x8 latents), for the WebUI harness tests."""
    from PIL import Image

    src, tar = example_images
    return src.resize((64, 64), Image.BOX), tar.resize((64, 64), Image.BOX)


# ---------------------------------------------------------------------------------------------- the WebUI fakes
WEBUIS = ("a1111", "forge", "neo")  # test ids: test_x[a1111], test_x[forge], test_x[neo]
BACKEND_NAMES = {"a1111": "A1111", "forge": "Forge", "neo": "Forge Neo"}  # detect_backend().name in each


def start_webui(name: str, pipe, **options):
    """The fake WebUI `name` (a context manager: the fake's `modules` are installed while it is open)."""
    if name == "a1111":
        from fake_webui.harness import fake_webui

        return fake_webui(pipe, **options)
    if name == "forge":
        from fake_forge.harness import fake_forge

        return fake_forge(pipe, **options)
    from fake_neo.harness import fake_neo

    return fake_neo(pipe, **options)


@pytest.fixture(scope="module", params=WEBUIS)
def webui_name(request):
    """Which WebUI fake a shared test runs in: every test that takes `webui` runs once in each."""
    return request.param


def _running_webui(name: str, pipe, tmp_path_factory):
    """The fake WebUI `name` around `pipe`, with an empty user-presets folder of its own (`.presets_dir`)."""
    from fgat_webui import PRESETS_ENV

    presets = tmp_path_factory.mktemp("presets")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(PRESETS_ENV, str(presets))
        with start_webui(name, pipe) as w:
            w.presets_dir = presets
            yield w


@pytest.fixture(scope="module")
def webui(webui_name, tiny_pipe, tmp_path_factory):
    """The fake WebUI `webui_name` around the tiny model (see `_running_webui`)."""
    yield from _running_webui(webui_name, tiny_pipe, tmp_path_factory)


def webui_fixture(*names: str, name: str = "webui"):
    """A module's own `webui` fixture (or one called `name`), for tests of what some WebUIs do their own way:
    `webui = webui_fixture("forge")` (one WebUI), or `webui_fixture("forge", "neo")` (each, by test id)."""

    @pytest.fixture(scope="module", params=names, name=name)
    def running(request, tiny_pipe, tmp_path_factory):
        yield from _running_webui(request.param, tiny_pipe, tmp_path_factory)

    return running


@pytest.fixture(scope="module")
def api_only_start(webui_name):
    """Starts the fake `webui_name` as an API-only server (`--nowebui`): `with api_only_start(pipe) as w`."""
    return lambda pipe: start_webui(webui_name, pipe, api_only=True)
