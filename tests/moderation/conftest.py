"""Fixtures for the pipeline tests: sandbox, database, Groq emulator, service.

``harness`` builds a running :class:`ModerationService` wired to the sandbox's
REST API and the Groq emulator (both in process through
``httpx.ASGITransport``) and to a fresh test database (``db`` from
``tests/conftest.py``). Events are built from the sandbox's own messages
and dispatched through a real :class:`EventRouter`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
import trio

from vsb.commands.context import CommandContext
from vsb.commands.response import Responder
from vsb.config import INTENTS
from vsb.db import audit
from vsb.db.audit import AuditRecord
from vsb.models import Interaction, Message, decode_event
from vsb.moderation.rules import LocalClassifier, RuleConfig
from vsb.rest import RestClient
from vsb.router import EventRouter
from vsb.sandbox import Sandbox
from vsb.sandbox.groq import ASGI_API_BASE, GroqEmulator
from vsb.secret import Secret
from vsb.services.ai import GroqClient
from vsb.services.database import Database
from vsb.services.moderation import ModerationService

GROQ_KEY = "gsk_pipeline_test"
ALL_INTENTS = INTENTS["guilds"] | INTENTS["guild_messages"] | INTENTS["message_content"]
NO_CONTENT_INTENTS = INTENTS["guilds"] | INTENTS["guild_messages"]


@dataclass
class Harness:
    """Everything one pipeline test touches."""

    sb: Sandbox
    rest: RestClient
    db: Database
    emulator: GroqEmulator
    ai: GroqClient | None
    service: ModerationService
    router: EventRouter

    async def post(self, content: str, **fields: Any) -> Message:
        """A member posts (sandbox state + MESSAGE_CREATE through the router)."""
        fields.setdefault("channel_id", self.sb.default.general_id)
        fields.setdefault("author_id", self.sb.default.member_id)
        stored = await self.sb.post_message(content, **fields)
        event = self.message_event(stored.id)
        await self.router.dispatch(0, "MESSAGE_CREATE", event)
        await self.service.drain()
        assert isinstance(event, Message)
        return event

    async def edit(self, message_id: int, content: str) -> None:
        """The author edits (MESSAGE_UPDATE through the router)."""
        await self.sb.edit_message(message_id, content)
        raw = orjson.dumps(self.sb.state.messages[message_id].to_json(self.sb.state))
        await self.router.dispatch(
            0, "MESSAGE_UPDATE", decode_event("MESSAGE_UPDATE", raw)
        )
        await self.service.drain()

    def message_event(self, message_id: int) -> Any:
        raw = orjson.dumps(self.sb.state.messages[message_id].to_json(self.sb.state))
        return decode_event("MESSAGE_CREATE", raw)

    async def decisions(self) -> list[AuditRecord]:
        """Decision audit entries, oldest first."""
        rows = await audit.recent(self.db, table_name="moderation")
        return list(reversed(rows))

    def deleted_ids(self) -> list[int]:
        return [a["message_id"] for a in self.sb.actions.of("message.delete")]

    def log_posts(self) -> list[Any]:
        return self.sb.actions.of(
            "message.create", channel_id=self.sb.default.mod_log_id
        )

    async def press(self, custom_id: str, message_id: int, user_id: int) -> Any:
        """A user presses a review button; the service's handler answers."""
        ix = await self.sb.press_button(message_id, custom_id, user_id=user_id)
        interaction = decode_event("INTERACTION_CREATE", orjson.dumps(ix.payload))
        assert isinstance(interaction, Interaction)
        responder = Responder(
            interaction, self.rest, received_at=trio.current_time(), defer_type=6
        )
        ctx = CommandContext(
            interaction=interaction, name=custom_id, responder=responder
        )
        await self.service.handle_review(ctx)
        return ix


@pytest.fixture
def emulator() -> GroqEmulator:
    return GroqEmulator(api_key=GROQ_KEY)


HarnessFactory = Callable[..., Any]


@pytest.fixture
async def make_harness(
    sandbox: Sandbox,
    rest: RestClient,
    db: Database,
    emulator: GroqEmulator,
    nursery: trio.Nursery,
) -> AsyncIterator[HarnessFactory]:
    clients: list[GroqClient] = []

    async def build(
        *,
        with_ai: bool = True,
        intents: int = ALL_INTENTS,
        ai_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> Harness:
        ai = None
        if with_ai:
            ai = GroqClient(
                Secret(GROQ_KEY),
                api_base=ASGI_API_BASE,
                transport=httpx.ASGITransport(app=emulator.asgi_app),
                **(ai_options or {}),
            )
            clients.append(ai)
        options.setdefault("default_log_channel_id", sandbox.default.mod_log_id)
        service = ModerationService(
            rest=rest,
            db=db,
            rules=LocalClassifier(RuleConfig(words={"idiot": "toxic"})),
            ai=ai,
            bot_user_id=sandbox.default.bot_id,
            intents=intents,
            **options,
        )
        router = EventRouter()
        service.register(router)
        await nursery.start(service.run)
        return Harness(sandbox, rest, db, emulator, ai, service, router)

    yield build
    for client in clients:
        await client.aclose()


@pytest.fixture
async def harness(make_harness: HarnessFactory) -> Harness:
    built: Harness = await make_harness()
    return built
