"""Start the fake Forge for a test: the same driver as the fake A1111's (`fake_webui.harness.FakeWebUI`:
img2img through the UI path or the API, infotext paste, leftover checks), over Forge's startup.

Startup mirrors Forge's webui.py + modules/initialize.py for what we need: the checkpoint is loaded by
`backend.loader.forge_loader` (under inference mode) into a Forge engine that becomes `shared.sd_model`,
then the scripts are loaded (our `scripts/fgat.py` and the built-in `xyz_grid.py`) and the img2img
script UI is built, exactly as in the A1111 harness.

`FakeForge.stop()` removes every fake module from sys.modules and sys.path."""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from fake_webui.harness import FAKE_ROOT as A1111_ROOT
from fake_webui.harness import FGAT_TITLE, REPO_ROOT, FakeWebUI

FORGE_ROOT = Path(__file__).resolve().parent
FAKE_PACKAGES = ("modules", "k_diffusion", "ldm", "launch", "backend", "modules_forge")


def _purge_fake_modules() -> None:
    for name in list(sys.modules):
        if name.split(".")[0] in FAKE_PACKAGES:
            del sys.modules[name]


class FakeForge(FakeWebUI):
    """`FakeWebUI`'s test API over the fake Forge. `pipe` may be an SD1 or an SDXL tiny pipeline."""

    webui_name = "Forge"

    def __init__(self, pipe, **kwargs) -> None:
        super().__init__(pipe, parameterization="v" if pipe.prediction_type == "v_prediction" else "eps", **kwargs)

    def start(self) -> FakeForge:
        self._saved_path = list(sys.path)
        _purge_fake_modules()
        sys.path.insert(0, str(FORGE_ROOT))
        import gradio as gr
        from backend import memory_management
        from backend.loader import forge_loader
        from backend.sampling import sampling_function
        from modules import script_callbacks, scripts, sd_models

        memory_management.loads.clear()
        sampling_function.prepared.clear()
        sampling_function.cleaned.clear()
        sd_models.load_model(forge_loader(self.pipe), name="tiny-sdxl" if self.pipe.is_sdxl else "tiny-sd")
        scripts.load_scripts([
            scripts.ScriptFile(str(REPO_ROOT), "fgat.py", str(REPO_ROOT / "scripts" / "fgat.py")),
            scripts.ScriptFile(str(A1111_ROOT), "xyz_grid.py", str(A1111_ROOT / "scripts" / "xyz_grid.py")),
        ])
        scripts.scripts_data.append(
            scripts.ScriptClassData(self._latent_capture_class(), str(FORGE_ROOT / "harness.py"), str(FORGE_ROOT),
                                    None)
        )
        script_callbacks.before_ui_callback()
        runner = scripts.scripts_img2img
        runner.initialize_scripts(is_img2img=True)
        with gr.Blocks() as demo:
            runner.prepare_ui()
            runner.setup_ui()
        self.demo = demo
        self.runner = runner
        self.script = runner.script(FGAT_TITLE)
        self.default_args = [0] + [getattr(c, "value", None) for c in runner.inputs[1:]]
        return self

    def stop(self) -> None:
        _purge_fake_modules()
        if self._saved_path is not None:
            sys.path[:] = self._saved_path

    # ------------------------------------------------------------------------------------------ model access
    @property
    def unet_patcher(self):
        return self.sd_model.forge_objects.unet

    def model_modules(self):
        objects = self.sd_model.forge_objects_original
        return [objects.unet.model, objects.vae.first_stage_model, objects.clip.cond_stage_model]

    def hook_count(self) -> int:
        """Hooks on the UNet, VAE and text encoders, except the output-capturing hooks transformers 5
        installs on its own layers at their first forward (those persist by design)."""

        def ours(fn) -> bool:
            return not getattr(fn, "__module__", "").startswith("transformers.")

        return sum(sum(map(ours, d.values())) for root in self.model_modules() for m in root.modules()
                   for d in (m._forward_hooks, m._forward_pre_hooks, m._backward_hooks))


@contextlib.contextmanager
def fake_forge(pipe, **kwargs):
    webui = FakeForge(pipe, **kwargs).start()
    try:
        yield webui
    finally:
        webui.stop()
