"""Typed errors for bad settings and bad inputs, rendered in each front end's own words.

Both are `ValueError`s, so `except ValueError` keeps working. Each carries the field it is about, the value
given and (for settings) the range or choices allowed; `render(name)` writes the message with the field
names a front end uses: the CLI's flags (`--window-end`), a pairs file's columns (`window_end`), the
library's attributes (`FGATConfig.window_end`, what `str(err)` gives).

    try:
        FGATConfig(window_start=0.5, window_end=0.3)
    except ConfigError as e:
        e.field, e.value, e.allowed         # 'window_end', 0.3, '(0.5, 1.0]'
        str(e)                              # 'FGATConfig.window_end (0.3) must be greater than window_start (0.5)'
        e.render(flag_name)                 # '--window-end (0.3) must be greater than --window-start (0.5)'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Namer = Callable[[str], str]


def plain_name(field: str) -> str:
    """A field as a pairs file's column or an API key names it: `window_end`."""
    return field


def flag_name(field: str) -> str:
    """A field as the command line's flag: `--window-end`."""
    return "--" + field.replace("_", "-")


class _FieldError(ValueError):
    """A message template whose `{name}`, `{value}`, `{allowed}` and `{names[other]}` slots are filled per
    front end; extra keyword arguments fill slots of their own. `problem` names the kind of fault (e.g.
    'missing', 'aspect') for a front end that words it its own way: callers tell errors apart by `field`
    and `problem`, never by the message text."""

    def __init__(self, field: str, value: Any, template: str, *, allowed: str | None = None,
                 related: Sequence[str] = (), problem: str = "", **extra: Any) -> None:
        self.field, self.value, self.allowed, self.problem = field, value, allowed, problem
        self.template, self.related, self.extra = template, tuple(related), extra
        super().__init__(self.render(self._library_name))

    def _library_name(self, field: str) -> str:
        return field

    def __reduce__(self):  # copy.copy / deepcopy rebuild the error from its parts, not its rendered message
        return _rebuild, (type(self), self.field, self.value, self.template, self.allowed, self.related,
                          {"problem": self.problem, **self.extra})

    def render(self, name: Namer = plain_name) -> str:
        """The message with every field named by `name` (e.g. `flag_name`)."""
        names = {f: name(f) for f in (self.field, *self.related)}
        return self.template.format(name=names[self.field], names=names, value=self.value, allowed=self.allowed,
                                    **self.extra)


class ConfigError(_FieldError):
    """An `FGATConfig` setting that is out of range, of the wrong kind, or inconsistent with another.

    `field`: the setting; `value`: what was given; `allowed`: the range (`[0.0, 1.0]`) or the choices
    (`direct, null-text, ...`), None where no single range applies; `related`: other settings the message
    names (`window_start` for an inverted window)."""

    def _library_name(self, field: str) -> str:
        return f"FGATConfig.{field}" if field == self.field else field


class InputError(_FieldError):
    """A bad input that is not a setting: an image file, a prompt, a mask word, an output path.

    `field`: the input (`source`, `target`, `mask`, `out`, `source_prompt`, `mask_word`, ...), named in the
    message by the front end's namer; `str(err)` names it in words (`the source prompt`)."""

    def _library_name(self, field: str) -> str:
        return INPUT_WORDS.get(field, "the " + field.replace("_", " "))


INPUT_WORDS = {"source": "the source image", "target": "the target image", "mask": "the mask image",
               "out": "the output", "source_prompt": "the source prompt", "target_prompt": "the target prompt",
               "negative_prompt": "the negative prompt", "mask_word": "the mask word",
               "mask_source": "mask source"}


def _rebuild(cls: type, field: str, value: Any, template: str, allowed: str | None, related: Sequence[str],
             extra: dict[str, Any]) -> _FieldError:
    return cls(field, value, template, allowed=allowed, related=related, **extra)


def render_error(err: BaseException, name: Namer) -> str:
    """`err`'s message for a front end: typed errors in its names, any other error as it is."""
    return err.render(name) if isinstance(err, _FieldError) else str(err)
