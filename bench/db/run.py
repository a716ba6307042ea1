"""Database benchmarks: audit writes batched vs single, SELECT 1 round trips.

Usage::

    .venv/bin/python bench/db/run.py [--url URL] [--entries N] [--singles N]
                                     [--pings N]

Without ``--url`` (or ``VSB_BENCH_DATABASE_URL``) an embedded PostgreSQL is
started in a temporary directory. A scratch database is created, migrated,
measured and dropped.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import trio

from vsb.db import audit, migrate
from vsb.db.audit import AuditEntry, AuditWriter
from vsb.db.embedded import EmbeddedPostgres
from vsb.services.database import Database


def _entry(i: int) -> AuditEntry:
    return AuditEntry(
        table_name="moderation",
        operation="decide",
        guild_id=123456789012345678,
        actor_id=None,
        row_id=str(i),
        change={"scores": {"toxic": 0.12, "spam": 0.91}, "model": "rules", "i": i},
    )


async def bench_audit(db: Database, entries: int, singles: int) -> dict[str, float]:
    started = time.perf_counter()
    for i in range(singles):
        await audit.add(db, _entry(i))
    single_rate = singles / (time.perf_counter() - started)

    concurrent = singles * 4
    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for worker in range(8):
            nursery.start_soon(_single_worker, db, worker, concurrent // 8)
    concurrent_rate = concurrent / (time.perf_counter() - started)

    writer = AuditWriter(db, batch_size=500, max_age_s=0.05, queue_size=entries)
    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        for i in range(entries):
            await writer.add(_entry(i))
        await writer.flush()
        nursery.cancel_scope.cancel()
    batch_rate = entries / (time.perf_counter() - started)
    return {
        "single_per_s": single_rate,
        "single_8_tasks_per_s": concurrent_rate,
        "batched_per_s": batch_rate,
    }


async def _single_worker(db: Database, worker: int, count: int) -> None:
    for i in range(count):
        await audit.add(db, _entry(worker * count + i))


def _median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.3f}"


def _p99_ms(samples: list[float]) -> str:
    return f"{statistics.quantiles(samples, n=100)[98] * 1000:.3f}"


async def bench_select_one(
    db: Database, url: str, pings: int
) -> dict[str, list[float]]:
    conn = psycopg.connect(url, autocommit=True)

    def ping() -> Any:
        return conn.execute("SELECT 1").fetchone()

    def select_one(c: psycopg.Connection[Any]) -> Any:
        return c.execute("SELECT 1").fetchone()

    async def hop() -> Any:
        return await trio.to_thread.run_sync(ping)

    async def full() -> Any:
        return await db.run_sync(select_one)

    async def direct() -> Any:
        return ping()

    results: dict[str, list[float]] = {}
    for name, fn in (("direct", direct), ("thread_hop", hop), ("db_run_sync", full)):
        results[name] = await _time(fn, pings)
    # Interleave a second pass so drift does not favour one side.
    for name, fn in (("db_run_sync", full), ("thread_hop", hop), ("direct", direct)):
        results[name] += await _time(fn, pings)
    conn.close()
    return results


async def _time(fn: Callable[[], Any], count: int) -> list[float]:
    for _ in range(50):  # warm up
        await fn()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - started)
    return samples


async def main(args: argparse.Namespace, url: str) -> None:
    async with Database(url, min_size=4, max_size=10) as db:
        rates = await bench_audit(db, args.entries, args.singles)
        pings = await bench_select_one(db, url, args.pings)
        pool_no_check = Database(url, min_size=1, max_size=2, check_connections=False)
        async with pool_no_check:
            pings["db_run_sync_no_check"] = await _time(
                lambda: pool_no_check.run_sync(
                    lambda c: c.execute("SELECT 1").fetchone()
                ),
                args.pings * 2,
            )
    print(f"audit entries/s, single INSERT (1 task):  {rates['single_per_s']:10.0f}")
    print(
        f"audit entries/s, single INSERT (8 tasks):  {rates['single_8_tasks_per_s']:10.0f}"
    )
    print(f"audit entries/s, AuditWriter COPY batches: {rates['batched_per_s']:10.0f}")
    print(
        "ratio batched / single (1 task): "
        f"{rates['batched_per_s'] / rates['single_per_s']:.1f}x"
    )
    print("SELECT 1 round trip (ms)      median     p99")
    for name, samples in pings.items():
        print(f"  {name:24s} {_median_ms(samples):>8s} {_p99_ms(samples):>8s}")


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default=os.environ.get("VSB_BENCH_DATABASE_URL"))
    parser.add_argument("--entries", type=int, default=50_000)
    parser.add_argument("--singles", type=int, default=2_000)
    parser.add_argument("--pings", type=int, default=5_000)
    args = parser.parse_args()
    server = None
    admin = args.url
    if admin is None:
        server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="vsb-bench-")))
        admin = server.start()
    name = f"vsb_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = _with_database(admin, name)
        migrate.up(url)
        trio.run(main, args, url)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        if server is not None:
            server.stop()


if __name__ == "__main__":
    run()
