"""Named presets: built-in ones plus user presets kept in one JSON file (schema-checked, never unpickled)."""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .atomic import write_text_atomic
from .config import FGATConfig
from .errors import plain_name, render_error
from .settings import BackgroundLock, Inversion, MaskLayers, MaskLevels, MaskThresholdMode, Matching, TargetMask

# the paper's settings (§4), FGAT's defaults before issue 21: no target-side masking, no background lock
PAPER_SETTINGS: dict[str, Any] = FGATConfig(
    delta=0.6, lam=0.2, gamma=0.2, window_start=0.24, window_end=0.44, inversion=Inversion.DIRECT,
    mask_threshold=0.3, mask_dilate=1, mask_layers=MaskLayers.QUARTER, target_mask=TargetMask.NONE,
    background_lock=BackgroundLock.OFF, mask_threshold_mode=MaskThresholdMode.FIXED,
    mask_levels=MaskLevels.BEFORE_WINDOW,
).to_dict()
BUILTIN: dict[str, dict[str, Any]] = {
    "Defaults": FGATConfig().to_dict(),
    "Paper": PAPER_SETTINGS,
    "Paper (null-text inversion)": {**PAPER_SETTINGS, "inversion": Inversion.NULL_TEXT.value},
    "Fast (initial matching)": FGATConfig(matching=Matching.INITIAL).to_dict(),
    "Strong transfer": {**PAPER_SETTINGS, "delta": 0.8, "window_end": 0.5},  # the paper's, stronger
}
_NAME = re.compile(r"^[^\W_][\w .()+\-]{0,63}$", re.UNICODE)


def check_name(name: str) -> str:
    """Preset names: 1-64 letters, digits, spaces and . ( ) + - _ ; no path separators."""
    if not isinstance(name, str) or not _NAME.match(name.strip()) or name.strip() in (".", ".."):
        raise ValueError(
            f"invalid preset name {name!r}: use 1-64 letters, digits, spaces or . ( ) + - _ "
            "(no slashes), starting with a letter or digit"
        )
    return name.strip()


def _lookup(name: Any, names) -> str | None:
    """The key of `names` that is `name`: exactly, else ignoring case and surrounding spaces (None if none)."""
    if not isinstance(name, str):
        return None
    if name in names:
        return name
    want = name.strip().casefold()
    return next((key for key in names if isinstance(key, str) and key.strip().casefold() == want), None)


class PresetStore:
    """Built-in presets plus user presets in `<folder>/presets.json`.

    A corrupt file, or an entry that is not a valid FGATConfig, is reported in `errors` and ignored."""

    FILE = "presets.json"
    MAX_BYTES = 1_000_000  # hundreds of presets fit; anything larger is not a presets file
    LOCK_SECONDS = 30.0  # a save waits this long for another process's save

    def __init__(self, folder: str | os.PathLike | None) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.errors: list[str] = []

    @property
    def path(self) -> Path | None:
        return None if self.folder is None else self.folder / self.FILE

    def _read_raw(self) -> dict[str, Any]:
        """The file's JSON object as written (missing file: empty); ValueError saying why it is unusable."""
        if self.path is None:
            return {}
        if self.folder is not None and self.folder.exists() and not self.folder.is_dir():
            raise ValueError(f"the presets folder {str(self.folder)!r} is a file: set FGAT_PRESETS_DIR to a folder "
                             "(or move the file away)")
        try:
            if not self.path.exists():  # raises where the folder may not be read
                return {}
            if self.path.stat().st_size > self.MAX_BYTES:
                raise ValueError(f"it is larger than {self.MAX_BYTES // 1_000_000} MB")
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError included
            raise ValueError(f"the presets file {self.path} cannot be read ({e})") from None
        if not isinstance(data, dict):
            raise ValueError(f"the presets file {self.path} is not a JSON object")
        return data

    def _read_user(self) -> dict[str, dict[str, Any]]:
        self.errors = []
        try:
            data = self._read_raw()
        except ValueError as e:
            self.errors.append(f"{e}; it was ignored")
            return {}
        good: dict[str, dict[str, Any]] = {}
        for name, settings in data.items():
            if _lookup(name, BUILTIN) is not None:  # names are case-insensitive
                self.errors.append(f"preset {name!r} in {self.path} has a built-in preset's name, which wins; "
                                   "rename it to use it")
                continue
            try:
                check_name(name)
                good[name] = FGATConfig.from_dict(settings).to_dict()
            except (ValueError, TypeError) as e:  # settings named as the file's keys
                self.errors.append(f"preset {name!r} in {self.path} is invalid ({render_error(e, plain_name)}); "
                                   "it was ignored")
        return good

    def _raw_for_update(self) -> dict[str, Any]:
        """What save/delete rewrite: every entry as it is, invalid ones included (never lost by a save);
        an unreadable file is an error rather than overwritten."""
        try:
            return self._read_raw()
        except ValueError as e:
            raise ValueError(f"{e}: fix it or move it away, then save again (nothing was changed)") from None

    def names(self) -> list[str]:
        return list(BUILTIN) + [n for n in self._read_user() if n not in BUILTIN]

    def get(self, name: str) -> FGATConfig:
        """The preset `name`, matched case-insensitively (an exact match first)."""
        builtin = _lookup(name, BUILTIN)
        if builtin is not None:
            return FGATConfig.from_dict(BUILTIN[builtin])
        user = self._read_user()
        key = _lookup(name, user)
        if key is None:
            # the user's own preset may be there but unusable, or the whole file unreadable: say that instead
            low = str(name).strip().casefold()
            reasons = [e for e in self.errors if e.casefold().startswith(f"preset {low!r} ".casefold())
                       or e.startswith("the presets file")]
            if reasons:
                raise ValueError(f"preset {name!r} cannot be used: {reasons[0]}")
            raise ValueError(f"unknown preset {name!r}; available presets: {', '.join(self.names())}")
        return FGATConfig.from_dict(user[key])

    def save(self, name: str, config: FGATConfig) -> bool:
        """Save `config` as the user preset `name`; True when it replaced one of that name (in any case)."""
        name = check_name(name)
        if _lookup(name, BUILTIN) is not None:
            raise ValueError(f"{name!r} is a built-in preset's name and cannot be overwritten: choose another name")
        if self.folder is None:
            raise ValueError("no presets folder is configured")
        with self._locked():
            raw = self._raw_for_update()
            old = _lookup(name, raw)
            if old is not None:
                del raw[old]  # "Soft" replaces "soft": names are case-insensitive
            raw[name] = config.to_dict()
            self._write(raw)
        return old is not None

    def delete(self, name: str) -> None:
        if _lookup(name, BUILTIN) is not None:
            raise ValueError(f"{name!r} is a built-in preset and cannot be deleted")
        with self._locked():
            key = _lookup(name, self._read_user())
            if key is None:
                raise ValueError(f"there is no user preset named {name!r}")
            raw = self._raw_for_update()
            del raw[key]
            self._write(raw)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold `<folder>/presets.json.lock` around a read-modify-replace, so that concurrent saves (two
        terminals, the CLI beside a WebUI) each keep their preset. `filelock` (a torch dependency) holds an OS
        lock that a crashed process releases, on POSIX and Windows alike."""
        from filelock import FileLock, Timeout

        assert self.folder is not None and self.path is not None
        self._make_folder()
        lock = FileLock(str(self.path) + ".lock")
        try:
            lock.acquire(timeout=self.LOCK_SECONDS)
        except Timeout:
            raise ValueError(f"the presets file {self.path} is being changed by another FGAT process for more than "
                             f"{self.LOCK_SECONDS:.0f} s: try again (nothing was changed)") from None
        except OSError as e:
            raise ValueError(f"the presets file {self.path} cannot be locked for a change ({e.strerror or e}): "
                             "set FGAT_PRESETS_DIR to a writable folder (nothing was changed)") from None
        try:
            yield
        finally:
            lock.release()

    def _make_folder(self) -> None:
        assert self.folder is not None
        if self.folder.exists() and not self.folder.is_dir():
            raise ValueError(f"the presets folder {str(self.folder)!r} is a file: set FGAT_PRESETS_DIR to a folder "
                             "(or move the file away)")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ValueError(f"the presets folder {str(self.folder)!r} cannot be created ({e.strerror or e}): set "
                             "FGAT_PRESETS_DIR to a writable folder") from None

    def _write(self, user: dict[str, Any]) -> None:
        assert self.folder is not None
        self._make_folder()
        write_text_atomic(self.path, json.dumps(user, indent=2, sort_keys=True))  # a crash leaves the old file


def paper_config(**changes: Any) -> FGATConfig:
    """The paper's settings (the "Paper" preset, FGAT's defaults before issue 21) with `changes`."""
    return FGATConfig.from_dict({**PAPER_SETTINGS, **changes})
