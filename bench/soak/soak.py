"""Soak: the real bot on an hour of mixed traffic, with forced reconnects.

Starts the Discord emulator (``vsb.sandbox.open_sandbox``) in this process and
the bot as users run it (``python -m vsb run`` in a subprocess, settings from
the environment only), then sends traffic at ``--rate`` gateway events per
second for ``--duration`` seconds:

- ordinary chat in 8 channels by 200 members (unique lowercase texts that no
  rule should act on), edits and deletions of recent messages by their
  authors, members joining and leaving;
- offending messages from 40 "troll" members, about one every 3 s: a listed
  insult, a scam link to an IP host, a mention flood, an ordinary message
  edited into an insult, and now and then a spam burst (one text in three
  channels); the bot must delete each of them;
- a ``/warnings`` slash command by the moderator every 10 s;
- a forced reconnect every ``--reconnect-every`` seconds, alternately op 7
  (RECONNECT) and a dropped TCP connection, which the bot must resume.

Meanwhile it samples the bot's resident memory (``VmRSS`` in
``/proc/<pid>/status``). At the end it lets the bot drain, then checks that
nothing was lost: for every event type, the dispatches the emulator sent to
the bot's session equal ``bot_gateway_events_total`` on the bot's
``/metrics``; every offending message was deleted; every command was
answered; the bot identified once and resumed after every forced
reconnect; SIGTERM ends it with status 0. It prints RSS at start, middle
and end and the verdict (exit 0 on PASS, 1 on FAIL).

    .venv/bin/python bench/soak/soak.py                       # one hour, 200 events/s
    .venv/bin/python bench/soak/soak.py --duration 600        # ten minutes

The database is a scratch one created on ``--database-url``'s server
(default ``$VSB_TEST_DATABASE_URL`` or postgres on 127.0.0.1:5432) and
dropped at the end; ``--embedded`` uses the bot's embedded PostgreSQL in a
temporary ``VSB_DATA_DIR`` instead. Everything stays on 127.0.0.1. Not part
of the test suite.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import trio

from vsb.sandbox import Sandbox, open_sandbox
from vsb.sandbox import events as sandbox_events
from vsb.sandbox.interactions import Interaction

CHANNELS = 8
MEMBERS = 200
TROLLS = 40
JOINED_KEPT = 150  # newcomers in the guild before leaves start (oldest first)
OFFENDING_EVERY_S = 3.0
COMMAND_EVERY_S = 10.0
SPAM_BURST_EVERY_S = 120.0
PRUNE_AFTER_S = 120.0  # ordinary messages are forgotten by the emulator after this
DRAIN_TIMEOUT_S = 90.0

# Shares of the ordinary traffic. The offending messages, spam bursts and
# commands come on their own timers and count toward --rate.
MIX = {"create": 0.80, "edit": 0.08, "delete": 0.06, "join": 0.03, "leave": 0.03}

WORDS = (
    "morning evening lunch coffee tea garden river music guitar piano movie "
    "book chapter game level team match weekend holiday train bus bike walk "
    "rain sun cloud snow weather recipe soup bread cheese apple orange plan "
    "meeting project code test build release bug patch idea question answer "
    "photo camera picture story friend family dog cat bird tree flower"
).split()


@dataclasses.dataclass
class Tally:
    """What the soak did and what the emulator saw the bot do."""

    started_at: float = 0.0
    dispatched: collections.Counter[str] = dataclasses.field(
        default_factory=collections.Counter
    )
    sent: collections.Counter[str] = dataclasses.field(
        default_factory=collections.Counter
    )
    must_delete: dict[int, str] = dataclasses.field(default_factory=dict)
    deleted_by_bot: set[int] = dataclasses.field(default_factory=set)
    ordinary_deleted_by_bot: int = 0
    bot_actions: collections.Counter[str] = dataclasses.field(
        default_factory=collections.Counter
    )
    interactions: list[Interaction] = dataclasses.field(default_factory=list)
    forced: collections.Counter[str] = dataclasses.field(
        default_factory=collections.Counter
    )
    rss: list[tuple[float, int]] = dataclasses.field(default_factory=list)


class SoakFailed(Exception):
    """The bot did not start or died; the message says where to look."""


# -- the bot process -----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _rss_kib(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(found[1]) if found else None


def _bot_env(
    sb: Sandbox, database_url: str | None, data_dir: Path, port: int
) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(
            ("DISCORD_", "DATABASE_", "DB_", "GROQ_", "OAUTH_", "VSB_")
        )
    }
    env.update(
        DISCORD_BOT_TOKEN=sb.bot_token,
        DISCORD_API_BASE=sb.api_base,
        DISCORD_APPLICATION_ID=str(sb.application_id),
        DISCORD_GUILD_ID=str(sb.default.guild_id),
        ADMIN_LOG_CHANNEL_ID=str(sb.default.mod_log_id),
        VSB_HTTP_HOST="127.0.0.1",
        VSB_HTTP_PORT=str(port),
        VSB_DATA_DIR=str(data_dir),
        LOG_FORMAT="json",
        LOG_LEVEL="info",
    )
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    return env


async def _wait_ready(
    process: trio.Process, http: httpx.AsyncClient, log_path: Path
) -> None:
    with trio.move_on_after(90) as waited:
        while True:
            if process.returncode is not None:
                raise SoakFailed(
                    f"the bot exited with {process.returncode} at start; see {log_path}"
                )
            try:
                if (await http.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await trio.sleep(0.5)
    if waited.cancelled_caught:
        raise SoakFailed(f"the bot was not ready after 90 s; see {log_path}")


# -- traffic -------------------------------------------------------------------------


class Traffic:
    """Scenario calls on the emulator, at a steady rate, with what to expect."""

    def __init__(self, sb: Sandbox, tally: Tally, seed: int) -> None:
        self.sb = sb
        self.tally = tally
        self.rng = random.Random(seed)
        guild_id = sb.default.guild_id
        self.guild_id = guild_id
        self.channels = [sb.default.general_id] + [
            sb.state.add_channel(guild_id, f"chat-{i}").id for i in range(CHANNELS - 1)
        ]
        before = set(sb.state.guilds[guild_id].members)
        sb.state.add_members(guild_id, MEMBERS, prefix="chatter")
        sb.state.add_members(guild_id, TROLLS, prefix="troll")
        added = [u for u in sb.state.guilds[guild_id].members if u not in before]
        self.chatters, self.trolls = added[:MEMBERS], added[MEMBERS:]
        self.joined: collections.deque[int] = collections.deque()
        self.recent: collections.deque[int] = collections.deque(maxlen=2000)
        self.to_prune: collections.deque[tuple[float, int]] = collections.deque()
        self.serial = 0
        self.offended = 0

    def _text(self) -> str:
        self.serial += 1
        words = self.rng.sample(WORDS, self.rng.randint(3, 12))
        return " ".join(words) + f" {self.serial}"

    def _recent_message(self) -> int | None:
        while self.recent:
            message_id = self.recent[self.rng.randrange(len(self.recent))]
            if message_id in self.sb.state.messages:
                return message_id
            self.recent.remove(message_id)
        return None

    async def ordinary(self) -> None:
        kind = self.rng.choices(list(MIX), weights=list(MIX.values()))[0]
        if kind == "join" or (kind == "leave" and len(self.joined) < JOINED_KEPT):
            await self._join()
        elif kind == "leave":
            self._leave()
        elif kind == "edit" and (message_id := self._recent_message()) is not None:
            await self.sb.edit_message(message_id, self._text())
            self.tally.sent["edit"] += 1
        elif kind == "delete" and (message_id := self._recent_message()) is not None:
            message = self.sb.state.messages.pop(message_id)
            sandbox_events.message_delete(self.sb.core, message)
            self.tally.sent["delete"] += 1
        else:
            await self._post(self._text(), self.rng.choice(self.chatters))

    async def _post(
        self, content: str, author_id: int, *, ordinary: bool = True, **kw: Any
    ) -> int:
        channel_id = kw.pop("channel_id", None) or self.rng.choice(self.channels)
        message = await self.sb.post_message(
            content, channel_id=channel_id, author_id=author_id, **kw
        )
        self.tally.sent["create"] += 1
        if ordinary:
            # Only ordinary messages get edited, deleted by their author and
            # forgotten; the offending ones stay until the bot deletes them.
            self.recent.append(message.id)
            self.to_prune.append((trio.current_time(), message.id))
        return message.id

    async def _join(self) -> None:
        member = await self.sb.member_join(f"newcomer{self.serial}")
        self.serial += 1
        self.joined.append(member.user_id)
        self.tally.sent["join"] += 1

    def _leave(self) -> None:
        user_id = self.joined.popleft()
        self.sb.state.guilds[self.guild_id].members.pop(user_id, None)
        sandbox_events.member_remove(self.sb.core, self.guild_id, user_id)
        self.tally.sent["leave"] += 1

    async def offending(self) -> None:
        """One message the bot must delete (a listed word, a scam link, ...)."""
        troll = self.rng.choice(self.trolls)
        self.offended += 1
        n = self.offended
        kind = ("insult", "scam_link", "mention_flood", "edited_insult")[n % 4]
        if kind == "insult":
            message_id = await self._post(
                f"you are an idiot {n}", troll, ordinary=False
            )
        elif kind == "scam_link":
            host = f"203.0.113.{n % 250 + 1}"
            message_id = await self._post(
                f"free nitro here http://{host}/gift/{n}", troll, ordinary=False
            )
        elif kind == "mention_flood":
            targets = self.rng.sample(self.chatters, 6)
            text = " ".join(f"<@{t}>" for t in targets) + f" look at this {n}"
            message_id = await self._post(text, troll, mentions=targets, ordinary=False)
        else:
            message_id = await self._post(self._text(), troll, ordinary=False)
            await trio.sleep(0.5)
            await self.sb.edit_message(message_id, f"actually you are a moron {n}")
            self.tally.sent["edit"] += 1
        self.tally.must_delete[message_id] = kind

    async def spam_burst(self) -> None:
        """One member posts one text in three channels; the third must go."""
        troll = self.rng.choice(self.trolls)
        self.serial += 1
        text = f"join my server for free stuff number {self.serial}"
        channels = self.rng.sample(self.channels, 3)
        ids = [
            await self._post(text, troll, channel_id=c, ordinary=False)
            for c in channels
        ]
        self.tally.must_delete[ids[-1]] = "spam_burst"

    async def command(self) -> None:
        target = self.rng.choice(self.trolls)
        ix = await self.sb.run_command("warnings", {"user": target})
        self.tally.interactions.append(ix)
        self.tally.sent["command"] += 1

    def prune(self) -> None:
        """Forget ordinary messages older than PRUNE_AFTER_S (bounded emulator)."""
        horizon = trio.current_time() - PRUNE_AFTER_S
        while self.to_prune and self.to_prune[0][0] < horizon:
            _, message_id = self.to_prune.popleft()
            if message_id not in self.tally.must_delete:
                self.sb.state.messages.pop(message_id, None)


async def _drive(traffic: Traffic, rate: float, duration: float) -> None:
    """Scenario events at ``rate`` per second in 10 ms slices, timers included."""
    start = trio.current_time()
    emitted = 0
    next_offending = start + OFFENDING_EVERY_S
    next_command = start + COMMAND_EVERY_S / 2
    next_burst = start + SPAM_BURST_EVERY_S / 2
    async with trio.open_nursery() as nursery:
        while (now := trio.current_time()) < start + duration:
            # Invariant: after each slice, `emitted` is the number of events
            # the rate allows since the start (a late slice catches up).
            due = rate * (now - start)
            if now >= next_offending:
                next_offending += OFFENDING_EVERY_S
                nursery.start_soon(traffic.offending)
                emitted += 1
            if now >= next_command:
                next_command += COMMAND_EVERY_S
                await traffic.command()
                emitted += 1
            if now >= next_burst:
                next_burst += SPAM_BURST_EVERY_S
                nursery.start_soon(traffic.spam_burst)
                emitted += 3
            while emitted < due:
                await traffic.ordinary()
                emitted += 1
            await trio.sleep_until(now + 0.01)


async def _force_reconnects(sb: Sandbox, tally: Tally, every: float) -> None:
    while True:
        await trio.sleep(every)
        if sum(tally.forced.values()) % 2 == 0:
            sb.faults.reconnect()
            tally.forced["op7"] += 1
        else:
            await sb.faults.drop_tcp()
            tally.forced["drop_tcp"] += 1


async def _sweep(sb: Sandbox, traffic: Traffic, tally: Tally, bot_id: int) -> None:
    """Every 2 s: read the emulator's action log (then clear it), prune."""
    while True:
        _read_actions(sb, tally, bot_id)
        traffic.prune()
        await trio.sleep(2)


def _read_actions(sb: Sandbox, tally: Tally, bot_id: int) -> None:
    batch = list(sb.actions)
    sb.actions.clear()
    for action in batch:
        if action.kind.startswith("scenario."):
            continue
        tally.bot_actions[action.kind] += 1
        if action.kind == "message.delete" and action.get("author_id") != bot_id:
            message_id = action["message_id"]
            tally.deleted_by_bot.add(message_id)
            if message_id not in tally.must_delete:
                tally.ordinary_deleted_by_bot += 1


async def _sample_rss(pid: int, tally: Tally, every: float) -> None:
    while (kib := _rss_kib(pid)) is not None:
        tally.rss.append((trio.current_time() - tally.started_at, kib))
        await trio.sleep(every)


def _count_dispatches(sb: Sandbox, tally: Tally) -> None:
    """Count every dispatch the emulator sends, per event type and session."""
    gateway = sb.gateway
    original = gateway.dispatch

    def counting(event_type: str, data: Any, **kw: Any) -> int:
        sessions = original(event_type, data, **kw)
        tally.dispatched[event_type] += sessions
        return sessions

    gateway.dispatch = counting  # type: ignore[method-assign]


# -- checks --------------------------------------------------------------------------


def _metric_sums(text: str, name: str, label: str) -> dict[str, float]:
    """``{label value: sum over other labels}`` of one metric family."""
    sums: dict[str, float] = collections.defaultdict(float)
    pattern = re.compile(rf"^{name}\{{([^}}]*)\}} ([0-9.e+-]+)$", re.MULTILINE)
    for labels, value in pattern.findall(text):
        found = re.search(rf'{label}="([^"]*)"', labels)
        sums[found[1] if found else ""] += float(value)
    return dict(sums)


async def _drain(
    http: httpx.AsyncClient, tally: Tally, sb: Sandbox, bot_id: int
) -> str:
    """Wait until the bot has counted every dispatch and acted; the last scrape."""
    text = ""
    with trio.move_on_after(DRAIN_TIMEOUT_S):
        while True:
            _read_actions(sb, tally, bot_id)
            text = (await http.get("/metrics")).text
            counted = _metric_sums(text, "bot_gateway_events_total", "event_type")
            caught_up = all(counted.get(t, 0) >= n for t, n in tally.dispatched.items())
            acted = set(tally.must_delete) <= tally.deleted_by_bot
            answered = all(ix.callback_type is not None for ix in tally.interactions)
            if caught_up and acted and answered:
                await trio.sleep(3)  # anything still in flight shows up now
                _read_actions(sb, tally, bot_id)
                return (await http.get("/metrics")).text
            await trio.sleep(1)
    return text


def _log_summary(log_path: Path) -> dict[str, Any]:
    levels: collections.Counter[str] = collections.Counter()
    trouble: collections.Counter[str] = collections.Counter()
    bad_lines = 0
    with log_path.open() as lines:
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                bad_lines += 1
                continue
            level = str(record.get("level", "?")).lower()
            levels[level] += 1
            if level in ("warning", "error", "critical"):
                trouble[f"{level} {record.get('event')}"] += 1
    return {
        "lines_by_level": dict(levels),
        "warnings_and_errors": dict(trouble.most_common(15)),
        "non_json_lines": bad_lines,
    }


def _rss_points(rss: list[tuple[float, int]]) -> dict[str, Any]:
    def at(t: float) -> int:
        return min(rss, key=lambda point: abs(point[0] - t))[1]

    end_t = rss[-1][0]
    values = [kib for _, kib in rss]
    return {
        "start_kib": rss[0][1],
        "quarter_kib": at(end_t / 4),
        "middle_kib": at(end_t / 2),
        "end_kib": rss[-1][1],
        "max_kib": max(values),
        "median_kib": statistics.median(values),
        "samples": len(rss),
    }


def verdict(result: dict[str, Any]) -> list[str]:
    """What failed (empty when the soak passed)."""
    failures = []
    if result["events"]["lost"]:
        failures.append(f"events lost: {result['events']['lost']}")
    if result["events"]["extra"]:
        failures.append(f"events counted twice: {result['events']['extra']}")
    if result["moderation"]["missed"]:
        failures.append(
            f"offending messages not deleted: {result['moderation']['missed']}"
        )
    if result["commands"]["unanswered"]:
        failures.append(f"commands unanswered: {result['commands']['unanswered']}")
    gateway = result["gateway"]
    if gateway["identifies"] != 1:
        failures.append(
            f"the bot identified {gateway['identifies']} times (1 expected)"
        )
    if gateway["resumes"] < gateway["forced_reconnects"]:
        failures.append(
            f"{gateway['resumes']} resumes for {gateway['forced_reconnects']} forced reconnects"
        )
    rss = result["rss"]
    if rss["end_kib"] > rss["quarter_kib"] * 1.10 + 5 * 1024:
        failures.append(
            f"RSS grew from {rss['quarter_kib']} KiB (first quarter) to {rss['end_kib']} KiB"
        )
    if result["exit_status"] != 0:
        failures.append(f"exit status {result['exit_status']} on SIGTERM")
    return failures


# -- the run -------------------------------------------------------------------------


async def soak(
    args: argparse.Namespace, database_url: str | None, workdir: Path
) -> dict[str, Any]:
    tally = Tally()
    async with open_sandbox() as sb:
        _count_dispatches(sb, tally)
        traffic = Traffic(sb, tally, args.seed)
        port = _free_port()
        log_path = workdir / "bot.log"
        env = _bot_env(sb, database_url, workdir / "data", port)
        with log_path.open("wb") as log_file:
            process = await trio.lowlevel.open_process(
                [sys.executable, "-m", "vsb", "run"],
                env=env,
                cwd=workdir,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        print(f"soak: bot pid {process.pid}, log {log_path}", flush=True)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            try:
                return await _run_with_bot(
                    args, sb, traffic, tally, process, http, log_path
                )
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()


async def _run_with_bot(
    args: argparse.Namespace,
    sb: Sandbox,
    traffic: Traffic,
    tally: Tally,
    process: trio.Process,
    http: httpx.AsyncClient,
    log_path: Path,
) -> dict[str, Any]:
    await _wait_ready(process, http, log_path)
    with trio.fail_after(60):
        await sb.actions.wait_for("commands.overwrite")
    bot_id = sb.bot_user.id
    tally.started_at = trio.current_time()
    print(
        f"soak: ready; {args.duration:.0f} s at {args.rate:g} events/s, "
        f"a forced reconnect every {args.reconnect_every:g} s",
        flush=True,
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_sample_rss, process.pid, tally, args.sample_every)
        nursery.start_soon(_sweep, sb, traffic, tally, bot_id)
        nursery.start_soon(_force_reconnects, sb, tally, args.reconnect_every)
        nursery.start_soon(_progress, tally, args.duration)
        await _drive(traffic, args.rate, args.duration)
        traffic_s = trio.current_time() - tally.started_at
        nursery.cancel_scope.cancel()
    metrics = await _drain(http, tally, sb, bot_id)
    tally.rss.append(
        (trio.current_time() - tally.started_at, _rss_kib(process.pid) or 0)
    )

    process.send_signal(signal.SIGTERM)
    with trio.move_on_after(60):
        await process.wait()
    exit_status = process.returncode
    return _result(args, sb, tally, metrics, traffic_s, exit_status, log_path)


async def _progress(tally: Tally, duration: float) -> None:
    while True:
        await trio.sleep(min(60.0, max(duration / 10, 10.0)))
        elapsed = trio.current_time() - tally.started_at
        rss = tally.rss[-1][1] // 1024 if tally.rss else 0
        print(
            f"soak: {elapsed:5.0f} s  dispatched {sum(tally.dispatched.values()):,}  "
            f"RSS {rss} MiB  deleted {len(tally.deleted_by_bot)}/{len(tally.must_delete)}  "
            f"reconnects {sum(tally.forced.values())}",
            flush=True,
        )


def _result(
    args: argparse.Namespace,
    sb: Sandbox,
    tally: Tally,
    metrics: str,
    traffic_s: float,
    exit_status: int | None,
    log_path: Path,
) -> dict[str, Any]:
    counted = _metric_sums(metrics, "bot_gateway_events_total", "event_type")
    per_type = {
        t: {"sent": n, "counted": int(counted.get(t, 0))}
        for t, n in sorted(tally.dispatched.items())
    }
    lost = {
        t: v["sent"] - v["counted"]
        for t, v in per_type.items()
        if v["counted"] < v["sent"]
    }
    extra = {
        t: v["counted"] - v["sent"]
        for t, v in per_type.items()
        if v["counted"] > v["sent"]
    }
    missed = sorted(set(tally.must_delete) - tally.deleted_by_bot)
    kinds = collections.Counter(tally.must_delete.values())
    connections = sb.gateway.connections
    scenario_events = sum(tally.sent.values())
    return {
        "duration_s": round(traffic_s, 1),
        "rate": args.rate,
        "scenario_events": scenario_events,
        "scenario_events_per_s": round(scenario_events / traffic_s, 1),
        "scenario": dict(tally.sent),
        "events": {
            "dispatched_to_bot": sum(tally.dispatched.values()),
            "counted_by_bot": int(sum(counted.get(t, 0) for t in tally.dispatched)),
            "per_type": per_type,
            "lost": lost,
            "extra": extra,
        },
        "moderation": {
            "offending": len(tally.must_delete),
            "by_kind": dict(kinds),
            "deleted": len(set(tally.must_delete) & tally.deleted_by_bot),
            "missed": len(missed),
            "ordinary_deleted": tally.ordinary_deleted_by_bot,
            "decisions": _metric_sums(
                metrics, "bot_moderation_decisions_total", "action"
            ),
        },
        "commands": {
            "sent": len(tally.interactions),
            "unanswered": sum(ix.callback_type is None for ix in tally.interactions),
        },
        "gateway": {
            "forced_reconnects": sum(tally.forced.values()),
            "forced": dict(tally.forced),
            "connections": len(connections),
            "closes": dict(
                collections.Counter(
                    f"{c.closed_by} {c.close_code}"
                    for c in connections
                    if c.closed_at is not None
                )
            ),
            "timeline": [
                {
                    "opened_s": round(c.opened_at - tally.started_at, 1),
                    "closed_s": None
                    if c.closed_at is None
                    else round(c.closed_at - tally.started_at, 1),
                    "closed_by": c.closed_by,
                    "close_code": c.close_code,
                    "path": c.path,
                }
                for c in connections
            ],
            "identifies": tally.bot_actions["gateway.identify"],
            "resumes": tally.bot_actions["gateway.resume"],
            "bot_reconnects": _metric_sums(
                metrics, "bot_gateway_reconnects_total", "reason"
            ),
        },
        "bot_rest_actions": {
            k: v
            for k, v in sorted(tally.bot_actions.items())
            if not k.startswith(("gateway.", "fault."))
        },
        "rss": _rss_points(tally.rss),
        "rss_series_kib": [(round(t), kib) for t, kib in tally.rss],
        "exit_status": exit_status,
        "log": {"path": str(log_path), **_log_summary(log_path)},
    }


def _mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


def report(result: dict[str, Any]) -> str:
    rss = result["rss"]
    events = result["events"]
    mod = result["moderation"]
    gw = result["gateway"]
    lines = [
        f"duration {result['duration_s']:.0f} s, {result['scenario_events']:,} scenario events "
        f"({result['scenario_events_per_s']}/s): {result['scenario']}",
        f"RSS start {_mib(rss['start_kib'])}, quarter {_mib(rss['quarter_kib'])}, "
        f"middle {_mib(rss['middle_kib'])}, end {_mib(rss['end_kib'])}, "
        f"max {_mib(rss['max_kib'])} ({rss['samples']} samples)",
        f"gateway dispatches to the bot {events['dispatched_to_bot']:,}, counted by the bot "
        f"{events['counted_by_bot']:,}; lost {sum(events['lost'].values())}, "
        f"counted twice {sum(events['extra'].values())}",
    ]
    for event_type, v in events["per_type"].items():
        lines.append(
            f"  {event_type:<32} sent {v['sent']:>9,}  counted {v['counted']:>9,}"
        )
    lines += [
        f"offending messages {mod['offending']} {mod['by_kind']}: deleted {mod['deleted']}, "
        f"missed {mod['missed']}; ordinary messages deleted {mod['ordinary_deleted']}",
        f"moderation decisions (bot metrics): {mod['decisions']}",
        f"slash commands {result['commands']['sent']}, unanswered "
        f"{result['commands']['unanswered']}",
        f"forced reconnects {gw['forced_reconnects']} {gw['forced']}: identifies "
        f"{gw['identifies']}, resumes {gw['resumes']}, connections {gw['connections']}, "
        f"bot reports {gw['bot_reconnects']}; closes seen by the emulator "
        f"{gw['closes']}",
        f"bot REST actions: {result['bot_rest_actions']}",
        f"bot log: {result['log']['lines_by_level']}; warnings/errors "
        f"{result['log']['warnings_and_errors']}",
        f"exit status on SIGTERM: {result['exit_status']}",
    ]
    failures = verdict(result)
    lines.append(
        "verdict: PASS" if not failures else "verdict: FAIL: " + "; ".join(failures)
    )
    return "\n".join(lines)


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--duration", type=float, default=3600, help="seconds (default 3600)"
    )
    parser.add_argument(
        "--rate", type=float, default=200, help="events/s (default 200)"
    )
    parser.add_argument(
        "--reconnect-every",
        type=float,
        default=60,
        help="seconds between forced reconnects",
    )
    parser.add_argument(
        "--sample-every", type=float, default=10, help="RSS sample period, s"
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("VSB_TEST_DATABASE_URL")
        or "postgresql://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL server to create the scratch database on",
    )
    parser.add_argument(
        "--embedded",
        action="store_true",
        help="use the bot's embedded PostgreSQL instead",
    )
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--json", type=Path, help="also write the whole result here")
    parser.add_argument(
        "--keep", action="store_true", help="keep the work folder (bot log)"
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="vsb-soak-"))
    name = f"vsb_soak_{uuid.uuid4().hex[:8]}"
    database_url = None
    if not args.embedded:
        with psycopg.connect(args.database_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        database_url = _with_database(args.database_url, name)
    try:
        result = trio.run(soak, args, database_url, workdir)
    except SoakFailed as exc:
        print(f"soak: FAIL: {exc} (work folder kept: {workdir})", file=sys.stderr)
        return 1
    finally:
        if database_url is not None:
            with psycopg.connect(args.database_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(report(result))
    if args.keep or verdict(result):
        print(f"soak: work folder kept: {workdir}", file=sys.stderr)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if not verdict(result) else 1


if __name__ == "__main__":
    started = time.monotonic()
    status = main()
    print(f"soak: {time.monotonic() - started:.0f} s wall", file=sys.stderr)
    sys.exit(status)
