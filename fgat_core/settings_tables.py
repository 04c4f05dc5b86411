"""`python -m fgat_core.settings_tables --markdown all|common` / `--update FILE...`: print or refresh the
settings tables of README.md and docs/ from `fgat_core.settings` (a module of its own, so that running it does
not re-execute `fgat_core.settings`, which the package has already imported)."""

from .settings import main

if __name__ == "__main__":
    raise SystemExit(main())
