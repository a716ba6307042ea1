"""Ending temporary bans (and closing elapsed mutes) when they expire.

The schedule lives in the database, not in memory: a case's ``expires_at``
is the only record, so a restart loses nothing. :class:`ExpiryScheduler`
runs as a service task: it handles every live case already due, then sleeps
until the next ``expires_at`` (or ``poll_interval``, whichever comes first)
or until :meth:`ExpiryScheduler.wake` says a new temporary case was stored.

For a ban, expiry means an unban (a ban already lifted by hand, 404, is
fine), then the case is marked revoked and posted to the mod log. A mute
needs no call, since Discord ends a timeout by itself; its case is only
marked revoked. A failed unban is retried on the next pass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import trio

from vsb.commands.modlog import ModLog
from vsb.db import cases
from vsb.db.cases import Case
from vsb.rest.errors import NotFound, RestError
from vsb.rest.routes import Endpoints
from vsb.services.database import DatabaseError

if TYPE_CHECKING:
    from vsb.services.database import Database

log = logging.getLogger(__name__)

EXPIRY_REASON: Final = "Temporary ban expired"


class ExpiryScheduler:
    """Lifts temporary bans when their ``expires_at`` passes.

    Args:
        rest: the REST client.
        db: the database holding the cases.
        modlog: where expiries are posted (None: not posted).
        wall_clock: Unix seconds (the sandbox's clock in tests).
        poll_interval: longest sleep between passes, in seconds.
        retry_interval: wait after a failed pass.
    """

    def __init__(
        self,
        rest: Endpoints,
        db: Database,
        *,
        modlog: ModLog | None = None,
        wall_clock: Callable[[], float] = time.time,
        poll_interval: float = 300.0,
        retry_interval: float = 30.0,
    ) -> None:
        self._rest = rest
        self._db = db
        self._modlog = modlog
        self._wall_clock = wall_clock
        self._poll = poll_interval
        self._retry = retry_interval
        self._wake = trio.Event()
        self.expired = 0
        self.failures = 0

    def wake(self) -> None:
        """A new temporary case was stored: look again now."""
        self._wake.set()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Run passes until cancelled."""
        task_status.started()
        while True:
            try:
                await self.run_once()
                delay = await self._until_next()
            except (RestError, DatabaseError) as exc:
                self.failures += 1
                log.warning(
                    "commands.expiry_failed", extra={"error": type(exc).__name__}
                )
                delay = self._retry
            with trio.move_on_after(delay):
                await self._wake.wait()
            self._wake = trio.Event()

    async def run_once(self) -> int:
        """End every case due now; return how many ended."""
        due = await cases.due_expirations(self._db, self._now())
        ended = 0
        for case in due:
            if await self._expire(case):
                ended += 1
        return ended

    async def _expire(self, case: Case) -> bool:
        if case.action == "ban":
            try:
                await self._rest.unban_member(
                    case.guild_id, case.target_id, reason=EXPIRY_REASON
                )
            except NotFound:
                pass  # unbanned by hand meanwhile: nothing left to lift
            except RestError as exc:
                self.failures += 1
                log.warning(
                    "commands.unban_failed",
                    extra={
                        "guild_id": case.guild_id,
                        "user_id": case.target_id,
                        "error": type(exc).__name__,
                    },
                )
                return False
        ended = await cases.revoke(self._db, case.guild_id, case.number)
        if ended is None:
            return False  # revoked by someone else meanwhile
        self.expired += 1
        log.info(
            "commands.case_expired",
            extra={
                "guild_id": case.guild_id,
                "user_id": case.target_id,
                "case": case.number,
                "action": case.action,
            },
        )
        if self._modlog is not None and case.action == "ban":
            await self._modlog.post_case(ended, notes=[EXPIRY_REASON])
        return True

    async def _until_next(self) -> float:
        upcoming = await cases.next_expiry(self._db)
        if upcoming is None:
            return self._poll
        wait = upcoming.timestamp() - self._wall_clock()
        return min(self._poll, max(0.0, wait))

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._wall_clock(), UTC)

    def stats(self) -> dict[str, int]:
        return {"expired": self.expired, "failures": self.failures}
