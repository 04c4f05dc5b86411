"""The small protocol every host (diffusers, A1111, Forge) gives the engine."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

# Conditioning: a dict of tensors that all have the batch as their first dimension.
# SD1/2: {"context": (B, 77, D)}; SDXL adds {"text_embeds": (B, 1280), "time_ids": (B, 6)}.
Cond = dict[str, Tensor]
CONTEXT = "context"


@contextmanager
def full_precision(device: torch.device) -> Iterator[None]:
    """Leave any autocast region (A1111 samples under `torch.autocast` in fp16) so that the math inside runs in
    the dtype of its inputs: cosine similarities and attention probabilities, whose near-ties fp16 blurs."""
    try:
        ctx = torch.autocast(device_type=device.type, enabled=False)
    except (RuntimeError, ValueError):  # a device type autocast does not know: nothing to leave
        ctx = nullcontext()
    with ctx:
        yield


@dataclass(frozen=True)
class AttentionLayer:
    """A cross-attention layer whose probabilities the mask needs: its q and k projections."""

    name: str
    to_q: nn.Module
    to_k: nn.Module
    heads: int


@runtime_checkable
class Denoiser(Protocol):
    """What the engine needs from a model. All tensors are VP latents; `t` is one timestep per row."""

    alphas_cumprod: Tensor  # (T,) float64, CPU

    def eps(self, x: Tensor, t: Tensor, cond: Cond) -> Tensor:
        """The model's noise prediction for each row (v-prediction converted to eps)."""

    def features(self, x: Tensor, t: Tensor, cond: Cond) -> Tensor:
        """DIFT features: the output of the UNet's up_blocks[1] (ldm output_blocks[5]) for each row."""

    def attention_layers(self) -> list[AttentionLayer]:
        """The cross-attention (attn2) layers, for the attention mask."""


def cond_cat(conds: list[Cond]) -> Cond:
    keys = conds[0].keys()
    for c in conds[1:]:
        if c.keys() != keys:
            raise ValueError(f"conditionings have different keys: {sorted(keys)} vs {sorted(c.keys())}")
    return {k: torch.cat([c[k] for c in conds], dim=0) for k in keys}


def eps_rows(host: Denoiser, timestep: int, rows: list[tuple[Tensor, Cond]]) -> list[Tensor]:
    """One batched UNet call for several (latent, conditioning) rows at one timestep; each row's eps, (1, C, h, w)."""
    x = torch.cat([latent for latent, _ in rows])
    t = torch.full((len(rows),), int(timestep), dtype=torch.long, device=x.device)
    eps = host.eps(x, t, cond_cat([cond for _, cond in rows]))
    return [eps[j : j + 1] for j in range(len(rows))]


class _StopForward(Exception):
    def __init__(self, value: Tensor) -> None:
        self.value = value


def output_of(module: nn.Module, forward: Callable[[], object]) -> Tensor:
    """Run `forward()` only until `module` has produced its output, and return that output.

    A forward hook raises when `module` returns, so the rest of the network is skipped (DIFT needs the
    UNet only up to up_blocks[1] / output_blocks[5]); the hook is always removed."""

    def hook(_module: nn.Module, _inputs: tuple[object, ...], output: Tensor) -> None:
        raise _StopForward(output)

    handle = module.register_forward_hook(hook)
    try:
        forward()
    except _StopForward as stop:
        return stop.value
    finally:
        handle.remove()
    raise RuntimeError(f"the network never ran {type(module).__name__}, so its output could not be captured")
