"""A circuit breaker: stop calling a failing service, probe, recover.

Sans-I/O: the caller passes ``now`` and reports outcomes.

::

    CLOSED --(threshold failures in a row)--> OPEN
    OPEN --(cooldown passed; one caller allowed through)--> HALF_OPEN
    HALF_OPEN --(probe succeeds)--> CLOSED
    HALF_OPEN --(probe fails)--> OPEN (cooldown starts again)

While OPEN (and while a HALF_OPEN probe is out) :meth:`allow` says no, and
moderation uses the local rules alone.
"""

from __future__ import annotations

import enum
import logging
from typing import Any

log = logging.getLogger(__name__)


class BreakerState(enum.Enum):
    """Where the breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Counts consecutive failures and opens after ``threshold`` of them.

    Args:
        threshold: consecutive failures that open the breaker (at least 1).
        cooldown_s: how long it stays open before one probe is allowed.
        name: a label for the log lines.
    """

    def __init__(
        self, *, threshold: int = 5, cooldown_s: float = 30.0, name: str = ""
    ) -> None:
        if threshold < 1:
            raise ValueError("threshold must be at least 1")
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.name = name
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.opened_at: float | None = None
        self.times_opened = 0
        self.rejected = 0
        self._probe_out = False

    def allow(self, now: float) -> bool:
        """Whether a call may go out now (a True in HALF_OPEN is the probe)."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN:
            assert self.opened_at is not None
            if now < self.opened_at + self.cooldown_s:
                self.rejected += 1
                return False
            self.state = BreakerState.HALF_OPEN
            log.info("ai.breaker_half_open", extra={"breaker": self.name})
        if self._probe_out:
            self.rejected += 1
            return False
        self._probe_out = True
        return True

    def would_allow(self, now: float) -> bool:
        """What :meth:`allow` would say, without changing anything."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN:
            assert self.opened_at is not None
            return now >= self.opened_at + self.cooldown_s
        return not self._probe_out

    def record_success(self) -> None:
        """A call succeeded: close (if probing) and reset the failure count."""
        if self.state is not BreakerState.CLOSED:
            log.info("ai.breaker_closed", extra={"breaker": self.name})
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.opened_at = None
        self._probe_out = False

    def record_failure(self, now: float) -> None:
        """A call failed: count it; open at the threshold or on a failed probe."""
        self.failures += 1
        self._probe_out = False
        probing = self.state is BreakerState.HALF_OPEN
        if probing or (
            self.state is BreakerState.CLOSED and self.failures >= self.threshold
        ):
            self.state = BreakerState.OPEN
            self.opened_at = now
            self.times_opened += 1
            log.warning(
                "ai.breaker_open",
                extra={"breaker": self.name, "attempt": self.failures},
            )

    def release(self) -> None:
        """A call ended with no verdict on health (a 429): free the probe slot."""
        self._probe_out = False

    def stats(self) -> dict[str, Any]:
        """State and counters as plain data."""
        return {
            "state": self.state.value,
            "consecutive_failures": self.failures,
            "times_opened": self.times_opened,
            "rejected": self.rejected,
        }
