"""Members packed into one ``bytes`` each, for a small member cache.

A decoded :class:`~vsb.models.Member` is about a dozen Python objects (two
Structs, an int id, three or four strings, a tuple of role ids, a datetime),
each with its own header: around 580 bytes for a typical member. Packed as
one MessagePack array of its fields it is one ``bytes`` of about 140. The
cache stores members packed and unpacks one when it is read, which costs
about a microsecond and returns a new, equal :class:`Member` each time.

The layout is positional (a tuple, no field names), so it is private to
this module: :func:`pack_member` and :func:`unpack_member` are its only
readers and writers. A ``bytes`` is not tracked by the cyclic GC, and neither
is a dict holding only ints and bytes, so a packed member cache adds nothing
to a collection's walk.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import msgspec

from vsb.models import Member, PartialMember, User

__all__ = ["pack_member", "unpack_member"]

# Invariant: the order of this type and of the tuples in pack_member and
# unpack_member is the same.
_Layout = tuple[
    int,  # user.id
    str,  # user.username
    str,  # user.discriminator
    str | None,  # user.global_name
    str | None,  # user.avatar
    bool,  # user.bot
    bool,  # user.system
    int,  # user.public_flags
    tuple[int, ...],  # roles
    str | None,  # nick
    str | None,  # avatar (guild)
    dt.datetime | None,  # joined_at
    dt.datetime | None,  # communication_disabled_until
    bool,  # pending
    int,  # flags
]

_encode: Final = msgspec.msgpack.Encoder().encode
_decode: Final = msgspec.msgpack.Decoder(_Layout).decode


def pack_member(user: User, member: Member | PartialMember) -> bytes:
    """A member's fields as one MessagePack array.

    Args:
        user: the member's user (``member.user``, or a message's author).
        member: the member fields: a :class:`Member` (fields of subclasses
            such as ``guild_id`` are left out) or a message's
            :class:`PartialMember`.
    """
    return _encode(
        (
            user.id,
            user.username,
            user.discriminator,
            user.global_name,
            user.avatar,
            user.bot,
            user.system,
            user.public_flags,
            member.roles,
            member.nick,
            member.avatar,
            member.joined_at,
            member.communication_disabled_until,
            member.pending,
            member.flags,
        )
    )


def unpack_member(data: bytes) -> Member:
    """The :class:`Member` that :func:`pack_member` packed into ``data``."""
    (
        user_id,
        username,
        discriminator,
        global_name,
        user_avatar,
        bot,
        system,
        public_flags,
        roles,
        nick,
        avatar,
        joined_at,
        timeout_until,
        pending,
        flags,
    ) = _decode(data)
    user = User(
        id=user_id,
        username=username,
        discriminator=discriminator,
        global_name=global_name,
        avatar=user_avatar,
        bot=bot,
        system=system,
        public_flags=public_flags,
    )
    return Member(
        user=user,
        roles=roles,
        nick=nick,
        avatar=avatar,
        joined_at=joined_at,
        communication_disabled_until=timeout_until,
        pending=pending,
        flags=flags,
    )
