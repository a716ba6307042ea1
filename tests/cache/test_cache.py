"""The guild cache fed from decoded gateway events."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from vsb.cache import Cache
from vsb.cache.permissions import Permissions
from vsb.models import Member, decode_event
from vsb.router import EventRouter

GUILD = 1
OWNER = 100
BOT = 9
CHAN = 50
MOD_ROLE = 11


def user(user_id: int, **kw: Any) -> dict[str, Any]:
    return {"id": str(user_id), "username": f"u{user_id}", **kw}


def member(user_id: int, *roles: int, **kw: Any) -> dict[str, Any]:
    return {
        "user": user(user_id),
        "roles": [str(r) for r in roles],
        "joined_at": "2025-01-01T00:00:00+00:00",
        **kw,
    }


def guild_payload(*members: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {
        "id": str(GUILD),
        "name": "g",
        "owner_id": str(OWNER),
        "member_count": len(members),
        "roles": [
            {"id": str(GUILD), "permissions": str(0x400 | 0x800), "position": 0},
            {"id": str(MOD_ROLE), "permissions": str(0x2), "position": 1},
        ],
        "channels": [
            {
                "id": str(CHAN),
                "type": 0,
                "permission_overwrites": [
                    {"id": str(GUILD), "type": 0, "allow": "0", "deny": "2048"}
                ],
            },
            {"id": str(CHAN + 1), "type": 4},
        ],
        "threads": [{"id": str(CHAN + 2), "type": 11, "parent_id": str(CHAN)}],
        "members": list(members),
        **kw,
    }


def message(msg_id: int, author: int = 200, **kw: Any) -> dict[str, Any]:
    return {
        "id": str(msg_id),
        "channel_id": str(CHAN),
        "guild_id": str(GUILD),
        "author": user(author),
        "member": {"roles": [str(MOD_ROLE)], "joined_at": None},
        "content": f"message {msg_id}",
        "timestamp": "2025-05-01T00:00:00+00:00",
        **kw,
    }


def feed(cache: Cache, event_type: str, payload: Any) -> None:
    cache.apply(event_type, decode_event(event_type, msgspec.json.encode(payload)))


def ready(cache: Cache, *guild_ids: int) -> None:
    feed(
        cache,
        "READY",
        {
            "v": 10,
            "user": user(BOT, bot=True),
            "session_id": "s",
            "resume_gateway_url": "ws://127.0.0.1:1/",
            "guilds": [{"id": str(g), "unavailable": True} for g in guild_ids],
        },
    )


@pytest.fixture
def cache() -> Cache:
    c = Cache(member_cap_per_guild=1000, messages_per_channel=3)
    ready(c, GUILD)
    feed(c, "GUILD_CREATE", guild_payload(member(OWNER), member(BOT), member(200)))
    return c


def test_ready_lists_guilds_as_unavailable() -> None:
    c = Cache(member_cap_per_guild=10, messages_per_channel=3)
    ready(c, 1, 2)
    assert c.user is not None and c.user.id == BOT
    assert [g.id for g in c.guilds()] == [1, 2]
    assert not any(g.available for g in c.guilds())
    assert c.stats()["guilds_unavailable"] == 2


def test_guild_create_loads_everything(cache: Cache) -> None:
    guild = cache.guild(GUILD)
    assert guild is not None and guild.available
    assert guild.owner_id == OWNER
    assert set(cache.roles(GUILD)) == {GUILD, MOD_ROLE}
    assert cache.channel(CHAN) is not None
    assert cache.channel(CHAN).guild_id == GUILD  # filled in by the cache
    assert cache.channel(CHAN + 2) is not None  # thread
    assert cache.member(GUILD, 200) is not None
    assert guild.me is not None and guild.me.user.id == BOT
    assert guild.info is not None and guild.info.members == ()
    stats = cache.stats()
    assert (stats["guilds"], stats["channels"], stats["roles"], stats["members"]) == (
        1,
        3,
        2,
        3,
    )


def test_outage_keeps_the_guild_and_removal_drops_it(cache: Cache) -> None:
    feed(cache, "MESSAGE_CREATE", message(1))
    feed(cache, "GUILD_DELETE", {"id": str(GUILD), "unavailable": True})
    guild = cache.guild(GUILD)
    assert guild is not None and not guild.available
    assert cache.member(GUILD, 200) is not None
    assert cache.channel(CHAN) is not None

    feed(cache, "GUILD_CREATE", {"id": str(GUILD), "unavailable": True})
    assert not cache.guild(GUILD).available
    feed(cache, "GUILD_CREATE", guild_payload(member(OWNER)))
    assert cache.guild(GUILD).available

    feed(cache, "GUILD_DELETE", {"id": str(GUILD)})
    assert cache.guild(GUILD) is None
    assert cache.channel(CHAN) is None
    assert cache.recent_messages(CHAN) == []


def test_guild_update_keeps_members(cache: Cache) -> None:
    feed(cache, "GUILD_UPDATE", {"id": str(GUILD), "name": "new", "owner_id": "200"})
    guild = cache.guild(GUILD)
    assert guild.info.name == "new" and guild.owner_id == 200
    assert cache.member(GUILD, 200) is not None


def test_member_add_update_remove(cache: Cache) -> None:
    guild = cache.guild(GUILD)
    feed(cache, "GUILD_MEMBER_ADD", {**member(300), "guild_id": str(GUILD)})
    assert guild.member_count == 4
    assert cache.member(GUILD, 300).roles == ()

    update = {
        **member(300, MOD_ROLE, nick="mod"),
        "guild_id": str(GUILD),
        "joined_at": None,
        "communication_disabled_until": "2030-01-01T00:00:00+00:00",
    }
    feed(cache, "GUILD_MEMBER_UPDATE", update)
    updated = cache.member(GUILD, 300)
    assert updated.roles == (MOD_ROLE,) and updated.nick == "mod"
    assert updated.joined_at is not None  # kept from the cached member
    assert updated.communication_disabled_until.year == 2030

    feed(cache, "GUILD_MEMBER_REMOVE", {"guild_id": str(GUILD), "user": user(300)})
    assert cache.member(GUILD, 300) is None
    assert guild.member_count == 3


def test_members_chunk_fills_members(cache: Cache) -> None:
    chunk = {
        "guild_id": str(GUILD),
        "members": [member(i) for i in range(1000, 1010)],
        "chunk_index": 0,
        "chunk_count": 1,
    }
    feed(cache, "GUILD_MEMBERS_CHUNK", chunk)
    assert all(cache.member(GUILD, i) is not None for i in range(1000, 1010))


def test_member_cap_evicts_least_recently_seen() -> None:
    c = Cache(member_cap_per_guild=3, messages_per_channel=3)
    ready(c, GUILD)
    feed(c, "GUILD_CREATE", guild_payload(member(BOT), member(1), member(2), member(3)))
    assert c.member(GUILD, 1) is not None  # 1 is now the most recently seen
    feed(c, "GUILD_MEMBER_ADD", {**member(4), "guild_id": str(GUILD)})
    assert c.guild(GUILD).peek_member(2) is None
    assert [c.member(GUILD, i) is not None for i in (1, 3, 4)] == [True] * 3
    # The bot's own member sits outside the cap and is never evicted.
    assert c.guild(GUILD).me is not None
    stats = c.stats()
    assert stats["members"] == 4 and stats["member_evictions"] == 1


def test_member_cap_holds_for_a_large_guild() -> None:
    c = Cache(member_cap_per_guild=500, messages_per_channel=3)
    ready(c, GUILD)
    members = [member(i) for i in range(1000, 3000)]
    feed(c, "GUILD_CREATE", guild_payload(*members, member(BOT)))
    guild = c.guild(GUILD)
    assert guild.cached_members <= 501
    assert guild.me is not None
    assert guild.peek_member(2999) is not None  # the last seen stay
    assert guild.peek_member(1000) is None
    assert guild.member_count == 2001


def test_message_author_becomes_recently_seen_member() -> None:
    c = Cache(member_cap_per_guild=2, messages_per_channel=3)
    ready(c, GUILD)
    feed(c, "GUILD_CREATE", guild_payload(member(1), member(2)))
    feed(c, "MESSAGE_CREATE", message(10, author=1))
    feed(c, "MESSAGE_CREATE", message(11, author=3))
    assert c.guild(GUILD).peek_member(2) is None
    assert c.guild(GUILD).peek_member(1) is not None
    cached = c.guild(GUILD).peek_member(3)
    assert cached is not None and cached.roles == (MOD_ROLE,)


def test_recent_messages_window_is_bounded(cache: Cache) -> None:
    for i in range(1, 6):
        feed(cache, "MESSAGE_CREATE", message(i))
    assert [m.id for m in cache.recent_messages(CHAN)] == [3, 4, 5]
    assert cache.stats()["messages"] == 3


def test_partial_message_update_merges(cache: Cache) -> None:
    feed(cache, "MESSAGE_CREATE", message(1))
    feed(
        cache,
        "MESSAGE_UPDATE",
        {"id": "1", "channel_id": str(CHAN), "embeds": [{"title": "t"}]},
    )
    cached = cache.message(CHAN, 1)
    assert cached.content == "message 1"  # untouched by the partial update
    assert cached.embeds[0].title == "t"

    edit = {
        "id": "1",
        "channel_id": str(CHAN),
        "content": "edited",
        "edited_timestamp": "2025-05-01T00:01:00+00:00",
    }
    feed(cache, "MESSAGE_UPDATE", edit)
    cached = cache.message(CHAN, 1)
    assert cached.content == "edited" and cached.edited_timestamp is not None
    assert cached.author.id == 200


def test_message_delete_keeps_a_copy_for_later_handlers(cache: Cache) -> None:
    for i in (1, 2, 3):
        feed(cache, "MESSAGE_CREATE", message(i))
    feed(cache, "MESSAGE_DELETE", {"id": "2", "channel_id": str(CHAN)})
    assert [m.id for m in cache.recent_messages(CHAN)] == [1, 3]
    assert cache.deleted_message(2).content == "message 2"

    bulk = {"ids": ["1", "3", "99"], "channel_id": str(CHAN)}
    feed(cache, "MESSAGE_DELETE_BULK", bulk)
    assert cache.recent_messages(CHAN) == []
    assert cache.deleted_message(3) is not None
    assert cache.deleted_message(99) is None


def test_roles_and_channels_follow_events(cache: Cache) -> None:
    role = {"id": "12", "permissions": "8", "position": 2}
    feed(cache, "GUILD_ROLE_CREATE", {"guild_id": str(GUILD), "role": role})
    assert cache.roles(GUILD)[12].permissions == 8
    feed(
        cache,
        "GUILD_ROLE_UPDATE",
        {"guild_id": str(GUILD), "role": {**role, "permissions": "0"}},
    )
    assert cache.roles(GUILD)[12].permissions == 0
    feed(cache, "GUILD_ROLE_DELETE", {"guild_id": str(GUILD), "role_id": "12"})
    assert 12 not in cache.roles(GUILD)

    new = {"id": "60", "type": 0, "guild_id": str(GUILD), "name": "new"}
    feed(cache, "CHANNEL_CREATE", new)
    feed(cache, "CHANNEL_UPDATE", {**new, "name": "renamed"})
    assert cache.channel(60).name == "renamed"
    feed(cache, "MESSAGE_CREATE", {**message(1), "channel_id": "60"})
    feed(cache, "CHANNEL_DELETE", new)
    assert cache.channel(60) is None and cache.recent_messages(60) == []


def test_ban_drops_the_member(cache: Cache) -> None:
    feed(cache, "GUILD_BAN_ADD", {"guild_id": str(GUILD), "user": user(200)})
    assert cache.member(GUILD, 200) is None


def test_interaction_member_is_cached_without_channel_permissions(
    cache: Cache,
) -> None:
    interaction = {
        "id": "1",
        "application_id": str(BOT),
        "type": 2,
        "token": "t",
        "guild_id": str(GUILD),
        "member": {**member(700, MOD_ROLE), "permissions": "8"},
    }
    feed(cache, "INTERACTION_CREATE", interaction)
    cached = cache.member(GUILD, 700)
    assert type(cached) is Member and cached.roles == (MOD_ROLE,)


def test_permissions_for_uses_cached_overwrites(cache: Cache) -> None:
    base = cache.permissions_for(GUILD, 200)
    assert base == Permissions.VIEW_CHANNEL | Permissions.SEND_MESSAGES
    in_channel = cache.permissions_for(GUILD, 200, CHAN)
    assert in_channel == Permissions.VIEW_CHANNEL
    in_thread = cache.permissions_for(GUILD, 200, CHAN + 2)  # parent's overwrites
    assert in_thread == Permissions.VIEW_CHANNEL
    assert cache.permissions_for(GUILD, 12345) is None
    assert cache.permissions_for(GUILD, OWNER, CHAN) & Permissions.ADMINISTRATOR


async def test_register_runs_before_default_handlers() -> None:
    c = Cache(member_cap_per_guild=10, messages_per_channel=3)
    router = EventRouter()
    seen: list[int] = []

    async def feature(shard_id: int, event: Any) -> None:
        # Registered first but at the default priority: the cache runs before.
        seen.append(len(c.recent_messages(CHAN)))

    router.register("MESSAGE_CREATE", feature)
    c.register(router)
    raw = msgspec.json.encode(message(1))
    await router.dispatch(0, "MESSAGE_CREATE", decode_event("MESSAGE_CREATE", raw))
    assert seen == [1]


async def test_get_member_fetches_evicted_members(cache: Cache) -> None:
    calls: list[tuple[int, int]] = []

    async def fetch(guild_id: int, user_id: int) -> dict[str, Any] | None:
        calls.append((guild_id, user_id))
        return member(user_id, MOD_ROLE) if user_id != 404 else None

    c = Cache(member_cap_per_guild=10, messages_per_channel=3, fetch_member=fetch)
    ready(c, GUILD)
    feed(c, "GUILD_CREATE", guild_payload(member(1)))

    assert (await c.get_member(GUILD, 1)).user.id == 1
    fetched = await c.get_member(GUILD, 555)
    assert fetched is not None and fetched.roles == (MOD_ROLE,)
    assert c.guild(GUILD).peek_member(555) == fetched  # cached now
    assert await c.get_member(GUILD, 404) is None
    assert calls == [(GUILD, 555), (GUILD, 404)]
    stats = c.stats()
    assert (stats["member_fetches"], stats["member_fetch_misses"]) == (2, 1)
    # Without a fetcher, an uncached member is simply absent.
    assert await cache.get_member(GUILD, 555) is None


async def test_request_members_uses_the_gateway_callable() -> None:
    asked: list[int] = []

    async def request(guild_id: int) -> None:
        asked.append(guild_id)

    c = Cache(member_cap_per_guild=10, messages_per_channel=3)
    assert not await c.request_members(GUILD)
    c = Cache(
        member_cap_per_guild=10, messages_per_channel=3, request_guild_members=request
    )
    assert await c.request_members(GUILD) and asked == [GUILD]


def test_stats_estimates_bytes(cache: Cache) -> None:
    feed(cache, "MESSAGE_CREATE", message(1))
    stats = cache.stats()
    assert stats["bytes"]["members"] > 100 * stats["members"] / 2
    assert stats["bytes"]["messages"] > 100
    assert stats["bytes"]["channels"] > 0 and stats["bytes"]["roles"] > 0


@pytest.mark.parametrize("bad", [0, -1])
def test_bad_sizes_are_refused(bad: int) -> None:
    with pytest.raises(ValueError):
        Cache(member_cap_per_guild=bad, messages_per_channel=3)
    with pytest.raises(ValueError):
        Cache(member_cap_per_guild=3, messages_per_channel=bad)


async def test_cached_messages_drop_member_but_handlers_keep_it() -> None:
    c = Cache(member_cap_per_guild=10, messages_per_channel=3)
    ready(c, GUILD)
    feed(c, "GUILD_CREATE", guild_payload(member(OWNER)))
    router = EventRouter()
    c.register(router)
    seen: list[Any] = []

    async def feature(shard_id: int, event: Any) -> None:
        seen.append(event)

    router.register("MESSAGE_CREATE", feature)
    raw = msgspec.json.encode(message(1, author=200))
    await router.dispatch(0, "MESSAGE_CREATE", decode_event("MESSAGE_CREATE", raw))
    assert seen[0].member is not None
    stored = c.message(CHAN, 1)
    assert stored.member is None and stored.content == "message 1"
    assert c.member(GUILD, 200).roles == (MOD_ROLE,)


def test_bot_messages_update_its_own_member(cache: Cache) -> None:
    feed(cache, "MESSAGE_CREATE", message(1, author=BOT))
    me = cache.guild(GUILD).me
    assert me is not None and me.roles == (MOD_ROLE,)
