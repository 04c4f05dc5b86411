"""Every FGAT setting described once: type, valid range, default, help, and how each front end shows it.

`SETTINGS` is the one table from which `FGATConfig`'s checks, the CLI's flags, the WebUI's controls and API
keys, the infotext, the X/Y/Z axes, ComfyUI's inputs and the README's settings table are built. Closed
choices are `Mode` enums (a `str` subclass: `Inversion.DIRECT == "direct"`, JSON and infotext write the
plain value)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Any


class Mode(str, Enum):
    """A closed set of named choices; the value is the spelling users type and files record."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @classmethod
    def values(cls) -> tuple[str, ...]:
        return tuple(m.value for m in cls)


class Inversion(Mode):
    """How the source is inverted (docs/DESIGN.md §2.2)."""

    DIRECT = "direct"
    NULL_TEXT = "null-text"
    NEGATIVE_PROMPT = "negative-prompt"
    DDIM = "ddim"


class Matching(Mode):
    """DIFT matching at every window step, or once on the clean latents (docs/DESIGN.md §2.5)."""

    PROGRESSIVE = "progressive"
    INITIAL = "initial"


class MaskSource(Mode):
    """Where the mask M comes from (docs/DESIGN.md §2.4)."""

    ATTENTION = "attention"
    USER = "user"
    NONE = "none"


class GammaOn(Mode):
    """What γ mixes in Eq. 7 (docs/DESIGN.md §2.6)."""

    GUIDED = "guided"
    UNCOND = "uncond"


class MaskLayers(Mode):
    """The attention layers averaged for the mask (docs/DESIGN.md §2.4)."""

    QUARTER = "quarter"
    ALL = "all"
    FULL = "full"


class DiftPrompt(Mode):
    """DIFT's conditioning: each image's own prompt, or the empty prompt (docs/DESIGN.md §2.5)."""

    OWN = "own"
    EMPTY = "empty"


class TargetMask(Mode):
    """Target-side masking (beyond the paper; issue 21): none; gate: a source cell takes the target's x0 only
    where its match lands on the target's object; restrict: the matching searches the target's object only."""

    NONE = "none"
    GATE = "gate"
    RESTRICT = "restrict"


class BackgroundLock(Mode):
    """off; on: outside the source mask the latent follows the source's own inverted trajectory (beyond the
    paper, as blended latent diffusion does)."""

    OFF = "off"
    ON = "on"


class MaskThresholdMode(Mode):
    """How the attention map is cut: fixed (`mask_threshold` of the map's maximum) or otsu (a per-image level
    between the map's two classes)."""

    FIXED = "fixed"
    OTSU = "otsu"


class MaskLevels(Mode):
    """The levels whose object attention is averaged for the masks: before-window (the paper's: the source's
    steps before the window; the target's window levels) or all (every call each inversion makes anyway)."""

    BEFORE_WINDOW = "before-window"
    ALL = "all"


@dataclass(frozen=True)
class Range:
    """A closed, open or half-open interval of valid values."""

    low: float
    high: float
    low_inclusive: bool = True
    high_inclusive: bool = True

    def __contains__(self, v: float) -> bool:
        above = v >= self.low if self.low_inclusive else v > self.low
        below = v <= self.high if self.high_inclusive else v < self.high
        return above and below

    def text(self) -> str:
        """`[0.0, 1.0)` for floats; `1–999` for integer bounds too large to read as an interval."""
        hi = "∞" if math.isinf(self.high) else f"{self.high:g}"
        return f"{'[' if self.low_inclusive else '('}{self.low:g}, {hi}{']' if self.high_inclusive else ')'}"


@dataclass(frozen=True)
class Control:
    """How a graphical front end (WebUI, ComfyUI) shows a setting: label, slider bounds (which may be
    narrower than the valid range), whether the WebUI shows a fraction as % of the steps, and the row or
    the Advanced section it sits in."""

    label: str
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    percent: bool = False
    row: str = "advanced"


@dataclass(frozen=True)
class Setting:
    """One setting. `kind` is float, int, str or a `Mode` enum; `valid` bounds numbers; `control` is None for
    the settings a host's own controls drive (steps, CFG scale, seed); `xyz` names its X/Y/Z axis, if any."""

    name: str
    kind: type
    default: Any
    help: str
    valid: Range | None = None
    control: Control | None = None
    host_owned: bool = False
    xyz: str | None = None
    symbol: str = ""

    @property
    def flag(self) -> str:
        """The CLI flag (`--window-start`)."""
        return "--" + self.name.replace("_", "-")

    @property
    def api_key(self) -> str:
        """The key in the WebUI API's args dict, a JSON sidecar and a preset file."""
        return self.name

    @property
    def infotext_key(self) -> str:
        """The key inside the `FGAT: k=v; ...` infotext value and the PNG text chunk."""
        return self.name

    @property
    def choices(self) -> tuple[str, ...]:
        return self.kind.values() if isinstance(self.kind, type) and issubclass(self.kind, Mode) else ()

    @property
    def type_name(self) -> str:
        return "choice" if self.choices else self.kind.__name__


UNIT = Range(0.0, 1.0)
SETTINGS: tuple[Setting, ...] = (
    Setting("delta", float, 0.9, "transfer weight (Eq. 3)", UNIT, Control("δ transfer strength", 0.0, 1.0, 0.01,
            row="strength"), xyz="[FGAT] δ transfer strength", symbol="δ"),
    Setting("lam", float, 0.2, "balance between x_t and the deviated x'_t (Eq. 6)", UNIT,
            Control("λ latent balance", 0.0, 1.0, 0.01, row="strength"), xyz="[FGAT] λ latent balance", symbol="λ"),
    Setting("gamma", float, 0.2, "mix of eps(x_t) and eps(x'_t) (Eq. 7)", UNIT,
            Control("γ noise balance", 0.0, 1.0, 0.01, row="strength"), xyz="[FGAT] γ noise balance", symbol="γ"),
    Setting("window_start", float, 0.24, "window start as a fraction of the steps (first window step = "
            "ceil(f * steps); 12 at 50 steps)", Range(0.0, 1.0, True, False),
            Control("Window start (% of steps)", 0, 99, 1, percent=True, row="window")),
    Setting("window_end", float, 0.44, "window end as a fraction of the steps (the window stops before "
            "ceil(f * steps); steps 12-21 at 50 steps)", Range(0.0, 1.0, False, True),
            Control("Window end (% of steps)", 1, 100, 1, percent=True, row="window"), xyz="[FGAT] Window end (%)"),
    Setting("steps", int, 50, "DDIM steps (a host uses its own sampling steps)", Range(1, 999), host_owned=True),
    Setting("guidance_scale", float, 7.5, "classifier-free guidance scale (a host uses its own)", Range(0.0, 50.0),
            host_owned=True),
    Setting("inversion", Inversion, Inversion.NEGATIVE_PROMPT, "how the source is inverted",
            control=Control("Inversion", row="method")),
    Setting("matching", Matching, Matching.PROGRESSIVE, "progressive: DIFT matching at every window step; "
            "initial: once, on the clean images", control=Control("Matching", row="method")),
    Setting("mask_source", MaskSource, MaskSource.ATTENTION, "attention: cross-attention of the mask word; "
            "user: a drawn or uploaded mask; none: the whole image", control=Control("Mask source", row="prompt")),
    Setting("mask_word", str, "", "source-prompt word the attention mask follows (empty: the prompt's last word)",
            control=Control("Object word (empty: last word of the prompt)", row="prompt")),
    Setting("mask_threshold", float, 0.4, "attention mask threshold, after dividing the map by its maximum",
            Range(0.0, 1.0, True, False), Control("Mask threshold", 0.0, 0.95, 0.05)),
    Setting("dift_timestep", int, 261, "timestep of the DIFT features", Range(0, 999),
            Control("DIFT timestep", 0, 999, 1)),
    Setting("dift_ensemble", int, 1, "DIFT noise draws averaged per feature map", Range(1, 32),
            Control("DIFT ensemble", 1, 32, 1, row="method")),
    Setting("gamma_on", GammaOn, GammaOn.GUIDED, "guided: γ mixes the guided noise; uncond: only the "
            "unconditional branch (the paper's wording)", control=Control("γ mixes")),
    Setting("seed", int, 0, "seed of the DIFT noise (a host uses its generation seed)", Range(0, 2**63 - 1),
            host_owned=True),
    Setting("mask_layers", MaskLayers, MaskLayers.FULL, "attention layers averaged for the mask: quarter "
            "(1/4 of the latent size), all, or full (the finest layers with cross-attention; the latent size in "
            "SD 1.x)", control=Control("Attention layers for the mask")),
    Setting("mask_dilate", int, 0, "dilation of the mask, in latent pixels", Range(0, 8),
            Control("Mask dilation (latent px)", 0, 8, 1)),
    Setting("dift_prompt", DiftPrompt, DiftPrompt.OWN, "DIFT conditioning: each image's own prompt, or the "
            "empty prompt", control=Control("DIFT prompt")),
    Setting("null_text_steps", int, 10, "null-text inversion: Adam iterations per step", Range(1, 100),
            Control("Null-text iterations", 1, 100, 1)),
    Setting("null_text_lr", float, 0.01, "null-text inversion: learning rate, decayed as lr·(1 − i/100)",
            Range(0.0, 1.0, False, True), Control("Null-text learning rate", 0.0001, 0.1, 0.0001)),
    Setting("null_text_epsilon", float, 1e-5, "null-text inversion: early stop at loss < ε + 2e-5·i", UNIT,
            Control("Null-text early stop", 0.0, 0.001, 0.000001)),
    Setting("match_chunk", int, 1024, "source positions per chunk of the similarity matrix (bounds its memory)",
            Range(1, 1 << 20), Control("Matching chunk (rows)", 64, 16384, 64)),
    Setting("target_mask", TargetMask, TargetMask.RESTRICT, "target-side mask: none; gate: transfer only where the "
            "match lands on the target's object; restrict: match only the target's object cells",
            control=Control("Target-side mask", row="prompt"), xyz="[FGAT] Target-side mask"),
    Setting("target_mask_word", str, "", "target-prompt word the target's mask follows (empty: the target "
            "prompt's last word)", control=Control("Target object word (empty: last word of the target prompt)",
                                                   row="prompt")),
    Setting("background_lock", BackgroundLock, BackgroundLock.ON, "on: outside the source mask the latent "
            "follows the source's inverted trajectory at every step from the window on (background kept)",
            control=Control("Background lock", row="method"), xyz="[FGAT] Background lock"),
    Setting("mask_threshold_mode", MaskThresholdMode, MaskThresholdMode.FIXED, "fixed: keep the map >= "
            "mask_threshold x its maximum; otsu: a per-image threshold (Otsu's split of the map's values)",
            control=Control("Mask threshold mode"), xyz="[FGAT] Mask threshold mode"),
    Setting("mask_levels", MaskLevels, MaskLevels.ALL, "levels whose attention makes the masks: "
            "before-window (the source's steps before the window) or all (every inversion call; no extra call)",
            control=Control("Attention levels for the mask"), xyz="[FGAT] Mask attention levels"),
)
SETTING: dict[str, Setting] = {s.name: s for s in SETTINGS}
