"""Fake `modules_forge` package of Forge Neo (what extensions import to tell Forge versions apart)."""
