"""FGAT's errors, as the WebUIs' API answers them (shared by every backend).

Both WebUIs answer an exception from a generation with the exception's `status_code` (500 without one) and
a JSON body, but not the same body, and not the same console output:

- A1111 1.10.1 (`modules/api/api.py:167-182`): `{"error": class name, "detail", "body", "errors": str(e)}`;
  any exception that is not fastapi's `HTTPException` also prints its traceback (rich, 60-90 lines).
- Forge 2.0.1 (`webui.py:30-38`, the API app's only handler; Forge's `api.py:210` leaves A1111's out):
  `{"error", "detail", "body", "message": str(e)}`, and Starlette re-raises it, so uvicorn prints the
  traceback; a fastapi `HTTPException` goes to FastAPI's own handler instead: `{"detail": e.detail}`,
  nothing printed.

So a setting or input the user has to change (`FGATInputError`, HTTP 422) is a fastapi `HTTPException`
where fastapi is importable (in both WebUIs it is): `detail` carries the message in both WebUIs, no
traceback is printed, and FGAT prints the one line itself (`report_rejected`). A failure of FGAT itself
(`FGATError`, HTTP 500) keeps the WebUI's traceback: that is what a bug report needs.
"""

from __future__ import annotations

import re
import sys

from fgat_core.prepare import shorten  # noqa: F401 - the WebUI modules' name for it

PREFIX = "Fine-grained Appearance Transfer"
INPUT_STATUS = 422
_LONG_RUN = re.compile(r"[^\s'\"]{101,}")


def clip_long_runs(message: str) -> str:
    """Every run of more than 100 non-space characters (base64 data, mostly) cut to its first 40."""
    return _LONG_RUN.sub(lambda m: f"{m.group(0)[:40]}…({len(m.group(0))} characters)", message)


class FGATError(RuntimeError):
    """A FGAT error raised to the WebUI: `status_code` and `detail` are what both WebUIs' error handlers read
    (`vars(e)`); the message never echoes a long input whole."""

    def __init__(self, message: str, status_code: int = 500) -> None:
        message = clip_long_runs(str(message))
        super().__init__(message)
        self.status_code = status_code
        self.detail = message
        self.headers = None  # read by FastAPI's HTTPException handler

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _http_exception() -> type[Exception] | None:
    try:
        from fastapi.exceptions import HTTPException
    except ImportError:  # outside a WebUI (the CLI's environment): a plain FGATError
        return None
    return HTTPException


_HTTP = _http_exception()


class FGATInputError(FGATError, *((_HTTP,) if _HTTP is not None else ())):
    """A setting or input the user has to change: HTTP 422, the message in `detail` (see the module doc)."""

    def __init__(self, message: str) -> None:
        FGATError.__init__(self, message, INPUT_STATUS)


def input_error(reason: BaseException | str) -> FGATInputError:
    """The 422 error for `reason`, with FGAT's prefix."""
    return FGATInputError(f"{PREFIX}: {reason}")


def failure(reason: BaseException) -> FGATError:
    """The 500 error for an unexpected exception inside FGAT, with FGAT's prefix and the exception's type."""
    return FGATError(f"{PREFIX} failed: {type(reason).__name__}: {reason}")


def report_rejected(error: FGATInputError) -> None:
    """The one console line for a rejected generation (the WebUI prints no traceback for it)."""
    print(f"*** {error}", file=sys.stderr)
