"""A fake AUTOMATIC1111 WebUI 1.10.1 for the extension's tests.

`modules/`, `k_diffusion/`, `ldm/` and `scripts/xyz_grid.py` mirror the parts of the real WebUI
(AUTOMATIC1111/stable-diffusion-webui@82a973c0, v1.10.1), k-diffusion (crowsonkb/k-diffusion@ab527a9a) and
ldm (Stability-AI/stablediffusion@cf1d67a) that an always-on img2img script meets: the Script API and its
hook order, `process_images`, the img2img `init`/`sample`, the k-diffusion and DDIM samplers with the
CFG denoiser's row layout, infotext writing and pasting, the API's script-args handling, and an ldm-shaped
model around the tiny diffusers networks of `fgat_cli.tiny`. Every fake names the real file and lines it
mirrors; where it simplifies (no emphasis parsing, no prompt scheduling, no hires fix), it says so.

`harness.py` starts this fake WebUI for a test (sys.path and sys.modules are restored afterwards): nothing
here is importable as `modules` outside a test that asks for it.
"""
