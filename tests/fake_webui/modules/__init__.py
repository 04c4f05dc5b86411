"""Fake `modules` package of the A1111 WebUI 1.10.1 (see tests/fake_webui/__init__.py)."""
