"""ShardManager: session start budget, identify buckets, session store."""

from __future__ import annotations

import random
from typing import Any

import pytest
import trio
import trio.testing

from vsb.gateway import LocalIdentifyLock, Session, ShardManager
from vsb.secret import Secret


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def ignore(shard_id: int, event_type: str, event: Any) -> None:
    return None


def manager(gateway: Any, **kw: Any) -> ShardManager:
    return ShardManager(
        Secret("bot-token-abcdef"),
        1,
        get_gateway_bot=gateway.gateway_bot,
        on_dispatch=ignore,
        rng=random.Random(3),
        **kw,
    )


async def wait_for(predicate: Any, timeout: float = 600.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.01)


@pytest.mark.parametrize(("concurrency", "min_gap"), [(1, 5.0), (2, 0.0)])
async def test_identify_one_per_bucket_per_5_s(
    gateway: Any,
    nursery: trio.Nursery,
    autojump_clock: Any,
    concurrency: int,
    min_gap: float,
) -> None:
    gateway.shards = 4
    gateway.session_start_limit["max_concurrency"] = concurrency
    mgr = manager(gateway)
    await nursery.start(mgr.run)
    await wait_for(lambda: len(gateway.identify_times) == 4)
    times = [t for t, _ in gateway.identify_times]
    assert sorted(s for _, s in gateway.identify_times) == [0, 1, 2, 3]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(g >= min_gap - 0.01 for g in gaps)
    for bucket in range(concurrency):
        same = [t for t, s in gateway.identify_times if s % concurrency == bucket]
        assert all(b - a >= 5.0 - 0.01 for a, b in zip(same, same[1:]))
    assert (times[-1] - times[0]) < 20.0 / concurrency
    assert set(mgr.stats()["shards"]) == {0, 1, 2, 3}


async def test_session_start_limit_waits_for_reset(
    gateway: Any,
    nursery: trio.Nursery,
    autojump_clock: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gateway.shards = 2
    gateway.session_start_limit.update(remaining=1, reset_after=3_600_000)
    start = trio.current_time()
    mgr = manager(gateway)
    await nursery.start(mgr.run)
    await wait_for(lambda: len(gateway.identify_times) == 2, timeout=7200)
    assert gateway.identify_times[0][0] - start >= 3600.0
    assert any(r.msg == "gateway.session_start_limit" for r in caplog.records)


async def test_local_lock_never_identifies_beyond_budget(autojump_clock: Any) -> None:
    lock = LocalIdentifyLock()
    lock.configure(max_concurrency=4, total=10, remaining=2, reset_after=100.0)
    start = trio.current_time()
    for shard_id in range(3):
        await lock.acquire(shard_id)
    assert trio.current_time() - start >= 100.0
    assert lock.remaining == 9 and lock.identifies == 3


class MemoryStore:
    def __init__(self, stored: Session | None = None) -> None:
        self.sessions: dict[int, Session | None] = {0: stored}

    async def load(self, shard_id: int) -> Session | None:
        return self.sessions.get(shard_id)

    async def save(self, shard_id: int, session: Session | None) -> None:
        self.sessions[shard_id] = session


async def test_stored_session_resumes_then_is_saved_on_shutdown(
    gateway: Any, autojump_clock: Any
) -> None:
    # A first process identifies and is shut down with a store: 4000, saved.
    store = MemoryStore()
    async with trio.open_nursery() as nursery:
        await nursery.start(manager(gateway, session_store=store).run)
        await wait_for(lambda: gateway.sessions.get("S0") is not None)
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    await wait_for(lambda: gateway.connections[0].closed_at is not None)
    assert gateway.connections[0].client_close_code == 4000
    saved = store.sessions[0]
    assert saved is not None and saved.session_id == "S0" and saved.seq == 1

    # A second process resumes it: no new IDENTIFY.
    async with trio.open_nursery() as nursery:
        mgr = manager(gateway, session_store=store)
        await nursery.start(mgr.run)
        await wait_for(lambda: mgr.stats()["shards"][0]["state"] == "connected")
        nursery.cancel_scope.cancel()
    second = gateway.connections[1]
    assert second.path.startswith("/r0") and second.received[0]["op"] == 6
    assert len(gateway.identify_times) == 1


def test_shard_ids_need_a_count_and_must_fit() -> None:
    with pytest.raises(ValueError, match="shard_count"):
        ShardManager(
            Secret("x"), 1, get_gateway_bot=None, on_dispatch=ignore, shard_ids=[0]
        )  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="outside"):
        ShardManager(
            Secret("x"),
            1,
            get_gateway_bot=None,  # type: ignore[arg-type]
            on_dispatch=ignore,
            shard_ids=[4],
            shard_count=4,
        )


async def test_stop_closes_resumably_and_run_returns(
    gateway: Any, autojump_clock: Any
) -> None:
    # stop() is the gateway's drain: shards save their sessions and close
    # 4000 while the rest of the bot (and the database) still runs.
    store = MemoryStore()
    mgr = manager(gateway, session_store=store)
    returned = trio.Event()

    async def run() -> None:
        await mgr.run()
        returned.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        await wait_for(lambda: gateway.sessions.get("S0") is not None)
        await mgr.stop()
        assert returned.is_set()
        saved = store.sessions[0]
        assert saved is not None and saved.session_id == "S0"
    assert gateway.connections[0].client_close_code == 4000


async def test_stop_before_run_is_harmless(gateway: Any) -> None:
    mgr = manager(gateway)
    await mgr.stop()
    await mgr.run()  # returns at once: already stopped
    assert gateway.connections == []
