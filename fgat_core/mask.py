"""The mask M of Eq. 3: cross-attention of the source's object token, or a user mask, or none."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import InputError
from .host import AttentionLayer, full_precision
from .settings import MaskLayers, MaskThresholdMode

# a forward hook on a q or k projection: (module, inputs, output) -> None
ForwardHook = Callable[[nn.Module, tuple[object, ...], Tensor], None]


def downsampled_size(size: tuple[int, int], factor: int) -> tuple[int, int]:
    """Spatial size after log2(factor) stride-2 downsamplings (ceil, as SD's conv downsamplers)."""
    h, w = size
    for _ in range(int(math.log2(factor))):
        h, w = (h + 1) // 2, (w + 1) // 2
    return h, w


class AttentionRecorder:
    """Recomputes softmax(q k^T / sqrt(d)) for chosen tokens from hooks on attn2.to_q / attn2.to_k.

    Works whatever attention kernel the model uses (SDP, xformers, sub-quadratic), because the
    probabilities are rebuilt from the projections. `with recorder:` installs the hooks; they record
    only inside `with recorder.recording(rows):`, and only those batch rows. Maps are summed per query
    grid; `mean_map()` averages them."""

    def __init__(
        self,
        layers: Sequence[AttentionLayer],
        token_indices: Sequence[int],
        latent_size: tuple[int, int],
        which: MaskLayers = MaskLayers.QUARTER,
    ) -> None:
        if not layers:
            raise ValueError("the model exposes no cross-attention layers, so no attention mask can be made")
        if not token_indices:
            raise ValueError("no prompt token was chosen for the attention mask")
        self.layers = list(layers)
        self.tokens = list(token_indices)
        self.latent_size = latent_size
        grids = [downsampled_size(latent_size, f) for f in (1, 2, 4, 8, 16)]
        # full: every grid is recorded and `mean_map` keeps the finest one the model has cross-attention at
        # (the latent size in SD 1.x / 2.x; SDXL has none there, so 1/2 of it)
        self.which = which
        self.grids = [downsampled_size(latent_size, 4)] if which == MaskLayers.QUARTER else grids
        self.rows: list[int] = []
        self.active = False
        self.sums: dict[tuple[int, int], Tensor] = {}
        self.counts: dict[tuple[int, int], int] = {}
        self._q: dict[int, Tensor] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    # hooks -------------------------------------------------------------------------------------
    def __enter__(self) -> AttentionRecorder:
        for i, layer in enumerate(self.layers):
            self._handles.append(layer.to_q.register_forward_hook(self._q_hook(i)))
            self._handles.append(layer.to_k.register_forward_hook(self._k_hook(i, layer.heads)))
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._q.clear()

    @contextmanager
    def recording(self, rows: Sequence[int]) -> Iterator[AttentionRecorder]:
        """Record the given batch rows of the UNet calls made inside this block (and nothing outside it)."""
        self.active, self.rows = True, list(rows)
        try:
            yield self
        finally:
            self.active, self.rows = False, []
            self._q.clear()

    def snapshot(self) -> tuple[dict[tuple[int, int], Tensor], dict[tuple[int, int], int]]:
        """What has been recorded so far (for `restore`, e.g. from an inversion cache)."""
        return dict(self.sums), dict(self.counts)

    def restore(self, state: tuple[dict[tuple[int, int], Tensor], dict[tuple[int, int], int]]) -> None:
        sums, counts = state
        self.sums, self.counts = dict(sums), dict(counts)

    def _q_hook(self, i: int) -> ForwardHook:
        def hook(_mod: nn.Module, _inp: tuple[object, ...], out: Tensor) -> None:
            if self.active and self.rows:
                self._q[i] = out.detach()

        return hook

    def _k_hook(self, i: int, heads: int) -> ForwardHook:
        def hook(_mod: nn.Module, _inp: tuple[object, ...], out: Tensor) -> None:
            q = self._q.pop(i, None)
            if q is None or not self.active or not self.rows:
                return
            nq = q.shape[1]
            grid = next((g for g in self.grids if g[0] * g[1] == nq), None)
            if grid is None or max(self.tokens) >= out.shape[1]:
                return
            rows = [r for r in self.rows if r < q.shape[0]]
            with full_precision(q.device):  # float32 even inside the WebUI's fp16 autocast
                probs = attention_probabilities(q[rows].float(), out.detach()[rows].float(), heads)
            m = probs[..., self.tokens].sum(-1).mean(dim=(0, 1))  # mean over rows and heads
            m = m.reshape(grid).cpu()
            self.sums[grid] = self.sums.get(grid, torch.zeros(grid)) + m
            self.counts[grid] = self.counts.get(grid, 0) + 1

        return hook

    # result ------------------------------------------------------------------------------------
    def mean_map(self) -> Tensor:
        """Average over heads, layers and steps of every recorded grid, upsampled to the latent size."""
        if not self.sums:
            raise RuntimeError(
                "no cross-attention map was recorded: the model has no attention layer at the chosen "
                "resolution, or no step ran before the window"
            )
        grids = sorted(self.sums)
        if self.which == MaskLayers.FULL:
            grids = [max(grids, key=lambda g: g[0] * g[1])]
        maps = [upsample_map(self.sums[g] / self.counts[g], self.latent_size) for g in grids]
        return torch.stack(maps).mean(0)


def attention_probabilities(q: Tensor, k: Tensor, heads: int) -> Tensor:
    """softmax(q k^T / sqrt(d)) per head from projected queries (B, Nq, H*d) and keys (B, Nk, H*d): (B, H, Nq, Nk)."""
    b, nq, inner = q.shape
    d = inner // heads
    qh = q.reshape(b, nq, heads, d).transpose(1, 2)
    kh = k.reshape(b, k.shape[1], heads, d).transpose(1, 2)
    return torch.softmax(qh @ kh.transpose(-1, -2) / math.sqrt(d), dim=-1)


def upsample_map(m: Tensor, size: tuple[int, int]) -> Tensor:
    """Nearest upsampling of an attention grid to the latent grid (as P2P's LocalBlend does), so the
    thresholded mask follows the attention cells instead of growing by the bilinear ramp."""
    if tuple(m.shape) == tuple(size):
        return m
    return F.interpolate(m[None, None], size=size, mode="nearest")[0, 0]


def otsu_threshold(values: Tensor) -> float:
    """Otsu's level: the cut between two sorted classes of `values` that maximises the between-class
    variance w0 w1 (mu0 - mu1)^2, returned as the smallest value of the upper class (exact, no histogram)."""
    v = values.flatten().double().sort().values
    n = v.numel()
    if n < 2 or v[0] == v[-1]:
        return float(v[-1]) if n else 0.0
    csum = v.cumsum(0)
    k = torch.arange(1, n, dtype=torch.float64)  # lower class = the first k values
    mu0 = csum[:-1] / k
    mu1 = (csum[-1] - csum[:-1]) / (n - k)
    between = k * (n - k) * (mu0 - mu1) ** 2
    between[v[1:] == v[:-1]] = -1.0  # a cut must fall between two different values
    return float(v[int(between.argmax()) + 1])


def threshold_mask(
    attn_map: Tensor, threshold: float = 0.3, dilate: int = 1, mode: MaskThresholdMode = MaskThresholdMode.FIXED
) -> Tensor:
    """Divide by the max, keep >= threshold (mode "fixed") or >= Otsu's level of the map (mode "otsu"), dilate
    by `dilate` latent pixels (docs/DESIGN.md §2.4). (h, w) in {0,1}."""
    peak = attn_map.max()
    if not torch.isfinite(peak) or peak <= 0:
        return torch.zeros_like(attn_map)
    level = otsu_threshold(attn_map / peak) if mode == MaskThresholdMode.OTSU else threshold
    m = (attn_map / peak >= level).float()
    if dilate > 0:
        k = 2 * dilate + 1
        m = F.max_pool2d(m[None, None], kernel_size=k, stride=1, padding=dilate)[0, 0]
    return m


def prepare_user_mask(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """A drawn/uploaded mask (h, w) in [0, 1] (white = transfer) resized to the latent grid."""
    if mask.dim() != 2:
        raise ValueError(f"the mask must be a single-channel (h, w) image, got shape {tuple(mask.shape)}")
    m = mask.float()
    if m.numel() == 0 or not torch.isfinite(m).all():
        raise ValueError("the mask is empty or holds non-finite values")
    if m.max() > 1.0 + 1e-6 or m.min() < -1e-6:
        raise ValueError("the mask values must lie in [0, 1] (white = transfer, black = keep)")
    src_h, src_w = m.shape
    # a grid from sizes that are not multiples of the latent factor is rounded down: allow for that too
    tolerance = 0.02 + (size[0] / size[1]) * (1 / size[0] + 1 / size[1])
    if abs(src_h / src_w - size[0] / size[1]) > tolerance:
        raise ValueError(
            f"the mask is {src_w}x{src_h}, another aspect ratio ({src_w / src_h:.3g}) than the image's "
            f"({size[1] / size[0]:.3g}): upload a mask with the same aspect ratio as the source image"
        )
    return F.interpolate(m[None, None], size=size, mode="area")[0, 0].clamp(0, 1)


_WORD = re.compile(r"[\w']+|[^\w\s]", re.UNICODE)
_NAMING = re.compile(r"[^\W\d_]")  # a word that starts with a letter: "4k", "1.3" name nothing


def default_mask_word(prompt: str) -> str | None:
    """The word the attention mask follows when none is named: the prompt's last word that starts with a
    letter (emphasis weights, "4k", "2" name no object); None when the prompt has none."""
    named = [w for w in re.findall(r"[\w']+", prompt) if _NAMING.match(w)]
    return named[-1] if named else None


def locate_word_ids(prompt_ids: Sequence[int], word_ids: Sequence[int],
                    token_texts: Sequence[str] | None = None) -> list[int]:
    """Positions in `prompt_ids` of every occurrence of `word_ids` (the host's token ids of the prompt as the
    model sees it, and of the word alone); empty when the word is not there.

    With `token_texts` (the prompt's tokens as text, CLIP's `</w>` marking a word's end) an occurrence counts
    only where the token before it ends a word or is a special token: 'cat' is not found in 'bobcat'."""
    hits: list[int] = []
    n = len(word_ids)
    if not n:
        return hits
    needle = list(word_ids)
    for i in range(len(prompt_ids) - n + 1):
        if list(prompt_ids[i : i + n]) != needle:
            continue
        if token_texts is not None and i > 0 and not (token_texts[i - 1].endswith("</w>")
                                                      or token_texts[i - 1].startswith("<|")):
            continue  # the previous token does not end a word: this is the tail of another word
        hits.extend(range(i, i + n))
    return sorted(set(hits))


def word_token_indices(
    prompt: str, word: str, tokenize: Callable[[str], list[str]], max_tokens: int = 77,
    fields: tuple[str, str] = ("source_prompt", "mask_word"),
) -> list[int]:
    """Positions (BOS = 0) of the tokens that spell `word` in `prompt`; empty word = the last word.

    `fields`: the (prompt, word) inputs errors name (the target's: ("target_prompt", "target_mask_word")).

    `tokenize(text)` returns the text's tokens without BOS/EOS, as the host's tokenizer writes them (CLIP's
    `</w>` ends a word). The word's tokens are found among the prompt's by `locate_word_ids`, the search the
    WebUI runs on its token ids, so every front end locates the word by one algorithm."""
    words = [m.group().lower() for m in _WORD.finditer(prompt)]
    alnum = [w for w in words if re.match(r"\w", w)]
    default = default_mask_word(prompt)
    side = fields[0].split("_")[0]  # "source" or "target"
    off = ("{names[mask_source]} 'user' or 'none'", ("mask_source",)) if side == "source" else (
        "{names[target_mask]} 'none'", ("target_mask",))
    if not prompt.strip():
        raise InputError(fields[0], prompt, "{name} is empty, so there is no word to take the attention mask "
                         f"from: write a {side} prompt naming the object, or choose {off[0]}", related=off[1])
    if not alnum or (not word.strip() and default is None):
        raise InputError(fields[0], prompt, "{name} {value!r} has no word with letters to take the attention "
                         f"mask from: write a {side} prompt naming the object, or choose {off[0]}", related=off[1])
    word = word if word.strip() else default
    tokens = tokenize(prompt)
    hits = [1 + i for i in locate_word_ids(tokens, tokenize(word.strip()), tokens)]  # 1 + : after BOS
    if not hits:
        raise InputError(fields[1], word, "{name} {value!r} is not in {names[" + fields[0] + "]} {prompt!r}; "
                         "use one of its words: {words}", related=(fields[0],), prompt=prompt,
                         words=", ".join(dict.fromkeys(alnum)))
    hits = [h for h in hits if h < max_tokens - 1]
    if not hits:
        raise InputError(fields[1], word, "{name} {value!r} lies beyond the first {limit} tokens of "
                         "{names[" + fields[0] + "]}; move it earlier in the prompt", related=(fields[0],),
                         limit=max_tokens - 2)
    return hits
