"""Permission arithmetic against Discord's documented algorithm.

https://discord.com/developers/docs/topics/permissions: base permissions
(owner, @everyone + roles, ADMINISTRATOR), overwrites in the order @everyone,
roles together, member; implicit permissions; timeouts; hierarchy.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from vsb.cache.permissions import (
    ALL_PERMISSIONS,
    Permissions,
    base_permissions,
    can_assign_role,
    can_moderate,
    channel_permissions,
    member_rank,
)
from vsb.models import Channel, Member, Overwrite, Role, User

P = Permissions
GUILD = 1
OWNER = 100
USER = 200
OTHER = 300
BOT = 400
# Roles: position in brackets.
HELPER = 11  # [1]
MOD = 12  # [2]
MUTED = 13  # [1]
ADMIN = 14  # [5]
MANAGER = 15  # [4] MANAGE_ROLES
BOTROLE = 16  # [3], managed
TWIN = 17  # [2], same position as MOD, younger (higher id)

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
EVERYONE_PERMS = (
    P.VIEW_CHANNEL
    | P.SEND_MESSAGES
    | P.READ_MESSAGE_HISTORY
    | P.EMBED_LINKS
    | P.ATTACH_FILES
    | P.ADD_REACTIONS
)


@dataclasses.dataclass
class FakeGuild:
    id: int
    owner_id: int
    roles: dict[int, Role]
    members: dict[int, Member] = dataclasses.field(default_factory=dict)

    def member(self, user_id: int) -> Member | None:
        return self.members.get(user_id)


def role(role_id: int, position: int, permissions: int = 0, **kw: object) -> Role:
    return Role(id=role_id, position=position, permissions=permissions, **kw)  # type: ignore[arg-type]


def member(user_id: int, *roles: int, until: dt.datetime | None = None) -> Member:
    return Member(
        user=User(id=user_id), roles=roles, communication_disabled_until=until
    )


def make_guild(*members: Member) -> FakeGuild:
    roles = [
        role(GUILD, 0, EVERYONE_PERMS),
        role(HELPER, 1, P.MANAGE_MESSAGES),
        role(MOD, 2, P.KICK_MEMBERS | P.MODERATE_MEMBERS),
        role(MUTED, 1, 0),
        role(ADMIN, 5, P.ADMINISTRATOR),
        role(MANAGER, 4, P.MANAGE_ROLES),
        role(BOTROLE, 3, P.BAN_MEMBERS | P.MANAGE_ROLES, managed=True),
        role(TWIN, 2, P.KICK_MEMBERS),
    ]
    return FakeGuild(
        id=GUILD,
        owner_id=OWNER,
        roles={r.id: r for r in roles},
        members={m.user.id: m for m in members},
    )


def channel(
    *overwrites: Overwrite, type: int = 0, parent: int | None = None
) -> Channel:
    return Channel(
        id=500, type=type, guild_id=GUILD, parent_id=parent,
        permission_overwrites=overwrites,
    )  # fmt: skip


def everyone_ow(allow: int = 0, deny: int = 0) -> Overwrite:
    return Overwrite(id=GUILD, type=0, allow=allow, deny=deny)


def role_ow(role_id: int, allow: int = 0, deny: int = 0) -> Overwrite:
    return Overwrite(id=role_id, type=0, allow=allow, deny=deny)


def member_ow(user_id: int, allow: int = 0, deny: int = 0) -> Overwrite:
    return Overwrite(id=user_id, type=1, allow=allow, deny=deny)


FUTURE = NOW + dt.timedelta(hours=1)
PAST = NOW - dt.timedelta(hours=1)
SENDING = P.SEND_MESSAGES | P.EMBED_LINKS | P.ATTACH_FILES

# (case, member, overwrites, bits that must be set, bits that must be clear)
CHANNEL_CASES = [
    ("everyone only", member(USER), (), EVERYONE_PERMS, P.MANAGE_MESSAGES),
    ("role adds", member(USER, HELPER), (), EVERYONE_PERMS | P.MANAGE_MESSAGES, 0),
    ("unknown role ignored", member(USER, 999), (), EVERYONE_PERMS, P.KICK_MEMBERS),
    ("owner has all", member(OWNER), (everyone_ow(deny=P.VIEW_CHANNEL),),
     ALL_PERMISSIONS, 0),
    ("admin has all despite deny", member(USER, ADMIN),
     (everyone_ow(deny=ALL_PERMISSIONS), role_ow(ADMIN, deny=ALL_PERMISSIONS)),
     ALL_PERMISSIONS, 0),
    ("everyone deny", member(USER), (everyone_ow(deny=P.SEND_MESSAGES),),
     P.VIEW_CHANNEL, P.SEND_MESSAGES),
    ("everyone allow", member(USER), (everyone_ow(allow=P.MANAGE_MESSAGES),),
     P.MANAGE_MESSAGES, 0),
    ("role allow beats everyone deny", member(USER, HELPER),
     (everyone_ow(deny=P.SEND_MESSAGES), role_ow(HELPER, allow=P.SEND_MESSAGES)),
     P.SEND_MESSAGES, 0),
    ("role allow beats other role deny", member(USER, HELPER, MUTED),
     (role_ow(MUTED, deny=P.SEND_MESSAGES), role_ow(HELPER, allow=P.SEND_MESSAGES)),
     P.SEND_MESSAGES, 0),
    ("role deny beats base", member(USER, MUTED),
     (role_ow(MUTED, deny=P.SEND_MESSAGES),), P.VIEW_CHANNEL, P.SEND_MESSAGES),
    ("overwrite of a role not held", member(USER),
     (role_ow(MUTED, deny=P.SEND_MESSAGES),), P.SEND_MESSAGES, 0),
    ("member deny beats role allow", member(USER, HELPER),
     (role_ow(HELPER, allow=P.SEND_MESSAGES), member_ow(USER, deny=P.SEND_MESSAGES)),
     P.VIEW_CHANNEL, P.SEND_MESSAGES),
    ("member allow beats role deny", member(USER, MUTED),
     (role_ow(MUTED, deny=P.SEND_MESSAGES), member_ow(USER, allow=P.SEND_MESSAGES)),
     P.SEND_MESSAGES, 0),
    ("other member's overwrite", member(USER),
     (member_ow(OTHER, deny=P.SEND_MESSAGES),), P.SEND_MESSAGES, 0),
    ("no view means nothing", member(USER, HELPER),
     (everyone_ow(deny=P.VIEW_CHANNEL),), 0, ALL_PERMISSIONS),
    ("member view restores", member(USER),
     (everyone_ow(deny=P.VIEW_CHANNEL), member_ow(USER, allow=P.VIEW_CHANNEL)),
     EVERYONE_PERMS, 0),
    ("no send drops embed and attach", member(USER),
     (everyone_ow(deny=P.SEND_MESSAGES),), P.READ_MESSAGE_HISTORY, SENDING),
    ("timed out keeps view and history", member(USER, HELPER, until=FUTURE), (),
     P.VIEW_CHANNEL | P.READ_MESSAGE_HISTORY,
     P.SEND_MESSAGES | P.ADD_REACTIONS | P.MANAGE_MESSAGES),
    ("timed out without view has nothing", member(USER, until=FUTURE),
     (everyone_ow(deny=P.VIEW_CHANNEL),), 0, ALL_PERMISSIONS),
    ("expired timeout is no timeout", member(USER, until=PAST), (),
     EVERYONE_PERMS, 0),
    ("timed out admin keeps all", member(USER, ADMIN, until=FUTURE), (),
     ALL_PERMISSIONS, 0),
    ("timed out owner keeps all", member(OWNER, until=FUTURE), (),
     ALL_PERMISSIONS, 0),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "subject", "overwrites", "must", "must_not"),
    CHANNEL_CASES,
    ids=[c[0] for c in CHANNEL_CASES],
)
def test_channel_permissions(
    case: str,
    subject: Member,
    overwrites: tuple[Overwrite, ...],
    must: int,
    must_not: int,
) -> None:
    guild = make_guild(subject)
    result = channel_permissions(guild, subject, channel(*overwrites), now=NOW)
    assert result & must == must, case
    assert not result & must_not, case


def test_timeout_leaves_exactly_view_and_history() -> None:
    subject = member(USER, MOD, until=FUTURE)
    guild = make_guild(subject)
    expected = P.VIEW_CHANNEL | P.READ_MESSAGE_HISTORY
    assert channel_permissions(guild, subject, channel(), now=NOW) == expected
    assert base_permissions(guild, subject, now=NOW) == expected


def test_base_permissions_cases() -> None:
    guild = make_guild()
    assert base_permissions(guild, member(USER), now=NOW) == EVERYONE_PERMS
    assert base_permissions(guild, member(USER, MOD), now=NOW) == (
        EVERYONE_PERMS | P.KICK_MEMBERS | P.MODERATE_MEMBERS
    )
    assert base_permissions(guild, member(OWNER), now=NOW) == ALL_PERMISSIONS
    assert base_permissions(guild, member(USER, ADMIN), now=NOW) == ALL_PERMISSIONS


def test_administrator_on_everyone_gives_all() -> None:
    guild = make_guild()
    guild.roles[GUILD] = role(GUILD, 0, P.ADMINISTRATOR)
    assert base_permissions(guild, member(USER), now=NOW) == ALL_PERMISSIONS


def test_thread_follows_parent_overwrites() -> None:
    subject = member(USER)
    guild = make_guild(subject)
    parent = channel(everyone_ow(deny=P.VIEW_CHANNEL))
    thread = channel(type=11, parent=parent.id)
    assert channel_permissions(guild, subject, thread, parent=parent, now=NOW) == 0
    assert channel_permissions(guild, subject, thread, now=NOW) & P.VIEW_CHANNEL


def test_permission_names_match_discord_values() -> None:
    assert P.ADMINISTRATOR == 0x8
    assert P.VIEW_CHANNEL == 0x400
    assert P.MANAGE_ROLES == 0x10000000
    assert P.MODERATE_MEMBERS == 1 << 40
    assert P.PIN_MESSAGES == 1 << 51


# -- hierarchy -----------------------------------------------------------------

HIERARCHY_CASES = [
    ("owner on anyone", OWNER, USER, (), (ADMIN,), True),
    ("anyone on owner", USER, OWNER, (ADMIN,), (), False),
    ("higher on lower", USER, OTHER, (MOD,), (HELPER,), True),
    ("lower on higher", USER, OTHER, (HELPER,), (MOD,), False),
    ("equal top roles", USER, OTHER, (MOD, HELPER), (MOD,), False),
    ("no roles on no roles", USER, OTHER, (), (), False),
    ("role on no roles", USER, OTHER, (HELPER,), (), True),
    ("older role wins a position tie", USER, OTHER, (MOD,), (TWIN,), True),
    ("younger role loses a position tie", USER, OTHER, (TWIN,), (MOD,), False),
    ("admin bit does not beat rank", USER, OTHER, (ADMIN,), (ADMIN,), False),
    ("top role counts, not the sum", USER, OTHER, (HELPER, MUTED), (MOD,), False),
]


@pytest.mark.parametrize(
    ("case", "actor", "target", "actor_roles", "target_roles", "allowed"),
    HIERARCHY_CASES,
    ids=[c[0] for c in HIERARCHY_CASES],
)
def test_can_moderate(
    case: str,
    actor: int,
    target: int,
    actor_roles: tuple[int, ...],
    target_roles: tuple[int, ...],
    allowed: bool,
) -> None:
    guild = make_guild(member(actor, *actor_roles), member(target, *target_roles))
    assert can_moderate(guild, actor, target) is allowed, case


def test_nobody_moderates_themselves() -> None:
    guild = make_guild(member(USER, ADMIN), member(OWNER))
    assert not can_moderate(guild, USER, USER)
    assert not can_moderate(guild, OWNER, OWNER)


def test_bot_top_role_limits_the_bot() -> None:
    # The bot (top role BOTROLE [3]) cannot act on an admin [5] even when the
    # moderator (owner) could.
    guild = make_guild(member(BOT, BOTROLE), member(USER, ADMIN), member(OTHER, MOD))
    assert can_moderate(guild, OWNER, USER)
    assert not can_moderate(guild, BOT, USER)
    assert can_moderate(guild, BOT, OTHER)


def test_unknown_members_are_refused() -> None:
    guild = make_guild(member(USER, ADMIN))
    assert not can_moderate(guild, USER, OTHER)
    assert not can_moderate(guild, OTHER, USER)


def test_member_rank_defaults_to_everyone() -> None:
    guild = make_guild()
    assert member_rank(guild, member(USER)) == (0, -GUILD)
    assert member_rank(guild, member(USER, HELPER, MOD)) == (2, -MOD)


ASSIGN_CASES = [
    ("owner assigns any normal role", OWNER, (), ADMIN, True),
    ("nobody assigns @everyone", OWNER, (), GUILD, False),
    ("nobody assigns a managed role", OWNER, (), BOTROLE, False),
    ("unknown role", OWNER, (), 999, False),
    ("manager assigns a lower role", USER, (MANAGER,), MOD, True),
    ("manager cannot assign own top role", USER, (MANAGER,), MANAGER, False),
    ("manager cannot assign a higher role", USER, (MANAGER,), ADMIN, False),
    ("lower role without MANAGE_ROLES", USER, (MOD,), HELPER, False),
    ("admin implies MANAGE_ROLES", USER, (ADMIN,), MANAGER, True),
    ("bot role assigns below itself", BOT, (BOTROLE,), MOD, True),
    ("bot role cannot assign above", BOT, (BOTROLE,), MANAGER, False),
]


@pytest.mark.parametrize(
    ("case", "actor", "actor_roles", "role_id", "allowed"),
    ASSIGN_CASES,
    ids=[c[0] for c in ASSIGN_CASES],
)
def test_can_assign_role(
    case: str, actor: int, actor_roles: tuple[int, ...], role_id: int, allowed: bool
) -> None:
    guild = make_guild(member(actor, *actor_roles))
    assert can_assign_role(guild, actor, role_id, now=NOW) is allowed, case


def test_timed_out_manager_cannot_assign() -> None:
    guild = make_guild(member(USER, MANAGER, until=FUTURE))
    assert not can_assign_role(guild, USER, MOD, now=NOW)
