"""The sandbox object and ``open_sandbox``: servers, wiring, scenario API.

Owns :class:`Sandbox` (what tests hold), :class:`Faults` (fault injection)
and :func:`open_sandbox`, which serves the REST/OAuth2 app with hypercorn's
trio worker and the gateway with trio-websocket, both on 127.0.0.1 with
ephemeral ports, inside a nursery that closes with the ``async with``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from starlette.applications import Starlette

from vsb.sandbox import (
    oauth,
    routes_app,
    routes_channels,
    routes_guilds,
    scenario,
    webhooks,
)
from vsb.sandbox.actions import ActionLog
from vsb.sandbox.clock import SandboxClock
from vsb.sandbox.core import AppIdentity, SandboxCore
from vsb.sandbox.gateway import GatewayConfig, GatewayServer
from vsb.sandbox.interactions import Interaction, InteractionRegistry
from vsb.sandbox.ratelimit import RateLimiter
from vsb.sandbox.rest import build_app
from vsb.sandbox.state import DefaultIds, Member, Message, State, User


class Faults:
    """Fault injection on the gateway and REST sides.

    Gateway faults act on the connections open now (optionally only those
    of one shard); a new connection starts healthy.
    """

    def __init__(self, core: SandboxCore) -> None:
        self._core = core

    def stop_heartbeat_acks(self, shard_id: int | None = None) -> None:
        """Stop answering heartbeats with op 11 (a zombie connection)."""
        self._core.gateway.set_heartbeat_acks(False, shard_id)
        self._core.actions.record("fault.stop_heartbeat_acks", shard_id=shard_id)

    def resume_heartbeat_acks(self, shard_id: int | None = None) -> None:
        self._core.gateway.set_heartbeat_acks(True, shard_id)

    def request_heartbeat(self, shard_id: int | None = None) -> int:
        """Send op 1: the client must heartbeat at once."""
        return self._core.gateway.send_op(1, None, shard_id)

    def reconnect(self, shard_id: int | None = None) -> int:
        """Send op 7 RECONNECT."""
        self._core.actions.record("fault.reconnect", shard_id=shard_id)
        return self._core.gateway.send_op(7, None, shard_id)

    def invalid_session(self, resumable: bool, shard_id: int | None = None) -> int:
        """Send op 9 with ``d`` = ``resumable`` (False also ends the session)."""
        self._core.actions.record(
            "fault.invalid_session", resumable=resumable, shard_id=shard_id
        )
        return self._core.gateway.invalidate(resumable, shard_id)

    async def close(
        self, code: int, shard_id: int | None = None, reason: str = ""
    ) -> int:
        """Close open connections with ``code`` (e.g. 4000, 4004, 4014)."""
        return await self._core.gateway.close(code, shard_id, reason)

    async def drop_tcp(self, shard_id: int | None = None) -> int:
        """Close the TCP connection without a close frame."""
        return await self._core.gateway.drop(shard_id)

    def split_frames(
        self, event_type: str = "GUILD_CREATE", frames: int = 4, times: int = 1
    ) -> None:
        """Send the next ``times`` ``event_type`` payloads as ``frames`` messages."""
        self._core.gateway.split_next(event_type, frames, times)

    def fail_rest(
        self,
        count: int = 1,
        *,
        status: int = 429,
        scope: str = "user",
        retry_after: float = 1.0,
        route: str | None = None,
    ) -> None:
        """Answer the next ``count`` REST calls with a 429 or a 5xx.

        Args:
            status: 429, or a 5xx status such as 500/502/503.
            scope: for 429: ``user``, ``shared`` or ``global``.
            retry_after: seconds in the 429 body.
            route: only calls of this route (``"POST /channels/{channel_id}
                /messages"``); None: any call.
        """
        self._core.limiter.fail_next(
            count, status=status, scope=scope, retry_after=retry_after, route=route
        )

    def close_dms(self, user_id: int) -> None:
        """Make DMs to ``user_id`` fail with 50007."""
        self._core.state.dms_closed.add(user_id)


class Sandbox:
    """A running emulated Discord. Create it with :func:`open_sandbox`."""

    def __init__(self, core: SandboxCore, app: Starlette) -> None:
        self.core = core
        self.asgi_app = app
        self.faults = Faults(core)
        self.api_base = ""
        self.http_base = ""

    # -- identity and URLs ---------------------------------------------------

    @property
    def state(self) -> State:
        return self.core.state

    @property
    def actions(self) -> ActionLog:
        return self.core.actions

    @property
    def gateway(self) -> GatewayServer:
        return self.core.gateway

    @property
    def clock(self) -> SandboxClock:
        return self.core.clock

    @property
    def default(self) -> DefaultIds:
        """Ids of the default scene (raises when opened with ``seed=False``)."""
        if self.core.state.default is None:
            raise LookupError("the sandbox was opened with seed=False")
        return self.core.state.default

    @property
    def gateway_url(self) -> str:
        return self.core.gateway.url

    @property
    def resume_gateway_url(self) -> str:
        return self.core.gateway.resume_url

    @property
    def bot_token(self) -> str:
        return self.core.identity.bot_token

    @property
    def application_id(self) -> int:
        return self.core.identity.application_id

    @property
    def client_id(self) -> str:
        return str(self.core.identity.application_id)

    @property
    def client_secret(self) -> str:
        return self.core.identity.client_secret

    @property
    def public_key(self) -> str:
        return self.core.identity.public_key

    @property
    def bot_user(self) -> User:
        return self.core.state.bot_user

    @property
    def oauth_authorize_url(self) -> str:
        return f"{self.http_base}/oauth2/authorize"

    @property
    def oauth_token_url(self) -> str:
        return f"{self.api_base}/oauth2/token"

    @property
    def oauth_userinfo_url(self) -> str:
        return f"{self.api_base}/users/@me"

    @property
    def oauth(self) -> oauth.OAuthServer:
        return oauth.server_of(self.core)

    # -- scenario --------------------------------------------------------------

    async def post_message(
        self,
        content: str,
        *,
        channel_id: int | None = None,
        author_id: int | None = None,
        mentions: list[int] | None = None,
        embeds: list[dict[str, Any]] | None = None,
    ) -> Message:
        """A member posts a message: stored, then MESSAGE_CREATE dispatched.

        Defaults: the default guild's #general, by the default member.
        """
        await trio.lowlevel.checkpoint()
        return scenario.post_message(
            self.core,
            content,
            channel_id=channel_id or self.default.general_id,
            author_id=author_id or self.default.member_id,
            mentions=mentions,
            embeds=embeds,
        )

    async def edit_message(self, message_id: int, content: str) -> Message:
        """A member edits a message (MESSAGE_UPDATE)."""
        await trio.lowlevel.checkpoint()
        return scenario.edit_message(self.core, message_id, content)

    async def member_join(
        self, username: str, *, guild_id: int | None = None
    ) -> Member:
        """A new user joins a guild (GUILD_MEMBER_ADD)."""
        await trio.lowlevel.checkpoint()
        return scenario.member_join(
            self.core, guild_id or self.default.guild_id, username
        )

    async def run_command(
        self,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        user_id: int | None = None,
        guild_id: int | None = None,
        channel_id: int | None = None,
        kind: int = scenario.CHAT_INPUT,
        target_id: int | None = None,
    ) -> Interaction:
        """A user runs an application command (INTERACTION_CREATE type 2).

        Args:
            name: command name (``"moderate"``, or ``"Analyze Message"``).
            options: ``{"action": "mute", "target": member_id, ...}``; ints
                naming a user become USER options.
            user_id: who runs it (default: the default moderator).
            kind: 1 slash, 2 user context menu, 3 message context menu.
            target_id: the user or message a context menu targets.

        Returns:
            The :class:`Interaction`; ``await ix.wait_response()``.
        """
        await trio.lowlevel.checkpoint()
        guild_id = guild_id or self.default.guild_id
        return scenario.run_command(
            self.core,
            name,
            guild_id=guild_id,
            channel_id=channel_id or self.default.general_id,
            user_id=user_id or self.default.moderator_id,
            options=options,
            kind=kind,
            target_id=target_id,
        )

    async def autocomplete(
        self,
        name: str,
        options: dict[str, Any],
        focused: str,
        *,
        user_id: int | None = None,
        channel_id: int | None = None,
    ) -> Interaction:
        """A user types in an autocomplete option (INTERACTION_CREATE type 4)."""
        await trio.lowlevel.checkpoint()
        return scenario.autocomplete(
            self.core,
            name,
            guild_id=self.default.guild_id,
            channel_id=channel_id or self.default.general_id,
            user_id=user_id or self.default.moderator_id,
            options=options,
            focused=focused,
        )

    async def press_button(
        self,
        message_id: int,
        custom_id: str,
        *,
        user_id: int | None = None,
        component_type: int = 2,
        values: list[str] | None = None,
    ) -> Interaction:
        """A user presses a button (or picks in a select: type 3 + values)."""
        await trio.lowlevel.checkpoint()
        return scenario.press_button(
            self.core,
            message_id,
            custom_id,
            user_id=user_id or self.default.moderator_id,
            component_type=component_type,
            values=values,
        )

    async def submit_modal(
        self,
        custom_id: str,
        fields: dict[str, str],
        *,
        user_id: int | None = None,
        channel_id: int | None = None,
    ) -> Interaction:
        """A user submits a modal (INTERACTION_CREATE type 5)."""
        await trio.lowlevel.checkpoint()
        return scenario.submit_modal(
            self.core,
            custom_id,
            fields,
            guild_id=self.default.guild_id,
            channel_id=channel_id or self.default.general_id,
            user_id=user_id or self.default.moderator_id,
        )

    def interaction(self, interaction_id: int) -> Interaction:
        return self.core.interactions[interaction_id]

    def stats(self) -> dict[str, Any]:
        """Counters: gateway connections/sessions, REST limiter decisions."""
        return {
            "gateway": self.core.gateway.stats(),
            "rest": dict(self.core.limiter.counts),
            "invalid_requests": self.core.limiter.invalid_requests(),
            "actions": len(self.core.actions),
        }


@asynccontextmanager
async def open_sandbox(
    *,
    seed: bool = True,
    bot_token: str | None = None,
    epoch: float | None = None,
    gateway: GatewayConfig | None = None,
    rate_limits: dict[str, tuple[int, float]] | None = None,
    default_rate_limit: tuple[int, float] = (50, 1.0),
    global_limit: int | None = 50,
    redirect_uris: list[str] | None = None,
    serve_http: bool = True,
    **gateway_options: Any,
) -> AsyncIterator[Sandbox]:
    """Start an emulated Discord on 127.0.0.1 and yield it.

    Args:
        seed: build the default scene (``sb.default`` has its ids).
        bot_token: the token REST and IDENTIFY accept (default: random).
        epoch: Unix time the sandbox clock starts at (default: wall time now).
        gateway: gateway knobs; or pass them as keyword options
            (``heartbeat_interval=``, ``shards=``, ``max_concurrency=``,
            ``session_start_remaining=``, ``enabled_intents=``, ...).
        rate_limits: ``{"POST /channels/{channel_id}/messages": (5, 5.0)}``
            overriding the per-route defaults.
        default_rate_limit: (limit, per) for routes not listed.
        global_limit: bot-token requests per second; None disables it.
        redirect_uris: OAuth2 redirect URIs accepted (None: any).
        serve_http: False skips the hypercorn listener (use ``sb.asgi_app``
            with ``httpx.ASGITransport``; ``sb.api_base`` is then
            ``http://sandbox/api/v10``).
    """
    config = gateway or GatewayConfig(**gateway_options)
    core = _build_core(
        seed,
        bot_token,
        epoch,
        config,
        rate_limits,
        default_rate_limit,
        global_limit,
        redirect_uris,
    )
    app = build_app(core, _routes(), oauth.page_routes())
    sb = Sandbox(core, app)
    async with trio.open_nursery() as nursery:
        await nursery.start(core.gateway.run)
        if serve_http:
            sb.http_base = await nursery.start(_serve_http, app)
        else:
            sb.http_base = "http://sandbox"
        sb.api_base = f"{sb.http_base}/api/v10"
        core.api_base = sb.api_base
        try:
            yield sb
        finally:
            nursery.cancel_scope.cancel()


def _routes() -> list[Any]:
    return [
        *routes_app.ROUTES,
        *routes_channels.ROUTES,
        *routes_guilds.ROUTES,
        *webhooks.ROUTES,
    ]


def _build_core(
    seed: bool,
    bot_token: str | None,
    epoch: float | None,
    config: GatewayConfig,
    rate_limits: dict[str, tuple[int, float]] | None,
    default_rate_limit: tuple[int, float],
    global_limit: int | None,
    redirect_uris: list[str] | None,
) -> SandboxCore:
    clock = SandboxClock(time.time() if epoch is None else epoch)
    bot_user = User(id=clock.snowflake(), username="VSB", bot=True)
    state = State(clock, bot_user)
    if seed:
        state.seed_default()
    actions = ActionLog()
    identity = AppIdentity(
        application_id=bot_user.id,
        bot_token=bot_token or f"sandbox.{secrets.token_urlsafe(24)}",
        public_key=_ed25519_public_key(),
        client_secret=secrets.token_urlsafe(24),
        redirect_uris=redirect_uris,
    )
    gw = GatewayServer(
        state,
        actions,
        config,
        bot_token=identity.bot_token,
        application_id=identity.application_id,
    )
    limiter = RateLimiter(
        rate_limits, default_rule=default_rate_limit, global_limit=global_limit
    )
    return SandboxCore(
        clock=clock,
        state=state,
        actions=actions,
        gateway=gw,
        limiter=limiter,
        identity=identity,
        interactions=InteractionRegistry(),
    )


def _ed25519_public_key() -> str:
    """A real Ed25519 public key (hex), as ``verify_key`` is on Discord."""
    key = Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


async def _serve_http(
    app: Starlette, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = None
    # Long keep-alive: under an autojumping MockClock a short one would close
    # idle connections between a test's calls.
    config.keep_alive_timeout = 24 * 3600
    config.graceful_timeout = 0

    async def _started(
        *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        await serve(app, config, task_status=task_status)  # type: ignore[arg-type]

    async with trio.open_nursery() as nursery:
        binds = await nursery.start(_started)
        task_status.started(binds[0].rstrip("/"))
