"""The emulated world: users, guilds, roles, channels, members, messages.

Owns the in-memory objects the REST routes and the gateway read and change,
their Discord JSON shapes (snowflakes as strings, as Discord sends them), and
the seeding helpers tests use to build a scene. :meth:`State.seed_default`
builds the default guild described in ``docs/sandbox.md``; its ids are in
:attr:`State.default`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vsb.sandbox.clock import SandboxClock, snowflake_unix
from vsb.sandbox.permissions import DEFAULT_EVERYONE, Perm

Json = dict[str, Any]

# Channel types from Discord's "Channel Types" table.
GUILD_TEXT = 0
DM = 1
GUILD_CATEGORY = 4


@dataclass
class User:
    """A Discord user (bots included)."""

    id: int
    username: str
    global_name: str | None = None
    bot: bool = False
    email: str | None = None
    verified: bool = True

    def to_json(self) -> Json:
        data: Json = {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
        }
        if self.bot:
            data["bot"] = True
        return data


@dataclass
class Role:
    """A guild role; the @everyone role's id equals the guild id."""

    id: int
    name: str
    position: int
    permissions: int
    color: int = 0
    hoist: bool = False
    managed: bool = False
    mentionable: bool = False

    def to_json(self) -> Json:
        return {
            "id": str(self.id),
            "name": self.name,
            "color": self.color,
            "hoist": self.hoist,
            "position": self.position,
            "permissions": str(self.permissions),
            "managed": self.managed,
            "mentionable": self.mentionable,
            "flags": 0,
        }


@dataclass
class Channel:
    """A guild channel or a DM channel."""

    id: int
    type: int
    name: str | None = None
    guild_id: int | None = None
    position: int = 0
    parent_id: int | None = None
    overwrites: list[dict[str, int]] = field(default_factory=list)
    recipients: list[int] = field(default_factory=list)
    last_message_id: int | None = None

    def to_json(self, state: State | None = None) -> Json:
        data: Json = {"id": str(self.id), "type": self.type}
        if self.guild_id is not None:
            data.update(
                guild_id=str(self.guild_id),
                name=self.name,
                position=self.position,
                parent_id=None if self.parent_id is None else str(self.parent_id),
                nsfw=False,
                permission_overwrites=[
                    {
                        "id": str(ow["id"]),
                        "type": ow.get("type", 0),
                        "allow": str(ow["allow"]),
                        "deny": str(ow["deny"]),
                    }
                    for ow in self.overwrites
                ],
            )
        else:
            users = [] if state is None else [state.users[u] for u in self.recipients]
            data["recipients"] = [u.to_json() for u in users]
        data["last_message_id"] = (
            None if self.last_message_id is None else str(self.last_message_id)
        )
        return data


@dataclass
class Member:
    """A user's membership of one guild."""

    user_id: int
    guild_id: int
    roles: list[int] = field(default_factory=list)
    nick: str | None = None
    joined_at: str = ""
    communication_disabled_until: float | None = None  # Unix seconds
    pending: bool = False

    def timed_out(self, now_unix: float) -> bool:
        until = self.communication_disabled_until
        return until is not None and until > now_unix

    def to_json(self, state: State, *, with_user: bool = True) -> Json:
        until = self.communication_disabled_until
        data: Json = {
            "roles": [str(r) for r in self.roles],
            "nick": self.nick,
            "avatar": None,
            "joined_at": self.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": self.pending,
            "communication_disabled_until": (
                None if until is None else state.clock.iso(until)
            ),
        }
        if with_user:
            data["user"] = state.users[self.user_id].to_json()
        return data


@dataclass
class Message:
    """A message in a guild or DM channel."""

    id: int
    channel_id: int
    author_id: int
    content: str
    guild_id: int | None = None
    embeds: list[Json] = field(default_factory=list)
    components: list[Json] = field(default_factory=list)
    attachments: list[Json] = field(default_factory=list)
    mentions: list[int] = field(default_factory=list)
    flags: int = 0
    edited_at: float | None = None
    webhook_id: int | None = None
    interaction_id: int | None = None
    message_type: int = 0

    def to_json(self, state: State) -> Json:
        data: Json = {
            "id": str(self.id),
            "type": self.message_type,
            "channel_id": str(self.channel_id),
            "author": state.users[self.author_id].to_json(),
            "content": self.content,
            "timestamp": state.clock.iso(snowflake_unix(self.id)),
            "edited_timestamp": (
                None if self.edited_at is None else state.clock.iso(self.edited_at)
            ),
            "tts": False,
            "mention_everyone": False,
            "mentions": [state.users[u].to_json() for u in self.mentions],
            "mention_roles": [],
            "attachments": self.attachments,
            "embeds": self.embeds,
            "components": self.components,
            "pinned": False,
            "flags": self.flags,
        }
        if self.webhook_id is not None:
            data["webhook_id"] = str(self.webhook_id)
        if self.guild_id is not None:
            data["guild_id"] = str(self.guild_id)
            member = state.guilds[self.guild_id].members.get(self.author_id)
            if member is not None:
                data["member"] = member.to_json(state, with_user=False)
        return data


@dataclass
class Guild:
    """A guild with its roles, channels, members and bans."""

    id: int
    name: str
    owner_id: int
    roles: dict[int, Role] = field(default_factory=dict)
    channels: dict[int, Channel] = field(default_factory=dict)
    members: dict[int, Member] = field(default_factory=dict)
    bans: dict[int, str | None] = field(default_factory=dict)  # user id -> reason
    unavailable: bool = False

    def to_json(self) -> Json:
        """The REST guild object (no members or channels)."""
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "owner_id": str(self.owner_id),
            "roles": [r.to_json() for r in self.roles.values()],
            "emojis": [],
            "features": [],
            "verification_level": 1,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "system_channel_id": None,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "nsfw_level": 0,
        }


@dataclass(frozen=True)
class DefaultIds:
    """Ids of the default scene built by :meth:`State.seed_default`."""

    guild_id: int
    owner_id: int
    moderator_id: int
    member_id: int
    oauth_user_id: int
    bot_id: int
    everyone_role_id: int
    admin_role_id: int
    moderator_role_id: int
    bot_role_id: int
    verified_role_id: int
    general_id: int
    mod_log_id: int
    verify_id: int


class State:
    """Everything the emulated Discord knows.

    Args:
        clock: the sandbox clock (snowflakes and timestamps).
        bot_user: the bot's own user.
    """

    def __init__(self, clock: SandboxClock, bot_user: User) -> None:
        self.clock = clock
        self.bot_user = bot_user
        self.users: dict[int, User] = {bot_user.id: bot_user}
        self.guilds: dict[int, Guild] = {}
        self.channels: dict[int, Channel] = {}
        self.messages: dict[int, Message] = {}
        self.dm_channels: dict[int, int] = {}  # user id -> DM channel id
        self.oauth_user_id: int | None = None
        self.default: DefaultIds | None = None
        #: user ids that refuse DMs (create message answers 50007).
        self.dms_closed: set[int] = set()

    # -- seeding -------------------------------------------------------------

    def add_user(self, username: str, *, bot: bool = False, **fields: Any) -> User:
        """Create a user with a fresh snowflake."""
        user = User(id=self.clock.snowflake(), username=username, bot=bot, **fields)
        self.users[user.id] = user
        return user

    def add_guild(self, name: str, owner_id: int) -> Guild:
        """Create a guild with its @everyone role and the owner as member."""
        guild_id = self.clock.snowflake()
        guild = Guild(id=guild_id, name=name, owner_id=owner_id)
        guild.roles[guild_id] = Role(guild_id, "@everyone", 0, int(DEFAULT_EVERYONE))
        self.guilds[guild_id] = guild
        self.add_member(guild_id, owner_id)
        return guild

    def add_role(
        self, guild_id: int, name: str, *, position: int, permissions: int = 0
    ) -> Role:
        """Create a role at ``position`` (higher sits above)."""
        role = Role(self.clock.snowflake(), name, position, permissions)
        self.guilds[guild_id].roles[role.id] = role
        return role

    def add_channel(
        self,
        guild_id: int,
        name: str,
        *,
        type: int = GUILD_TEXT,
        overwrites: list[dict[str, int]] | None = None,
    ) -> Channel:
        """Create a guild channel; overwrites as ``{id, type, allow, deny}``."""
        guild = self.guilds[guild_id]
        channel = Channel(
            id=self.clock.snowflake(),
            type=type,
            name=name,
            guild_id=guild_id,
            position=len(guild.channels),
            overwrites=list(overwrites or []),
        )
        guild.channels[channel.id] = channel
        self.channels[channel.id] = channel
        return channel

    def add_member(
        self, guild_id: int, user_id: int, roles: list[int] | None = None
    ) -> Member:
        """Make a user a member of a guild."""
        member = Member(
            user_id=user_id,
            guild_id=guild_id,
            roles=list(roles or []),
            joined_at=self.clock.iso(),
        )
        self.guilds[guild_id].members[user_id] = member
        return member

    def add_members(self, guild_id: int, count: int, prefix: str = "user") -> None:
        """Add ``count`` plain members (to build a large guild)."""
        for index in range(count):
            user = self.add_user(f"{prefix}{index}")
            self.add_member(guild_id, user.id)

    def seed_default(self) -> DefaultIds:
        """Build the default scene (see ``docs/sandbox.md``) and return its ids."""
        owner = self.add_user("owner", global_name="Guild Owner")
        moderator = self.add_user("moderator", global_name="Mod")
        member = self.add_user("member", global_name="Member")
        oauth_user = self.add_user(
            "verifier", global_name="Verifier", email="verifier@example.test"
        )
        guild = self.add_guild("Sandbox Guild", owner.id)
        g = guild.id
        admin = self.add_role(
            g, "Admin", position=4, permissions=int(Perm.ADMINISTRATOR)
        )
        bot_role = self.add_role(g, "VSB", position=3, permissions=int(_BOT_PERMS))
        mod = self.add_role(g, "Moderator", position=2, permissions=int(_MOD_PERMS))
        verified = self.add_role(g, "Verified", position=1)
        bot_role.managed = True
        self.add_member(g, self.bot_user.id, [bot_role.id])
        self.add_member(g, moderator.id, [mod.id])
        self.add_member(g, member.id)
        self.add_member(g, oauth_user.id)
        general = self.add_channel(g, "general")
        mod_log = self.add_channel(
            g,
            "mod-log",
            overwrites=[
                {"id": g, "type": 0, "allow": 0, "deny": int(Perm.VIEW_CHANNEL)},
                {
                    "id": bot_role.id,
                    "type": 0,
                    "allow": int(Perm.VIEW_CHANNEL),
                    "deny": 0,
                },
                {"id": mod.id, "type": 0, "allow": int(Perm.VIEW_CHANNEL), "deny": 0},
            ],
        )
        verify = self.add_channel(g, "verify")
        self.oauth_user_id = oauth_user.id
        self.default = DefaultIds(
            guild_id=g,
            owner_id=owner.id,
            moderator_id=moderator.id,
            member_id=member.id,
            oauth_user_id=oauth_user.id,
            bot_id=self.bot_user.id,
            everyone_role_id=g,
            admin_role_id=admin.id,
            moderator_role_id=mod.id,
            bot_role_id=bot_role.id,
            verified_role_id=verified.id,
            general_id=general.id,
            mod_log_id=mod_log.id,
            verify_id=verify.id,
        )
        return self.default

    # -- lookups -------------------------------------------------------------

    def guild_of_channel(self, channel_id: int) -> Guild | None:
        channel = self.channels.get(channel_id)
        if channel is None or channel.guild_id is None:
            return None
        return self.guilds[channel.guild_id]

    def dm_channel(self, user_id: int) -> Channel:
        """The DM channel between the bot and a user, created on first use."""
        channel_id = self.dm_channels.get(user_id)
        if channel_id is not None:
            return self.channels[channel_id]
        channel = Channel(id=self.clock.snowflake(), type=DM, recipients=[user_id])
        self.channels[channel.id] = channel
        self.dm_channels[user_id] = channel.id
        return channel

    def add_message(
        self, channel_id: int, author_id: int, content: str, **fields: Any
    ) -> Message:
        """Store a new message (no gateway event; see the scenario API)."""
        channel = self.channels[channel_id]
        message = Message(
            id=self.clock.snowflake(),
            channel_id=channel_id,
            author_id=author_id,
            content=content,
            guild_id=channel.guild_id,
            **fields,
        )
        self.messages[message.id] = message
        channel.last_message_id = message.id
        return message

    def guild_create_json(self, guild: Guild, *, large_threshold: int = 50) -> Json:
        """The GUILD_CREATE payload for one guild (Discord's extra fields)."""
        data = guild.to_json()
        large = len(guild.members) > large_threshold
        members = list(guild.members.values())
        if large:
            # Large guilds send only the bot's own member (Discord sends online
            # members too; the sandbox has no presences).
            members = [m for m in members if m.user_id == self.bot_user.id]
        data.update(
            joined_at=self.clock.iso(),
            large=large,
            unavailable=False,
            member_count=len(guild.members),
            members=[m.to_json(self) for m in members],
            channels=[c.to_json() for c in guild.channels.values()],
            threads=[],
            presences=[],
            voice_states=[],
            stage_instances=[],
            guild_scheduled_events=[],
            soundboard_sounds=[],
        )
        return data


_BOT_PERMS = (
    Perm.KICK_MEMBERS
    | Perm.BAN_MEMBERS
    | Perm.MODERATE_MEMBERS
    | Perm.MANAGE_ROLES
    | Perm.MANAGE_MESSAGES
    | Perm.MANAGE_NICKNAMES
    | Perm.VIEW_CHANNEL
    | Perm.SEND_MESSAGES
    | Perm.EMBED_LINKS
    | Perm.READ_MESSAGE_HISTORY
    | Perm.VIEW_AUDIT_LOG
)
_MOD_PERMS = (
    Perm.KICK_MEMBERS
    | Perm.BAN_MEMBERS
    | Perm.MODERATE_MEMBERS
    | Perm.MANAGE_MESSAGES
    | Perm.VIEW_CHANNEL
    | Perm.SEND_MESSAGES
)
