"""Fake `modules_forge` package of Forge 2.0.1 (only what extensions import to detect Forge)."""
