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
    from fgat_core.pipeline import tiny_pipeline

    return tiny_pipeline(seed=0)


@pytest.fixture(scope="session")
def tiny_pipe_v():
    from fgat_core.pipeline import tiny_pipeline

    return tiny_pipeline(seed=0, prediction_type="v_prediction")


@pytest.fixture(scope="session")
def tiny_pipe_xl():
    from fgat_core.pipeline import tiny_pipeline

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
