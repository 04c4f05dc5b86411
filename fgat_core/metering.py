"""UNet calls and time per stage of a run (`FGATResult.stats`): a stage meter and a host that counts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from torch import Tensor

from .host import AttentionLayer, Cond, Denoiser

STAGES = ("inversion", "mask", "matching", "sampling")


@dataclass
class StageStats:
    calls: int = 0  # serial UNet calls (full forward)
    rows: int = 0  # UNet rows (batch entries) of those calls
    feature_calls: int = 0  # partial UNet calls (to up_blocks[1]) for DIFT
    feature_rows: int = 0
    seconds: float = 0.0


class StageMeter:
    """Counts UNet calls and time per stage. Nested stages pause the outer one."""

    def __init__(self) -> None:
        self.stats = {s: StageStats() for s in STAGES}
        self._stack: list[tuple[str, float]] = []

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        now = time.perf_counter()
        if self._stack:
            outer, t0 = self._stack[-1]
            self.stats[outer].seconds += now - t0
        self._stack.append((name, now))
        try:
            yield
        finally:
            name, t0 = self._stack.pop()
            now = time.perf_counter()
            self.stats[name].seconds += now - t0
            if self._stack:
                self._stack[-1] = (self._stack[-1][0], now)

    @property
    def current(self) -> StageStats:
        return self.stats[self._stack[-1][0]]


class CountingHost:
    """A `Denoiser` that counts every call it passes on in the meter's current stage."""

    def __init__(self, host: Denoiser, meter: StageMeter) -> None:
        self.host, self.meter = host, meter
        self.alphas_cumprod = host.alphas_cumprod

    def eps(self, x: Tensor, t: Tensor, cond: Cond) -> Tensor:
        s = self.meter.current
        s.calls += 1
        s.rows += x.shape[0]
        return self.host.eps(x, t, cond)

    def features(self, x: Tensor, t: Tensor, cond: Cond) -> Tensor:
        s = self.meter.current
        s.feature_calls += 1
        s.feature_rows += x.shape[0]
        return self.host.features(x, t, cond)

    def attention_layers(self) -> list[AttentionLayer]:
        return self.host.attention_layers()


def counted(host: Denoiser, meter: StageMeter | None) -> tuple[CountingHost, StageMeter]:
    """`host` counted in `meter` (a new meter if None); a host already counting in that meter is kept."""
    meter = meter if meter is not None else StageMeter()
    if isinstance(host, CountingHost) and host.meter is meter:
        return host, meter
    return CountingHost(host, meter), meter
