"""TTLCache: expiry on an injected clock, LRU eviction, counters."""

from __future__ import annotations

import pytest
import trio

from vsb.cache import TTLCache


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_hit_and_miss_counted() -> None:
    cache: TTLCache[str, int] = TTLCache(10, 60, clock=FakeClock())
    cache.set("a", 1)
    assert cache.get("a") == 1
    assert cache.get("b") is None
    assert cache.get("b", 5) == 5
    stats = cache.stats()
    assert (stats["hits"], stats["misses"], stats["size"]) == (1, 2, 1)
    assert stats["hit_ratio"] == pytest.approx(1 / 3)


def test_entries_expire_after_ttl() -> None:
    clock = FakeClock()
    cache: TTLCache[str, int] = TTLCache(10, 30, clock=clock)
    cache.set("a", 1)
    clock.now += 29.9
    assert "a" in cache and cache.get("a") == 1
    clock.now += 0.1
    assert "a" not in cache
    assert cache.get("a") is None
    assert cache.stats()["expirations"] == 1
    assert len(cache) == 0


def test_per_entry_ttl_overrides_default() -> None:
    clock = FakeClock()
    cache: TTLCache[str, int] = TTLCache(10, 30, clock=clock)
    cache.set("short", 1, ttl=5)
    cache.set("long", 2)
    clock.now += 10
    assert cache.get("short") is None
    assert cache.get("long") == 2


def test_least_recently_used_is_evicted() -> None:
    cache: TTLCache[str, int] = TTLCache(2, 60, clock=FakeClock())
    cache.set("a", 1)
    cache.set("b", 2)
    cache.get("a")  # "b" is now the least recently used
    cache.set("c", 3)
    assert "b" not in cache
    assert cache.get("a") == 1 and cache.get("c") == 3
    assert cache.stats()["evictions"] == 1


def test_setting_again_refreshes_value_and_ttl() -> None:
    clock = FakeClock()
    cache: TTLCache[str, int] = TTLCache(2, 10, clock=clock)
    cache.set("a", 1)
    clock.now += 8
    cache.set("a", 2)
    clock.now += 8
    assert cache.get("a") == 2


def test_pop_clear_and_purge() -> None:
    clock = FakeClock()
    cache: TTLCache[str, int] = TTLCache(10, 10, clock=clock)
    cache.set("a", 1)
    cache.set("b", 2, ttl=1)
    assert cache.pop("a") == 1 and cache.pop("a") is None
    clock.now += 2
    assert cache.purge_expired() == 1
    cache.set("c", 3)
    cache.clear()
    assert len(cache) == 0


@pytest.mark.parametrize(("maxsize", "ttl"), [(0, 10), (5, 0), (5, -1)])
def test_bad_sizes_are_refused(maxsize: int, ttl: float) -> None:
    with pytest.raises(ValueError):
        TTLCache(maxsize, ttl)


async def test_trio_clock_drives_expiry(autojump_clock: trio.testing.MockClock) -> None:
    cache: TTLCache[int, str] = TTLCache(4, 60, clock=trio.current_time)
    cache.set(1, "x")
    await trio.sleep(59)
    assert cache.get(1) == "x"
    await trio.sleep(2)
    assert cache.get(1) is None
