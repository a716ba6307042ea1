"""Thresholds to verdicts, and the escalation of repeat offenders.

A guild has two thresholds (``guild_settings``): at or above ``auto``
(default 0.95) the bot deletes the message and records a case; at or above
``review`` (default 0.80) the message goes to the review queue; below, it is
allowed. A message whose content the bot could not see (no MESSAGE_CONTENT
intent) and that no content-free rule flagged is ``UNKNOWN``: recorded as
such, never passed as clean.

Escalation: each automatic case counts against the author; when the count
within the guild's window reaches ``after``, the member is also timed out.
Then, for a short cool-down (:meth:`EscalationPolicy.cooldown_s`), the
member's further offending messages are only deleted: the rest of the burst
that brought the timeout opens no case and no second timeout.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from vsb.moderation.classification import Classification

#: Longest quiet time after an automatic timeout. Messages a spammer sent
#: before the timeout landed are still being handled for a few seconds
#: (about 20 in 3 s were seen); a member whose timeout a moderator lifts
#: early escalates again after at most this long.
ESCALATION_COOLDOWN_S: Final = 60


class Verdict(enum.Enum):
    """What the thresholds say to do with a message."""

    ALLOW = "allow"
    REVIEW = "review"
    DELETE = "delete"
    UNKNOWN = "unknown"


def decide(
    classification: Classification, *, auto_threshold: float, review_threshold: float
) -> Verdict:
    """The verdict for ``classification`` under a guild's thresholds."""
    score = classification.max_score
    if score >= auto_threshold:
        return Verdict.DELETE
    if score >= review_threshold:
        return Verdict.REVIEW
    if classification.unknown:
        return Verdict.UNKNOWN
    return Verdict.ALLOW


@dataclass(frozen=True, slots=True)
class EscalationPolicy:
    """When automatic cases turn into a timeout.

    Attributes:
        after: automatic cases within ``window_s`` that trigger a timeout
            (0 disables escalation).
        window_s: the counting window in seconds.
        timeout_s: the length of the timeout in seconds.
    """

    after: int = 3
    window_s: int = 86_400
    timeout_s: int = 3_600

    def escalates(self, recent_cases: int) -> bool:
        """Whether ``recent_cases`` (this one included) calls for a timeout."""
        return self.after > 0 and recent_cases >= self.after

    def cooldown_s(self) -> int:
        """Seconds after a timeout in which the member is not escalated again.

        :data:`ESCALATION_COOLDOWN_S`, or the timeout's length if shorter (a
        member whose timeout ran out and who offends again is escalated).
        """
        return min(ESCALATION_COOLDOWN_S, self.timeout_s)
