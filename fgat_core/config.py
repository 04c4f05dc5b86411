"""FGATConfig: every knob of the method, its defaults (paper §4, docs/DESIGN.md §2) and validation."""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, fields
from typing import Any

from .errors import ConfigError

INVERSIONS = ("direct", "null-text", "negative-prompt", "ddim")
MATCHINGS = ("progressive", "initial")
MASK_SOURCES = ("attention", "user", "none")
GAMMA_ON = ("guided", "uncond")
MASK_LAYERS = ("quarter", "all", "full")
DIFT_PROMPTS = ("own", "empty")
TARGET_MASKS = ("none", "gate", "restrict")
BACKGROUND_LOCKS = ("off", "on")
MASK_THRESHOLD_MODES = ("fixed", "otsu")
MASK_LEVELS = ("before-window", "all")

# (field, low, high, low_inclusive, high_inclusive, human text)
_FLOAT_RANGES = {
    "delta": (0.0, 1.0, True, True),
    "lam": (0.0, 1.0, True, True),
    "gamma": (0.0, 1.0, True, True),
    "window_start": (0.0, 1.0, True, False),
    "window_end": (0.0, 1.0, False, True),
    "guidance_scale": (0.0, 50.0, True, True),
    "mask_threshold": (0.0, 1.0, True, False),
    "null_text_lr": (0.0, 1.0, False, True),
    "null_text_epsilon": (0.0, 1.0, True, True),
}
_INT_RANGES = {
    "steps": (1, 999),  # 1000 would put timestep 1000 on the DDIM grid (1000 // N * j + 1); a_t ends at 999
    "dift_timestep": (0, 999),
    "dift_ensemble": (1, 32),
    "seed": (0, 2**63 - 1),
    "mask_dilate": (0, 8),
    "null_text_steps": (1, 100),
    "match_chunk": (1, 1 << 20),
}
CHOICES = {
    "inversion": INVERSIONS,
    "matching": MATCHINGS,
    "mask_source": MASK_SOURCES,
    "gamma_on": GAMMA_ON,
    "mask_layers": MASK_LAYERS,
    "dift_prompt": DIFT_PROMPTS,
    "target_mask": TARGET_MASKS,
    "background_lock": BACKGROUND_LOCKS,
    "mask_threshold_mode": MASK_THRESHOLD_MODES,
    "mask_levels": MASK_LEVELS,
}


@dataclass
class FGATConfig:
    """All FGAT settings. Defaults are the paper's (§4) and docs/DESIGN.md §2.6's readings of it, except those
    issue 21's demo-world evidence re-decided (the paper's are the "Paper" preset, `presets.PAPER_SETTINGS`)."""

    delta: float = 0.9  # Eq. 3: weight of the transfer (paper: 0.6; issue 21's demo-world evidence)
    lam: float = 0.2  # Eq. 6: balance between x_t and x'_t
    gamma: float = 0.2  # Eq. 7: mix of eps(x_t) and eps(x'_t)
    window_start: float = 0.24  # first window step = ceil(window_start * steps)
    window_end: float = 0.44  # window ends before ceil(window_end * steps)
    steps: int = 50
    guidance_scale: float = 7.5
    inversion: str = "negative-prompt"
    matching: str = "progressive"
    mask_source: str = "attention"
    mask_word: str = ""  # empty: the last word of the source prompt
    mask_threshold: float = 0.4
    dift_timestep: int = 261
    dift_ensemble: int = 1
    gamma_on: str = "guided"
    seed: int = 0
    mask_layers: str = "full"  # attention layers at the latent size, at 1/4 of it (quarter), or all
    mask_dilate: int = 0  # latent pixels of dilation after thresholding
    dift_prompt: str = "own"  # DIFT conditioning: each image's own prompt, or the empty prompt
    null_text_steps: int = 10
    null_text_lr: float = 1e-2
    null_text_epsilon: float = 1e-5
    match_chunk: int = 1024  # source rows per chunk of the similarity matrix
    target_mask: str = "restrict"  # target-side mask: none, gate or restrict (issue 21)
    target_mask_word: str = ""  # empty: the last word of the target prompt
    background_lock: str = "on"  # on: outside the source mask, follow the source's inverted trajectory
    mask_threshold_mode: str = "fixed"  # fixed: mask_threshold x max; otsu: a per-image threshold
    mask_levels: str = "all"  # the levels whose attention makes the mask: before the window, or all

    def __post_init__(self) -> None:
        for name, bounds in _FLOAT_RANGES.items():
            setattr(self, name, _checked_float(name, getattr(self, name), *bounds))
        for name, (lo, hi) in _INT_RANGES.items():
            setattr(self, name, _checked_int(name, getattr(self, name), lo, hi))
        for name, allowed in CHOICES.items():
            v = getattr(self, name)
            if v not in allowed:
                raise ConfigError(name, v, "{name} must be one of {allowed}; got {value!r}",
                                  allowed=", ".join(allowed))
        if not isinstance(self.mask_word, str):
            raise ConfigError("mask_word", self.mask_word, "{name} must be a string, got {value!r}")
        self.mask_word = self.mask_word.strip()
        if not isinstance(self.target_mask_word, str):
            raise ConfigError("target_mask_word", self.target_mask_word, "{name} must be a string, got {value!r}")
        self.target_mask_word = self.target_mask_word.strip()
        if self.window_end <= self.window_start:
            raise ConfigError(
                "window_end", self.window_end, "{name} ({value}) must be greater than {names[window_start]} "
                "({start})", allowed=f"({self.window_start}, 1.0]", related=("window_start",),
                start=self.window_start,
            )

    # ------------------------------------------------------------------ window
    def window(self, steps: int | None = None) -> tuple[int, int]:
        """Window steps [start, end) at `steps` sampling steps: ceil(f * N) for both ends (docs/DESIGN.md §2.3)."""
        n = self.steps if steps is None else int(steps)
        start = math.ceil(round(self.window_start * n, 9))
        end = min(math.ceil(round(self.window_end * n, 9)), n)
        if start >= end:
            raise ConfigError(
                "steps", n, "the FGAT window is empty at {value} steps ({names[window_start]}={ws:g} -> step "
                "{start}, {names[window_end]}={we:g} -> step {end}): raise the number of steps or widen the window",
                related=("window_start", "window_end"), ws=self.window_start, we=self.window_end, start=start,
                end=end,
            )
        if self.mask_source == "attention" and start < 1:
            raise ConfigError(
                "window_start", self.window_start, "the attention mask is collected over the steps before the "
                "window, but {name} gives step 0 at {n} steps: raise {name} or choose {names[mask_source]} "
                "'user' or 'none'", related=("mask_source",), n=n,
            )
        return start, end

    # ------------------------------------------------------------------ dict
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FGATConfig:
        if not isinstance(data, dict):
            raise ValueError(f"FGAT settings must be a dict of named values, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown FGAT setting(s): {', '.join(unknown)}; known settings: {', '.join(sorted(known))}"
            )
        return cls(**data)

    def replace(self, **changes: Any) -> FGATConfig:
        return self.from_dict({**self.to_dict(), **changes})


def config_fields() -> list[dataclasses.Field]:
    return list(fields(FGATConfig))


def _checked_float(name: str, v: Any, lo: float, hi: float, lo_in: bool, hi_in: bool) -> float:
    """`v` as a float inside the range, else a ConfigError naming the range."""
    if isinstance(v, numbers.Real) and not isinstance(v, bool):
        v = float(v)  # numpy / torch scalars from a sweep
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ConfigError(name, v, "{name} must be a number, got {value!r}")
    if not ((v >= lo if lo_in else v > lo) and (v <= hi if hi_in else v < hi)):
        rng = f"{'[' if lo_in else '('}{lo}, {hi}{']' if hi_in else ')'}"
        raise ConfigError(name, v, "{name} must be in {allowed}, got {value!r}", allowed=rng)
    return float(v)


def _checked_int(name: str, v: Any, lo: int, hi: int) -> int:
    """`v` as an int inside [lo, hi] (whole floats and numpy integers accepted), else a ConfigError."""
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        v = int(v)
    elif isinstance(v, numbers.Real) and not isinstance(v, bool) and float(v).is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(name, v, "{name} must be an integer, got {value!r}")
    if not lo <= v <= hi:
        raise ConfigError(name, v, "{name} must be in {allowed}, got {value!r}", allowed=f"[{lo}, {hi}]")
    return v
