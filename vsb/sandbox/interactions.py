"""Interactions: their lifecycle and the rules Discord applies to answers.

Owns :class:`Interaction` (one INTERACTION_CREATE and everything answered to
it) and :class:`InteractionRegistry`. Rules from Discord's "Receiving and
Responding" page: the initial response must come within 3 seconds (after
that the interaction is unknown: 10062); exactly one initial response (a
second gets 40060); the token then stays valid for 15 minutes for edits of
``@original`` and followups (after that: 401, 50027 Invalid Webhook Token).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Final

import trio

INITIAL_RESPONSE_DEADLINE: Final = 3.0
TOKEN_LIFETIME: Final = 15 * 60.0

EPHEMERAL: Final = 1 << 6
LOADING: Final = 1 << 7


class InteractionType(enum.IntEnum):
    PING = 1
    APPLICATION_COMMAND = 2
    MESSAGE_COMPONENT = 3
    APPLICATION_COMMAND_AUTOCOMPLETE = 4
    MODAL_SUBMIT = 5


class CallbackType(enum.IntEnum):
    PONG = 1
    CHANNEL_MESSAGE_WITH_SOURCE = 4
    DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE = 5
    DEFERRED_UPDATE_MESSAGE = 6
    UPDATE_MESSAGE = 7
    APPLICATION_COMMAND_AUTOCOMPLETE_RESULT = 8
    MODAL = 9


# Which callback types each interaction type accepts (Discord's table).
ALLOWED_CALLBACKS: Final[dict[int, set[int]]] = {
    InteractionType.APPLICATION_COMMAND: {4, 5, 9},
    InteractionType.MESSAGE_COMPONENT: {4, 5, 6, 7, 9},
    InteractionType.APPLICATION_COMMAND_AUTOCOMPLETE: {8},
    InteractionType.MODAL_SUBMIT: {4, 5, 6, 7},
}


@dataclass
class Interaction:
    """One interaction sent to the bot, and its answers.

    Attributes:
        payload: the INTERACTION_CREATE ``d`` as sent.
        created_at: trio time it was sent.
        callback_type / callback_data: the initial response, once made.
        original_message_id: the message the initial response made or
            updated (None for autocomplete and modals).
        followup_ids: followup messages, in order.
        responded: set when the initial response arrives.
    """

    id: int
    token: str
    type: int
    application_id: int
    guild_id: int | None
    channel_id: int
    user_id: int
    payload: dict[str, Any]
    created_at: float
    source_message_id: int | None = None
    callback_type: int | None = None
    callback_data: dict[str, Any] | None = None
    callback_at: float | None = None
    original_message_id: int | None = None
    followup_ids: list[int] = field(default_factory=list)
    responded: trio.Event = field(default_factory=trio.Event)

    @property
    def acknowledged(self) -> bool:
        return self.callback_type is not None

    @property
    def ephemeral(self) -> bool:
        """True when the initial response asked for an ephemeral message."""
        flags = int((self.callback_data or {}).get("flags") or 0)
        return bool(flags & EPHEMERAL)

    def token_expired(self, now: float) -> bool:
        return now - self.created_at > TOKEN_LIFETIME

    def deadline_passed(self, now: float) -> bool:
        return now - self.created_at > INITIAL_RESPONSE_DEADLINE

    async def wait_response(self) -> None:
        """Wait for the initial response (use under ``trio.fail_after``)."""
        await self.responded.wait()


class InteractionRegistry:
    """Interactions by id and by token."""

    def __init__(self) -> None:
        self.by_id: dict[int, Interaction] = {}
        self.by_token: dict[str, Interaction] = {}

    def add(self, interaction: Interaction) -> None:
        self.by_id[interaction.id] = interaction
        self.by_token[interaction.token] = interaction

    def __getitem__(self, interaction_id: int) -> Interaction:
        return self.by_id[interaction_id]

    def __len__(self) -> int:
        return len(self.by_id)
