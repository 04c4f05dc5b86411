"""`python -m fgat_cli ...`: see `fgat_cli.cli`."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
