"""Two real bot processes share four shards against the sandbox (issue 11).

The test process runs the emulated Discord (real clock: the bots are real
subprocesses, ``python -m vsb run``, configured through the environment
only) and a fresh migrated database. Everything is asserted from outside:
the sandbox's record of IDENTIFYs, RESUMEs and REST actions, the bots' JSON
logs, their exit status and their HTTP endpoint.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from vsb.sandbox import Sandbox, open_sandbox

pytestmark = pytest.mark.skipif(
    not os.environ.get("VSB_TEST_DATABASE_URL")
    and importlib.util.find_spec("pgserver") is None,
    reason="needs PostgreSQL: set VSB_TEST_DATABASE_URL or install pgserver "
    "(the embedded server the database fixtures fall back to)",
)

SHARD_COUNT = 4
PROCESS_SHARDS = ((0, 1), (2, 3))
#: Discord's identify spacing per bucket, enforced by the sandbox (op 9).
IDENTIFY_INTERVAL = 5.0
#: Bot settings that must not leak in from the developer's environment.
_OURS = ("DISCORD_", "DB_", "DATABASE_URL", "SHARD", "POD_NAME", "VSB_", "GROQ_")
_ALSO_OURS = ("OAUTH_", "JWT_SECRET", "ADMIN_LOG", "DEVELOPER_IDS", "LOG_")


class BotProcess:
    """One ``python -m vsb run`` subprocess and its JSON log lines."""

    def __init__(self, name: str, env: dict[str, str], cwd: Path) -> None:
        self.name = name
        self.env = env
        self.cwd = cwd
        self.lines: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self.process: trio.Process | None = None
        self._changed = trio.Event()

    async def start(self, nursery: trio.Nursery) -> None:
        self.process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "vsb", "run"],
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        nursery.start_soon(self._read, self.process)

    async def _read(self, process: trio.Process) -> None:
        assert process.stdout is not None
        buffer = b""
        async for chunk in process.stdout:
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            for line in complete:
                self._add(line.decode(errors="replace"))
        if buffer:
            self._add(buffer.decode(errors="replace"))

    def _add(self, line: str) -> None:
        self.raw.append(line)
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):
            self.lines.append(record)
        self._changed.set()
        self._changed = trio.Event()

    def events(self, event: str, **fields: Any) -> list[dict[str, Any]]:
        return [
            line
            for line in self.lines
            if line.get("event") == event
            and all(line.get(k) == v for k, v in fields.items())
        ]

    async def wait_for(
        self, event: str, *, timeout: float = 20.0, **fields: Any
    ) -> dict[str, Any]:
        """The first log line ``event`` with ``fields``; fails with the log tail."""
        with trio.move_on_after(timeout):
            while True:
                found = self.events(event, **fields)
                if found:
                    return found[0]
                if self.process is not None and self.process.returncode is not None:
                    break
                await self._changed.wait()
        raise AssertionError(
            f"{self.name} logged no {event} {fields} (exit status "
            f"{self.process.returncode if self.process else None}):\n{self.tail()}"
        )

    async def terminate(self, timeout: float = 20.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        with trio.fail_after(timeout):
            return await self.process.wait()

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            with trio.CancelScope(shield=True):
                await self.process.wait()

    def tail(self, count: int = 40) -> str:
        return "\n".join(self.raw[-count:])


def _bot_env(
    sb: Sandbox, database_url: str, shard_ids: tuple[int, ...], key: str
) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_OURS) and not k.startswith(_ALSO_OURS)
    }
    env.update(
        DISCORD_BOT_TOKEN=sb.bot_token,
        DISCORD_API_BASE=sb.api_base,
        DISCORD_APPLICATION_ID=str(sb.application_id),
        DISCORD_PUBLIC_KEY=key,
        DATABASE_URL=database_url,
        SHARD_COUNT=str(SHARD_COUNT),
        SHARD_IDS=",".join(str(i) for i in shard_ids),
        VSB_HTTP_HOST="127.0.0.1",
        VSB_HTTP_PORT="0",
        VSB_SHUTDOWN_TIMEOUT="5",
        LOG_FORMAT="json",
        LOG_LEVEL="info",
        PYTHONUNBUFFERED="1",
    )
    return env


@asynccontextmanager
async def bots(
    sb: Sandbox, database_url: str, key: str, cwd: Path
) -> AsyncIterator[tuple[trio.Nursery, list[BotProcess]]]:
    processes = [
        BotProcess(f"bot{i}", _bot_env(sb, database_url, ids, key), cwd)
        for i, ids in enumerate(PROCESS_SHARDS)
    ]
    async with trio.open_nursery() as nursery:
        try:
            yield nursery, processes
        finally:
            for process in processes:
                await process.kill()
            nursery.cancel_scope.cancel()


def _public_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def _signed(key: Ed25519PrivateKey, body: bytes) -> dict[str, str]:
    timestamp = str(int(time.time()))
    signature = key.sign(timestamp.encode() + body).hex()
    return {
        "X-Signature-Ed25519": signature,
        "X-Signature-Timestamp": timestamp,
        "Content-Type": "application/json",
    }


async def _check_interactions(port: int, key: Ed25519PrivateKey) -> None:
    body = json.dumps(
        {"id": "1", "application_id": "2", "type": 1, "token": "t", "version": 1}
    ).encode()
    forged = _signed(Ed25519PrivateKey.generate(), body)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", trust_env=False
    ) as client:
        rejected = await client.post("/interactions", content=body, headers=forged)
        ping = await client.post(
            "/interactions", content=body, headers=_signed(key, body)
        )
    assert rejected.status_code == 401
    assert ping.status_code == 200
    assert ping.json() == {"type": 1}


async def _wait_for_decisions(
    database_url: str, message_ids: list[int], bot: BotProcess
) -> dict[int, str]:
    """The moderation verdicts audited for ``message_ids``, once all are in."""
    wanted = [str(i) for i in message_ids]
    with trio.move_on_after(15):
        while True:
            rows = await trio.to_thread.run_sync(_decisions, database_url, wanted)
            if len(rows) == len(wanted):
                return {int(row_id): verdict for row_id, verdict in rows}
            await trio.sleep(0.1)
    raise AssertionError(f"no moderation decision for {wanted}:\n{bot.tail()}")


def _decisions(database_url: str, row_ids: list[str]) -> list[tuple[str, str]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute(
            "SELECT row_id, change->>'verdict' FROM audit_log"
            " WHERE table_name = 'moderation' AND operation = 'decision'"
            " AND row_id = ANY(%s)",
            (row_ids,),
        ).fetchall()


def _assert_no_invalid_session(sb: Sandbox) -> None:
    # The sandbox sends op 9 only when it refuses an IDENTIFY or a RESUME.
    assert sb.actions.of("gateway.identify_refused") == []
    assert sb.actions.of("gateway.resume_refused") == []


async def test_two_processes_pace_identifies_and_resume_after_restart(
    database_url: str, tmp_path: Path
) -> None:
    key = Ed25519PrivateKey.generate()
    with trio.fail_after(90):
        async with (
            open_sandbox(
                shards=SHARD_COUNT,
                max_concurrency=1,
                identify_interval=IDENTIFY_INTERVAL,
            ) as sb,
            bots(sb, database_url, _public_hex(key), tmp_path) as (nursery, procs),
        ):
            for process in procs:
                await process.start(nursery)

            # The HTTP endpoint, while the shards wait for their turns.
            listening = await procs[0].wait_for("web.listening")
            await _check_interactions(int(listening["port"]), key)

            # 1. Four IDENTIFYs over both processes, each 5 s after the last.
            for process, shard_ids in zip(procs, PROCESS_SHARDS):
                for shard_id in shard_ids:
                    await process.wait_for(
                        "gateway.ready", shard_id=shard_id, timeout=40
                    )
            identifies = sb.actions.of("gateway.identify")
            assert sorted(a["shard_id"] for a in identifies) == [0, 1, 2, 3]
            times = [a.at for a in identifies]
            gaps = [later - earlier for earlier, later in zip(times, times[1:])]
            assert min(gaps) >= IDENTIFY_INTERVAL, gaps
            _assert_no_invalid_session(sb)
            shard_of_session = {a["session_id"]: a["shard_id"] for a in identifies}

            # 2. SIGTERM the process that runs the default guild's shard: its
            # shards close resumably (4000, not 1000/1001) and it exits 0.
            guild_shard = (sb.default.guild_id >> 22) % SHARD_COUNT
            index = 0 if guild_shard in PROCESS_SHARDS[0] else 1
            stopped, shard_ids = procs[index], PROCESS_SHARDS[index]
            assert await stopped.terminate() == 0, stopped.tail()
            identify_of = {a["shard_id"]: a for a in identifies}
            for shard_id in shard_ids:
                closes = sb.actions.of(
                    "gateway.client_close",
                    connection=identify_of[shard_id]["connection"],
                )
                assert [c["close_code"] for c in closes] == [4000]

            # 3. Messages while it is down: one the local rules delete.
            harmless = await sb.post_message("see you all tomorrow")
            abusive = await sb.post_message("you are an idiot")

            # 4. The restarted process resumes and handles what it missed.
            restarted = BotProcess("restarted", stopped.env, tmp_path)
            procs.append(restarted)
            await restarted.start(nursery)
            for shard_id in shard_ids:
                await restarted.wait_for("gateway.resumed", shard_id=shard_id)
            verdicts = await _wait_for_decisions(
                database_url, [harmless.id, abusive.id], restarted
            )
            assert verdicts == {harmless.id: "allow", abusive.id: "delete"}
            deleted = sb.actions.of("message.delete")
            assert [a["message_id"] for a in deleted] == [abusive.id]

            resumed = sb.actions.of("gateway.resume")
            assert sorted(shard_of_session[a["session_id"]] for a in resumed) == list(
                shard_ids
            )
            assert len(sb.actions.of("gateway.identify")) == SHARD_COUNT
            assert restarted.events("gateway.identify") == []
            _assert_no_invalid_session(sb)

            # The other process stops cleanly too.
            for process in (procs[1 - index], restarted):
                assert await process.terminate() == 0, process.tail()
            for process in procs:
                assert process.events("gateway.reconnect") == [], process.tail()
                assert not any(sb.bot_token in line for line in process.raw)
