"""Neo's `backend.diffusion_engine` (3df257ae): the fake Forge's package where Neo did not change a file."""
from pathlib import Path

__path__.append(str(Path(__file__).resolve().parents[3] / "fake_forge" / "backend/diffusion_engine"))  # noqa: F821
