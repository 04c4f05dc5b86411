"""Neo's modules/shared.py options: Forge 2's (the fake Forge's file, run here) plus `sdxl_zero_neg`
(Neo modules/shared_options.py:336, default False), read by backend/diffusion_engine/sdxl.py:86."""
from pathlib import Path

_FORGE = Path(__file__).resolve().parents[2] / "fake_forge" / "modules" / "shared.py"
exec(compile(_FORGE.read_text(encoding="utf-8"), str(_FORGE), "exec"))

Options.defaults = {**Options.defaults, "sdxl_zero_neg": False}  # noqa: F821
