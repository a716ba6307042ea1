"""Checks run before a command: permissions, developers, guild, cooldowns.

Permissions come from the interaction itself: ``member.permissions`` is the
member's total permissions in the channel, overwrites included, computed by
Discord (docs, Interaction object), so no cache lookup can be stale.
``app_permissions`` is the same for the bot.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Final

import trio

from vsb.cache.permissions import Permissions
from vsb.commands.errors import MissingPermissions, NotDeveloper, OnCooldown
from vsb.models import Interaction

#: Sweep forgotten cooldown keys once this many are kept.
_SWEEP_AT: Final = 10_000


def missing_permissions(have: int, need: Permissions) -> list[str]:
    """Names of the bits of ``need`` not in ``have`` (ADMINISTRATOR has all)."""
    if have & Permissions.ADMINISTRATOR:
        return []
    lacking = Permissions(int(need) & ~have)
    return [flag.name or str(int(flag)) for flag in Permissions if flag & lacking]


def require_member_permissions(interaction: Interaction, need: Permissions) -> None:
    """Raise unless the invoking member has ``need`` in this channel.

    Raises:
        MissingPermissions: naming what is missing.
    """
    if not need:
        return
    have = interaction.member.permissions if interaction.member is not None else 0
    missing = missing_permissions(have, need)
    if missing:
        raise MissingPermissions(missing)


def require_bot_permissions(interaction: Interaction, need: Permissions) -> None:
    """Raise unless the bot has ``need`` here (``app_permissions``).

    Raises:
        MissingPermissions: worded for the bot.
    """
    missing = missing_permissions(interaction.app_permissions, need)
    if missing:
        raise MissingPermissions(missing, who="I")


def require_developer(user_id: int, developer_ids: frozenset[int]) -> None:
    """Raise unless ``user_id`` is one of the developers.

    Raises:
        NotDeveloper: always worded the same, whoever asks.
    """
    if user_id not in developer_ids:
        raise NotDeveloper()


class Cooldowns:
    """Per user and command sliding windows: at most ``uses`` per ``per`` s.

    Args:
        clock: monotonic seconds (trio's clock, so MockClock drives it).
    """

    def __init__(self, clock: Callable[[], float] = trio.current_time) -> None:
        self._clock = clock
        self._hits: dict[tuple[str, int], deque[float]] = {}
        self._longest = 0.0
        self.refused = 0

    def hit(self, command: str, user_id: int, uses: int, per: float) -> None:
        """Count one use, or refuse it.

        Raises:
            OnCooldown: with the seconds until the oldest use leaves the window.
        """
        now = self._clock()
        self._longest = max(self._longest, per)
        key = (command, user_id)
        times = self._hits.setdefault(key, deque())
        while times and times[0] <= now - per:
            times.popleft()
        if len(times) >= uses:
            self.refused += 1
            raise OnCooldown(times[0] + per - now)
        times.append(now)
        if len(self._hits) > _SWEEP_AT:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        # Windows differ per command; a key idle for the longest window seen
        # is safe to drop, since its next hit would empty its deque anyway.
        edge = now - self._longest
        stale = [k for k, t in self._hits.items() if not t or t[-1] <= edge]
        for key in stale:
            del self._hits[key]

    def __len__(self) -> int:
        return len(self._hits)
