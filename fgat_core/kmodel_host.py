"""A `Denoiser` over a k-diffusion model: ComfyUI's `BaseModel` and Forge's `KModel` (a port of it).

Both hosts wrap the ldm UNet in a model whose `apply_model(x, sigma, c_crossattn=..., y=...,
transformer_options=...)` takes a k-diffusion (VE) latent and a sigma and returns x0, with the sigma table
of the model's sampling object (ComfyUI's `model_sampling.sigmas`, Forge's `predictor.sigmas`; a zero-terminal-
SNR rescale is already in it). `KModelDenoiser` converts to and from the engine's VP latents:
x_ve = x / sqrt(a), sigma = sqrt((1 - a) / a), eps = (x_ve - x0) / sigma, with a = 1 / (1 + sigma^2).

Both hosts may build their weights as inference tensors (ComfyUI runs every node, Forge every generation,
under `torch.inference_mode()`), which autograd refuses to save; null-text inversion needs gradients through
the UNet, so in grad mode the UNet runs under `autograd_safe_weights`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from .host import CONTEXT, AttentionLayer, Cond, output_of

DIFT_BLOCK = 5  # ldm/sgm output_blocks index whose output is DIFT's up_ft_index=1
VECTOR = "vector"  # SDXL's second conditioning (pooled text + size embeddings), the model's `y`


@contextmanager
def autograd_safe_weights(module: nn.Module) -> Iterator[None]:
    """While grad mode is on, make `module` safe to differentiate through:

    - give it normal tensors aliasing its inference-tensor parameters and buffers (same memory, nothing
      copied), so that autograd may save them; restore the originals after;
    - keep a copy of every activation autograd saves for the backward pass (not of the weights), because
      an ldm UNet may add residuals in place (`x += n`) into tensors that an earlier op saved, which the
      backward pass would refuse ("modified by an inplace operation")."""
    if not torch.is_grad_enabled():
        yield
        return
    swapped: list[tuple[dict, str, Tensor]] = []
    weights: set[int] = set()
    try:
        for sub in module.modules():
            for store in (sub._parameters, sub._buffers):
                for name, tensor in list(store.items()):
                    if tensor is None:
                        continue
                    weights.add(tensor.untyped_storage().data_ptr())
                    if not tensor.is_inference():
                        continue
                    alias = torch.empty(0, dtype=tensor.dtype, device=tensor.device)
                    alias.set_(tensor.untyped_storage(), tensor.storage_offset(), tensor.size(), tensor.stride())
                    swapped.append((store, name, tensor))
                    if isinstance(tensor, nn.Parameter):
                        alias = nn.Parameter(alias, requires_grad=False)
                    store[name] = alias
        with torch.autograd.graph.saved_tensors_hooks(_saved_copy(weights), _unpacked):
            yield
    finally:
        for store, name, tensor in reversed(swapped):
            store[name] = tensor


def _saved_copy(weights: set[int]) -> Callable[[Tensor], Tensor]:
    """Pack hook: a private copy of a saved activation that requires grad (downstream of the optimised
    embedding), so later in-place adds cannot change it; the weights (whose storages are in `weights`) and
    their per-call casts under low VRAM (no grad) are saved as they are (nothing writes to them)."""

    def pack(tensor: Tensor) -> Tensor:
        if not tensor.requires_grad or tensor.untyped_storage().data_ptr() in weights:
            return tensor
        return tensor.clone()

    return pack


def _unpacked(tensor: Tensor) -> Tensor:
    return tensor


def cross_attention_layers(unet: nn.Module) -> list[AttentionLayer]:
    """The ldm UNet's cross-attention modules (`*.attn2` with `to_q`, `to_k` and `heads`)."""
    return [
        AttentionLayer(name, m.to_q, m.to_k, int(m.heads))
        for name, m in unet.named_modules()
        if name.endswith("attn2") and hasattr(m, "to_q") and hasattr(m, "to_k") and hasattr(m, "heads")
    ]


def alphas_from_sigmas(sigmas: Tensor) -> Tensor:
    """a_t = 1 / (1 + sigma_t^2) of a k-diffusion sigma table, float64 on the CPU (the engine's schedule)."""
    return 1.0 / (1.0 + sigmas.detach().to("cpu", torch.float64) ** 2)


class KModelDenoiser:
    """eps / DIFT features / attention layers of a k-diffusion model (`apply_model` returns x0 in VE space).

    `model_kwargs(cond, sigma)` gives `apply_model`'s keyword arguments: the context, SDXL's `y`, and what
    `transformer_options(sigma)` returns (a host's block patches and per-call marks). `interrupt_check`
    runs before every UNet call (it may raise to stop the run within one call)."""

    def __init__(self, model, sigmas: Tensor, interrupt_check: Callable[[], None] | None = None) -> None:
        self.kmodel = model
        self.unet = model.diffusion_model
        self.interrupt_check = interrupt_check
        self.alphas_cumprod = alphas_from_sigmas(sigmas)

    def transformer_options(self, sigma: Tensor) -> dict:
        return {}

    def _scales(self, t: Tensor, like: Tensor) -> tuple[Tensor, Tensor]:
        a = self.alphas_cumprod[t.cpu()]
        shape = (-1,) + (1,) * (like.dim() - 1)
        sqrt_a = a.sqrt().to(device=like.device, dtype=torch.float32).view(shape)
        sigma = ((1.0 - a) / a).sqrt().to(device=like.device, dtype=torch.float32)
        return sqrt_a, sigma

    def model_kwargs(self, cond: Cond, sigma: Tensor) -> dict:
        kwargs = {"c_crossattn": cond[CONTEXT]}
        if VECTOR in cond:
            kwargs["y"] = cond[VECTOR]
        kwargs["transformer_options"] = self.transformer_options(sigma)
        return kwargs

    def _x0(self, x_ve: Tensor, sigma: Tensor, cond: Cond) -> Tensor:
        if self.interrupt_check is not None:
            self.interrupt_check()
        with autograd_safe_weights(self.unet):
            return self.kmodel.apply_model(x_ve, sigma, **self.model_kwargs(cond, sigma))

    def eps(self, x: Tensor, t: Tensor, cond: Cond) -> Tensor:
        sqrt_a, sigma = self._scales(t, x)
        x_ve = x.float() / sqrt_a
        x0 = self._x0(x_ve, sigma, cond)
        return ((x_ve - x0) / sigma.view(sqrt_a.shape)).to(x.dtype)

    def feature_module(self) -> nn.Module:
        """The module whose output is DIFT's feature: `output_blocks[5]`."""
        return self.unet.output_blocks[DIFT_BLOCK]

    def features(self, x: Tensor, t: Tensor, cond: Cond) -> Tensor:
        """Output of the diffusion model's `output_blocks[5]`; a forward hook stops the UNet there."""
        sqrt_a, sigma = self._scales(t, x)
        return output_of(self.feature_module(), lambda: self._x0(x.float() / sqrt_a, sigma, cond)).float()

    def attention_layers(self) -> list[AttentionLayer]:
        return cross_attention_layers(self.unet)
