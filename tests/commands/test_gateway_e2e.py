"""The whole path over real sockets: sandbox gateway -> ShardManager -> router
-> cache -> CommandService -> REST over HTTP -> sandbox, with a database."""

from __future__ import annotations

from typing import Any

import trio

from vsb.cache import Cache
from vsb.commands import CommandRegistry, CommandService
from vsb.commands.moderation import Moderation
from vsb.commands.modlog import ModLog
from vsb.db import cases
from vsb.gateway import ShardManager
from vsb.rest import RestClient
from vsb.router import EventRouter
from vsb.sandbox import open_sandbox
from vsb.secret import Secret

INTENTS = (1 << 0) | (1 << 1) | (1 << 9) | (1 << 15)


async def test_moderate_over_the_gateway(mock_db: Any) -> None:
    async with open_sandbox() as sb, trio.open_nursery() as nursery:
        rest = RestClient(Secret(sb.bot_token), api_base=sb.api_base)
        router = EventRouter()
        cache = Cache(member_cap_per_guild=1000, messages_per_channel=50)
        cache.register(router)
        modlog = ModLog(rest, mock_db, default_channel_id=sb.default.mod_log_id)
        registry = CommandRegistry()
        registry.add_all(Moderation(rest, mock_db, cache, modlog).commands())
        service = CommandService(
            registry, rest, db=mock_db, guild_id=sb.default.guild_id
        )
        service.register(router)
        manager = ShardManager(
            Secret(sb.bot_token),
            INTENTS,
            get_gateway_bot=rest.get_gateway_bot,
            on_dispatch=router.dispatch,
        )
        await nursery.start(service.run)
        await nursery.start(manager.run)
        with trio.fail_after(10):
            while cache.guild(sb.default.guild_id) is None:
                await trio.sleep(0.01)

        ix = await sb.run_command(
            "moderate",
            {
                "action": "warn",
                "target": sb.default.member_id,
                "reason": "over the wire",
            },
        )
        with trio.fail_after(10):
            await ix.wait_response()
            await sb.actions.wait_for(
                "message.create", channel_id=sb.default.mod_log_id
            )
        assert ix.callback_type == 4 and ix.ephemeral
        case = await cases.get_case(mock_db, sb.default.guild_id, 1)
        assert case is not None and case.reason == "over the wire"
        assert sb.actions.last("commands.overwrite")["scope"] == "guild"
        nursery.cancel_scope.cancel()
        await rest.aclose()
