"""The handler chain: order, priority, stop, error isolation."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from vsb.router import ANY, EventRouter


async def test_priority_order_and_stop() -> None:
    router = EventRouter()
    seen: list[str] = []

    def make(name: str, stop: bool = False) -> Any:
        async def handler(shard_id: int, event: Any) -> bool:
            seen.append(name)
            return stop

        handler.__qualname__ = name
        return handler

    router.register("MESSAGE_CREATE", make("late"), priority=200)
    router.register("MESSAGE_CREATE", make("cache"), priority=0)
    router.register("MESSAGE_CREATE", make("filter", stop=True), priority=100)
    router.register("MESSAGE_CREATE", make("never"), priority=150)
    await router.dispatch(0, "MESSAGE_CREATE", {})
    assert seen == ["cache", "filter"]
    seen.clear()
    await router.dispatch(0, "GUILD_CREATE", {})
    assert seen == []


async def test_handler_error_is_isolated(caplog: pytest.LogCaptureFixture) -> None:
    router = EventRouter()
    reached: list[int] = []

    async def broken(shard_id: int, event: Any) -> None:
        raise KeyError("boom")

    async def healthy(shard_id: int, event: Any) -> None:
        reached.append(shard_id)

    router.register("MESSAGE_CREATE", broken, priority=1)
    router.register("MESSAGE_CREATE", healthy, priority=2)
    with caplog.at_level(logging.ERROR):
        await router.dispatch(4, "MESSAGE_CREATE", {"content": "x"})
    assert reached == [4]
    [record] = [r for r in caplog.records if r.getMessage() == "router.handler_failed"]
    assert record.event_type == "MESSAGE_CREATE"  # type: ignore[attr-defined]
    assert record.shard_id == 4  # type: ignore[attr-defined]
    assert "broken" in record.handler  # type: ignore[attr-defined]
    assert router.stats()["handler_errors"] == {"MESSAGE_CREATE": 1}


async def test_catch_all_and_unregister() -> None:
    router = EventRouter()
    seen: list[str] = []

    async def everything(shard_id: int, event: Any) -> None:
        seen.append(event)

    router.register(ANY, everything)
    await router.dispatch(0, "A", "a")
    await router.dispatch(0, "B", "b")
    router.unregister(ANY, everything)
    await router.dispatch(0, "C", "c")
    assert seen == ["a", "b"]
    assert router.stats()["dispatched"] == {"A": 1, "B": 1, "C": 1}
