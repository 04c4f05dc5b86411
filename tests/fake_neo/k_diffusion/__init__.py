"""Neo vendors k-diffusion as Forge 2 does (modules_forge/packages/k_diffusion); for FGAT's paths it is the fake
Forge's (`external.ForgeScheduleLinker`) over the fake A1111's sampling functions."""
from pathlib import Path

_TESTS = Path(__file__).resolve().parents[2]
__path__.append(str(_TESTS / "fake_forge" / "k_diffusion"))  # noqa: F821
__path__.append(str(_TESTS / "fake_webui" / "k_diffusion"))  # noqa: F821

from . import external, sampling, utils  # noqa: E402,F401
