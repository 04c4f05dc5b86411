"""Fake `modules` package of Forge 2.0.1.

The files here are the Forge versions of the modules that differ from A1111 1.10.1 for an img2img
always-on script: processing, the k-diffusion and DDIM samplers, the CFG denoiser, sd_samplers_common,
sd_models and shared (Forge's extra options). Most run the fake A1111's file of the same name in their own
namespace and redefine only what Forge changed. Every other `modules.*` is found in
the fake A1111's `modules` folder, appended to this package's search path below: Forge keeps those files
(script_callbacks, infotext_utils, api, ui_components, prompt_parser, rng, images, ...)."""
from pathlib import Path

__path__.append(str(Path(__file__).resolve().parents[2] / "fake_webui" / "modules"))  # noqa: F821
