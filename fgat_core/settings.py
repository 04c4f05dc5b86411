"""Every FGAT setting described once: type, valid range, default, help, and how each front end shows it.

`SETTINGS` is the one table from which `FGATConfig`'s checks, the CLI's flags, the WebUI's controls and API
keys, the infotext, the X/Y/Z axes, ComfyUI's inputs and the settings tables of README.md and docs/settings.md
are built. Closed choices are `Mode` enums (a `str` subclass: `Inversion.DIRECT == "direct"`, JSON and
infotext write the plain value)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any


class Mode(str, Enum):
    """A closed set of named choices; the value is the spelling users type and files record."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    def __hash__(self) -> int:  # equal to its spelling ("direct" == Inversion.DIRECT), so hashed alike
        return hash(self.value)

    def __repr__(self) -> str:  # `FGATConfig(inversion='direct')`: the spelling a user types, as in messages
        return repr(self.value)

    @classmethod
    def values(cls) -> tuple[str, ...]:
        return tuple(m.value for m in cls)


# each closed choice in three lines: what it chooses (docs/DESIGN.md §2), then its members
class Inversion(Mode):
    """How the source is inverted (§2.2)."""
    DIRECT, NULL_TEXT, NEGATIVE_PROMPT, DDIM = "direct", "null-text", "negative-prompt", "ddim"


class Matching(Mode):
    """DIFT matching at every window step, or once on the clean latents (§2.5)."""
    PROGRESSIVE, INITIAL = "progressive", "initial"


class MaskSource(Mode):
    """Where the mask M comes from (§2.4)."""
    ATTENTION, USER, NONE = "attention", "user", "none"


class GammaOn(Mode):
    """What γ mixes in Eq. 7 (§2.6)."""
    GUIDED, UNCOND = "guided", "uncond"


class MaskLayers(Mode):
    """The attention layers averaged for the mask (§2.4): 1/4 of the latent size, every size, or the finest
    size the model has cross-attention at."""
    QUARTER, ALL, FULL = "quarter", "all", "full"


class DiftPrompt(Mode):
    """DIFT's conditioning: each image's own prompt, or the empty prompt (§2.5)."""
    OWN, EMPTY = "own", "empty"


class TargetMask(Mode):
    """Target-side masking (§2.8, beyond the paper): none; gate: transfer only where the match lands on the
    target's object; restrict: the matching searches the target's object only."""
    NONE, GATE, RESTRICT = "none", "gate", "restrict"


class BackgroundLock(Mode):
    """Outside the source mask, follow the source's own inverted trajectory (§2.8, beyond the paper)."""
    OFF, ON = "off", "on"


class MaskThresholdMode(Mode):
    """How the attention map is cut (§2.4): `mask_threshold` of its maximum, or Otsu's per-image level."""
    FIXED, OTSU = "fixed", "otsu"


class MaskLevels(Mode):
    """The levels whose object attention makes the masks (§2.4): before the window, or every inversion call."""
    BEFORE_WINDOW, ALL = "before-window", "all"


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

    def interval(self) -> str:
        """`[0.0, 1.0)`, `[1, 999]`: the bounds as the setting's type writes them (error messages)."""
        return f"{'[' if self.low_inclusive else '('}{self.low}, {self.high}{']' if self.high_inclusive else ')'}"

    def text(self) -> str:
        """For people: `[0, 1)` for floats, `1–999` for integers, `≥ 0` for a bound too large to read."""
        if isinstance(self.low, int) and isinstance(self.high, int):
            return f"≥ {self.low}" if self.high >= 2**20 else f"{self.low}–{self.high}"
        hi = "∞" if math.isinf(self.high) else f"{self.high:g}"
        return f"{'[' if self.low_inclusive else '('}{self.low:g}, {hi}{']' if self.high_inclusive else ')'}"


@dataclass(frozen=True)
class Control:
    """How a graphical front end (WebUI, ComfyUI) shows a setting: label, slider bounds (which may be
    narrower than the valid range), whether the WebUI shows a fraction as % of the steps, and the row or
    the Advanced section it sits in; `labels` renames choices whose value reads badly in a UI."""

    label: str
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    percent: bool = False
    row: str = "advanced"
    labels: tuple[tuple[str, str], ...] = ()  # (value, label) pairs; the others show their value

    def choice_label(self, value: str) -> str:
        return dict(self.labels).get(str(value), str(value))


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
    Setting("window_end", float, 0.44, "window end as a fraction of the steps, above window_start (the "
            "window stops before ceil(f * steps); steps 12-21 at 50 steps)", Range(0.0, 1.0, False, True),
            Control("Window end (% of steps)", 1, 100, 1, percent=True, row="window"), xyz="[FGAT] Window end (%)"),
    # 1000 steps would put timestep 1000 on the DDIM grid (1000 // N * j + 1); alphas_cumprod ends at 999
    Setting("steps", int, 50, "DDIM steps (a host uses its own sampling steps)", Range(1, 999), host_owned=True),
    Setting("guidance_scale", float, 7.5, "classifier-free guidance scale (a host uses its own)", Range(0.0, 50.0),
            host_owned=True),
    Setting("inversion", Inversion, Inversion.NEGATIVE_PROMPT, "how the source is inverted",
            control=Control("Inversion", row="method")),
    Setting("matching", Matching, Matching.PROGRESSIVE, "progressive: DIFT matching at every window step; "
            "initial: once, on the clean images", control=Control("Matching", row="method")),
    Setting("mask_source", MaskSource, MaskSource.ATTENTION, "attention: cross-attention of the mask word; "
            "user: a drawn or uploaded mask; none: the whole image",
            control=Control("Mask source", row="prompt", labels=(("user", "inpaint mask"),))),
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
            control=Control("Target-side mask", row="target")),
    Setting("target_mask_word", str, "", "target-prompt word the target's mask follows (empty: the target "
            "prompt's last word)", control=Control("Target object word (empty: last word of the target prompt)",
                                                   row="target")),
    Setting("background_lock", BackgroundLock, BackgroundLock.ON, "on: outside the source mask the latent "
            "follows the source's inverted trajectory at every step from the window on (background kept)",
            control=Control("Background lock", row="target")),
    Setting("mask_threshold_mode", MaskThresholdMode, MaskThresholdMode.FIXED, "fixed: keep the map >= "
            "mask_threshold x its maximum; otsu: a per-image threshold (Otsu's split of the map's values)",
            control=Control("Mask threshold mode")),
    Setting("mask_levels", MaskLevels, MaskLevels.ALL, "levels whose attention makes the masks: "
            "before-window (the source's steps before the window) or all (every inversion call; no extra call)",
            control=Control("Attention levels for the mask")),
)
SETTING: dict[str, Setting] = {s.name: s for s in SETTINGS}


# ---------------------------------------------------------------------------------------------- docs
TABLE_BLOCK = re.compile(r"(<!-- settings-table:(\w+) -->\n)(.*?)(<!-- /settings-table -->)", re.S)


def is_common(s: Setting) -> bool:
    """A setting a user meets first: a front-end control outside the Advanced section."""
    return s.control is not None and s.control.row != "advanced"


def markdown_table(which: str = "all") -> str:
    """The settings as a Markdown table: every setting ("all"), or the common ones ("common")."""
    if which not in ("all", "common"):
        raise ValueError(f"which must be 'all' or 'common', got {which!r}")
    rows = [s for s in SETTINGS if which == "all" or is_common(s)]
    lines = ["| Field | CLI flag | Default | Range | Meaning | WebUI control | X/Y/Z |",
             "|---|---|---|---|---|---|---|"]
    for s in rows:
        meaning = f"{s.symbol}: {s.help}" if s.symbol else s.help
        cells = (f"`{s.name}`", f"`{s.flag}`", _default_text(s), _range_text(s), meaning, _control_text(s),
                 "yes" if s.xyz else "")
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _default_text(s: Setting) -> str:
    if s.choices or s.kind is str:
        return f"`{s.default}`" if s.default != "" else '""'
    return f"{s.default:g}"


def _range_text(s: Setting) -> str:
    if s.choices:
        return ", ".join(f"`{c}`" for c in s.choices)
    return s.valid.text() if s.valid is not None else "text"


def _control_text(s: Setting) -> str:
    if s.host_owned:
        return "the WebUI's own"
    if s.control is None:
        return ""
    return ("Advanced: " if s.control.row == "advanced" else "") + s.control.label


def update_markdown(text: str) -> str:
    """`text` with every `<!-- settings-table:WHICH -->` ... `<!-- /settings-table -->` block regenerated."""
    return TABLE_BLOCK.sub(lambda m: m.group(1) + markdown_table(m.group(2)) + m.group(4), text)


def main(argv: list[str] | None = None) -> int:
    """`python -m fgat_core.settings_tables --markdown all|common` prints the table; `--update FILE...` rewrites the
    marked blocks of those Markdown files in place."""
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(prog="python -m fgat_core.settings_tables", description=main.__doc__)
    parser.add_argument("--markdown", choices=("all", "common"), help="print the settings table")
    parser.add_argument("--update", nargs="+", metavar="FILE", help="regenerate the marked tables in these files")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown_table(args.markdown), end="")
    for name in args.update or ():
        path = Path(name)
        text = path.read_text(encoding="utf-8")
        if update_markdown(text) != text:
            path.write_text(update_markdown(text), encoding="utf-8")
            print(f"updated {path}")
    if not (args.markdown or args.update):
        parser.print_usage()
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
