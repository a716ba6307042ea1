"""The record of what clients did to the emulated Discord.

Every state-changing REST call, interaction callback and notable gateway
event appends one :class:`Action`. Tests assert on them::

    deleted = sb.actions.of("message.delete", message_id=5)
    assert deleted[0].reason == "spam"
    await sb.actions.wait_for("member.timeout", user_id=7)

Kinds are ``<object>.<verb>`` names listed in ``docs/sandbox.md``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import trio


@dataclass(frozen=True)
class Action:
    """One recorded action.

    Attributes:
        kind: what happened, e.g. ``"message.delete"``.
        at: trio time when it happened.
        reason: the decoded ``X-Audit-Log-Reason``, if one was sent.
        data: details (ids as ints, e.g. ``message_id``, ``user_id``).
    """

    kind: str
    at: float
    reason: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def matches(self, kind: str | None, fields: dict[str, Any]) -> bool:
        if kind is not None and self.kind != kind:
            return False
        for key, value in fields.items():
            have = self.reason if key == "reason" else self.data.get(key, _MISSING)
            if have != value:
                return False
        return True


_MISSING = object()


class ActionLog:
    """An append-only, queryable list of :class:`Action`."""

    def __init__(self) -> None:
        self._items: list[Action] = []
        self._changed = trio.Event()

    def record(self, kind: str, *, reason: str | None = None, **data: Any) -> Action:
        """Append an action stamped with the current trio time."""
        action = Action(kind, trio.current_time(), reason, data)
        self._items.append(action)
        self._changed.set()
        self._changed = trio.Event()
        return action

    def of(self, kind: str | None = None, **fields: Any) -> list[Action]:
        """Actions of ``kind`` (any kind if None) whose fields all match."""
        return [a for a in self._items if a.matches(kind, fields)]

    def last(self, kind: str | None = None, **fields: Any) -> Action | None:
        """The latest matching action, or None."""
        found = self.of(kind, **fields)
        return found[-1] if found else None

    def kinds(self) -> list[str]:
        """The kinds of all actions, in order (handy in assertion messages)."""
        return [a.kind for a in self._items]

    async def wait_for(self, kind: str | None = None, **fields: Any) -> Action:
        """Wait until a matching action exists and return the first one.

        Use under ``trio.fail_after`` so a test cannot hang.
        """
        while True:
            found = self.of(kind, **fields)
            if found:
                return found[0]
            await self._changed.wait()

    def clear(self) -> None:
        """Forget every action recorded so far."""
        self._items.clear()

    def __iter__(self) -> Iterator[Action]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)
