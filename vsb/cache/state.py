"""The bot's view of its guilds, kept from gateway events.

This module owns :class:`Cache` (guilds, channels, roles, members, recent
messages) and :class:`CachedGuild` (one guild's state, which is also the
:class:`~vsb.cache.permissions.GuildView` the permission functions read).

Theory of operation:

- The cache registers one handler per event type on the router at
  :data:`CACHE_PRIORITY` (low: it runs before feature handlers, so they see
  fresh state). Handlers are synchronous work behind an ``async def`` and
  never stop the chain. :meth:`Cache.apply` runs the same code without a
  router (tests, benchmarks).
- Guild availability: READY lists guilds as unavailable; GUILD_CREATE makes
  one available; GUILD_DELETE with ``unavailable: true`` is an outage (the
  guild stays known, its state is kept); GUILD_DELETE without it means the
  bot was removed, and the guild, its channels and messages are dropped
  (https://discord.com/developers/docs/events/gateway-events#guild-delete).
- Members: per guild, at most ``member_cap_per_guild``, packed into one
  ``bytes`` each (:mod:`vsb.cache.packed`; reading one unpacks a new, equal
  ``Member``), in a dict kept in least-to-most recently seen order (a lookup or an event moves a member to
  the end). Past the cap the least recently seen leave in a batch of about
  1% of the cap, which keeps eviction amortised O(1) without the extra
  memory of an ``OrderedDict`` node per member. The bot's own member is kept
  apart and never evicted. A member that is not cached can be fetched with
  :meth:`Cache.get_member` through the ``fetch_member`` callable (REST).
- Messages: the last ``messages_per_channel`` per channel, in a deque,
  stored without their ``member`` part (read the author's member from the
  member cache); the
  last deleted ones stay readable through :meth:`Cache.deleted_message`, so
  a mod log running after the cache can still show what was deleted.
- Everything cached is a ``gc=False`` Struct from :mod:`vsb.models` or a
  packed ``bytes``, so a 100,000-member guild adds next to nothing for the
  cyclic GC to walk.
"""

from __future__ import annotations

import logging
import sys
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Final

import msgspec

from vsb.cache import permissions as perms
from vsb.cache.packed import pack_member, unpack_member
from vsb.cache.sizes import sampled_size
from vsb.models import (
    UNSET,
    Channel,
    Guild,
    GuildBan,
    GuildMemberAdd,
    GuildMemberRemove,
    GuildMembersChunk,
    GuildMemberUpdate,
    GuildRoleDelete,
    GuildRoleEvent,
    Interaction,
    Member,
    Message,
    MessageDelete,
    MessageDeleteBulk,
    MessageUpdate,
    PartialMember,
    Ready,
    Role,
    UnavailableGuild,
    User,
)

__all__ = ["CACHE_PRIORITY", "Cache", "CachedGuild", "FetchMember"]

log = logging.getLogger(__name__)

#: Router priority of the cache's handlers: before the default 100.
CACHE_PRIORITY: Final = 10

FetchMember = Callable[[int, int], Awaitable[Any]]
"""``async fetch_member(guild_id, user_id)``: a member as REST returns it
(a dict or a :class:`~vsb.models.Member`), or None when not a member."""

# Fields of a MESSAGE_UPDATE that replace the cached message's when present.
_UPDATE_FIELDS: Final = tuple(
    name for name in MessageUpdate.__struct_fields__ if name not in ("id", "channel_id")
)


class CachedGuild:
    """One guild's cached state; satisfies :class:`~vsb.cache.permissions.GuildView`.

    Attributes:
        id: the guild id.
        info: the guild's own fields (no members, channels or roles), or None
            while only known as unavailable.
        available: False during an outage or before GUILD_CREATE.
        roles: roles by id (the @everyone role has the guild's id).
        channel_ids: ids of the guild's channels and threads.
        member_count: Discord's member count, kept by joins and leaves.
    """

    __slots__ = (
        "_bot_id",
        "_cap",
        "_evict_batch",
        "_me",
        "_members",
        "available",
        "channel_ids",
        "evictions",
        "id",
        "info",
        "member_count",
        "roles",
    )

    def __init__(self, guild_id: int, *, member_cap: int, bot_id: int) -> None:
        self.id = guild_id
        self.info: Guild | None = None
        self.available = False
        self.roles: dict[int, Role] = {}
        self.channel_ids: set[int] = set()
        self.member_count = 0
        self.evictions = 0
        self._bot_id = bot_id
        self._cap = member_cap
        self._evict_batch = max(1, member_cap // 100)
        self._me: Member | None = None
        # Invariant: ordered from least to most recently seen; values are
        # packed (vsb.cache.packed), a third of a decoded member's memory.
        self._members: dict[int, bytes] = {}

    @property
    def owner_id(self) -> int:
        """The owner's user id (0 while the guild is not yet loaded)."""
        return self.info.owner_id if self.info is not None else 0

    @property
    def me(self) -> Member | None:
        """The bot's own member in this guild."""
        return self._me

    def member(self, user_id: int) -> Member | None:
        """The cached member ``user_id``, marking it recently seen; None if absent."""
        if user_id == self._bot_id:
            return self._me
        packed = self._members.pop(user_id, None)
        if packed is None:
            return None
        self._members[user_id] = packed
        return unpack_member(packed)

    def peek_member(self, user_id: int) -> Member | None:
        """The cached member ``user_id`` without touching its recency."""
        if user_id == self._bot_id:
            return self._me
        packed = self._members.get(user_id)
        return unpack_member(packed) if packed is not None else None

    def members(self) -> Iterator[Member]:
        """The cached members, least recently seen first (the bot's apart)."""
        return map(unpack_member, list(self._members.values()))

    @property
    def cached_members(self) -> int:
        """How many members are cached, the bot's own included."""
        return len(self._members) + (self._me is not None)

    def put_member(self, member: Member) -> None:
        """Insert or replace ``member`` as the most recently seen."""
        user_id = member.user.id
        if user_id == self._bot_id:
            self._me = member
            return
        self._store(user_id, pack_member(member.user, member))

    def put_author(self, author: User, part: PartialMember) -> None:
        """Cache a message's author from its ``member`` part as most recently seen."""
        if author.id == self._bot_id:
            self._me = unpack_member(pack_member(author, part))
            return
        self._store(author.id, pack_member(author, part))

    def _store(self, user_id: int, packed: bytes) -> None:
        members = self._members
        members.pop(user_id, None)
        # A key of our own (``+ 0`` makes a new int): the event's int would pin
        # the pymalloc arenas of the whole decoded GUILD_CREATE in memory.
        members[user_id + 0] = packed
        if len(members) > self._cap:
            self._evict()

    def put_members(self, members: tuple[Member, ...]) -> None:
        """Insert many members at once (GUILD_CREATE, chunks)."""
        for member in members:
            self.put_member(member)

    def remove_member(self, user_id: int) -> Member | None:
        """Forget ``user_id``; return what was cached."""
        if user_id == self._bot_id:
            me, self._me = self._me, None
            return me
        packed = self._members.pop(user_id, None)
        return unpack_member(packed) if packed is not None else None

    def _evict(self) -> None:
        # One pass from the front takes a whole batch: removing from the
        # front one at a time would rescan the holes left by earlier pops.
        members = self._members
        excess = len(members) - self._cap
        count = max(excess, min(self._evict_batch, len(members)))
        victims = []
        for user_id in members:
            victims.append(user_id)
            if len(victims) >= count:
                break
        for user_id in victims:
            del members[user_id]
        self.evictions += len(victims)

    def load(self, guild: Guild) -> None:
        """Take the full state of a GUILD_CREATE."""
        self.info = msgspec.structs.replace(
            guild, roles=(), channels=(), threads=(), members=()
        )
        self.available = True
        self.roles = {role.id: role for role in guild.roles}
        self.member_count = guild.member_count
        self.put_members(guild.members)


class Cache:
    """Guilds, channels, roles, members and recent messages from the gateway.

    Args:
        member_cap_per_guild: most members cached per guild (the bot's own
            member is kept on top of it).
        messages_per_channel: recent messages kept per channel.
        fetch_member: ``async (guild_id, user_id)`` returning a member from
            REST (dict or Member) or None; used by :meth:`get_member`.
        request_guild_members: ``async (guild_id)`` asking the gateway for a
            guild's members (REQUEST_GUILD_MEMBERS, op 8); the answer arrives
            as GUILD_MEMBERS_CHUNK events. Used by :meth:`request_members`.
        deleted_messages_kept: deleted messages kept for
            :meth:`deleted_message`.

    Raises:
        ValueError: a size below 1.
    """

    def __init__(
        self,
        *,
        member_cap_per_guild: int,
        messages_per_channel: int,
        fetch_member: FetchMember | None = None,
        request_guild_members: Callable[[int], Awaitable[object]] | None = None,
        deleted_messages_kept: int = 200,
    ) -> None:
        if min(member_cap_per_guild, messages_per_channel, deleted_messages_kept) < 1:
            raise ValueError("cache sizes must be at least 1")
        self.member_cap_per_guild = member_cap_per_guild
        self.messages_per_channel = messages_per_channel
        self._fetch_member = fetch_member
        self._request_guild_members = request_guild_members
        self._deleted_kept = deleted_messages_kept
        self.user: User | None = None
        self._guilds: dict[int, CachedGuild] = {}
        self._channels: dict[int, Channel] = {}
        self._messages: dict[int, deque[Message]] = {}
        self._deleted: OrderedDict[int, Message] = OrderedDict()
        self._counters = {"member_fetches": 0, "member_fetch_misses": 0}
        # Known limitation: THREAD_LIST_SYNC and THREAD_MEMBERS_UPDATE are not
        # handled; a thread listed only there is unknown until it is updated
        # or the guild is created again.
        self._handlers: dict[str, Callable[[Any], None]] = {
            "READY": self._on_ready,
            "GUILD_CREATE": self._on_guild_create,
            "GUILD_UPDATE": self._on_guild_update,
            "GUILD_DELETE": self._on_guild_delete,
            "GUILD_MEMBER_ADD": self._on_member_add,
            "GUILD_MEMBER_UPDATE": self._on_member_update,
            "GUILD_MEMBER_REMOVE": self._on_member_remove,
            "GUILD_MEMBERS_CHUNK": self._on_members_chunk,
            "GUILD_ROLE_CREATE": self._on_role,
            "GUILD_ROLE_UPDATE": self._on_role,
            "GUILD_ROLE_DELETE": self._on_role_delete,
            "CHANNEL_CREATE": self._on_channel,
            "CHANNEL_UPDATE": self._on_channel,
            "CHANNEL_DELETE": self._on_channel_delete,
            "THREAD_CREATE": self._on_channel,
            "THREAD_UPDATE": self._on_channel,
            "THREAD_DELETE": self._on_channel_delete,
            "MESSAGE_CREATE": self._on_message_create,
            "MESSAGE_UPDATE": self._on_message_update,
            "MESSAGE_DELETE": self._on_message_delete,
            "MESSAGE_DELETE_BULK": self._on_message_delete_bulk,
            "GUILD_BAN_ADD": self._on_ban_add,
            "INTERACTION_CREATE": self._on_interaction,
        }

    # -- wiring -------------------------------------------------------------

    def register(self, router: Any, *, priority: int = CACHE_PRIORITY) -> None:
        """Register the cache's handlers on ``router`` (a ``vsb.router.EventRouter``)."""
        for event_type, handler in self._handlers.items():
            router.register(event_type, _as_async(handler), priority=priority)

    def apply(self, event_type: str, event: Any) -> None:
        """Update the cache from one decoded event (what the handlers do)."""
        handler = self._handlers.get(event_type)
        if handler is not None:
            handler(event)

    # -- queries --------------------------------------------------------------

    def guild(self, guild_id: int) -> CachedGuild | None:
        """The guild ``guild_id`` if known (check ``available``)."""
        return self._guilds.get(guild_id)

    def guilds(self) -> list[CachedGuild]:
        """Every known guild, available or not."""
        return list(self._guilds.values())

    def member(self, guild_id: int, user_id: int) -> Member | None:
        """A cached member, or None (see :meth:`get_member` to fetch)."""
        guild = self._guilds.get(guild_id)
        return guild.member(user_id) if guild is not None else None

    def roles(self, guild_id: int) -> dict[int, Role]:
        """Roles of ``guild_id`` by id (empty if unknown). Do not mutate."""
        guild = self._guilds.get(guild_id)
        return guild.roles if guild is not None else {}

    def channel(self, channel_id: int) -> Channel | None:
        """A cached guild channel or thread."""
        return self._channels.get(channel_id)

    def recent_messages(self, channel_id: int) -> list[Message]:
        """The cached recent messages of a channel, oldest first."""
        return list(self._messages.get(channel_id, ()))

    def message(self, channel_id: int, message_id: int) -> Message | None:
        """A message from a channel's recent window, if still there."""
        for message in reversed(self._messages.get(channel_id, ())):
            if message.id == message_id:
                return message
        return None

    def deleted_message(self, message_id: int) -> Message | None:
        """A recently deleted message that was in the window when deleted."""
        return self._deleted.get(message_id)

    def permissions_for(
        self, guild_id: int, user_id: int, channel_id: int | None = None
    ) -> perms.Permissions | None:
        """Permissions of a cached member, in a channel if given.

        Returns None when the guild, member or channel is not cached.
        """
        guild = self._guilds.get(guild_id)
        member = guild.member(user_id) if guild is not None else None
        if guild is None or member is None:
            return None
        if channel_id is None:
            return perms.base_permissions(guild, member)
        channel = self._channels.get(channel_id)
        if channel is None:
            return None
        parent = self._channels.get(channel.parent_id or 0)
        return perms.channel_permissions(guild, member, channel, parent=parent)

    async def get_member(self, guild_id: int, user_id: int) -> Member | None:
        """A member from the cache, else fetched through ``fetch_member`` and cached.

        Returns None when the member is not cached and either no fetcher was
        given or it reports no such member. Errors of the fetcher propagate.
        """
        guild = self._guilds.get(guild_id)
        cached = guild.member(user_id) if guild is not None else None
        if cached is not None or self._fetch_member is None:
            return cached

        self._counters["member_fetches"] += 1
        data = await self._fetch_member(guild_id, user_id)
        if data is None:
            self._counters["member_fetch_misses"] += 1
            return None
        member = data if isinstance(data, Member) else _convert_member(data)
        guild = self._guilds.get(guild_id)
        if guild is not None:
            guild.put_member(member)
        return member

    async def request_members(self, guild_id: int) -> bool:
        """Ask the gateway for all members of ``guild_id`` (answered by chunks).

        Returns False when no ``request_guild_members`` callable was given.
        """
        if self._request_guild_members is None:
            return False
        await self._request_guild_members(guild_id)
        return True

    # -- guild events --------------------------------------------------------

    def _guild_state(self, guild_id: int) -> CachedGuild:
        guild = self._guilds.get(guild_id)
        if guild is None:
            bot_id = self.user.id if self.user is not None else 0
            guild = CachedGuild(
                guild_id, member_cap=self.member_cap_per_guild, bot_id=bot_id
            )
            self._guilds[guild_id] = guild
        return guild

    def _on_ready(self, event: Ready) -> None:
        self.user = event.user
        for entry in event.guilds:
            guild = self._guild_state(entry.id)
            guild._bot_id = event.user.id
            guild.available = False

    def _on_guild_create(self, event: Guild) -> None:
        guild = self._guild_state(event.id)
        if event.unavailable:
            guild.available = False
            return
        self._drop_channels(guild)
        guild.load(event)
        for channel in (*event.channels, *event.threads):
            # GUILD_CREATE leaves guild_id out of its channels.
            channel.guild_id = event.id
            self._channels[channel.id] = channel
            guild.channel_ids.add(channel.id)

    def _on_guild_update(self, event: Guild) -> None:
        guild = self._guilds.get(event.id)
        if guild is None:
            return
        guild.info = msgspec.structs.replace(
            event, roles=(), channels=(), threads=(), members=()
        )
        if event.roles:
            guild.roles = {role.id: role for role in event.roles}

    def _on_guild_delete(self, event: UnavailableGuild) -> None:
        guild = self._guilds.get(event.id)
        if event.unavailable:
            # An outage: keep what we know, the guild comes back later.
            self._guild_state(event.id).available = False
            log.warning("cache.guild_unavailable", extra={"guild_id": event.id})
            return
        if guild is not None:
            self._drop_channels(guild)
            del self._guilds[event.id]
        log.info("cache.guild_removed", extra={"guild_id": event.id})

    def _drop_channels(self, guild: CachedGuild) -> None:
        for channel_id in guild.channel_ids:
            self._channels.pop(channel_id, None)
            self._messages.pop(channel_id, None)
        guild.channel_ids.clear()

    # -- members and roles ---------------------------------------------------

    def _on_member_add(self, event: GuildMemberAdd) -> None:
        guild = self._guilds.get(event.guild_id)
        if guild is not None:
            guild.member_count += 1
            guild.put_member(event)

    def _on_member_update(self, event: GuildMemberUpdate) -> None:
        guild = self._guilds.get(event.guild_id)
        if guild is None:
            return
        old = guild.peek_member(event.user.id)
        if event.joined_at is None and old is not None:
            event = msgspec.structs.replace(event, joined_at=old.joined_at)
        guild.put_member(event)

    def _on_member_remove(self, event: GuildMemberRemove) -> None:
        guild = self._guilds.get(event.guild_id)
        if guild is not None:
            guild.member_count = max(0, guild.member_count - 1)
            guild.remove_member(event.user.id)

    def _on_members_chunk(self, event: GuildMembersChunk) -> None:
        guild = self._guilds.get(event.guild_id)
        if guild is not None:
            guild.put_members(event.members)

    def _on_ban_add(self, event: GuildBan) -> None:
        guild = self._guilds.get(event.guild_id)
        if guild is not None:
            guild.remove_member(event.user.id)

    def _on_role(self, event: GuildRoleEvent) -> None:
        guild = self._guilds.get(event.guild_id)
        if guild is not None:
            guild.roles[event.role.id] = event.role

    def _on_role_delete(self, event: GuildRoleDelete) -> None:
        # Members may still list the role id; every reader skips unknown ids.
        guild = self._guilds.get(event.guild_id)
        if guild is not None:
            guild.roles.pop(event.role_id, None)

    def _on_interaction(self, event: Interaction) -> None:
        # The invoking member is fresh data: cache it. Packing leaves out the
        # channel-specific ``permissions`` of the interaction.
        if event.guild_id is None or event.member is None:
            return
        guild = self._guilds.get(event.guild_id)
        if guild is not None:
            guild.put_member(event.member)

    # -- channels and messages -------------------------------------------------

    def _on_channel(self, event: Channel) -> None:
        if event.guild_id is None:
            return
        guild = self._guilds.get(event.guild_id)
        if guild is not None:
            self._channels[event.id] = event
            guild.channel_ids.add(event.id)

    def _on_channel_delete(self, event: Channel) -> None:
        self._channels.pop(event.id, None)
        self._messages.pop(event.id, None)
        guild = self._guilds.get(event.guild_id or 0)
        if guild is not None:
            guild.channel_ids.discard(event.id)

    def _on_message_create(self, event: Message) -> None:
        guild = self._guilds.get(event.guild_id or 0)
        channel = self._channels.get(event.channel_id)
        channel_id = channel.id if channel is not None else event.channel_id

        # Store a copy without ``member`` (the member cache has it) and with
        # the cache's own id objects: a cached message holds ~30% less.
        # Handlers after the cache still get the event as decoded.
        stored = msgspec.structs.replace(
            event,
            member=None,
            channel_id=channel_id,
            guild_id=guild.id if guild is not None else event.guild_id,
        )
        window = self._messages.get(channel_id)
        if window is None:
            # Known limitation: windows of DM channels are never dropped; a
            # bot DMed by many users holds a few messages for each.
            window = deque(maxlen=self.messages_per_channel)
            self._messages[channel_id] = window
        window.append(stored)

        # A message's author is a member seen just now (webhooks are not).
        if guild is not None and event.member is not None and not event.webhook_id:
            guild.put_author(event.author, event.member)

    def _on_message_update(self, event: MessageUpdate) -> None:
        window = self._messages.get(event.channel_id)
        if not window:
            return
        for index in range(len(window) - 1, -1, -1):
            old = window[index]
            if old.id == event.id:
                changes = {}
                for name in _UPDATE_FIELDS:
                    value = getattr(event, name)
                    if value is not UNSET:
                        changes[name] = value
                window[index] = msgspec.structs.replace(old, **changes)
                return

    def _on_message_delete(self, event: MessageDelete) -> None:
        self._forget_messages(event.channel_id, {event.id})

    def _on_message_delete_bulk(self, event: MessageDeleteBulk) -> None:
        self._forget_messages(event.channel_id, set(event.ids))

    def _forget_messages(self, channel_id: int, ids: set[int]) -> None:
        window = self._messages.get(channel_id)
        if not window:
            return
        kept = [message for message in window if message.id not in ids]
        for message in window:
            if message.id in ids:
                self._deleted[message.id] = message
        while len(self._deleted) > self._deleted_kept:
            self._deleted.popitem(last=False)
        window.clear()
        window.extend(kept)

    # -- stats -------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counts and estimated bytes per kind, as plain data.

        Byte figures are estimates from a sample of each kind (see
        :mod:`vsb.cache.sizes`); they cost a few milliseconds.
        """
        guilds = self._guilds.values()
        member_count = sum(g.cached_members for g in guilds)
        role_count = sum(len(g.roles) for g in guilds)
        message_count = sum(len(w) for w in self._messages.values())
        counts = {
            "guilds": len(self._guilds),
            "guilds_unavailable": sum(not g.available for g in guilds),
            "channels": len(self._channels),
            "roles": role_count,
            "members": member_count,
            "messages": message_count,
            "deleted_messages": len(self._deleted),
        }
        return {
            **counts,
            "member_evictions": sum(g.evictions for g in guilds),
            **self._counters,
            "bytes": self._byte_estimates(counts),
        }

    def _byte_estimates(self, counts: dict[str, int]) -> dict[str, int]:
        guilds = list(self._guilds.values())
        packed = (m for g in guilds for m in g._members.values())
        keys = (k for g in guilds for k in g._members)
        tables = sum(sys.getsizeof(g._members) for g in guilds)
        messages = (m for w in self._messages.values() for m in w)
        roles = (r for g in guilds for r in g.roles.values())
        return {
            "members": sampled_size(packed, counts["members"])
            + sampled_size(keys, counts["members"])
            + tables,
            "messages": sampled_size(messages, counts["messages"]),
            "channels": sampled_size(self._channels.values(), counts["channels"]),
            "roles": sampled_size(roles, counts["roles"]),
        }


def _as_async(handler: Callable[[Any], None]) -> Callable[[int, Any], Awaitable[None]]:
    async def on_event(shard_id: int, event: Any) -> None:
        handler(event)

    on_event.__qualname__ = f"Cache.{handler.__name__}"
    return on_event


def _convert_member(data: Any) -> Member:
    """A REST member dict (string snowflakes) as a Member."""
    return msgspec.convert(data, Member, strict=False)
