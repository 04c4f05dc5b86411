"""Progress bars for the standalone front end: one tqdm bar per engine stage."""

from __future__ import annotations

import sys


class StageBars:
    """One tqdm bar per engine stage, fed by the engine's progress(stage, done, total) callback.

    The engine reports null-text inversion's optimisation as a second run of the "inversion" stage (after
    the DDIM inversion): that bar is labelled as what it is."""

    SECOND_RUN = {"inversion": "null-text optimisation"}

    def __init__(self, enabled: bool = True, prefix: str = "") -> None:
        self.enabled, self.prefix = enabled, prefix
        self.bar = None
        self.key: tuple[str, int] | None = None
        self.runs: dict[str, int] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None or self.key != (stage, total) or done < self.bar.n:
            self.close()
            from tqdm import tqdm

            self.runs[stage] = self.runs.get(stage, 0) + 1
            label = self.SECOND_RUN.get(stage, stage) if self.runs[stage] == 2 else stage
            self.bar = tqdm(total=total, desc=f"{self.prefix}{label}", unit="step", file=sys.stderr,
                            dynamic_ncols=True, leave=True)
            self.key = (stage, total)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
            self.key = None
