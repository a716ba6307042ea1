"""The response state of one interaction: exactly one initial callback.

Theory of operation. Discord accepts one initial response per interaction,
within 3 seconds of the event (docs, Receiving and Responding); a second
gets 40060, a late one 10062. Two paths may want to send it: the handler's
answer and the automatic deferral the service sends at about 2 s. Each path
first *claims* the response under a ``trio.Lock``: the state flips from
``PENDING`` to ``RESPONDED`` or ``DEFERRED`` before any network call, so
only the winner calls the callback endpoint. The loser waits until the
winner's call has finished, then:

- an answer after a deferral becomes an edit of ``@original`` (after a
  component's "deferred update", a followup message);
- an answer after another answer is a followup.

The handler states its wish for an ephemeral answer *before* claiming (the
command's ``ephemeral`` flag, or ``respond(ephemeral=True)``), and the
deferral reads it *inside* the lock, after the lock's own checkpoint; so a
reply and a deferral ready at the same instant agree on flag 64 whichever
wins.

An initial callback answered 10062 (unknown interaction: the 3 s passed) is
logged and counted, never retried. The interaction token is used for 15
minutes at most; past that (or after a 10062) a public answer goes to the
channel as an ordinary bot message, and an ephemeral one, which cannot be
shown privately any more, is dropped with a log line.

States::

    PENDING --claim(answer)--> RESPONDED
    PENDING --claim(defer)---> DEFERRED
    RESPONDED / DEFERRED --initial callback refused--> FAILED
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

import trio

from vsb.models import Interaction
from vsb.rest.errors import DiscordHTTPError, RestError
from vsb.rest.routes import Endpoints, InteractionResponseType

log = logging.getLogger(__name__)

EPHEMERAL: Final = 1 << 6
UNKNOWN_INTERACTION: Final = 10062
#: Discord's interaction token lifetime (Receiving and Responding).
TOKEN_LIFETIME: Final = 15 * 60.0
#: Stop using the token a little early: a request takes time to arrive.
TOKEN_MARGIN: Final = 10.0
#: Mentions in answers ping nobody unless the handler says so.
NO_PINGS: Final[dict[str, list[str]]] = {"parse": []}

InitialSender = Callable[[int, Mapping[str, Any] | None], Awaitable[None]]
"""``await send(callback_type, data)``: delivers the initial callback."""


class ResponseState(enum.Enum):
    """Where the initial response of an interaction stands."""

    PENDING = "pending"
    DEFERRED = "deferred"
    RESPONDED = "responded"
    FAILED = "failed"


@dataclasses.dataclass
class ResponseStats:
    """Counters shared by every responder of a service."""

    initial_sent: int = 0
    auto_deferred: int = 0
    unknown_interaction: int = 0
    initial_failed: int = 0
    edits: int = 0
    followups: int = 0
    token_expired: int = 0
    channel_fallbacks: int = 0
    dropped: int = 0
    #: milliseconds from receipt to the initial callback's completion.
    latencies_ms: collections.deque[float] = dataclasses.field(
        default_factory=lambda: collections.deque(maxlen=4096)
    )

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        samples = sorted(self.latencies_ms)
        data.pop("latencies_ms")
        data["initial_latency_ms"] = {
            "count": len(samples),
            "p50": _quantile(samples, 0.50),
            "p99": _quantile(samples, 0.99),
        }
        return data


def _quantile(samples: list[float], q: float) -> float | None:
    if not samples:
        return None
    return samples[min(len(samples) - 1, int(q * len(samples)))]


def message_fields(
    content: str | None = None,
    *,
    embeds: Sequence[Mapping[str, Any]] | None = None,
    components: Sequence[Mapping[str, Any]] | None = None,
    ephemeral: bool = False,
    allowed_mentions: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The message body of an answer, edit or followup."""
    fields: dict[str, Any] = {"allowed_mentions": dict(allowed_mentions or NO_PINGS)}
    if content is not None:
        fields["content"] = content
    if embeds is not None:
        fields["embeds"] = [dict(e) for e in embeds]
    if components is not None:
        fields["components"] = [dict(c) for c in components]
    if ephemeral:
        fields["flags"] = EPHEMERAL
    return fields


class Responder:
    """Answers one interaction; see the module docstring for the rules.

    Args:
        interaction: the interaction being answered.
        rest: the REST client (``@original`` edits, followups, fallbacks).
        received_at: trio time the INTERACTION_CREATE arrived.
        ephemeral: the handler's default wish for ephemeral answers.
        defer_type: 5 (a "thinking" message) for commands and modals, 6
            (deferred update of the source message) for components.
        send_initial: how the initial callback travels; default: the REST
            callback endpoint.
        stats: counters to update.
        clock: trio's clock.
    """

    def __init__(
        self,
        interaction: Interaction,
        rest: Endpoints,
        *,
        received_at: float,
        ephemeral: bool = False,
        defer_type: int = InteractionResponseType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE,
        send_initial: InitialSender | None = None,
        stats: ResponseStats | None = None,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self.interaction = interaction
        self.ephemeral = ephemeral
        self.received_at = received_at
        self._rest = rest
        self._defer_type = defer_type
        self._send = send_initial or self._send_by_rest
        self._stats = stats if stats is not None else ResponseStats()
        self._clock = clock
        self._lock = trio.Lock()
        self._state = ResponseState.PENDING
        self._initial_done = trio.Event()
        self._deferred_ephemeral = False
        self._deferral_answered = False
        self.answered = False

    @property
    def state(self) -> ResponseState:
        return self._state

    @property
    def deferred_ephemeral(self) -> bool:
        """Whether the deferral (if any) carried flag 64."""
        return self._deferred_ephemeral

    # -- what handlers call ---------------------------------------------------

    async def respond(
        self,
        content: str | None = None,
        *,
        embeds: Sequence[Mapping[str, Any]] | None = None,
        components: Sequence[Mapping[str, Any]] | None = None,
        ephemeral: bool | None = None,
        allowed_mentions: Mapping[str, Any] | None = None,
    ) -> None:
        """Answer: the initial response, else an edit of the deferral, else a followup."""
        if ephemeral is not None:
            self.ephemeral = ephemeral  # before claiming: the deferral reads it
        self.answered = True
        fields = message_fields(
            content,
            embeds=embeds,
            components=components,
            ephemeral=self.ephemeral,
            allowed_mentions=allowed_mentions,
        )
        if await self._claim(ResponseState.RESPONDED):
            kind = InteractionResponseType.CHANNEL_MESSAGE_WITH_SOURCE
            if not await self._send_initial(kind, fields):
                await self._fallback(fields)
            return
        await self._answer_late(fields)

    async def defer(self, *, ephemeral: bool | None = None) -> bool:
        """Defer now (a handler that knows it will be slow). False if too late."""
        if ephemeral is not None:
            self.ephemeral = ephemeral
        return await self._defer()

    async def auto_defer(self) -> bool:
        """The service's deferral at ~2 s; does nothing if an answer was claimed."""
        deferred = await self._defer()
        if deferred:
            self._stats.auto_deferred += 1
        return deferred

    async def followup(
        self,
        content: str | None = None,
        *,
        embeds: Sequence[Mapping[str, Any]] | None = None,
        ephemeral: bool | None = None,
    ) -> None:
        """Send an extra message after the initial response."""
        wanted = self.ephemeral if ephemeral is None else ephemeral
        fields = message_fields(content, embeds=embeds, ephemeral=wanted)
        if self._state is ResponseState.PENDING:
            await self.respond(content, embeds=embeds, ephemeral=wanted)
            return
        await self._initial_done.wait()
        await self._followup(fields)

    async def update_message(
        self,
        content: str | None = None,
        *,
        embeds: Sequence[Mapping[str, Any]] | None = None,
        components: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Components: change the message the button was on (type 7 or an edit)."""
        self.answered = True
        fields = message_fields(content, embeds=embeds, components=components)
        if await self._claim(ResponseState.RESPONDED):
            kind = InteractionResponseType.UPDATE_MESSAGE
            if not await self._send_initial(kind, fields):
                self._dropped()  # a new channel message would not be an update
            return
        await self._initial_done.wait()
        if self._state is ResponseState.FAILED or not self._token_alive():
            self._dropped()
            return
        await self._edit_original(fields)

    async def send_modal(
        self, custom_id: str, title: str, components: Sequence[Mapping[str, Any]]
    ) -> bool:
        """Open a form (only as the initial response). False if too late."""
        self.answered = True
        if not await self._claim(ResponseState.RESPONDED):
            return False
        data = {"custom_id": custom_id, "title": title, "components": list(components)}
        return await self._send_initial(InteractionResponseType.MODAL, data)

    async def autocomplete(self, choices: Sequence[Mapping[str, Any]]) -> bool:
        """Answer an autocomplete interaction with up to 25 choices."""
        self.answered = True
        if not await self._claim(ResponseState.RESPONDED):
            return False
        kind = InteractionResponseType.APPLICATION_COMMAND_AUTOCOMPLETE_RESULT
        return await self._send_initial(kind, {"choices": list(choices)[:25]})

    # -- the state machine ------------------------------------------------------

    async def _claim(self, state: ResponseState) -> bool:
        await self._lock.acquire()
        try:
            # Invariant: the flip happens here, before any network call.
            claimed = self._state is ResponseState.PENDING
            if claimed:
                self._state = state
                if state is ResponseState.DEFERRED:
                    self._deferred_ephemeral = self.ephemeral
        finally:
            self._lock.release()
        return claimed

    async def _defer(self) -> bool:
        if not await self._claim(ResponseState.DEFERRED):
            return False
        data = None
        if (
            self._defer_type
            == InteractionResponseType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
        ):
            data = {"flags": EPHEMERAL if self._deferred_ephemeral else 0}
        # Shielded: once claimed, the deferral must not be cut off halfway,
        # or the answer would wait for a callback whose fate is unknown.
        with trio.CancelScope(shield=True):
            sent = await self._send_initial(self._defer_type, data)
        return sent

    async def _send_initial(self, kind: int, data: Mapping[str, Any] | None) -> bool:
        try:
            await self._send(kind, data)
        except DiscordHTTPError as exc:
            self._state = ResponseState.FAILED
            self._initial_refused(exc)
            return False
        except RestError as exc:
            self._state = ResponseState.FAILED
            self._stats.initial_failed += 1
            log.warning(
                "commands.initial_failed", extra=self._fields(error=type(exc).__name__)
            )
            return False
        finally:
            self._initial_done.set()
        self._stats.initial_sent += 1
        elapsed_ms = (self._clock() - self.received_at) * 1000
        self._stats.latencies_ms.append(elapsed_ms)
        return True

    def _initial_refused(self, exc: DiscordHTTPError) -> None:
        if exc.code == UNKNOWN_INTERACTION:
            # Never retried: a late callback can only be refused again.
            self._stats.unknown_interaction += 1
            elapsed_ms = round((self._clock() - self.received_at) * 1000, 1)
            log.warning(
                "commands.unknown_interaction",
                extra=self._fields(elapsed_ms=elapsed_ms, status=exc.status),
            )
            return
        self._stats.initial_failed += 1
        log.error(
            "commands.initial_failed",
            extra=self._fields(status=exc.status, error=f"code {exc.code}"),
        )

    async def _answer_late(self, fields: dict[str, Any]) -> None:
        await self._initial_done.wait()
        if self._state is ResponseState.FAILED or not self._token_alive():
            await self._fallback(fields)
            return
        deferral_open = (
            self._state is ResponseState.DEFERRED
            and not self._deferral_answered
            and self._defer_type
            == InteractionResponseType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
        )
        if not deferral_open:
            await self._followup(fields)
            return
        self._deferral_answered = True
        wants_private = bool(fields.get("flags", 0) & EPHEMERAL)
        if wants_private and not self._deferred_ephemeral:
            # The public "thinking" message cannot become ephemeral; keep the
            # answer private and close the public one without its content.
            await self._edit_original(message_fields("Answered privately."))
            await self._followup(fields)
            return
        fields.pop("flags", None)
        await self._edit_original(fields)

    async def _edit_original(self, fields: Mapping[str, Any]) -> None:
        ix = self.interaction
        try:
            await self._rest.edit_original_response(
                ix.application_id, ix.token, **fields
            )
            self._stats.edits += 1
        except RestError as exc:
            log.warning("commands.edit_failed", extra=self._fields(**_describe(exc)))

    async def _followup(self, fields: Mapping[str, Any]) -> None:
        if not self._token_alive():
            await self._fallback(dict(fields))
            return
        ix = self.interaction
        try:
            await self._rest.create_followup(ix.application_id, ix.token, **fields)
            self._stats.followups += 1
        except RestError as exc:
            log.warning(
                "commands.followup_failed", extra=self._fields(**_describe(exc))
            )

    def _token_alive(self) -> bool:
        alive = self._clock() - self.received_at < TOKEN_LIFETIME - TOKEN_MARGIN
        if not alive:
            self._stats.token_expired += 1
        return alive

    async def _fallback(self, fields: dict[str, Any]) -> None:
        """The token is unusable: post a public answer with the bot token."""
        ix = self.interaction
        if fields.get("flags", 0) & EPHEMERAL or ix.channel_id is None:
            self._dropped()
            return
        body = {k: v for k, v in fields.items() if k != "flags"}
        user_id = _user_id(ix)
        if user_id and body.get("content"):
            body["content"] = f"<@{user_id}> {body['content']}"[:2000]
        body["allowed_mentions"] = {"users": [str(user_id)]} if user_id else NO_PINGS
        try:
            await self._rest.create_message(ix.channel_id, **body)
            self._stats.channel_fallbacks += 1
        except RestError as exc:
            self._stats.dropped += 1
            log.warning(
                "commands.fallback_failed", extra=self._fields(**_describe(exc))
            )

    def _dropped(self) -> None:
        self._stats.dropped += 1
        log.warning("commands.answer_dropped", extra=self._fields())

    async def _send_by_rest(self, kind: int, data: Mapping[str, Any] | None) -> None:
        ix = self.interaction
        await self._rest.create_interaction_response(ix.id, ix.token, kind, data)

    def _fields(self, **extra: Any) -> dict[str, Any]:
        ix = self.interaction
        return {
            "interaction_id": ix.id,
            "guild_id": ix.guild_id,
            "user_id": _user_id(ix),
            **extra,
        }


def _describe(exc: RestError) -> dict[str, Any]:
    if isinstance(exc, DiscordHTTPError):
        return {"status": exc.status, "error": f"code {exc.code}"}
    return {"error": type(exc).__name__}


def _user_id(interaction: Interaction) -> int:
    if interaction.member is not None:
        return interaction.member.user.id
    return interaction.user.id if interaction.user is not None else 0
