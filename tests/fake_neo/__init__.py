"""A fake Forge Neo (the `neo` line of Haoming02/sd-webui-forge-classic) for tests.

Mirrors Neo as of commit 3df257ae13e38826f5bdaece9008915b8b19e4bd (github:nolanlane/sd-webui-forge-classic,
"Initial commit for Neo Deployment setup", 2026-02-23: a full-tree copy of Neo; `modules_forge/forge_version.py`
`version = "neo"`). Every file cites the Neo file and lines it stands for.

Neo keeps Forge 2's WebUI side and most of its backend (UnetPatcher over a KModel, the predictor, the classic
text engine, sampling_function, the SD 1.5 engine): byte-identical up to formatting for what FGAT touches. So
this fake is the fake Forge (`tests/fake_forge`, itself over the fake A1111) with Neo's files where Neo differs:

- `backend/patcher/base.py`: the ComfyUI-port ModelPatcher (weight `patches` merged when a clone is loaded,
  undone when another clone of the model is; LoRA through `LoraLoader.refresh`);
- `backend/patcher/vae.py`, `backend/nn/vae.py`: no VAE regulation; `encode` always samples the posterior;
- `backend/memory_management.py`, `backend/sampling/sampling_function.py`: Neo's `load_models_gpu` /
  `sampling_prepare` signatures and what loading a patcher does;
- `backend/diffusion_engine/base.py`, `sdxl.py`: Neo's engine flags (no SD2 / SD3) and SDXL conditioning;
- `backend/modules/k_prediction.py`: `rescale_zero_terminal_snr_sigmas`;
- `modules/processing.py`: the zero-terminal-SNR rescale around `p.sample`;
- `modules_forge/forge_version.py`: "neo".

Each package below appends the fake Forge's folder of the same name to its `__path__`, so a module Neo did
not change is the fake Forge's file (which in turn imports Neo's versions of the files it depends on).
"""
