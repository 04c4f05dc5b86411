"""`python -m fgat_core ...`: kept for scripts written before the split; the CLI is `fgat_cli` (`python -m fgat_cli`).

The one place fgat_core names a front end, and only by name at run time: the import-graph test allows it."""

import runpy

if __name__ == "__main__":
    runpy.run_module("fgat_cli", run_name="__main__", alter_sys=True)
