"""Forge's modules/shared.py: A1111's (the fake A1111's `modules/shared.py`, run here in this module's
namespace) with the option defaults Forge's backend and processing read: `sdxl_crop_left` /
`sdxl_crop_top` (read by backend/diffusion_engine/sdxl.py:96-97) and `sd_noise_schedule`
(modules/processing.py:985)."""
from pathlib import Path

_A1111 = Path(__file__).resolve().parents[2] / "fake_webui" / "modules" / "shared.py"
exec(compile(_A1111.read_text(encoding="utf-8"), str(_A1111), "exec"))

Options.defaults = {**Options.defaults, "sdxl_crop_left": 0, "sdxl_crop_top": 0,  # noqa: F821
                    "sd_noise_schedule": "Default"}
