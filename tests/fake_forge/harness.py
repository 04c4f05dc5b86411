"""Start the fake Forge for a test: the same driver as the fake A1111's (`fake_webui.harness.FakeWebUI`:
img2img through the UI path or the API, infotext paste, leftover checks), over Forge's startup.

Startup mirrors Forge's webui.py + modules/initialize.py for what we need: the checkpoint is loaded by
`backend.loader.forge_loader` (under inference mode) into a Forge engine that becomes `shared.sd_model`,
then the scripts are loaded (our `scripts/fgat.py` and the built-in `xyz_grid.py`) and the img2img
script UI is built, exactly as in the A1111 harness.

Only the model loading differs from the A1111 harness (`_load_model`); the fake Forge's root comes first on
sys.path, and `stop()` removes every fake module (Forge's `backend` and `modules_forge` included)."""
from __future__ import annotations

import contextlib
from pathlib import Path

from fake_webui.harness import FAKE_PACKAGES as A1111_PACKAGES
from fake_webui.harness import FakeWebUI

FORGE_ROOT = Path(__file__).resolve().parent
FAKE_PACKAGES = (*A1111_PACKAGES, "backend", "modules_forge")


class FakeForge(FakeWebUI):
    """`FakeWebUI`'s test API over the fake Forge. `pipe` may be an SD1 or an SDXL tiny pipeline."""

    root = FORGE_ROOT
    packages = FAKE_PACKAGES

    def __init__(self, pipe, **kwargs) -> None:
        kind = "v" if pipe.prediction_type == "v_prediction" else "eps"
        if kwargs.pop("parameterization", kind) != kind:
            raise ValueError(f"the fake Forge reads the prediction type from the pipeline ({kind})")
        super().__init__(pipe, parameterization=kind, **kwargs)

    def _load_model(self) -> None:
        from backend import memory_management
        from backend.loader import forge_loader
        from backend.sampling import sampling_function
        from modules import sd_models

        memory_management.loads.clear()
        sampling_function.prepared.clear()
        sampling_function.cleaned.clear()
        sd_models.load_model(forge_loader(self.pipe), name="tiny-sdxl" if self.pipe.is_sdxl else "tiny-sd")

    # ------------------------------------------------------------------------------------------ model access
    def model_alphas_cumprod(self):
        """Forge has no alphas_cumprod: a = 1 / (1 + sigma^2) of the predictor's float32 sigma table."""
        return 1.0 / (1.0 + self.unet_patcher.model.predictor.sigmas.double() ** 2)

    @property
    def diffusion_model(self):
        """The UNet module (the same object behind every shallow copy of forge_objects)."""
        return self.sd_model.forge_objects_after_applying_lora.unet.model.diffusion_model

    @property
    def unet_patcher(self):
        return self.sd_model.forge_objects.unet

    def model_modules(self):
        objects = self.sd_model.forge_objects_original
        return [objects.unet.model, objects.vae.first_stage_model, objects.clip.cond_stage_model]


@contextlib.contextmanager
def fake_forge(pipe, **kwargs):
    webui = FakeForge(pipe, **kwargs).start()
    try:
        yield webui
    finally:
        webui.stop()
