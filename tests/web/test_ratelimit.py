"""The per-IP token buckets, fed timestamps directly."""

from __future__ import annotations

import pytest

from vsb.services.web import TokenBuckets


def test_burst_then_refill() -> None:
    buckets = TokenBuckets(rate=2.0, burst=3)
    assert [buckets.take("a", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a", 0.0) == pytest.approx(0.5)
    assert buckets.take("a", 0.5) == 0.0


def test_keys_are_separate() -> None:
    buckets = TokenBuckets(rate=1.0, burst=1)
    assert buckets.take("a", 0.0) == 0.0
    assert buckets.take("a", 0.0) > 0
    assert buckets.take("b", 0.0) == 0.0


def test_refill_stops_at_burst() -> None:
    buckets = TokenBuckets(rate=1.0, burst=2)
    buckets.take("a", 0.0)
    assert [buckets.take("a", 1000.0) for _ in range(2)] == [0.0, 0.0]
    assert buckets.take("a", 1000.0) == pytest.approx(1.0)


def test_key_count_is_bounded() -> None:
    buckets = TokenBuckets(rate=1.0, burst=1, max_keys=2)
    for key in "abc":
        buckets.take(key, 0.0)
    # "a" was dropped as least recently used, so it starts with a full bucket.
    assert buckets.take("a", 0.0) == 0.0
    assert len(buckets._buckets) == 2


def test_bad_settings() -> None:
    with pytest.raises(ValueError):
        TokenBuckets(rate=0, burst=1)
