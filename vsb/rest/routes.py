"""The Discord endpoints the bot calls, with local validation.

Owns :class:`Route` (method + path template, compiled with parameters into a
path and a top-level resource), the audit-log reason encoding, and
:class:`Endpoints`, the typed methods :class:`vsb.rest.client.RestClient`
offers. Input Discord would refuse is refused here first with a
:class:`~vsb.rest.errors.ValidationError` and no request, so a bad command
option never costs an invalid request.

Interaction endpoints (Discord docs, Interactions > Receiving and Responding >
Endpoints) carry the interaction token in the path instead of the bot token:
their routes are marked ``interaction=True``, are sent without
``Authorization`` and skip the global limit ("Interaction endpoints are not
bound to the bot's Global Rate Limit", Topics > Rate Limits).
"""

from __future__ import annotations

import enum
import hashlib
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import quote

from vsb.rest.errors import ValidationError
from vsb.rest.ratelimit import RouteKey
from vsb.secret import Secret

DISCORD_EPOCH_MS: Final = 1_420_070_400_000
AUDIT_REASON_MAX: Final = 512  # characters (Discord docs, Audit Logs)
MAX_TIMEOUT: Final = timedelta(days=28)  # Guild > Modify Guild Member
BULK_DELETE_MIN: Final = 2
BULK_DELETE_MAX: Final = 100
# Bulk delete refuses messages older than 2 weeks (error 50034); keep a minute
# of slack so a message does not age past the line while the request travels.
BULK_DELETE_MAX_AGE: Final = timedelta(days=14) - timedelta(minutes=1)
MAX_DELETE_MESSAGE_SECONDS: Final = 604_800  # Guild > Create Guild Ban
MAX_CONTENT: Final = 2_000  # characters of message content
MEMBER_FIELDS: Final = frozenset(
    {
        "nick",
        "roles",
        "mute",
        "deaf",
        "channel_id",
        "communication_disabled_until",
        "flags",
    }
)


class InteractionResponseType(enum.IntEnum):
    """Interaction callback types (Discord docs, Receiving and Responding)."""

    PONG = 1
    CHANNEL_MESSAGE_WITH_SOURCE = 4
    DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE = 5
    DEFERRED_UPDATE_MESSAGE = 6
    UPDATE_MESSAGE = 7
    APPLICATION_COMMAND_AUTOCOMPLETE_RESULT = 8
    MODAL = 9
    PREMIUM_REQUIRED = 10
    LAUNCH_ACTIVITY = 12


@dataclass(frozen=True, slots=True)
class Route:
    """A method and a path template under the API base.

    Attributes:
        method: ``GET``, ``POST``, ``PUT``, ``PATCH`` or ``DELETE``.
        template: e.g. ``/channels/{channel_id}/messages``.
        interaction: the path holds an interaction token; no bot token is
            sent and the global limit does not apply.
    """

    method: str
    template: str
    interaction: bool = False

    @property
    def key(self) -> RouteKey:
        """The rate limiter's name for this route."""
        return RouteKey(self.method, self.template)

    @property
    def idempotent(self) -> bool:
        """Whether a retry after a 5xx or a lost answer is safe (RFC 9110 9.2.2)."""
        return self.method in ("GET", "HEAD", "PUT", "DELETE", "OPTIONS")

    def __str__(self) -> str:
        return f"{self.method} {self.template}"

    def compile(self, **params: int | str | Secret) -> CompiledRoute:
        """Fill in the template.

        Raises:
            KeyError: a template parameter is missing.
        """
        plain = {
            k: v.reveal() if isinstance(v, Secret) else str(v)
            for k, v in params.items()
        }
        path = self.template.format(**{k: quote(v, safe="") for k, v in plain.items()})
        return CompiledRoute(self, path, _resource(plain))


@dataclass(frozen=True, slots=True)
class CompiledRoute:
    """A route with its parameters filled in.

    ``path`` may hold an interaction token: it is kept out of ``repr`` and must
    never be logged; log ``str(route)`` (the template) instead.
    """

    route: Route
    path: str = field(repr=False)
    resource: str = field(repr=False)


def _resource(params: Mapping[str, str]) -> str:
    # Top-level resources (Discord docs, Rate Limits): channels, guilds and
    # webhooks (id + token). An interaction callback is keyed by its id.
    if "channel_id" in params:
        return f"channel:{params['channel_id']}"
    if "guild_id" in params:
        return f"guild:{params['guild_id']}"
    if "interaction_token" in params:
        digest = hashlib.sha256(params["interaction_token"].encode()).hexdigest()[:16]
        owner = params.get("application_id") or params.get("interaction_id", "")
        return f"webhook:{owner}:{digest}"
    return ""


# fmt: off
GET_GATEWAY_BOT = Route("GET", "/gateway/bot")
GET_CURRENT_APPLICATION = Route("GET", "/applications/@me")
PUT_GLOBAL_COMMANDS = Route("PUT", "/applications/{application_id}/commands")
PUT_GUILD_COMMANDS = Route("PUT", "/applications/{application_id}/guilds/{guild_id}/commands")
CREATE_INTERACTION_RESPONSE = Route("POST", "/interactions/{interaction_id}/{interaction_token}/callback", interaction=True)
EDIT_ORIGINAL_RESPONSE = Route("PATCH", "/webhooks/{application_id}/{interaction_token}/messages/@original", interaction=True)
CREATE_FOLLOWUP = Route("POST", "/webhooks/{application_id}/{interaction_token}", interaction=True)
CREATE_MESSAGE = Route("POST", "/channels/{channel_id}/messages")
GET_MESSAGE = Route("GET", "/channels/{channel_id}/messages/{message_id}")
DELETE_MESSAGE = Route("DELETE", "/channels/{channel_id}/messages/{message_id}")
BULK_DELETE_MESSAGES = Route("POST", "/channels/{channel_id}/messages/bulk-delete")
GET_MEMBER = Route("GET", "/guilds/{guild_id}/members/{user_id}")
MODIFY_MEMBER = Route("PATCH", "/guilds/{guild_id}/members/{user_id}")
ADD_MEMBER_ROLE = Route("PUT", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}")
REMOVE_MEMBER_ROLE = Route("DELETE", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}")
KICK_MEMBER = Route("DELETE", "/guilds/{guild_id}/members/{user_id}")
BAN_MEMBER = Route("PUT", "/guilds/{guild_id}/bans/{user_id}")
UNBAN_MEMBER = Route("DELETE", "/guilds/{guild_id}/bans/{user_id}")
CREATE_DM = Route("POST", "/users/@me/channels")
GET_GUILD_ROLES = Route("GET", "/guilds/{guild_id}/roles")
GET_GUILD_CHANNELS = Route("GET", "/guilds/{guild_id}/channels")
# fmt: on


def encode_audit_reason(reason: str) -> str:
    """Encode a reason for ``X-Audit-Log-Reason``.

    Discord takes up to 512 characters, percent-encoded UTF-8 (docs, Audit
    Logs). The text is cut to 512 code points, moved back so that no
    combining mark, joiner or variation selector is separated from the
    character it belongs to, then encoded.
    """
    if len(reason) > AUDIT_REASON_MAX:
        cut = AUDIT_REASON_MAX
        while cut > 0 and _extends_previous(reason[cut]):
            cut -= 1
        if cut > 0 and reason[cut - 1] == "\u200d":
            cut -= 1  # a joiner at the end would dangle
        reason = reason[:cut]
    return quote(reason, safe="")


def _extends_previous(char: str) -> bool:
    code = ord(char)
    return (
        unicodedata.combining(char) != 0
        or unicodedata.category(char) in ("Mn", "Me", "Mc")
        or char == "\u200d"  # zero-width joiner
        or 0xFE00 <= code <= 0xFE0F  # variation selectors
        or 0x1F3FB <= code <= 0x1F3FF  # skin tone modifiers
        or 0xE0020 <= code <= 0xE007F  # tag characters (flag sequences)
    )


def snowflake_time(snowflake: int) -> float:
    """Unix time (seconds) encoded in a snowflake (Discord docs, Reference)."""
    return ((snowflake >> 22) + DISCORD_EPOCH_MS) / 1000


def _iso(when: datetime) -> str:
    if when.tzinfo is None:
        raise ValidationError("timestamps must be timezone-aware (e.g. UTC)")
    return when.astimezone(UTC).isoformat()


@dataclass(frozen=True, slots=True)
class BulkDeleteResult:
    """What a bulk delete did.

    Attributes:
        deleted: message ids sent for deletion (bulk or single).
        too_old: ids left alone: older than Discord's 14-day bulk limit.
    """

    deleted: list[int]
    too_old: list[int]


class Endpoints(ABC):
    """Typed endpoint methods over one abstract :meth:`request`."""

    @abstractmethod
    async def request(
        self,
        route: CompiledRoute,
        *,
        json: Any = None,
        reason: str | None = None,
    ) -> Any:
        """Send one request through the rate limiter; see RestClient."""

    @abstractmethod
    def wall_time(self) -> float:
        """Unix time now, for age and timeout checks."""

    # -- gateway, application, commands ------------------------------------

    async def get_gateway_bot(self) -> dict[str, Any]:
        """``GET /gateway/bot``: gateway URL, shards, session start limit."""
        result: dict[str, Any] = await self.request(GET_GATEWAY_BOT.compile())
        return result

    async def get_current_application(self) -> dict[str, Any]:
        """``GET /applications/@me``."""
        result: dict[str, Any] = await self.request(GET_CURRENT_APPLICATION.compile())
        return result

    async def bulk_overwrite_global_commands(
        self, app_id: int, cmds: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """Replace every global application command with ``cmds``."""
        route = PUT_GLOBAL_COMMANDS.compile(application_id=app_id)
        result: list[dict[str, Any]] = await self.request(route, json=list(cmds))
        return result

    async def bulk_overwrite_guild_commands(
        self, app_id: int, guild_id: int, cmds: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """Replace every application command of one guild with ``cmds``."""
        route = PUT_GUILD_COMMANDS.compile(application_id=app_id, guild_id=guild_id)
        result: list[dict[str, Any]] = await self.request(route, json=list(cmds))
        return result

    # -- interactions -------------------------------------------------------

    async def create_interaction_response(
        self,
        interaction_id: int,
        token: str | Secret,
        type: int,
        data: Mapping[str, Any] | None = None,
    ) -> Any:
        """Answer an interaction (any callback type; must come within 3 s).

        Raises:
            ValidationError: ``type`` is not a callback type.
        """
        try:
            kind = InteractionResponseType(type)
        except ValueError:
            raise ValidationError(f"unknown interaction response type {type}") from None
        payload: dict[str, Any] = {"type": int(kind)}
        if data is not None:
            payload["data"] = _message_fields(data)
        route = CREATE_INTERACTION_RESPONSE.compile(
            interaction_id=interaction_id, interaction_token=token
        )
        return await self.request(route, json=payload)

    async def edit_original_response(
        self, app_id: int, token: str | Secret, **fields: Any
    ) -> dict[str, Any]:
        """Edit the first response of an interaction (``@original``)."""
        route = EDIT_ORIGINAL_RESPONSE.compile(
            application_id=app_id, interaction_token=token
        )
        result: dict[str, Any] = await self.request(route, json=_message_fields(fields))
        return result

    async def create_followup(
        self, app_id: int, token: str | Secret, **fields: Any
    ) -> dict[str, Any]:
        """Send a followup message for an interaction."""
        route = CREATE_FOLLOWUP.compile(application_id=app_id, interaction_token=token)
        result: dict[str, Any] = await self.request(route, json=_message_fields(fields))
        return result

    # -- messages -------------------------------------------------------------

    async def create_message(self, channel_id: int, **fields: Any) -> dict[str, Any]:
        """Post a message (``content``, ``embeds``, ``components``, ...)."""
        route = CREATE_MESSAGE.compile(channel_id=channel_id)
        result: dict[str, Any] = await self.request(route, json=_message_fields(fields))
        return result

    async def get_message(self, channel_id: int, message_id: int) -> dict[str, Any]:
        """Fetch one message."""
        route = GET_MESSAGE.compile(channel_id=channel_id, message_id=message_id)
        result: dict[str, Any] = await self.request(route)
        return result

    async def delete_message(
        self, channel_id: int, message_id: int, reason: str | None = None
    ) -> None:
        """Delete one message."""
        route = DELETE_MESSAGE.compile(channel_id=channel_id, message_id=message_id)
        await self.request(route, reason=reason)

    async def bulk_delete_messages(
        self, channel_id: int, message_ids: Iterable[int], reason: str | None = None
    ) -> BulkDeleteResult:
        """Delete many messages, as Discord's bulk delete allows.

        Ids older than 14 days are left out (Discord refuses the whole call
        for one of them); the rest go in calls of at most 100, and a lone
        remaining id goes through :meth:`delete_message`.

        Returns:
            which ids were deleted and which were too old.

        Raises:
            ValidationError: no message id given.
        """
        ids = list(dict.fromkeys(int(i) for i in message_ids))  # unique, in order
        if not ids:
            raise ValidationError("bulk delete needs at least one message id")
        oldest = self.wall_time() - BULK_DELETE_MAX_AGE.total_seconds()
        young = [i for i in ids if snowflake_time(i) >= oldest]
        too_old = [i for i in ids if snowflake_time(i) < oldest]
        route = BULK_DELETE_MESSAGES.compile(channel_id=channel_id)
        for start in range(0, len(young), BULK_DELETE_MAX):
            chunk = young[start : start + BULK_DELETE_MAX]
            if len(chunk) < BULK_DELETE_MIN:
                await self.delete_message(channel_id, chunk[0], reason=reason)
            else:
                payload = {"messages": [str(i) for i in chunk]}
                await self.request(route, json=payload, reason=reason)
        return BulkDeleteResult(deleted=young, too_old=too_old)

    # -- members ----------------------------------------------------------------

    async def get_member(self, guild_id: int, user_id: int) -> dict[str, Any]:
        """Fetch one guild member."""
        route = GET_MEMBER.compile(guild_id=guild_id, user_id=user_id)
        result: dict[str, Any] = await self.request(route)
        return result

    async def modify_member(
        self, guild_id: int, user_id: int, *, reason: str | None = None, **fields: Any
    ) -> dict[str, Any] | None:
        """Change a member: ``nick``, ``roles``, ``communication_disabled_until``...

        ``communication_disabled_until`` takes an aware ``datetime``, an
        ISO-8601 string or None (ends a timeout); it may be at most 28 days
        ahead.

        Raises:
            ValidationError: an unknown field, or a timeout past 28 days.
        """
        unknown = sorted(set(fields) - MEMBER_FIELDS)
        if unknown:
            raise ValidationError(f"modify_member: unknown fields {unknown}")
        if not fields:
            raise ValidationError("modify_member: nothing to change")
        payload = dict(fields)
        if "communication_disabled_until" in payload:
            until = payload["communication_disabled_until"]
            payload["communication_disabled_until"] = self._timeout_until(until)
        if "roles" in payload:
            payload["roles"] = [str(r) for r in payload["roles"]]
        route = MODIFY_MEMBER.compile(guild_id=guild_id, user_id=user_id)
        result: dict[str, Any] | None = await self.request(
            route, json=payload, reason=reason
        )
        return result

    def _timeout_until(self, until: datetime | str | None) -> str | None:
        if until is None:
            return None
        if isinstance(until, str):
            try:
                until = datetime.fromisoformat(until.replace("Z", "+00:00"))
            except ValueError:
                raise ValidationError(f"not an ISO-8601 time: {until!r}") from None
        if not isinstance(until, datetime):
            raise ValidationError("communication_disabled_until must be a datetime")
        text = _iso(until)
        ahead = until.timestamp() - self.wall_time()
        if ahead > MAX_TIMEOUT.total_seconds():
            raise ValidationError(
                f"timeout of {ahead / 86_400:.1f} days refused: Discord allows at"
                " most 28 days; no request was sent"
            )
        return text

    async def timeout_member(
        self,
        guild_id: int,
        user_id: int,
        until: datetime | None,
        reason: str | None = None,
    ) -> dict[str, Any] | None:
        """Time a member out until ``until`` (None lifts the timeout).

        Raises:
            ValidationError: ``until`` is more than 28 days ahead or naive.
        """
        return await self.modify_member(
            guild_id, user_id, reason=reason, communication_disabled_until=until
        )

    async def add_member_role(
        self, guild_id: int, user_id: int, role_id: int, reason: str | None = None
    ) -> None:
        """Give a member a role."""
        route = ADD_MEMBER_ROLE.compile(
            guild_id=guild_id, user_id=user_id, role_id=role_id
        )
        await self.request(route, reason=reason)

    async def remove_member_role(
        self, guild_id: int, user_id: int, role_id: int, reason: str | None = None
    ) -> None:
        """Take a role from a member."""
        route = REMOVE_MEMBER_ROLE.compile(
            guild_id=guild_id, user_id=user_id, role_id=role_id
        )
        await self.request(route, reason=reason)

    async def kick_member(
        self, guild_id: int, user_id: int, reason: str | None = None
    ) -> None:
        """Remove a member from a guild."""
        route = KICK_MEMBER.compile(guild_id=guild_id, user_id=user_id)
        await self.request(route, reason=reason)

    async def ban_member(
        self,
        guild_id: int,
        user_id: int,
        delete_message_seconds: int = 0,
        reason: str | None = None,
    ) -> None:
        """Ban a user, deleting up to 7 days of their messages.

        Raises:
            ValidationError: ``delete_message_seconds`` outside 0-604800.
        """
        if not 0 <= delete_message_seconds <= MAX_DELETE_MESSAGE_SECONDS:
            raise ValidationError(
                f"delete_message_seconds must be 0-{MAX_DELETE_MESSAGE_SECONDS}"
                f" (7 days), got {delete_message_seconds}"
            )
        route = BAN_MEMBER.compile(guild_id=guild_id, user_id=user_id)
        payload = {"delete_message_seconds": delete_message_seconds}
        await self.request(route, json=payload, reason=reason)

    async def unban_member(
        self, guild_id: int, user_id: int, reason: str | None = None
    ) -> None:
        """Lift a ban."""
        route = UNBAN_MEMBER.compile(guild_id=guild_id, user_id=user_id)
        await self.request(route, reason=reason)

    # -- users and guilds ---------------------------------------------------------

    async def create_dm(self, user_id: int) -> dict[str, Any]:
        """Open (or fetch) the DM channel with a user."""
        payload = {"recipient_id": str(user_id)}
        result: dict[str, Any] = await self.request(CREATE_DM.compile(), json=payload)
        return result

    async def get_guild_roles(self, guild_id: int) -> list[dict[str, Any]]:
        """List a guild's roles."""
        result: list[dict[str, Any]] = await self.request(
            GET_GUILD_ROLES.compile(guild_id=guild_id)
        )
        return result

    async def get_guild_channels(self, guild_id: int) -> list[dict[str, Any]]:
        """List a guild's channels."""
        result: list[dict[str, Any]] = await self.request(
            GET_GUILD_CHANNELS.compile(guild_id=guild_id)
        )
        return result


def _message_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    content = fields.get("content")
    if isinstance(content, str) and len(content) > MAX_CONTENT:
        raise ValidationError(
            f"message content is {len(content)} characters; Discord allows {MAX_CONTENT}"
        )
    embeds = fields.get("embeds")
    if isinstance(embeds, list) and len(embeds) > 10:
        raise ValidationError(f"{len(embeds)} embeds; Discord allows 10 per message")
    return dict(fields)
