"""The gateway client's exceptions.

::

    GatewayError                 anything the gateway client raises on purpose
    ├── GatewayFatalError        Discord closed with a code that forbids reconnecting
    ├── ShardNotReady            a send was asked of a shard with no open session
    └── MemberRequestTimeout     GUILD_MEMBERS_CHUNK answers did not all arrive in time

Messages name what failed and what to do about it; they never hold the token.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error the gateway client raises on purpose."""


class GatewayFatalError(GatewayError):
    """Discord closed a shard with a code after which reconnecting is pointless.

    Attributes:
        close_code: the close code Discord sent (4004, 4010-4014).
        shard_id: the shard that received it.
    """

    def __init__(self, close_code: int, shard_id: int, message: str) -> None:
        super().__init__(message)
        self.close_code = close_code
        self.shard_id = shard_id


class ShardNotReady(GatewayError):
    """The shard has no open, identified connection to send on."""


class MemberRequestTimeout(GatewayError):
    """A REQUEST_GUILD_MEMBERS answer was incomplete when its time ran out.

    Attributes:
        nonce: the request's nonce.
        received: chunks received before the timeout.
        expected: chunk count announced by Discord (0 if no chunk came).
    """

    def __init__(self, nonce: str, received: int, expected: int) -> None:
        super().__init__(
            f"REQUEST_GUILD_MEMBERS {nonce!r} timed out after "
            f"{received} of {expected or '?'} chunks"
        )
        self.nonce = nonce
        self.received = received
        self.expected = expected
