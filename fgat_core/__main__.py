"""`python -m fgat_core ...`: see `fgat_core.cli`."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
