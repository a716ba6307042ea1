"""The sandbox's shared parts, handed to every route module and to scenarios.

Owns :class:`SandboxCore`: the clock, the state, the action log, the gateway
server, the REST limiter, the interaction registry, registered application
commands and the application's identity (token, ids, OAuth2 client).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from vsb.sandbox.actions import ActionLog
from vsb.sandbox.clock import SandboxClock
from vsb.sandbox.gateway import GatewayServer
from vsb.sandbox.interactions import InteractionRegistry
from vsb.sandbox.ratelimit import RateLimiter
from vsb.sandbox.state import State


@dataclass
class AppIdentity:
    """Who the bot is, to the emulated Discord."""

    application_id: int
    bot_token: str
    public_key: str
    client_secret: str
    redirect_uris: list[str] | None = None  # None: any redirect URI accepted


@dataclass
class SandboxCore:
    """Everything route handlers and scenarios share."""

    clock: SandboxClock
    state: State
    actions: ActionLog
    gateway: GatewayServer
    limiter: RateLimiter
    identity: AppIdentity
    interactions: InteractionRegistry
    global_commands: list[dict[str, Any]] = field(default_factory=list)
    guild_commands: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    api_base: str = ""
    oauth: Any = None  # the OAuth2 emulator's state (oauth.OAuthServer)


def new_token() -> str:
    """A random token string (interaction tokens, OAuth codes)."""
    return secrets.token_urlsafe(32)
