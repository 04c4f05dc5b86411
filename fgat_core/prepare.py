"""The preparation layer every front end shares: the CLI (`runner.check_job`), the library and every WebUI
backend (`fgat_webui.run.FGATRun.prepare`) check a request here before any model work.

- values: `parse_bool`, `parse_number`, `parse_text` turn what a user typed (a CSV cell, a YAML value, an API
  JSON value, a UI control's value) into a setting's type, with one wording of the errors;
- the mask word (`fgat_core.mask`, re-exported here): `default_mask_word` is the rule for an empty word (the
  prompt's last word with letters), `locate_word_ids` finds the word's tokens among the prompt's token ids as
  the host tokenizes them;
- checks: `check_request` (target, user mask, window, mask word), `check_user_mask`;
- the target-side mask's word (docs/DESIGN.md §2.8): `target_object_tokens`, with the front end's `locate`.

Errors are typed (`fgat_core.errors`): an `InputError`'s `field` and `problem` say what is wrong, so that a
front end can word it its own way (`render` with its names, or a sentence of its own per problem) without
reading the message text."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image
from torch import Tensor

from .config import FGATConfig
from .errors import InputError
from .images import mask_from_image, to_rgb
from .mask import default_mask_word, locate_word_ids, prepare_user_mask
from .settings import MaskSource, TargetMask

__all__ = ["LENIENT_BOOLS", "STRICT_BOOLS", "TARGET_FIELDS", "Request", "check_request", "check_user_mask",
           "default_mask_word", "locate_word_ids", "parse_bool", "parse_number", "parse_text", "same_aspect",
           "shorten", "target_object_tokens"]

Size = tuple[int, int]  # (width, height) in pixels
STRICT_BOOLS = (("true",), ("false",))  # an API's JSON-ish words
LENIENT_BOOLS = (("1", "true", "yes", "on"), ("0", "false", "no", "off"))  # a hand-written pairs file's


# ---------------------------------------------------------------------------------------------- values
def shorten(value: object, limit: int = 60) -> str:
    """`repr(value)`, cut to about `limit` characters with the full length said (a base64 image sent where a
    number belongs must not come back whole in an error)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 20]}…({len(text)} characters)"


def parse_bool(value: Any, what: str, words: tuple[Sequence[str], Sequence[str]] = STRICT_BOOLS) -> bool:
    """A bool, 0/1, or one of `words` (true words, false words; any case) -> bool."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in words[0] or text in words[1]:
            return text in words[0]
    raise ValueError(f"{what} must be true or false, got {shorten(value)}")


def parse_number(value: Any, what: str, integer: bool) -> float | int:
    """A finite number (or its text) -> float, or int when `integer` (a whole float is accepted)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} must be a number, got {shorten(value)}")
    if integer:
        if float(value) != int(value):
            raise ValueError(f"{what} must be a whole number, got {shorten(value)}")
        return int(value)
    return float(value)


def parse_text(value: Any, what: str) -> str:
    """Text (None: empty); anything else is an error naming its type."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be text, got {type(value).__name__}")
    return value


# ---------------------------------------------------------------------------------------------- checks
def same_aspect(a: Size, b: Size, tolerance: float = 0.02) -> bool:
    """Two (width, height) sizes of the same aspect ratio, within `tolerance` of height/width (the user-mask rule)."""
    return abs(a[1] / a[0] - b[1] / b[0]) <= tolerance


def check_user_mask(image: Image.Image, frames: Sequence[Size], value: Any = None) -> Tensor:
    """A drawn or uploaded mask image: values in [0, 1] (InputError, problem 'values') and the aspect ratio of
    one of `frames` (the sizes it may be drawn over; InputError, problem 'aspect', naming the first frame).
    Returns the mask as an (h, w) tensor."""
    mask = mask_from_image(image)
    mw, mh = image.size
    try:
        prepare_user_mask(mask, (max(1, mh // 8), max(1, mw // 8)))  # its values
    except ValueError as e:
        raise InputError("mask", value, ("{name}" if value is None else "{name} {value!r}") + ": {reason}",
                         problem="values", reason=e) from None
    if frames and not any(same_aspect((mw, mh), frame) for frame in frames):
        w, h = frames[0]
        named = "{name}" if value is None else "{name} {value!r}"
        raise InputError("mask", value, named + " is {mw}x{mh} px, but the source image is {w}x{h} px: "
                         "another aspect ratio ({ma:.3g} against {sa:.3g}); give a mask of the source's aspect "
                         "ratio (any size)", problem="aspect", mw=mw, mh=mh, w=w, h=h, ma=mw / mh, sa=w / h)
    return mask


@dataclass
class Request:
    """What a front end knows of a run before any model call."""

    config: FGATConfig
    prompts: Iterable[str]  # the source prompt(s) the mask word must be found in
    target: Image.Image | None
    mask: Image.Image | None = None  # a user mask image
    mask_value: Any = None  # how the user gave the mask (a path), for the messages
    mask_frames: Sequence[Size] = ()  # sizes whose aspect ratio the mask may have (the source's first)
    host_mask: bool = False  # the host has a mask of its own for mask source 'user' (an inpaint mask)
    transfer: bool = True  # False: a reconstruction, which uses no mask


def check_request(request: Request, locate: Callable[[str, str], Any] | None = None) -> tuple[int, int]:
    """Every check that needs no UNet call; returns the window. `locate(prompt, word)` finds the mask word in
    a prompt as the host tokenizes it (raising where it cannot); None skips that check.

    Raises ConfigError (the window) or InputError with `problem`: target 'missing'; mask 'missing', 'unused',
    'values', 'aspect'; and whatever `locate` raises."""
    cfg = request.config
    window = cfg.window()  # an empty window, or an attention mask without steps before the window
    if request.target is None:
        raise InputError("target", None, "{name} is missing: give the image whose appearance to transfer",
                         problem="missing")
    to_rgb(request.target, "target image")
    if request.mask is not None:
        if cfg.mask_source is not MaskSource.USER:
            raise InputError("mask", request.mask_value, "a mask image was given but {names[mask_source]} is "
                             "{source!r}: drop {name} or set {names[mask_source]} to 'user'", problem="unused",
                             source=cfg.mask_source, related=("mask_source",))
        check_user_mask(request.mask, request.mask_frames, request.mask_value)
    elif cfg.mask_source is MaskSource.USER and request.transfer and not request.host_mask:
        raise InputError("mask", None, "{names[mask_source]} is 'user' but no mask image was given: add {name} "
                         "(white = transfer)", problem="missing", related=("mask_source",))
    if locate is not None and request.transfer and cfg.mask_source is MaskSource.ATTENTION:
        for prompt in dict.fromkeys(request.prompts):
            locate(prompt, cfg.mask_word)
    return window


TARGET_FIELDS = ("target_prompt", "target_mask_word")  # the inputs the target-side mask word's errors name


def target_object_tokens(
    config: FGATConfig, target_prompt: str, locate: Callable[[str, str], list[int]]
) -> list[int] | None:
    """The target-side mask's word located in the target prompt by `locate(prompt, word)` (docs/DESIGN.md
    §2.8): None without target-side masking; [] where the target prompt names no object and no word was typed
    (the engine then takes the whole target, and says so)."""
    if config.target_mask is TargetMask.NONE:
        return None
    if not config.target_mask_word and default_mask_word(target_prompt) is None:
        return []
    return locate(target_prompt, config.target_mask_word)
