"""Mirrors modules/errors.py: report() prints the message (and traceback) and carries on.

`reported` keeps what was reported, so tests can see exceptions the WebUI swallowed."""
import sys
import traceback

reported = []


def report(message, *, exc_info=False):
    reported.append((message, sys.exc_info()[1] if exc_info else None))
    print(f"*** {message}", file=sys.stderr)
    if exc_info:
        traceback.print_exc()


def display(e, task, *, full_traceback=False):
    reported.append((task, e))
    print(f"{task or 'error'}: {type(e).__name__}: {e}", file=sys.stderr)


def record_exception():
    pass
