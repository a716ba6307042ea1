"""A small in-process cache with a time-to-live and LRU eviction.

The "memory tier" for values that are costly to get and fine to reuse for a
while: AI classification results keyed by content hash, REST lookups (a
member, a channel) keyed by id. It replaces the Redis tier of the earlier
design: VSB keeps this state in process, per shard group, and loses it on
restart, which these uses tolerate.

Entries expire ``ttl`` seconds after they were set (time read from an
injectable ``clock``, ``time.monotonic`` by default, so tests can drive it).
When ``maxsize`` entries are held, setting a new key evicts the least
recently used one. Reads count hits and misses; :meth:`TTLCache.stats`
returns the counters as plain data.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Generic, TypeVar, overload

__all__ = ["TTLCache", "TTLCacheStats"]

K = TypeVar("K")
V = TypeVar("V")
D = TypeVar("D")


@dataclass(slots=True)
class TTLCacheStats:
    """Counters of one :class:`TTLCache`."""

    hits: int = 0
    misses: int = 0
    evictions: int = 0
    expirations: int = 0


class TTLCache(Generic[K, V]):
    """A mapping from keys to values that expire and are evicted LRU-first.

    Args:
        maxsize: most entries held; at least 1.
        ttl: default lifetime of an entry in seconds; more than 0.
        clock: returns the current time in seconds; ``time.monotonic`` by
            default. Pass ``trio.current_time`` (or a fake) in tests.

    Raises:
        ValueError: ``maxsize`` or ``ttl`` out of range.
    """

    def __init__(
        self,
        maxsize: int,
        ttl: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        if ttl <= 0:
            raise ValueError("ttl must be more than 0 seconds")
        self.maxsize = maxsize
        self.ttl = ttl
        self._clock = clock
        # Invariant: ordered from least to most recently used; values are
        # (expires_at, value).
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._stats = TTLCacheStats()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        entry = self._entries.get(key)  # type: ignore[arg-type]
        return entry is not None and entry[0] > self._clock()

    @overload
    def get(self, key: K) -> V | None: ...

    @overload
    def get(self, key: K, default: D) -> V | D: ...

    def get(self, key: K, default: object = None) -> object:
        """Return the live value for ``key`` (a hit) or ``default`` (a miss)."""
        entry = self._entries.get(key)
        if entry is not None:
            if entry[0] > self._clock():
                self._entries.move_to_end(key)
                self._stats.hits += 1
                return entry[1]
            del self._entries[key]
            self._stats.expirations += 1
        self._stats.misses += 1
        return default

    def set(self, key: K, value: V, *, ttl: float | None = None) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (default: the cache's)."""
        lifetime = self.ttl if ttl is None else ttl
        self._entries[key] = (self._clock() + lifetime, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)
            self._stats.evictions += 1

    def pop(self, key: K) -> V | None:
        """Remove ``key``; return its value if it was live, else None."""
        entry = self._entries.pop(key, None)
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]

    def clear(self) -> None:
        """Drop every entry (counters are kept)."""
        self._entries.clear()

    def purge_expired(self) -> int:
        """Drop expired entries now; return how many went.

        Expired entries otherwise leave lazily, when read or pushed out.
        """
        now = self._clock()
        dead = [key for key, (expires, _) in self._entries.items() if expires <= now]
        for key in dead:
            del self._entries[key]
        self._stats.expirations += len(dead)
        return len(dead)

    def stats(self) -> dict[str, float]:
        """Counters and size as plain data: hits, misses, evictions, ...

        ``hit_ratio`` is hits over lookups (0.0 before any lookup).
        """
        data: dict[str, float] = dict(asdict(self._stats))
        lookups = self._stats.hits + self._stats.misses
        data["size"] = len(self._entries)
        data["maxsize"] = self.maxsize
        data["hit_ratio"] = self._stats.hits / lookups if lookups else 0.0
        return data
