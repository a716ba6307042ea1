"""The internal event router: gateway dispatches in, a handler chain per type.

Each gateway event type (``MESSAGE_CREATE``, ``INTERACTION_CREATE``, ...) has
an ordered chain of handlers. A handler is registered with a priority (lower
runs first; the cache registers low so that later handlers see fresh state)
and may end the chain by returning ``True`` (a spam filter that deleted the
message, say). One handler's exception is logged with the event type and
handler name and does not reach the other handlers, nor the shard that
delivered the event.

Handlers run inline on the shard's task, in order, so they must be quick:
anything slow (a REST call, an AI request) goes to a service's own memory
channel and runs in that service's nursery.
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import trio

log = logging.getLogger(__name__)

Handler = Callable[[int, Any], Awaitable[bool | None]]
"""``async def handler(shard_id, event) -> bool | None``; True stops the chain."""

#: The pseudo event type whose handlers see every event.
ANY = "*"


@dataclasses.dataclass(frozen=True, slots=True, order=True)
class _Entry:
    priority: int
    order: int
    handler: Handler = dataclasses.field(compare=False)

    @property
    def name(self) -> str:
        return getattr(self.handler, "__qualname__", repr(self.handler))


class EventRouter:
    """Routes each dispatched event through the handlers of its type."""

    def __init__(self) -> None:
        self._chains: dict[str, list[_Entry]] = {}
        self._order = 0
        self.dispatched: Counter[str] = Counter()
        self.handler_errors: Counter[str] = Counter()

    def register(
        self, event_type: str, handler: Handler, *, priority: int = 100
    ) -> None:
        """Add ``handler`` to the chain of ``event_type`` (or ``ANY``).

        Handlers of equal priority run in the order they were registered.
        """
        self._order += 1
        chain = self._chains.setdefault(event_type, [])
        bisect.insort(chain, _Entry(priority, self._order, handler))

    def unregister(self, event_type: str, handler: Handler) -> None:
        """Remove ``handler`` from the chain of ``event_type``, if present."""
        chain = self._chains.get(event_type, [])
        self._chains[event_type] = [e for e in chain if e.handler != handler]

    def handlers(self, event_type: str) -> list[Handler]:
        """The handlers ``event_type`` reaches, in the order they run."""
        chain = self._chains.get(event_type, []) + self._chains.get(ANY, [])
        return [entry.handler for entry in sorted(chain)]

    async def dispatch(self, shard_id: int, event_type: str, event: Any) -> None:
        """Run the chain for one event. Never raises a handler's error."""
        self.dispatched[event_type] += 1
        chain = self._chains.get(event_type)
        catch_all = self._chains.get(ANY)
        if catch_all:
            chain = sorted((chain or []) + catch_all)
        if not chain:
            return
        for entry in chain:
            try:
                if await entry.handler(shard_id, event):
                    return
            except trio.Cancelled:
                raise
            except Exception as exc:
                self.handler_errors[event_type] += 1
                log.exception(
                    "router.handler_failed",
                    extra={
                        "event_type": event_type,
                        "shard_id": shard_id,
                        "handler": entry.name,
                        "error": type(exc).__name__,
                    },
                )

    def stats(self) -> dict[str, Any]:
        """Events dispatched and handler errors, by event type."""
        return {
            "dispatched": dict(self.dispatched),
            "handler_errors": dict(self.handler_errors),
        }
