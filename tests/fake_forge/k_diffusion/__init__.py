"""Forge vendors k-diffusion (`k_diffusion/`, research notes §8); only `external.py` differs for us (the
ForgeScheduleLinker). `sampling.py` and `utils.py` are the same functions as the fake A1111's."""
from pathlib import Path

__path__.append(str(Path(__file__).resolve().parents[2] / "fake_webui" / "k_diffusion"))  # noqa: F821

from . import external, sampling, utils  # noqa: E402,F401
