"""FGATConfig: every knob of the method, frozen and valid from construction on.

Defaults, types, ranges and choices come from the one table `fgat_core.settings.SETTINGS` (paper §4,
docs/DESIGN.md §2); this module adds the checks that span settings (the window) and the dict round trip."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import ConfigError
from .settings import (
    SETTING,
    SETTINGS,
    BackgroundLock,
    DiftPrompt,
    GammaOn,
    Inversion,
    MaskLayers,
    MaskLevels,
    MaskSource,
    MaskThresholdMode,
    Matching,
    Mode,
    Setting,
    TargetMask,
)


def _default(name: str) -> Any:
    """The dataclass field of setting `name`, with the table's default."""
    return field(default=SETTING[name].default)


@dataclass(frozen=True)
class FGATConfig:
    """All FGAT settings (fields in the order of `SETTINGS`, each described there). Frozen: change a copy
    with `replace(...)`, which validates like the constructor. Mode fields hold the `Mode` enums; a string
    such as "direct" is accepted and becomes `Inversion.DIRECT`. The defaults are the paper's (§4) and
    docs/DESIGN.md §2.6's readings of it, except those issue 21's demo-world evidence re-decided (the paper's
    are the "Paper" preset, `presets.PAPER_SETTINGS`)."""

    delta: float = _default("delta")  # Eq. 3: weight of the transfer (paper: 0.6; issue 21)
    lam: float = _default("lam")  # Eq. 6: balance between x_t and x'_t
    gamma: float = _default("gamma")  # Eq. 7: mix of eps(x_t) and eps(x'_t)
    window_start: float = _default("window_start")  # first window step = ceil(window_start * steps)
    window_end: float = _default("window_end")  # window ends before ceil(window_end * steps)
    steps: int = _default("steps")
    guidance_scale: float = _default("guidance_scale")
    inversion: Inversion = _default("inversion")
    matching: Matching = _default("matching")
    mask_source: MaskSource = _default("mask_source")
    mask_word: str = _default("mask_word")  # empty: the last word of the source prompt
    mask_threshold: float = _default("mask_threshold")
    dift_timestep: int = _default("dift_timestep")
    dift_ensemble: int = _default("dift_ensemble")
    gamma_on: GammaOn = _default("gamma_on")
    seed: int = _default("seed")
    mask_layers: MaskLayers = _default("mask_layers")  # layers at the latent size (full), at 1/4 of it, or all
    mask_dilate: int = _default("mask_dilate")  # latent pixels of dilation after thresholding
    dift_prompt: DiftPrompt = _default("dift_prompt")  # each image's own prompt, or the empty prompt
    null_text_steps: int = _default("null_text_steps")
    null_text_lr: float = _default("null_text_lr")
    null_text_epsilon: float = _default("null_text_epsilon")
    match_chunk: int = _default("match_chunk")  # source rows per chunk of the similarity matrix
    target_mask: TargetMask = _default("target_mask")  # target-side mask: none, gate or restrict (issue 21)
    target_mask_word: str = _default("target_mask_word")  # empty: the last word of the target prompt
    background_lock: BackgroundLock = _default("background_lock")  # on: outside M, the source's trajectory
    mask_threshold_mode: MaskThresholdMode = _default("mask_threshold_mode")  # fixed x max, or Otsu's level
    mask_levels: MaskLevels = _default("mask_levels")  # levels whose attention makes the masks

    def __post_init__(self) -> None:
        for s in SETTINGS:
            object.__setattr__(self, s.name, checked_value(s, getattr(self, s.name)))
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
        if self.mask_source is MaskSource.ATTENTION and start < 1:
            raise ConfigError(
                "window_start", self.window_start, "the attention mask is collected over the steps before the "
                "window, but {name} gives step 0 at {n} steps: raise {name} or choose {names[mask_source]} "
                "'user' or 'none'", related=("mask_source",), n=n,
            )
        return start, end

    # ------------------------------------------------------------------ dict
    def to_dict(self) -> dict[str, Any]:
        """Every setting by name, as plain JSON values (a mode as its spelling, "direct")."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FGATConfig:
        if not isinstance(data, dict):
            raise ValueError(f"FGAT settings must be a dict of named values, got {type(data).__name__}")
        unknown = sorted(set(data) - set(SETTING))
        if unknown:
            raise ValueError(
                f"unknown FGAT setting(s): {', '.join(unknown)}; known settings: {', '.join(sorted(SETTING))}"
            )
        return cls(**data)

    def replace(self, **changes: Any) -> FGATConfig:
        """A copy with `changes`, validated as a new config is (unknown names refused)."""
        return self.from_dict({**self.to_dict(), **changes})


def _plain(v: Any) -> Any:
    return v.value if isinstance(v, Mode) else v


def checked_value(setting: Setting, v: Any) -> Any:
    """`v` as `setting`'s type inside its range or among its choices, else a ConfigError naming them."""
    name, kind = setting.name, setting.kind
    if kind is float:
        return _checked_float(name, v, setting.valid)
    if kind is int:
        return _checked_int(name, v, setting.valid)
    if kind is str:
        if not isinstance(v, str):
            raise ConfigError(name, v, "{name} must be a string, got {value!r}")
        return v.strip()
    if isinstance(v, str) and v in setting.choices:
        return kind(v)
    raise ConfigError(name, _plain(v), "{name} must be one of {allowed}; got {value!r}",
                      allowed=", ".join(setting.choices))


def _checked_float(name: str, v: Any, valid: Any) -> float:
    """`v` as a float inside the range, else a ConfigError naming the range."""
    if isinstance(v, numbers.Real) and not isinstance(v, bool):
        v = float(v)  # numpy / torch scalars from a sweep
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ConfigError(name, v, "{name} must be a number, got {value!r}")
    if v not in valid:
        raise ConfigError(name, v, "{name} must be in {allowed}, got {value!r}", allowed=valid.interval())
    return float(v)


def _checked_int(name: str, v: Any, valid: Any) -> int:
    """`v` as an int inside the range (whole floats and numpy integers accepted), else a ConfigError."""
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        v = int(v)
    elif isinstance(v, numbers.Real) and not isinstance(v, bool) and float(v).is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(name, v, "{name} must be an integer, got {value!r}")
    if v not in valid:
        raise ConfigError(name, v, "{name} must be in {allowed}, got {value!r}", allowed=valid.interval())
    return v

