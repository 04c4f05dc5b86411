"""Fake sgm (Stability-AI/generative-models@45c443b3, the commit A1111 1.10 pins): the SDXL model classes
A1111 loads SDXL checkpoints into (`sgm.models.diffusion.DiffusionEngine` and its parts), built around
the tiny diffusers SDXL networks of `fgat_cli.tiny` by `build_sdxl_engine` (models/diffusion.py)."""
