"""A least-recently-used map bounded by a total cost: what a worker keeps between
queries must not grow for its whole life (a key per edited chunk, a file's lines
per file ever searched).  Thread-safe: searches run on a small thread pool."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    """At most ``max_cost`` in total (``cost(value)``, 1 each by default); the least
    recently used entries go first.  A value costing more than the whole budget is
    not kept at all."""

    def __init__(self, max_cost: int, cost: Callable[[V], int] = lambda _v: 1) -> None:
        self.max_cost = max_cost
        self._cost = cost
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._total = 0
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            got = self._items.get(key)
            if got is None:
                return None
            self._items.move_to_end(key)
            return got[0]

    def put(self, key: K, value: V) -> None:
        cost = self._cost(value)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._total -= old[1]
            if cost > self.max_cost:
                return
            self._items[key] = (value, cost)
            self._total += cost
            while self._total > self.max_cost:
                _k, (_v, c) = self._items.popitem(last=False)
                self._total -= c

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._total = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def total_cost(self) -> int:
        return self._total
