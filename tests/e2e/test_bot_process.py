"""The bot as a user runs it: ``python -m vsb run`` in its own process.

The test's trio loop (real clock) runs the Discord emulator and the Groq
emulator on 127.0.0.1; the bot gets its settings from the environment only
(it runs in an empty directory, so no ``.env`` is read) and a fresh migrated
PostgreSQL database. Everything is checked from outside: the Discord calls
the emulator recorded, the rows in PostgreSQL, ``/health`` and ``/metrics``
over HTTP, every line the process wrote (JSON, no secret), and the exit
status after SIGTERM, with the messages in flight at that moment handled.

``python -m vsb sandbox --once`` is run the same way, at a faster speed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psycopg
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from prometheus_client.parser import text_string_to_metric_families

from vsb.sandbox import Sandbox, open_sandbox
from vsb.sandbox.actions import Action
from vsb.sandbox.groq import open_groq_emulator

#: Seconds the bot may take for any one thing (start, a deletion, the stop).
WAIT = 20.0
SCAM = "FREE nitro for everyone: https://dlscord-nitro.gift/claim"
GROQ_KEY = "gsk_e2e_groq_key_0123456789abcdef"
JWT_KEY = "e2e-jwt-signing-key-0123456789-abcdefghijkl"
LOG_FIELDS = {"ts", "level", "event", "logger"}
#: Signs HTTP interactions as Discord would (the sandbox keeps its key).
INTERACTIONS_KEY = Ed25519PrivateKey.generate()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_environment(database_url: str, port: int, data_dir: Path) -> dict[str, str]:
    """A clean environment: nothing of the test runner's settings leaks in."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "DATABASE_URL": database_url,
        "VSB_HTTP_HOST": "127.0.0.1",
        "VSB_HTTP_PORT": str(port),
        "VSB_DATA_DIR": str(data_dir),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "info",
    }


def bot_environment(
    sb: Sandbox, groq_api_base: str, database_url: str, port: int, data_dir: Path
) -> dict[str, str]:
    return {
        **base_environment(database_url, port, data_dir),
        "DISCORD_BOT_TOKEN": sb.bot_token,
        # No DISCORD_APPLICATION_ID: the bot reads GET /applications/@me.
        "DISCORD_GUILD_ID": str(sb.default.guild_id),
        "DISCORD_PUBLIC_KEY": INTERACTIONS_KEY.public_key()
        .public_bytes(Encoding.Raw, PublicFormat.Raw)
        .hex(),
        "DISCORD_API_BASE": sb.api_base,
        "GROQ_API_KEY": GROQ_KEY,
        "GROQ_API_BASE": groq_api_base,
        "OAUTH_CLIENT_ID": sb.client_id,
        "OAUTH_CLIENT_SECRET": sb.client_secret,
        "OAUTH_REDIRECT_URI": f"http://127.0.0.1:{port}/oauth/callback",
        "OAUTH_AUTHORIZE_URL": sb.oauth_authorize_url,
        "OAUTH_TOKEN_URL": sb.oauth_token_url,
        "OAUTH_USERINFO_URL": sb.oauth_userinfo_url,
        "JWT_SECRET": JWT_KEY,
        "ADMIN_LOG_CHANNEL_ID": str(sb.default.mod_log_id),
        "VSB_SHUTDOWN_TIMEOUT": "15",
    }


@dataclass
class Output:
    """Every line a process wrote, stdout and stderr together."""

    lines: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join(self.lines)


async def _collect(stream: trio.abc.ReceiveStream, output: Output) -> None:
    buffer = b""
    async for chunk in stream:
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        output.lines.extend(line.decode() for line in complete if line.strip())
    if buffer.strip():
        output.lines.append(buffer.decode())


async def start_process(
    nursery: trio.Nursery, args: list[str], env: dict[str, str], cwd: Path
) -> tuple[trio.Process, Output]:
    """``python -m vsb <args>``; cancelling ``nursery`` kills it."""
    process: trio.Process = await nursery.start(
        partial(
            trio.run_process,
            [sys.executable, "-m", "vsb", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
            check=False,
        )
    )
    output = Output()
    assert process.stdout is not None and process.stderr is not None
    nursery.start_soon(_collect, process.stdout, output)
    nursery.start_soon(_collect, process.stderr, output)
    return process, output


async def wait_for(sb: Sandbox, kind: str, **fields: Any) -> Action:
    with trio.fail_after(WAIT):
        return await sb.actions.wait_for(kind, **fields)


async def wait_ready(web: str) -> None:
    async with httpx.AsyncClient() as client:
        with trio.fail_after(WAIT):
            while True:
                try:
                    if (await client.get(f"{web}/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await trio.sleep(0.1)


def query(database_url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql, params).fetchall()


async def test_bot_process_end_to_end(database_url: str, tmp_path: Path) -> None:
    async with (
        open_sandbox() as sb,
        open_groq_emulator(api_key=GROQ_KEY) as groq,
        trio.open_nursery() as nursery,
    ):
        users = {
            name: sb.state.add_member(
                sb.default.guild_id, sb.state.add_user(name).id
            ).user_id
            for name in ("spammer", "troll", "meanie", "late1", "late2", "late3")
        }
        port = free_port()
        web = f"http://127.0.0.1:{port}"
        env = bot_environment(sb, groq.api_base, database_url, port, tmp_path / "data")
        process, output = await start_process(nursery, ["run"], env, tmp_path)

        await wait_for(sb, "gateway.identify")
        await wait_for(sb, "commands.overwrite", guild_id=sb.default.guild_id)
        await wait_ready(web)

        # Moderation: a scam link (local rules), an insult (word list), a
        # message only the LLM flags (Groq emulator), and ordinary chat.
        clean = await sb.post_message("hello everyone, how is it going?")
        scam = await sb.post_message(SCAM, author_id=users["spammer"])
        insult = await sb.post_message("you are an idiot", author_id=users["troll"])
        subtle = await sb.post_message(
            "you know what you are toxic=0.99", author_id=users["meanie"]
        )
        for message in (scam, insult, subtle):
            await wait_for(sb, "message.delete", message_id=message.id)
        assert groq.requests and all(r.authorized for r in groq.requests)

        # A moderator's /moderate warn: answered, DM'd, logged, recorded.
        warn = await sb.run_command(
            "moderate",
            {"action": "warn", "target": users["troll"], "reason": "insults"},
        )
        with trio.fail_after(WAIT):
            await warn.wait_response()
        await wait_for(sb, "message.create", dm=True)

        await check_web(web)

        # In flight at SIGTERM: three messages only the LLM flags, its answers
        # slowed down, that the bot has read (it answered a heartbeat asked
        # for after them) but cannot have acted on yet.
        groq.delay = 3.0
        late = [
            await sb.post_message(
                "late and mean toxic=0.99", author_id=users[name], channel_id=channel
            )
            for name, channel in (
                ("late1", sb.default.general_id),
                ("late2", sb.default.verify_id),
                ("late3", sb.default.general_id),
            )
        ]
        connection = sb.gateway.connections[-1]
        beats = connection.heartbeats
        sb.faults.request_heartbeat()
        with trio.fail_after(WAIT):
            while connection.heartbeats == beats:
                await trio.sleep(0.01)
        assert not any(sb.actions.of("message.delete", message_id=m.id) for m in late)
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(WAIT):
            await process.wait()
        nursery.cancel_scope.cancel()

    assert process.returncode == 0, output.text()[-3000:]
    deleted = {a["message_id"] for a in sb.actions.of("message.delete")}
    assert {m.id for m in late} <= deleted, "a message in flight at SIGTERM was lost"
    assert clean.id not in deleted
    # Every case reached the mod log: 3 deletions, the warning, 3 in flight.
    assert len(sb.actions.of("message.create", channel_id=sb.default.mod_log_id)) == 7
    close = sb.actions.last("gateway.client_close")
    assert close is not None and close["close_code"] == 4000  # resumable

    await check_database(
        database_url, sb, users, moderated=[scam, insult, subtle, *late], clean=clean
    )
    check_output(output, sb, [sb.interaction(warn.id).token])


async def check_web(web: str) -> None:
    ping = json.dumps(
        {
            "id": "1300000000000000001",
            "application_id": "1300000000000000002",
            "type": 1,
            "token": "ping-token-not-a-secret",
            "version": 1,
        }
    ).encode()
    stamp = str(int(time.time()))
    signature = INTERACTIONS_KEY.sign(stamp.encode() + ping).hex()
    async with httpx.AsyncClient() as client:
        health = await client.get(f"{web}/health")
        metrics = await client.get(f"{web}/metrics")
        unsigned = await client.post(f"{web}/interactions", content=ping)
        signed = await client.post(
            f"{web}/interactions",
            content=ping,
            headers={
                "X-Signature-Ed25519": signature,
                "X-Signature-Timestamp": stamp,
                "Content-Type": "application/json",
            },
        )
    assert health.status_code == 200, health.text
    checks = health.json()["checks"]
    assert checks["gateway"]["ok"] and checks["database"]["ok"]
    assert checks["ai"]["ok"] and checks["web"]["ok"]

    assert metrics.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(metrics.text)}
    for name in (
        "bot_gateway_events",
        "bot_rest_requests",
        "bot_moderation_decisions",
        "bot_commands",
        "bot_db_pool_connections",
        "bot_ai_requests",
    ):
        assert name in families, sorted(families)
    decisions = {
        s.labels["action"]: s.value
        for s in families["bot_moderation_decisions"].samples
        if s.name.endswith("_total")
    }
    assert decisions.get("delete", 0) >= 3, decisions

    # DISCORD_PUBLIC_KEY is set: POST /interactions answers Discord's signed
    # PING and refuses anything unsigned.
    assert unsigned.status_code == 401
    assert signed.status_code == 200 and signed.json() == {"type": 1}


async def check_database(
    url: str,
    sb: Sandbox,
    users: dict[str, int],
    *,
    moderated: list[Any],
    clean: Any,
) -> None:
    guild = sb.default.guild_id
    cases = await trio.to_thread.run_sync(
        query,
        url,
        "SELECT action, target_id, moderator_id FROM mod_cases WHERE guild_id = %s",
        guild,
    )
    deletes = {target for action, target, _ in cases if action == "delete"}
    authors = {m.author_id for m in moderated}
    assert authors <= deletes, cases
    assert ("warn", users["troll"], sb.default.moderator_id) in cases

    decisions = await trio.to_thread.run_sync(
        query,
        url,
        "SELECT row_id, change->>'verdict' FROM audit_log"
        " WHERE table_name = 'moderation' AND operation = 'decision'",
    )
    verdicts = dict(decisions)
    for message in moderated:
        assert verdicts.get(str(message.id)) == "delete", decisions
    assert verdicts.get(str(clean.id)) == "allow"
    case_audits = await trio.to_thread.run_sync(
        query, url, "SELECT count(*) FROM audit_log WHERE table_name = 'mod_cases'"
    )
    assert case_audits[0][0] >= len(cases)

    sessions = await trio.to_thread.run_sync(
        query, url, "SELECT session_id FROM gateway_sessions WHERE shard_id = 0"
    )
    assert sessions and sessions[0][0] in sb.gateway.sessions


def check_output(output: Output, sb: Sandbox, tokens: list[str]) -> None:
    assert output.lines
    events = []
    for line in output.lines:
        record = json.loads(line)  # every line, stdout and stderr, is JSON
        assert LOG_FIELDS <= record.keys(), line
        events.append(record["event"])
    for needed in ("app.started", "gateway.ready", "app.stopping", "app.stopped"):
        assert needed in events, needed
    assert "app.fatal" not in events and "app.cancelling" not in events

    text = output.text()
    for secret in (sb.bot_token, sb.client_secret, JWT_KEY, GROQ_KEY, *tokens):
        assert secret not in text


async def test_sandbox_once_plays_the_whole_scene(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = base_environment(database_url, port, tmp_path / "data")
    async with trio.open_nursery() as nursery:
        process, output = await start_process(
            nursery, ["sandbox", "--once", "--speed", "4"], env, tmp_path
        )
        with trio.fail_after(60):
            await process.wait()
        nursery.cancel_scope.cancel()

    text = output.text()
    assert process.returncode == 0, text
    assert "MISSING" not in text
    summary = [line for line in output.lines if line.startswith("scene checked:")]
    assert len(summary) == 1, text
    done, _, total = summary[0].removeprefix("scene checked: ").split()[:3]
    assert done == total and int(total) >= 20
    assert f"http://127.0.0.1:{port}/health" in text
    # The bot's JSON log went to the file, not to the terminal.
    assert not any(line.startswith("{") for line in output.lines)
    log_lines = (tmp_path / "data" / "sandbox" / "sandbox.log").read_text().splitlines()
    assert log_lines and all(json.loads(line)["event"] for line in log_lines)
