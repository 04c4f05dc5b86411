"""Mirrors Forge's `backend` package (lllyasviel/stable-diffusion-webui-forge@dfdcbab6), CPU fp32 only."""
