"""Model loading for the standalone pipeline (CLI). Offline first; the user's own checkpoints."""

from __future__ import annotations

import os
import sys

import torch

from .pipeline import FGATPipeline, tiny_pipeline


def load_pipeline(model: str | None = None, device: str | None = None, dtype: str | None = None) -> FGATPipeline:
    """`model`: a local diffusers folder, a single .safetensors file, or None (FGAT_MODEL, else the
    bundled tiny demo model with a warning)."""
    model = model or os.environ.get("FGAT_MODEL") or None
    if model is None:
        print(
            "warning: no --model and no FGAT_MODEL: using the bundled tiny demo model (random weights); "
            "its output only demonstrates the wiring",
            file=sys.stderr,
        )
        return tiny_pipeline()
    raise NotImplementedError("loading real checkpoints is not implemented yet")


def pick_device(device: str | None, dtype: str | None) -> tuple[torch.device, torch.dtype]:
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dtype is None:
        dt = torch.float16 if dev.type == "cuda" else torch.float32
    else:
        table = {"fp16": torch.float16, "float16": torch.float16, "bf16": torch.bfloat16,
                 "bfloat16": torch.bfloat16, "fp32": torch.float32, "float32": torch.float32}
        if dtype not in table:
            raise ValueError(f"unsupported dtype {dtype!r}: use one of fp16, bf16, fp32")
        dt = table[dtype]
    return dev, dt
