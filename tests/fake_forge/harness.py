"""Start the fake Forge for a test: the same driver as the fake A1111's (`fake_webui.harness.FakeWebUI`:
img2img through the UI path or the API, infotext paste, leftover checks), over Forge's startup.

Startup mirrors Forge's webui.py + modules/initialize.py for what we need: the checkpoint is loaded by
`backend.loader.forge_loader` (under inference mode) into a Forge engine that becomes `shared.sd_model`,
then the scripts are loaded (our `scripts/fgat.py` and the built-in `xyz_grid.py`) and the img2img
script UI is built, exactly as in the A1111 harness.

Only the model loading differs from the A1111 harness (`_load_model`); the fake Forge's root comes first on
sys.path, and `stop()` removes every fake module (Forge's `backend` and `modules_forge` included)."""
from __future__ import annotations

import sys
import traceback
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

    # ------------------------------------------------------------------------------------------ API errors
    def api_error(self, e: Exception) -> tuple[int, dict]:
        """How Forge answers a POST /sdapi/v1/img2img that raised `e`. Forge's `Api.__init__` does not install
        A1111's error middleware (`modules/api/api.py:210`, commented out); its app is
        `FastAPI(exception_handlers={Exception: _handle_exception})` (`webui.py:50-53`, API only; the UI's app
        gets the same handler, l.115-118). So, as FastAPI/Starlette dispatch:
        - fastapi's `HTTPException` (and subclasses): FastAPI's own `http_exception_handler`, body
          `{"detail": e.detail}`, the exception's status, nothing printed;
        - any other exception: Starlette's `ServerErrorMiddleware` answers with `_handle_exception`
          (`webui.py:30-38`: body `error`, `detail`, `body`, **`message`**: str(e); status from the
          exception's `status_code`, else 500) and then re-raises, so uvicorn prints "Exception in ASGI
          application" and the whole traceback."""
        from fastapi.exceptions import HTTPException

        if isinstance(e, HTTPException):
            return e.status_code, {"detail": e.detail}
        info = vars(e)
        body = {"error": type(e).__name__, "detail": info.get("detail", ""), "body": info.get("body", ""),
                "message": str(e)}
        print("ERROR:    Exception in ASGI application", file=sys.stderr)
        traceback.print_exception(e, file=sys.stderr)
        return int(info.get("status_code", 500)), body


def fake_forge(pipe, **kwargs) -> FakeForge:
    """The fake Forge around `pipe`, started by `with fake_forge(pipe) as forge:` and stopped on leaving."""
    return FakeForge(pipe, **kwargs)
