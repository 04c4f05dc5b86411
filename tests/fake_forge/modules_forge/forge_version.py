"""Mirrors modules_forge/forge_version.py (Forge 2.0.1, dfdcbab6)."""
version = "2.0.1v1.10.1"
