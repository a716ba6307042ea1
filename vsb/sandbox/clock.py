"""Time inside the sandbox: trio's clock mapped to Discord-visible time.

Every timer in the sandbox (heartbeat checks, rate-limit windows, the 3-second
interaction deadline, token lifetimes) reads :func:`trio.current_time`, so a
test's ``MockClock`` drives all of them. What Discord shows to clients (the
timestamp inside a snowflake, ISO-8601 ``timestamp`` fields, the epoch seconds
in ``X-RateLimit-Reset``) is ``epoch`` plus the trio time elapsed since the
sandbox opened.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Final

import trio

DISCORD_EPOCH_MS: Final = 1_420_070_400_000  # first second of 2015, Discord's epoch


class SandboxClock:
    """Maps trio time to Unix time and mints snowflakes.

    Args:
        epoch: Unix time (seconds) that the sandbox's "now" starts at.
    """

    def __init__(self, epoch: float) -> None:
        self.epoch = epoch
        self._started = trio.current_time()
        self._increment = itertools.count()

    def monotonic(self) -> float:
        """Trio time; what every sandbox timer compares against."""
        return trio.current_time()

    def unix(self) -> float:
        """Discord-visible Unix time in seconds."""
        return self.epoch + (trio.current_time() - self._started)

    def unix_at(self, monotonic: float) -> float:
        """The Unix time matching a trio time."""
        return self.epoch + (monotonic - self._started)

    def monotonic_at(self, unix: float) -> float:
        """The trio time matching a Unix time."""
        return self._started + (unix - self.epoch)

    def now(self) -> datetime:
        """Discord-visible now as an aware datetime."""
        return datetime.fromtimestamp(self.unix(), UTC)

    def iso(self, unix: float | None = None) -> str:
        """ISO-8601 timestamp as Discord writes it (``+00:00`` offset)."""
        value = self.unix() if unix is None else unix
        return datetime.fromtimestamp(value, UTC).isoformat()

    def snowflake(self, unix: float | None = None) -> int:
        """A new snowflake whose timestamp is ``unix`` (default: now).

        Layout per Discord's reference: 42 bits of milliseconds since the
        Discord epoch, 5 bits worker, 5 bits process, 12 bits increment.
        """
        value = self.unix() if unix is None else unix
        ms = int(value * 1000) - DISCORD_EPOCH_MS
        return (ms << 22) | (next(self._increment) & 0xFFF)


def snowflake_unix(snowflake: int) -> float:
    """The Unix time (seconds) encoded in a snowflake."""
    return ((snowflake >> 22) + DISCORD_EPOCH_MS) / 1000


def parse_iso(value: str) -> datetime:
    """Parse an ISO-8601 timestamp; naive values are taken as UTC.

    Raises:
        ValueError: the text is not an ISO-8601 timestamp.
    """
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed
