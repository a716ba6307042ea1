"""What the pipeline moderates, read from MESSAGE_CREATE and MESSAGE_UPDATE.

:class:`Subject` is the small, flat view of a guild message the pipeline
needs. :func:`from_message` and :func:`from_update` return None for what is
never moderated: direct messages, bots, webhooks, system messages, and
updates that carry no new content (Discord sends MESSAGE_UPDATE for link
embeds being added, with no ``content``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from vsb.models import UNSET, Message, MessageUpdate

# Message types people write: DEFAULT and REPLY (Discord docs, Message Types).
_USER_TYPES: Final = frozenset({0, 19})


@dataclass(frozen=True, slots=True)
class Subject:
    """One guild message, as the pipeline sees it."""

    guild_id: int
    channel_id: int
    message_id: int
    author_id: int
    role_ids: tuple[int, ...]
    content: str
    mentions: int
    mention_everyone: bool
    edited: bool = False


def from_message(message: Message, *, include_bots: bool = False) -> Subject | None:
    """The subject of a MESSAGE_CREATE; None when it is not moderated."""
    author = message.author
    if message.guild_id is None or message.type not in _USER_TYPES:
        return None
    if not include_bots and (author.bot or author.system or message.webhook_id):
        return None
    return Subject(
        guild_id=message.guild_id,
        channel_id=message.channel_id,
        message_id=message.id,
        author_id=author.id,
        role_ids=message.member.roles if message.member is not None else (),
        content=message.content,
        mentions=len({user.id for user in message.mentions})
        + len(message.mention_roles),
        mention_everyone=message.mention_everyone,
        edited=message.edited_timestamp is not None,
    )


def from_update(update: MessageUpdate) -> Subject | None:
    """The subject of a MESSAGE_UPDATE with new content; else None."""
    author = update.author
    if update.guild_id is None or update.content is UNSET or author is UNSET:
        return None
    if author.bot or author.system:
        return None
    member = update.member
    mentions = update.mentions if update.mentions is not UNSET else ()
    roles = update.mention_roles if update.mention_roles is not UNSET else ()
    return Subject(
        guild_id=update.guild_id,
        channel_id=update.channel_id,
        message_id=update.id,
        author_id=author.id,
        role_ids=member.roles if member is not UNSET else (),
        content=update.content,
        mentions=len({user.id for user in mentions}) + len(roles),
        mention_everyone=update.mention_everyone is True,
        edited=True,
    )
