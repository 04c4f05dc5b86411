"""A fake of ComfyUI 0.33.0's `comfy` package (783545f, github:yzkee/ComfyUI): only the symbols FGAT's node pack
touches, each following the real file and line cited beside it, over the tiny diffusers networks of
`fgat_cli.pipeline.tiny_pipeline` (tests/fake_comfy/harness.py builds a loaded checkpoint from one)."""
