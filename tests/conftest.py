import getpass
import os
import shutil
import sys
import tempfile
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

# Nothing FGAT or its tests create in the temp directory may outlive the run (issue 22). The session gets a
# temp directory of its own (this process's tempfile and, through TMPDIR, every subprocess's: the CLI runs),
# so that other programs on the machine cannot make the check below fail; pytest's own tmp_path folders stay
# in the system's temp directory, where pytest keeps and prunes them.
SYSTEM_TEMP = tempfile.gettempdir()
os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", SYSTEM_TEMP)
SESSION_TEMP = tempfile.mkdtemp(prefix="fgat-tests-")
tempfile.tempdir = SESSION_TEMP
os.environ["TMPDIR"] = SESSION_TEMP
# torch's compile cache lives in the system temp directory on purpose (shared between runs): left there
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", os.path.join(SYSTEM_TEMP, f"torchinductor_{getpass.getuser()}"))
# The fake A1111 creates its data folder at import, as the real one's `modules.paths` does (data_path),
# and has no exit to remove it: the fakes' own leftovers, removed here (anything else left fails the run).
FAKE_LEFTOVERS = ("fake-webui-data-",)


def leftovers(folder: str) -> list[str]:
    """Entries in `folder` that are not the fakes' known leftovers."""
    return sorted(name for name in os.listdir(folder) if not name.startswith(FAKE_LEFTOVERS))


@pytest.fixture(scope="session", autouse=True)
def _temp_directory_left_as_found():
    """Fails the run (an error at the last test's teardown) when the tests or the code under test leave
    anything in the temp directory."""
    yield
    left = leftovers(SESSION_TEMP)
    for name in os.listdir(SESSION_TEMP):
        if name.startswith(FAKE_LEFTOVERS):
            shutil.rmtree(os.path.join(SESSION_TEMP, name), ignore_errors=True)
    if not left:
        os.rmdir(SESSION_TEMP)
    assert not left, f"the run left these in the temp directory {SESSION_TEMP}: {left}"


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


# ---------------------------------------------------------------------------------------------- CLI runs
CLI_SIZE = 64  # in-process CLI runs use 64 px copies of the examples (8x8 latents) to stay fast


def example_64(name: str):
    """examples/<name>.png as RGB at 64 px."""
    from PIL import Image

    return Image.open(ROOT / "examples" / f"{name}.png").convert("RGB").resize((CLI_SIZE, CLI_SIZE), Image.LANCZOS)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """64 px copies of examples/source.png and target.png: (source path, target path)."""
    folder = tmp_path_factory.mktemp("small")
    for name in ("source", "target"):
        example_64(name).save(folder / f"{name}.png")
    return folder / "source.png", folder / "target.png"


@pytest.fixture
def isolated_cli(tmp_path, monkeypatch):
    """No user presets from the home folder; no FGAT_MODEL from the environment (use as an autouse wrapper)."""
    monkeypatch.setenv("FGAT_PRESETS_DIR", str(tmp_path / "presets"))
    monkeypatch.delenv("FGAT_MODEL", raising=False)


@pytest.fixture
def use_tiny(monkeypatch, tiny_pipe):
    """In-process CLI runs reuse the session's tiny model instead of building it again (same model, seed 0)."""
    from fgat_cli import cli

    monkeypatch.setattr(cli, "_load", lambda args: tiny_pipe)
    return tiny_pipe


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
