"""Supervision: start order, graceful shutdown on SIGTERM, restarts, fatal errors."""

from __future__ import annotations

import os
import signal
from typing import Any

import trio
import trio.testing

from vsb.lifecycle import Service, ServiceState, Supervisor


class Recorder:
    def __init__(self) -> None:
        self.events: list[str] = []


def service(
    rec: Recorder, name: str, *, critical: bool = False, ready_after: float = 0.0
) -> Service:
    async def run(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        rec.events.append(f"start {name}")
        await trio.sleep(ready_after)
        task_status.started()
        rec.events.append(f"ready {name}")
        try:
            await trio.sleep_forever()
        finally:
            rec.events.append(f"cancelled {name}")

    return Service(name, run, critical=critical)


async def test_start_order_waits_for_ready(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    sup = Supervisor(
        [
            service(rec, "database", critical=True, ready_after=2),
            service(rec, "gateway", critical=True, ready_after=1),
            service(rec, "web"),
        ],
        handle_signals=False,
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sup.run)
        await sup.started.wait()
        assert rec.events == [
            "start database",
            "ready database",
            "start gateway",
            "ready gateway",
            "start web",
            "ready web",
        ]
        sup.request_shutdown()
    assert all(s.state is ServiceState.STOPPED for s in sup.services)


async def test_sigterm_drains_in_flight_work_then_exits_0(
    autojump_clock: trio.testing.MockClock,
) -> None:
    finished: list[str] = []
    accepting = True

    async def worker(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as jobs:
            task_status.started()
            for n in range(3):

                async def job(n: int = n) -> None:
                    await trio.sleep(4)  # in-flight work that must finish
                    finished.append(f"job {n}")

                jobs.start_soon(job)
            await trio.sleep_forever()

    done = trio.Event()

    async def drain() -> None:
        nonlocal accepting
        accepting = False
        await trio.sleep(4.5)
        done.set()

    sup = Supervisor([Service("worker", worker, drain=drain)], shutdown_timeout=10)
    async with trio.open_nursery() as nursery:
        result: list[int] = []

        async def main() -> None:
            result.append(await sup.run())

        nursery.start_soon(main)
        await sup.started.wait()
        start = trio.current_time()
        os.kill(os.getpid(), signal.SIGTERM)
    assert result == [0]
    assert not accepting and done.is_set()
    assert sorted(finished) == ["job 0", "job 1", "job 2"]
    assert 4.5 <= trio.current_time() - start < 10


async def test_shutdown_deadline_cancels_stuck_drain(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def stuck_drain() -> None:
        await trio.sleep_forever()

    rec = Recorder()
    svc = service(rec, "stuck")
    svc.drain = stuck_drain
    sup = Supervisor([svc], shutdown_timeout=3, handle_signals=False)
    codes: list[int] = []

    async def run() -> None:
        codes.append(await sup.run())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        await sup.started.wait()
        start = trio.current_time()
        sup.request_shutdown()
    assert trio.current_time() - start == 3
    assert rec.events[-1] == "cancelled stuck"
    # Work was cut short: not a clean stop.
    assert codes == [1] and sup.cut_short == "shutdown deadline passed"


async def test_crashing_non_critical_service_restarts_with_backoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    starts: list[float] = []

    async def flaky(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        starts.append(trio.current_time())
        task_status.started()
        if len(starts) <= 4:
            raise ConnectionError("lost")
        await trio.sleep_forever()

    sup = Supervisor(
        [Service("flaky", flaky)], handle_signals=False, backoff_base=1, backoff_cap=3
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sup.run)
        await sup.started.wait()
        await trio.sleep(30)
        assert sup.services[0].state is ServiceState.RUNNING
        sup.request_shutdown()
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert len(starts) == 5
    # 1, 2, 3 (capped), 3 (capped) seconds, each with up to 20% jitter below.
    for gap, nominal in zip(gaps, [1, 2, 3, 3]):
        assert 0.8 * nominal <= gap <= nominal
    assert sup.stats()["services"]["flaky"]["restarts"] == 4
    assert "ConnectionError" in sup.stats()["services"]["flaky"]["last_error"]


async def test_non_critical_that_cannot_start_does_not_block(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()

    async def broken(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        raise OSError("port in use")

    sup = Supervisor(
        [Service("web", broken), service(rec, "after")], handle_signals=False
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sup.run)
        await sup.started.wait()
        assert "ready after" in rec.events
        sup.request_shutdown()


async def test_critical_failure_ends_with_exit_1(
    autojump_clock: trio.testing.MockClock, caplog: Any
) -> None:
    rec = Recorder()

    async def gateway(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep(5)
        raise RuntimeError("close code 4004: authentication failed")

    sup = Supervisor(
        [
            service(rec, "database", critical=True),
            Service("gateway", gateway, critical=True),
        ],
        handle_signals=False,
    )
    assert await sup.run() == 1
    assert "cancelled database" in rec.events
    [fatal] = [r for r in caplog.records if r.getMessage() == "app.fatal"]
    assert fatal.levelname == "ERROR"
    assert fatal.service == "gateway"
    assert "4004" in fatal.error


async def test_critical_failure_at_start(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def db(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        raise ConnectionRefusedError("database unreachable")

    rec = Recorder()
    sup = Supervisor(
        [Service("database", db, critical=True), service(rec, "later")],
        handle_signals=False,
    )
    assert await sup.run() == 1
    assert rec.events == []


async def test_stop_runs_in_reverse_start_order_one_at_a_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The gateway must finish its shutdown (it stores sessions in the
    # database) before the database is cancelled.
    rec = Recorder()

    def slow_stopper(name: str) -> Service:
        async def run(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                with trio.CancelScope(shield=True):
                    await trio.sleep(1)
                rec.events.append(f"stopped {name}")

        return Service(name, run)

    sup = Supervisor(
        [slow_stopper("database"), slow_stopper("web"), slow_stopper("gateway")],
        handle_signals=False,
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sup.run)
        await sup.started.wait()
        sup.request_shutdown()
    assert rec.events == ["stopped gateway", "stopped web", "stopped database"]
