"""Start the fake A1111 WebUI for a test, run img2img through its UI path or its API, paste infotext.

Startup mirrors `webui.py:48-64` + `modules/initialize.py`: load the model (`sd_models.load_model`), load
the scripts (`scripts.load_scripts`: the WebUI's own `scripts/` folder first, so the built-in
`scripts/xyz_grid.py` is imported before any extension's script (`modules/scripts.py:393-425`
list_scripts: the root folder's files, then the extensions'), then our extension's `scripts/fgat.py`
with the repository as its extension folder), run the before-UI callbacks, then build the img2img script
UI (`ScriptRunner.initialize_scripts(True)` + `setup_ui()` inside gr.Blocks), then create the API
(`modules/api/api.py` Api, whose script-arg defaults are computed once).
With `api_only=True` it mirrors `webui.py:26-38` (`--nowebui`) instead: the API is created first (it
builds the UI itself, `api.py:259-271`), and the before-UI callbacks run after it.

The UI path mirrors `modules/img2img.py:217-242`: `p.scripts`, `p.script_args = args` (the UI's values,
slot 0 the selectable-script index), then `scripts_img2img.run(p, *args)` or `process_images(p)`, inside
`closing(p)`. The API path goes through the fake `modules/api/api.py`.

`FakeWebUI.stop()` removes every fake module from sys.modules and sys.path and restores the tiny UNet's
attention processors and torch's thread count (the fake runs single-threaded: the tiny networks gain
nothing from threads), so nothing of the fake outlives the test module that started it.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

FAKE_ROOT = Path(__file__).resolve().parent
REPO_ROOT = FAKE_ROOT.parents[1]
FAKE_PACKAGES = ("modules", "k_diffusion", "ldm", "sgm", "launch")
FGAT_TITLE = "Fine-grained Appearance Transfer"


def _purge_fake_modules(packages=FAKE_PACKAGES) -> None:
    for name in list(sys.modules):
        if name.split(".")[0] in packages:
            del sys.modules[name]


@dataclass
class Generation:
    processed: Any  # modules.processing.Processed
    p: Any  # the StableDiffusionProcessingImg2Img
    latents: list[torch.Tensor]  # what p.sample returned (seen by post_sample), one per batch iteration
    init_latents: list[torch.Tensor]  # p.init_latent at each of those

    @property
    def latent(self) -> torch.Tensor:
        return self.latents[-1]


class FakeWebUI:
    def __init__(self, pipe, *, parameterization: str = "eps", attention: str = "sdp",
                 api_only: bool = False) -> None:
        self.pipe = pipe
        self.api_only = api_only
        self.parameterization = parameterization
        self.attention = attention
        self.latents: list[torch.Tensor] = []
        self.init_latents: list[torch.Tensor] = []
        self._saved_path: list[str] | None = None
        self._saved_processors = None
        self._saved_threads: int | None = None

    # ------------------------------------------------------------------------------------------ lifecycle
    root = FAKE_ROOT  # put first on sys.path: the fake WebUI's `modules`, `k_diffusion`, ...
    packages = FAKE_PACKAGES  # purged from sys.modules before and after

    def __enter__(self) -> FakeWebUI:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> FakeWebUI:
        # the tiny networks run fastest on one thread (and far faster than on two when the CPU is shared)
        self._saved_threads = torch.get_num_threads()
        torch.set_num_threads(1)
        self._saved_path = list(sys.path)
        _purge_fake_modules(self.packages)
        sys.path.insert(0, str(self.root))
        from modules import script_callbacks, scripts
        from modules.api import api

        self._load_model()
        scripts.load_scripts([
            scripts.ScriptFile(str(FAKE_ROOT), "xyz_grid.py", str(FAKE_ROOT / "scripts" / "xyz_grid.py")),
            scripts.ScriptFile(str(REPO_ROOT), "fgat.py", str(REPO_ROOT / "scripts" / "fgat.py")),
        ])
        scripts.scripts_data.append(
            scripts.ScriptClassData(self._latent_capture_class(), str(self.root / "harness.py"), str(self.root), None)
        )
        if self.api_only:
            self.api = api.Api(create_ui=self._create_ui)
            script_callbacks.before_ui_callback()
        else:
            script_callbacks.before_ui_callback()
            self._create_ui()
            self.api = api.Api(create_ui=self._create_ui)
        runner = self.runner
        self.script = runner.script(FGAT_TITLE)
        self.default_args = [0] + [getattr(c, "value", None) for c in runner.inputs[1:]]
        return self

    def _create_ui(self) -> None:
        """The img2img part of `ui.create_ui()`: the script runner's scripts and their UI."""
        import gradio as gr

        from modules import scripts

        runner = scripts.scripts_img2img
        runner.initialize_scripts(is_img2img=True)
        with gr.Blocks() as demo:
            runner.prepare_ui()
            runner.setup_ui()
        self.demo = demo
        self.runner = runner

    def _load_model(self) -> None:
        """The checkpoint as `sd_models.load_model` leaves it in `shared.sd_model`: an ldm LatentDiffusion
        (SD 1.x) or, for an SDXL pipeline, an sgm DiffusionEngine extended by `sd_models_xl.extend_sdxl`."""
        from modules import sd_hijack, sd_models, shared

        self._saved_processors = dict(self.pipe.unet.attn_processors)
        if self.pipe.is_sdxl:
            from modules import sd_models_xl
            from sgm.models.diffusion import build_sdxl_engine

            model = build_sdxl_engine(self.pipe)
            sd_models_xl.extend_sdxl(model)
        else:
            from ldm.models.diffusion.ddpm import LatentDiffusion

            model = LatentDiffusion(
                self.pipe.unet, self.pipe.vae, self.pipe.text_encoder, self.pipe.tokenizer,
                alphas_cumprod=self.pipe.host.alphas_cumprod, parameterization=self.parameterization,
            )
        shared.opts.cross_attention_optimization = self.attention
        sd_models.load_model(model)
        sd_hijack.model_hijack.apply_optimizations(self.attention)

    def stop(self) -> None:
        if self._saved_processors is not None:
            self.pipe.unet.set_attn_processor(self._saved_processors)
        _purge_fake_modules(self.packages)
        if self._saved_path is not None:
            sys.path[:] = self._saved_path
        if self._saved_threads is not None:
            torch.set_num_threads(self._saved_threads)

    def _latent_capture_class(self):
        from modules import scripts

        latents, init_latents = self.latents, self.init_latents

        class LatentCapture(scripts.Script):
            """A test-only always-on script: post_sample sees the latent p.sample returned."""

            def title(self):
                return "latent capture (test)"

            def show(self, is_img2img):
                return scripts.AlwaysVisible

            def ui(self, is_img2img):
                return []

            def post_sample(self, p, ps, *args):
                latents.append(ps.samples.detach().clone())
                init_latents.append(p.init_latent.detach().clone())

        return LatentCapture

    # ------------------------------------------------------------------------------------------ modules
    @property
    def modules(self):
        import modules.infotext_utils
        import modules.processing
        import modules.script_callbacks
        import modules.scripts
        import modules.shared

        return modules

    @property
    def shared(self):
        from modules import shared

        return shared

    def model_alphas_cumprod(self) -> torch.Tensor:
        """The schedule the WebUI samples with (float64): the model's float32 `alphas_cumprod` buffer."""
        return self.sd_model.alphas_cumprod.double()

    @property
    def diffusion_model(self):
        """The UNet module the WebUI runs (hooks on it see every UNet call)."""
        return self.shared.sd_model.model.diffusion_model

    @property
    def sd_model(self):
        return self.shared.sd_model

    def fgat_args(self, values: dict[str, Any] | None = None) -> list[Any]:
        """The FGAT section's UI values (defaults, with `values` by control name)."""
        from fgat_webui.args import CONTROL_NAMES

        args = list(self.default_args[self.script.args_from:self.script.args_to])
        for name, value in (values or {}).items():
            args[CONTROL_NAMES.index(name)] = value
        return args

    # ------------------------------------------------------------------------------------------ generation
    def make_p(self, init_image, prompt: str, **kwargs):
        from modules import processing

        params = dict(prompt=prompt, negative_prompt="", steps=10, cfg_scale=7.5, seed=1, sampler_name="Euler",
                      denoising_strength=0.75, width=init_image.width, height=init_image.height,
                      inpaint_full_res=False)
        params.update(kwargs)
        p = processing.StableDiffusionProcessingImg2Img(**params)
        p.init_images = [init_image]
        return p

    def img2img(self, init_image, prompt: str, fgat: list | dict | None = None, *, seed_global: int = 0,
                script_index: int = 0, script_args: list | None = None, **kwargs) -> Generation:
        """The UI's img2img: FGAT args positional (list, UI order) or one dict (as the API would hand it)."""
        from modules import processing, shared

        args = list(self.default_args)
        s = self.script
        if isinstance(fgat, dict):
            args[s.args_from] = fgat
        elif fgat is not None:
            args[s.args_from:s.args_from + len(fgat)] = list(fgat)
        args[0] = script_index
        if script_args is not None:
            selected = self.runner.selectable_scripts[script_index - 1]
            args[selected.args_from:selected.args_from + len(script_args)] = script_args
        p = self.make_p(init_image, prompt, **kwargs)
        p.scripts = self.runner
        p.script_args = args
        torch.manual_seed(seed_global)  # the VAE posterior sample draws from the global generator
        self.latents.clear()
        self.init_latents.clear()
        shared.state.begin(job="img2img")
        try:
            with contextlib.closing(p):
                processed = self.runner.run(p, *args)
                if processed is None:
                    processed = processing.process_images(p)
        finally:
            shared.state.end()
        return Generation(processed, p, list(self.latents), list(self.init_latents))

    def api_img2img(self, payload: dict, *, seed_global: int = 0) -> tuple[int, dict]:
        """POST /sdapi/v1/img2img: (status, JSON body) as the WebUI answers it (see `api_error`)."""
        torch.manual_seed(seed_global)
        self.latents.clear()
        self.init_latents.clear()
        try:
            return 200, self.api.img2imgapi(payload)
        except Exception as e:
            return self.api_error(e)

    def api_error(self, e: Exception) -> tuple[int, dict]:
        """(status, JSON body) of the answer to a request that raised `e`: A1111's error middleware
        (`modules/api/api.py` handle_exception)."""
        from modules.api import api

        return api.handle_exception(e)

    def event_handler(self, component, event: str):
        """The Python function gradio runs for `event` on `component` (to drive UI events in tests)."""
        for dep, fn in zip(self.demo.dependencies, self.demo.fns):
            if any(t == component._id and e == event for t, e in _targets(dep)):
                return fn.fn
        raise LookupError(f"no {event} handler on {component}")

    # ------------------------------------------------------------------------------------------ infotext
    def paste(self, infotext: str) -> dict[str, Any]:
        """PNG Info -> "Send to img2img": the value each FGAT control takes (absent: left unchanged)."""
        from modules import infotext_utils

        from fgat_webui.args import CONTROL_NAMES

        updates = infotext_utils.paste(infotext, self.runner.infotext_fields)
        by_component = {id(c): name for c, name in zip(self.script.controls, CONTROL_NAMES)}
        out = {}
        for (component, _key), update in zip(self.runner.infotext_fields, updates):
            name = by_component.get(id(component))
            if name is not None and "value" in update:
                out[name] = update["value"]
        return out

    # ------------------------------------------------------------------------------------------ leftovers
    def model_modules(self) -> list:
        """The model's torch modules (the fake Forge overrides this: its engine is not a module)."""
        return [self.sd_model]

    def hook_count(self) -> int:
        """Hooks on the model's modules, except the output-capturing hooks transformers 5 installs on its own
        text-encoder layers at their first forward (they persist by design, whoever ran the encoder first)."""

        def ours(fn) -> bool:
            return not getattr(fn, "__module__", "").startswith("transformers.")

        return sum(sum(map(ours, d.values())) for root in self.model_modules() for m in root.modules()
                   for d in (m._forward_hooks, m._forward_pre_hooks, m._backward_hooks))

    def callback_counts(self) -> dict[str, int]:
        from modules import script_callbacks

        return {k: len(v) for k, v in script_callbacks.callback_map.items()}


def _targets(dep):
    """(component id, event) pairs of a gradio dependency (gradio 3.41: "targets" + "trigger")."""
    targets = dep.get("targets", [])
    if targets and isinstance(targets[0], (list, tuple)):
        return [tuple(t) for t in targets]
    return [(t, dep.get("trigger")) for t in targets]


def fake_webui(pipe, **kwargs) -> FakeWebUI:
    """The fake A1111 around `pipe`, started by `with fake_webui(pipe) as webui:` and stopped on leaving."""
    return FakeWebUI(pipe, **kwargs)
