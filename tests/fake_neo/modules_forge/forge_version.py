"""Mirrors modules_forge/forge_version.py (Neo 3df257ae, l.1)."""
version = "neo"
