"""Mirrors backend/args.py: the parsed backend flags (`--always-cpu` run, l.50) and `dynamic_args`."""
from types import SimpleNamespace

args = SimpleNamespace(always_cpu=True, all_in_fp32=True, disable_gpu_warning=True, pin_shared_memory=False)
dynamic_args = dict(embedding_dir=None, emphasis_name="Original", online_lora=False, forge_unet_storage_dtype=None)
