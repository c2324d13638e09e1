"""The warm rate Lambda's compiled decks: least recently used first out, bounded by bytes.

A deck version is immutable once recorded, so a (tenant, account, version) key never goes
stale; what a long-lived container must bound is memory. A tenant with hundreds of accounts
whose 50,000-prefix decks are each ~10 MB compiled would otherwise grow until the function
runs out of memory.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Hashable

import numpy as np
import pyarrow as pa

from functions.rate.rating import DeckIndex

DEFAULT_MAX_BYTES = 256 * 1024 * 1024


def index_bytes(index: DeckIndex) -> int:
    """Memory an index holds: every array of it (numpy, Arrow texts) and its deck's rows."""
    held = (np.ndarray, pa.Array, pa.Table)
    fields = (getattr(index, name) for name in index.__slots__)
    return sum(value.nbytes for value in fields if isinstance(value, held))


def configured_max_bytes() -> int:
    """TOLLGATE_DECK_CACHE_MB, if set: the bound a deployment sizes to its Lambda memory."""
    megabytes = os.environ.get("TOLLGATE_DECK_CACHE_MB")
    return int(megabytes) * 1024 * 1024 if megabytes else DEFAULT_MAX_BYTES


class DeckCache:
    """Compiled decks by key, the least recently used evicted once `max_bytes` is exceeded.

    The deck just loaded always stays, even alone over the bound: a file needs it now.
    """

    def __init__(self, max_bytes: int | None = None) -> None:
        self.max_bytes = configured_max_bytes() if max_bytes is None else max_bytes
        self._entries: OrderedDict[Hashable, tuple[DeckIndex, int]] = OrderedDict()
        self.bytes = 0
        self.loads = 0  # how many decks were loaded (misses), for tests and metrics

    def get(self, key: Hashable, load: Callable[[], DeckIndex]) -> DeckIndex:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            return entry[0]
        index = load()
        self.loads += 1
        size = index_bytes(index)
        self._entries[key] = (index, size)
        self.bytes += size
        while self.bytes > self.max_bytes and len(self._entries) > 1:
            _, (_, evicted) = self._entries.popitem(last=False)
            self.bytes -= evicted
        return index

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)
