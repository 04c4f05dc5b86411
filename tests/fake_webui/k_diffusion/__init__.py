"""Fake k-diffusion (crowsonkb/k-diffusion@ab527a9a, the commit A1111 1.10 pins): the pieces A1111 uses."""
from . import external, sampling, utils  # noqa: F401
