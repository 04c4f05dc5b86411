"""Fake `modules` package of Forge Neo: the fake Forge's modules (then the fake A1111's), with Neo's
`processing` (see processing.py)."""
from pathlib import Path

_TESTS = Path(__file__).resolve().parents[2]
__path__.append(str(_TESTS / "fake_forge" / "modules"))  # noqa: F821
__path__.append(str(_TESTS / "fake_webui" / "modules"))  # noqa: F821
