"""Fake ldm (Stability-AI/stablediffusion@cf1d67a) around the tiny diffusers networks of fgat_cli.tiny."""
