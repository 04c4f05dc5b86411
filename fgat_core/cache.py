"""An in-memory store for `run_fgat(cache=...)`: inversion results reused across runs (CLI batch, repeats).

The engine builds the keys (the caller's image/prompt/model identity plus every setting the inversion
depends on), so this store only keeps values: it never decides whether two runs may share one."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any


class InversionCache:
    """Least-recently-used dict with hit/miss counters; `max_entries` bounds memory (values hold
    latents on the model's device)."""

    def __init__(self, max_entries: int = 64) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.max_entries = max_entries
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> Any | None:
        if key in self._items:
            self._items.move_to_end(key)
            self.hits += 1
            return self._items[key]
        self.misses += 1
        return None

    def put(self, key: Hashable, value: Any) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items
