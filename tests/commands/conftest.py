"""Fixtures for the commands tests: a recording REST stand-in, interactions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
import trio
import trio.testing

from vsb.models import Interaction, decode_event
from vsb.rest.errors import DiscordHTTPError, NotFound

APP_ID = 900
GUILD_ID = 100
CHANNEL_ID = 200
USER_ID = 300
ADMINISTRATOR = 1 << 3


@dataclass
class Call:
    name: str
    at: float
    args: dict[str, Any]


@dataclass
class FakeRest:
    """Records each call with its trio time; can fail or stall the callback."""

    calls: list[Call] = field(default_factory=list)
    callback_error: DiscordHTTPError | None = None
    callback_delay: float = 0.0
    callback_gate: trio.Event | None = None

    def of(self, name: str) -> list[Call]:
        return [c for c in self.calls if c.name == name]

    def wall_time(self) -> float:
        return 1_800_000_000.0 + trio.current_time()

    async def create_interaction_response(
        self, interaction_id: int, token: str, type: int, data: Any = None
    ) -> None:
        self.calls.append(
            Call("callback", trio.current_time(), {"type": type, "data": data})
        )
        if self.callback_gate is not None:
            await self.callback_gate.wait()
        if self.callback_delay:
            await trio.sleep(self.callback_delay)
        if self.callback_error is not None:
            raise self.callback_error

    async def edit_original_response(
        self, app_id: int, token: str, **fields: Any
    ) -> dict[str, Any]:
        self.calls.append(Call("edit_original", trio.current_time(), fields))
        return {}

    async def create_followup(
        self, app_id: int, token: str, **fields: Any
    ) -> dict[str, Any]:
        self.calls.append(Call("followup", trio.current_time(), fields))
        return {}

    async def create_message(self, channel_id: int, **fields: Any) -> dict[str, Any]:
        self.calls.append(
            Call(
                "create_message",
                trio.current_time(),
                {"channel_id": channel_id, **fields},
            )
        )
        return {"id": "1"}

    async def get_current_application(self) -> dict[str, Any]:
        return {"id": str(APP_ID)}

    async def bulk_overwrite_guild_commands(
        self, app_id: int, guild_id: int, cmds: Any
    ) -> list[Any]:
        self.calls.append(
            Call(
                "overwrite_guild",
                trio.current_time(),
                {"guild_id": guild_id, "cmds": cmds},
            )
        )
        return list(cmds)

    async def bulk_overwrite_global_commands(self, app_id: int, cmds: Any) -> list[Any]:
        self.calls.append(Call("overwrite_global", trio.current_time(), {"cmds": cmds}))
        return list(cmds)


def unknown_interaction() -> NotFound:
    return NotFound(
        404,
        10062,
        "Unknown interaction",
        "POST /interactions/{interaction_id}/{interaction_token}/callback",
    )


def interaction(
    name: str = "ping",
    options: list[dict[str, Any]] | None = None,
    *,
    kind: int = 2,
    command_type: int = 1,
    permissions: int = ADMINISTRATOR,
    user_id: int = USER_ID,
    guild: bool = True,
    data: dict[str, Any] | None = None,
    interaction_id: int = 555,
) -> Interaction:
    payload: dict[str, Any] = {
        "id": str(interaction_id),
        "application_id": str(APP_ID),
        "type": kind,
        "token": "tok-" + "x" * 40,
        "channel_id": str(CHANNEL_ID),
        "app_permissions": str(ADMINISTRATOR),
        "data": data
        if data is not None
        else {"id": "1", "name": name, "type": command_type, "options": options or []},
    }
    user = {"id": str(user_id), "username": f"user{user_id}"}
    if guild:
        payload["guild_id"] = str(GUILD_ID)
        payload["member"] = {"user": user, "roles": [], "permissions": str(permissions)}
    else:
        payload["user"] = user
    result: Interaction = decode_event("INTERACTION_CREATE", orjson.dumps(payload))
    return result


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


@pytest.fixture
def rest() -> FakeRest:
    return FakeRest()


@pytest.fixture
def make_interaction() -> Any:
    return interaction


@pytest.fixture
def not_found_10062() -> Any:
    return unknown_interaction


@pytest.fixture
def rest_factory() -> Any:
    return FakeRest


# -- end to end: the sandbox's REST, a database, the real cache and router ------

from collections.abc import AsyncIterator  # noqa: E402

import httpx  # noqa: E402

from vsb.cache import Cache  # noqa: E402
from vsb.commands import CommandRegistry, CommandService  # noqa: E402
from vsb.commands.cases import CaseCommands  # noqa: E402
from vsb.commands.config import Config  # noqa: E402
from vsb.commands.expiry import ExpiryScheduler  # noqa: E402
from vsb.commands.moderation import Moderation  # noqa: E402
from vsb.commands.modlog import ModLog  # noqa: E402
from vsb.commands.purge import Purge  # noqa: E402
from vsb.rest import RestClient  # noqa: E402
from vsb.router import EventRouter  # noqa: E402
from vsb.sandbox import Sandbox, open_sandbox  # noqa: E402
from vsb.secret import Secret  # noqa: E402
from vsb.services.database import Database  # noqa: E402


class Bridge:
    """Delivers every sandbox dispatch to our router, in order, with no socket.

    The gateway client has its own tests against the sandbox; here it would
    only add timing noise (under MockClock, waiting on a socket lets the clock
    jump), so each event the sandbox would send is decoded and routed as the
    gateway would do it.
    """

    def __init__(self, sb: Sandbox, router: EventRouter) -> None:
        self.router = router
        self.send, self.receive = trio.open_memory_channel[tuple[str, bytes]](10_000)
        gateway = sb.core.gateway
        original = gateway.dispatch

        def dispatch(event_type: str, data: Any, **kw: Any) -> int:
            self.send.send_nowait((event_type, orjson.dumps(data)))
            return original(event_type, data, **kw)

        gateway.dispatch = dispatch  # type: ignore[method-assign]

    async def pump(self) -> None:
        async for event_type, raw in self.receive:
            await self.router.dispatch(0, event_type, decode_event(event_type, raw))

    def pending(self) -> int:
        return self.receive.statistics().current_buffer_used


class Harness:
    """The commands service wired as app.py would, against the sandbox."""

    def __init__(self, sb: Sandbox, db: Database, nursery: trio.Nursery) -> None:
        self.sb = sb
        self.db = db
        self.nursery = nursery
        self.router = EventRouter()
        self.rest = RestClient(
            Secret(sb.bot_token),
            api_base="http://sandbox.test/api/v10",
            transport=httpx.ASGITransport(app=sb.asgi_app),
            wall_clock=sb.clock.unix,
        )
        self.cache = Cache(
            member_cap_per_guild=1000,
            messages_per_channel=200,
            fetch_member=self.fetch_member,
        )
        self.cache.register(self.router)
        self.bridge = Bridge(sb, self.router)
        self.modlog = ModLog(self.rest, db, default_channel_id=sb.default.mod_log_id)
        self.registry = CommandRegistry()
        self.expiry: ExpiryScheduler | None = None
        self.moderation = Moderation(
            self.rest,
            db,
            self.cache,
            self.modlog,
            on_expiring_case=self.wake_expiry,
            wall_clock=sb.clock.unix,
        )
        self.registry.add_all(self.moderation.commands())
        self.registry.add_all(CaseCommands(db, self.modlog).commands())
        self.registry.add_all(Purge(self.rest, self.cache, self.modlog).commands())
        self.settings_changed: list[int] = []
        self.registry.add_all(
            Config(db, on_change=self.settings_changed.append).commands()
        )
        self.service: CommandService | None = None

    async def fetch_member(self, guild_id: int, user_id: int) -> Any:
        """As app.py wires the cache: 404 (10007 Unknown Member) is no member."""
        try:
            return await self.rest.get_member(guild_id, user_id)
        except NotFound:
            return None

    def wake_expiry(self) -> None:
        if self.expiry is not None:
            self.expiry.wake()

    async def start(self, **kw: Any) -> CommandService:
        self.nursery.start_soon(self.bridge.pump)
        guild = self.sb.state.guilds[self.sb.default.guild_id]
        ready = {
            "v": 10,
            "user": self.sb.state.bot_user.to_json(),
            "session_id": "s",
            "resume_gateway_url": "ws://127.0.0.1/",
            "guilds": [{"id": str(guild.id), "unavailable": True}],
        }
        await self.router.dispatch(
            0, "READY", decode_event("READY", orjson.dumps(ready))
        )
        data = self.sb.state.guild_create_json(guild, large_threshold=250)
        await self.router.dispatch(
            0, "GUILD_CREATE", decode_event("GUILD_CREATE", orjson.dumps(data))
        )
        self.service = CommandService(
            self.registry,
            self.rest,
            db=self.db,
            guild_id=self.sb.default.guild_id,
            developer_ids=frozenset({self.sb.default.owner_id}),
            **kw,
        )
        self.service.register(self.router)
        await self.nursery.start(self.service.run)
        return self.service

    async def start_expiry(self, nursery: trio.Nursery, **kw: Any) -> ExpiryScheduler:
        self.expiry = ExpiryScheduler(
            self.rest, self.db, modlog=self.modlog, wall_clock=self.sb.clock.unix, **kw
        )
        await nursery.start(self.expiry.run)
        return self.expiry

    async def settle(self) -> None:
        """Wait until every dispatched event was handled and answered."""
        assert self.service is not None
        with trio.fail_after(30):
            while True:
                await trio.sleep(0.01)
                if self.bridge.pending() == 0 and self.service.in_flight == 0:
                    await trio.sleep(0.01)
                    if self.bridge.pending() == 0 and self.service.in_flight == 0:
                        return

    async def command(
        self, name: str, options: dict[str, Any] | None = None, **kw: Any
    ) -> Any:
        """Run a command as a user would and wait until it is fully handled."""
        ix = await self.sb.run_command(name, options, **kw)
        await self.settle()
        return ix

    def answer(self, ix: Any) -> dict[str, Any]:
        """The visible answer: the callback's data, or the edit that completed it."""
        edit = self.sb.actions.last("interaction.edit_original", interaction_id=ix.id)
        if edit is not None:
            return dict(edit["data"])
        callback = self.sb.actions.last("interaction.callback", interaction_id=ix.id)
        assert callback is not None, self.sb.actions.kinds()
        return dict(callback["data"])

    def text(self, ix: Any) -> str:
        data = self.answer(ix)
        parts = [data.get("content") or ""]
        for embed in data.get("embeds") or []:
            parts.append(embed.get("title", ""))
            parts.extend(f"{f['name']}: {f['value']}" for f in embed.get("fields", []))
            parts.append(embed.get("description", "") or "")
        return "\n".join(parts)


@pytest.fixture
def db_autojump_clock() -> trio.testing.MockClock:
    """An autojump clock for tests that also wait on database threads.

    With ``autojump_threshold=0`` the clock jumps to the next deadline the
    moment every task waits, including while a worker thread runs a query;
    the query's own deadline, or a test's ``fail_after``, would then fire
    spuriously. Jumping only after 50 ms of real idleness lets each query
    (about 1 ms) finish first, and sleeps of hours still pass at once.
    """
    return trio.testing.MockClock(autojump_threshold=0.05)


@pytest.fixture
async def mock_db(database_url: str) -> AsyncIterator[Database]:
    """A database for the end-to-end tests (also under a mock clock)."""
    database = Database(database_url, min_size=1, max_size=4, statement_timeout_s=10.0)
    async with database:
        yield database


@pytest.fixture
async def harness(mock_db: Database) -> AsyncIterator[Harness]:
    async with open_sandbox(serve_http=False) as sb, trio.open_nursery() as nursery:
        h = Harness(sb, mock_db, nursery)
        try:
            yield h
        finally:
            nursery.cancel_scope.cancel()
            await h.rest.aclose()
