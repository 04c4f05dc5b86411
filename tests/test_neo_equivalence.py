"""The Forge Neo path equals the core path: the Forge equivalence tests (test_forge_equivalence.py) run unchanged
against the fake Neo (Neo's ComfyUI-port patcher, its sampling-only VAE, its SDXL conditioning), for SD 1.5 eps,
SDXL eps, SDXL v-prediction and SDXL v-prediction with zero terminal SNR (Neo rescales the predictor's sigmas
around `p.sample`; the core is given that schedule), and for null-text inversion under Neo's inference mode.

The test bodies are the Forge module's: only the harness its `_forge_run` starts is swapped for the fake Neo."""

import functools

import pytest
import test_forge_equivalence as _forge
from fake_neo.harness import fake_neo

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # gradio 3.41 on new FastAPI


@pytest.fixture(scope="session")
def tiny_pipe_xl_v():
    from fgat_cli.pipeline import tiny_pipeline

    return tiny_pipeline(seed=0, sdxl=True, prediction_type="v_prediction")


@pytest.mark.parametrize(
    ("model", "steps", "ztsnr"),
    [("tiny_pipe", 50, False), ("tiny_pipe_xl", 12, False), ("tiny_pipe_xl_v", 12, False),
     ("tiny_pipe_xl_v", 12, True)],
    ids=["sd15-eps", "sdxl-eps", "sdxl-v", "sdxl-v-ztsnr"],
)
def test_neo_path_matches_core_path(request, images, monkeypatch, model, steps, ztsnr):
    monkeypatch.setattr(_forge, "fake_forge", functools.partial(fake_neo, ztsnr=ztsnr))
    _forge.test_forge_path_matches_core_path(request, images, model, steps)


def test_neo_ztsnr_schedule_is_the_rescaled_one(tiny_pipe_xl_v):
    """The ztsnr case above is not the plain one: Neo's rescale gives a_999 = 4.9e-8 (k_prediction.py:59)."""
    with fake_neo(tiny_pipe_xl_v, ztsnr=True) as neo:
        assert float(neo.model_alphas_cumprod()[-1]) == pytest.approx(4.8973451890853435e-08, rel=1e-3)
    with fake_neo(tiny_pipe_xl_v) as neo:
        assert float(neo.model_alphas_cumprod()[-1]) > 1e-3


def test_neo_null_text_inversion_matches_core(tiny_pipe_xl, images, monkeypatch):
    monkeypatch.setattr(_forge, "fake_forge", fake_neo)
    _forge.test_forge_null_text_inversion_runs_under_inference_mode_and_matches_core(tiny_pipe_xl, images)
