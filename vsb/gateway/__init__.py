"""VSB's own Discord gateway client.

``protocol`` is the sans-I/O session of one shard, ``inflate`` the transport
decompression, ``shard`` the trio driver of one shard and ``sharding`` the
manager of a process's shards. See ``docs/gateway.md``.
"""

from vsb.gateway.errors import (
    GatewayError,
    GatewayFatalError,
    MemberRequestTimeout,
    ShardNotReady,
)
from vsb.gateway.protocol import CloseCode, Opcode, Session, ShardProtocol, ShardState
from vsb.gateway.shard import IdentifyLock, SessionStore, Shard
from vsb.gateway.sharding import LocalIdentifyLock, ShardManager

__all__ = [
    "CloseCode",
    "GatewayError",
    "GatewayFatalError",
    "IdentifyLock",
    "LocalIdentifyLock",
    "MemberRequestTimeout",
    "Opcode",
    "Session",
    "SessionStore",
    "Shard",
    "ShardManager",
    "ShardNotReady",
    "ShardProtocol",
    "ShardState",
]
