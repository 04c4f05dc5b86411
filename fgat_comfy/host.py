"""FGAT's host over ComfyUI's own objects (ComfyUI 0.33.0, 783545f): the MODEL (`ModelPatcher` over a
`BaseModel`), the CLIP and the VAE a workflow passes in.

- UNet: `BaseModel.apply_model(x, sigma, c_crossattn=..., y=..., transformer_options=...)` takes a
  k-diffusion (VE) latent and a sigma and returns x0 (`comfy/model_base.py:204-262`); the sigma table is the
  model's `model_sampling.sigmas` (`comfy/model_sampling.py:141-196`), read through
  `ModelPatcher.get_model_object` so that a `ModelSamplingDiscrete` node's object patch (v-prediction, zsnr)
  counts. The VE <-> VP conversion is `fgat_core.kmodel_host.KModelDenoiser` (shared with Forge).
- The MODEL is cloned (`ModelPatcher.clone`, `comfy/model_patcher.py:430`) and the clone is loaded through
  `comfy.model_management.load_models_gpu` (`model_management.py:909`), which merges its weight patches
  (LoRA) and object patches, after CLIP and the VAE ran (loading them may unload the UNet). Nothing is set on
  the MODEL: the attention mask's forward hooks live on the UNet's `attn2.to_q/to_k` only during the run.
- Interrupt: `comfy.model_management.throw_exception_if_processing_interrupted` (`model_management.py:2116`)
  before every UNet call, as ComfyUI's samplers check it per step; it raises `InterruptProcessingException`.
- Text: `CLIP.tokenize` / `encode_from_tokens(return_pooled=True)` (`comfy/sd.py:322,396`); SDXL's `y` is
  `BaseModel.encode_adm(pooled_output=..., width=..., height=...)` (`model_base.py:517`) at the latent's
  size x 8, as ComfyUI's sampler defaults it (`comfy/samplers.py` `encode_model_conds`); contexts of
  different lengths are repeated to their least common multiple, as `CONDCrossAttn.concat` does
  (`comfy/conds.py:82-95`: the attention is unchanged).
- Images: `VAE.encode` (posterior mode, crops to a multiple of 8, `comfy/sd.py:1358`) and `VAE.decode`
  (`sd.py:1220`) on ComfyUI's IMAGE layout (B, H, W, C) in [0, 1]; LATENT samples are raw VAE latents,
  `process_latent_in/out` (`model_base.py:375-379`) scale them to and from the model's space.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from fgat_core.host import CONTEXT, Cond
from fgat_core.kmodel_host import VECTOR, KModelDenoiser

# ComfyUI model classes FGAT cannot run (comfy/model_base.py, class line): the family named in the refusal; any
# other class is named by its class name
DIT_FAMILIES = {
    "Flux": "Flux.1",  # model_base.py:979
    "Flux2": "Flux.2",  # l.1084
    "LongCatImage": "LongCat-Image",  # l.1064
    "SD3": "Stable Diffusion 3",  # l.774
    "AuraFlow": "AuraFlow",  # l.789
    "HunyuanDiT": "Hunyuan-DiT",  # l.919
    "PixArt": "PixArt",  # l.960
    "Lumina2": "Lumina 2 / Z-Image",  # l.1503
    "ZImagePixelSpace": "Z-Image",  # l.1557
    "QwenImage": "Qwen-Image",  # l.2467
    "HiDream": "HiDream",  # l.2292
    "Chroma": "Chroma",  # l.2345 (a Flux subclass: found first in the MRO)
    "HunyuanImage21": "HunyuanImage 2.1",  # l.2580
    "Kandinsky5": "Kandinsky 5",  # l.2723
    "Omnigen2": "OmniGen2",  # l.2435
    "Anima": "Anima",  # l.1478
    "CosmosPredict2": "Cosmos Predict 2",  # l.1439
    "StableCascade_C": "Stable Cascade",  # l.726
    "StableCascade_B": "Stable Cascade",  # l.754
    "SDXLRefiner": "SDXL refiner",  # l.484
    "SVD_img2vid": "Stable Video Diffusion",  # l.537
    "WAN21": "Wan",  # l.1609
    "WAN22": "Wan 2.2",  # l.1903
    "HunyuanVideo": "HunyuanVideo",  # l.1363
    "LTXV": "LTX-Video",  # l.1131
    "GenmoMochi": "Mochi",  # l.1116
}
SUPPORTED = ("BaseModel", "SDXL")  # SD 1.x / 2.x (BaseModel itself, model_base.py:163) and SDXL (l.511)
PREDICTIONS = {"EPS": "eps", "V_PREDICTION": "v"}  # model_sampling.py:30, 52


def model_family(model: Any) -> str:
    """A readable name for a ComfyUI model class that is not SD 1.x/2.x or SDXL."""
    name = type(model).__name__
    for cls in type(model).__mro__:
        if cls.__name__ in DIT_FAMILIES:
            return DIT_FAMILIES[cls.__name__]
    return name


def check_model(patcher: Any) -> str:
    """Refuse what FGAT cannot run, naming it; returns the prediction type ('eps' or 'v')."""
    model = getattr(patcher, "model", None)
    name = type(model).__name__
    if name not in SUPPORTED:
        raise ValueError(f"the MODEL is a {model_family(model)} model ({name}), which FGAT does not support: it "
                         "needs the SD 1.x / SDXL UNet, its cross-attention and DDIM schedule; load an SD 1.5 or "
                         "SDXL checkpoint")
    if getattr(model, "concat_keys", ()):
        raise ValueError("the MODEL is an inpainting or instruct-pix2pix model (it takes extra input channels); "
                         "FGAT needs a regular text-to-image SD 1.x / SDXL checkpoint")
    sampling = patcher.get_model_object("model_sampling")
    kinds = [PREDICTIONS[c.__name__] for c in type(sampling).__mro__ if c.__name__ in PREDICTIONS]
    discrete = any(c.__name__ == "ModelSamplingDiscrete" for c in type(sampling).__mro__)
    other = [c.__name__ for c in type(sampling).__mro__[1:] if c.__name__ not in ("ModelSamplingDiscrete", "Module",
                                                                                 "object", *PREDICTIONS)]
    if not kinds or not discrete or other:
        raise ValueError(f"the MODEL samples with {' + '.join(c.__name__ for c in type(sampling).__bases__)}; FGAT "
                         "supports the discrete DDPM schedule with eps or v prediction (ModelSamplingDiscrete "
                         "eps / v_prediction, zsnr allowed)")
    return kinds[0]


class ComfyDenoiser(KModelDenoiser):
    """A `fgat_core.host.Denoiser` over a loaded ComfyUI `ModelPatcher`: `BaseModel.apply_model` with the
    patcher's `transformer_options` (its attention and block patches apply), every row marked as a
    conditional one (`cond_or_uncond` 0, as `comfy/samplers.py:323-325` marks a batch). A
    `model_function_wrapper` is not called: it expects the sampler's cond/uncond batch layout."""

    def __init__(self, patcher: Any, interrupt_check: Callable[[], None] | None = None) -> None:
        self.patcher = patcher
        sampling = patcher.get_model_object("model_sampling")
        super().__init__(patcher.model, sampling.sigmas, interrupt_check)

    def transformer_options(self, sigma: Tensor) -> dict:
        options = dict(self.patcher.model_options.get("transformer_options", {}))
        options.update(cond_or_uncond=[0] * sigma.shape[0], sigmas=sigma)
        return options

    def feature_module(self) -> nn.Module:
        """`output_blocks[5]`'s last layer: ComfyUI's UNet runs a block's layers itself
        (`forward_timestep_embed`, openaimodel.py:35-63) and never calls the `TimestepEmbedSequential`, so a
        hook on the block would not fire; the block's output is its last layer's (the level's upsampler)."""
        block = super().feature_module()
        return block[-1] if isinstance(block, nn.Sequential) and len(block) else block


def load_unet(patcher: Any, latent: Tensor, rows: int) -> None:
    """`load_models_gpu` for a batch of `rows` latents (memory sized as `sampler_helpers.estimate_memory` does,
    `comfy/sampler_helpers.py:165-179`): weight and object patches are merged into the loaded model."""
    import comfy.model_management

    shape = list(latent.shape[1:])
    need = patcher.model.memory_required([rows, *shape])
    least = patcher.model.memory_required([1, *shape])
    comfy.model_management.load_models_gpu([patcher], memory_required=need, minimum_memory_required=least)


# ---------------------------------------------------------------------------------------------- text
def _token_key(tokens: dict) -> str:
    return "l" if "l" in tokens else next(iter(tokens))


def _sub_tokenizer(clip: Any, key: str) -> Any:
    tokenizer = clip.tokenizer
    return getattr(tokenizer, f"clip_{key}", None) or getattr(tokenizer, key, None)


def _ids(chunks: Sequence[Sequence[tuple]]) -> list[int]:
    """Token ids of all chunks, flat (an embedding vector in place of a token counts as no word: -1)."""
    return [int(t[0]) if isinstance(t[0], int) else -1 for chunk in chunks for t in chunk]


def prompt_token_ids(clip: Any, prompt: str) -> tuple[list[int], list[str] | None]:
    """The prompt's token ids as the CLIP encoder is fed them (chunks of 77 with start/end/padding, flat:
    positions are the context's), and their BPE strings where the tokenizer's vocabulary is reachable."""
    tokens = clip.tokenize(prompt)
    key = _token_key(tokens)
    ids = _ids(tokens[key])
    vocab = getattr(_sub_tokenizer(clip, key), "inv_vocab", None)
    strings = None if vocab is None else [str(vocab.get(i, "")) for i in ids]
    return ids, strings


def word_token_ids(clip: Any, word: str) -> list[int]:
    """The word's own token ids (no start, end or padding tokens)."""
    tokens = clip.tokenize(word)
    key = _token_key(tokens)
    sub = _sub_tokenizer(clip, key)
    special = {getattr(sub, name, None) for name in ("start_token", "end_token", "pad_token")}
    return [i for i in _ids(tokens[key][:1]) if i not in special and i >= 0]


def encode_prompt(clip: Any, model: Any, prompt: str, latent_size: tuple[int, int]) -> Cond:
    """One prompt -> {"context"} (SD 1.x/2.x) or {"context", "vector"} (SDXL: pooled text + size embedding)."""
    context, pooled = clip.encode_from_tokens(clip.tokenize(prompt), return_pooled=True)
    h, w = latent_size
    adm = model.encode_adm(pooled_output=pooled, width=w * 8, height=h * 8, device=context.device)
    cond = {CONTEXT: context.float()}
    if adm is not None:
        cond[VECTOR] = adm.float()
    return cond


def same_length(conds: Sequence[Cond]) -> list[Cond]:
    """Contexts repeated to the least common multiple of their lengths (`comfy/conds.py:82-95`)."""
    length = math.lcm(*(int(c[CONTEXT].shape[1]) for c in conds))
    out = []
    for c in conds:
        reps = length // int(c[CONTEXT].shape[1])
        out.append({**c, CONTEXT: c[CONTEXT].repeat(1, reps, 1)} if reps > 1 else dict(c))
    return out


def to_device(cond: Cond, device: torch.device) -> Cond:
    return {k: v.to(device) for k, v in cond.items()}
