"""A fake Forge (lllyasviel/stable-diffusion-webui-forge 2.0.1v1.10.1, snapshot dfdcbab6) for tests.

Forge is a fork of A1111 1.10.1: the WebUI-side modules our extension touches are A1111's with a few
changes, and the model side is Forge's own `backend/` package. So this fake is:

- `backend/`, `modules_forge/`: Forge's backend (UnetPatcher / KModel / predictor / sampling_function /
  memory management / VAE / CLIP / text processing / SD1.5 and SDXL diffusion engines) over the tiny
  diffusers networks of `fgat_cli.tiny`, each file citing the Forge file and lines it mirrors;
- `modules/`: the Forge versions of the modules that differ from A1111 (processing, samplers, CFG
  denoiser, sd_models, shared options), each running the fake A1111's file and redefining what Forge changed. Every other `modules.*` (script_callbacks,
  infotext_utils, api, ui_components, prompt_parser, rng, ...) falls back to the fake A1111's file
  (`tests/fake_webui/modules`), which Forge keeps (research notes §0, §8: init_script_args and
  init_default_script_args are byte-identical);
- `harness.py`: `FakeForge`, the same test driver as the fake A1111's `FakeWebUI`.

What Forge's backend shares with A1111's ldm/sgm code (the prompt chunking, the UNet's output-block layout and
timestep embedding) is in `tests/fake_common`, used by both fakes.
"""
