"""Neo's `backend.patcher` (3df257ae): the fake Forge's package of the same name where Neo did not change a file."""
from pathlib import Path

__path__.append(str(Path(__file__).resolve().parents[3] / "fake_forge" / "backend/patcher"))  # noqa: F821
