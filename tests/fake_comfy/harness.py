"""A loaded ComfyUI checkpoint for a test: the fake `comfy` package (tests/fake_comfy) first on sys.path, and a
MODEL / CLIP / VAE built from a tiny `FGATPipeline` as `CheckpointLoaderSimple` would hand them on.

As in ComfyUI, the checkpoint is built under `torch.inference_mode()` (every node runs inside it,
execution.py:751), so the weights are inference tensors; `run_node` runs a node function under it too.
`stop()` removes every fake module and the path, so nothing of the fake outlives the test."""
from __future__ import annotations

import contextlib
import copy
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent
FAKE_PACKAGES = ("comfy", "folder_paths")


@dataclass
class Checkpoint:
    model: Any  # ModelPatcher
    clip: Any
    vae: Any


def _fake_modules() -> list[str]:
    return [m for m in sys.modules if m.split(".")[0] in FAKE_PACKAGES]


def start() -> None:
    if any(_fake_modules()):
        raise RuntimeError("a fake or real comfy package is already imported")
    sys.path.insert(0, str(ROOT))


def stop() -> None:
    for name in _fake_modules():
        del sys.modules[name]
    if str(ROOT) in sys.path:
        sys.path.remove(str(ROOT))


@torch.inference_mode()
def load_checkpoint(pipe, zsnr: bool = False) -> Checkpoint:
    """The tiny pipeline as ComfyUI's SD 1.x (BaseModel) or SDXL model, eps or v-prediction, optionally zsnr."""
    from comfy import latent_formats, model_base, model_patcher, sd, sd1_clip, sdxl_clip
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    config = SimpleNamespace(latent_format=latent_formats.SD15(float(pipe.vae.config.scaling_factor)),
                             sampling_settings={"zsnr": zsnr})
    kind = model_base.ModelType.V_PREDICTION if pipe.prediction_type == "v_prediction" else model_base.ModelType.EPS
    cls = model_base.SDXL if pipe.is_sdxl else model_base.BaseModel
    model = cls(config, kind, unet_model=UNetModel(copy.deepcopy(pipe.unet)))
    patcher = model_patcher.ModelPatcher(model, torch.device("cpu"), torch.device("cpu"))
    if pipe.is_sdxl:
        tokenizer = sdxl_clip.SDXLTokenizer(pipe.tokenizer, pipe.tokenizer_2)
        encoders = {"l": copy.deepcopy(pipe.text_encoder), "g": copy.deepcopy(pipe.text_encoder_2)}
    else:
        tokenizer = sd1_clip.SD1Tokenizer(pipe.tokenizer)
        encoders = {"l": copy.deepcopy(pipe.text_encoder)}
    clip = sd.CLIP(tokenizer, encoders, sdxl=pipe.is_sdxl)
    return Checkpoint(patcher, clip, sd.VAE(copy.deepcopy(pipe.vae)))


def run_node(fn, *args, **kwargs):
    """A node function as ComfyUI's executor calls it (execution.py:751: under torch.inference_mode())."""
    with torch.inference_mode():
        return fn(*args, **kwargs)


@contextlib.contextmanager
def fake_comfy(pipe, zsnr: bool = False):
    start()
    try:
        yield load_checkpoint(pipe, zsnr)
    finally:
        stop()
