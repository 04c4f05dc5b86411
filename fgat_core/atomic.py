"""Atomic file writes: every file FGAT writes (result PNG, sidecar, diagnostics sheet, batch summary, presets)
goes to a temporary file in the same folder, is flushed and fsynced, and replaces the target with one
`os.replace`. A failure (a full disk, a read-only file system, an interrupt) leaves the previous file as it was
and no temporary file behind; concurrent writers of one path each write a temporary file of their own, so the
path ends up holding one complete file (the last to be renamed), never a mix."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO


class WriteError(OSError):
    """A file that could not be written: names the file and the cause; the previous file is unchanged."""

    def __init__(self, path: Path, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror or str(cause))
        self.path = path
        self.cause = cause

    def __str__(self) -> str:
        reason = self.cause.strerror or str(self.cause)
        reason = reason[:1].lower() + reason[1:]
        return (f"cannot write {str(self.path)!r}: {reason} (nothing was replaced: a previous file of that name "
                "is unchanged)")


def _new_file_mode(path: Path) -> int:
    """The mode the file would have if opened the ordinary way: the existing file's, else 0o666 less the umask
    (mkstemp makes 0o600 files, which would make every result private)."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


@contextlib.contextmanager
def _temporary_beside(path: Path) -> Iterator[tuple[BinaryIO, str]]:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f, tmp
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Write `path` by calling `write(file)` on a temporary file beside it, then flush, fsync and rename it
    over `path`. Raises WriteError (an OSError) naming the file and the cause; returns the path."""
    path = Path(path)
    try:
        with _temporary_beside(path) as (f, tmp):
            write(f)
            f.flush()
            os.fsync(f.fileno())
            os.chmod(tmp, _new_file_mode(path))
            f.close()
            os.replace(tmp, path)
    except WriteError:
        raise
    except OSError as e:
        raise WriteError(path, e) from None
    _sync_folder(path.parent)
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """`write_atomic` for UTF-8 text."""
    data = text.encode("utf-8")
    return write_atomic(path, lambda f: f.write(data))


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a platform or file system that cannot is no error."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
