"""The review queue: flagged messages waiting for a moderator's decision.

A message scoring between the guild's review and auto thresholds is stored
here (``pending``) and posted to the log channel with buttons. The first
decision wins: :func:`decide` changes only a pending row, so two moderators
pressing buttons at once produce one decision, and, when the decision is
an action, one case, created in the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import msgspec
import psycopg
from psycopg.types.json import Jsonb

from vsb.db import audit
from vsb.db._sql import fetch_all, fetch_one
from vsb.db.cases import Case, insert_case

if TYPE_CHECKING:
    from vsb.services.database import Database

_COLUMNS: Final = (
    "id, guild_id, channel_id, message_id, author_id, content, scores, max_score,"
    " model, status, review_message_id, reviewer_id, decision, case_id,"
    " created_at, decided_at"
)

PENDING: Final = "pending"
ACTIONED: Final = "actioned"
DISMISSED: Final = "dismissed"
#: The decision that closes an item without a case.
DISMISS: Final = "dismiss"


class FlaggedMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One item of the review queue."""

    id: int
    guild_id: int
    channel_id: int
    message_id: int
    author_id: int
    content: str
    scores: dict[str, float]
    max_score: float
    model: str
    status: str
    review_message_id: int | None
    reviewer_id: int | None
    decision: str | None
    case_id: int | None
    created_at: datetime
    decided_at: datetime | None


class Decision(msgspec.Struct, frozen=True):
    """What :func:`decide` did: the updated item and the case, if one was made."""

    flagged: FlaggedMessage
    case: Case | None


async def add_flagged(
    db: Database,
    *,
    guild_id: int,
    channel_id: int,
    message_id: int,
    author_id: int,
    content: str,
    scores: dict[str, float],
    model: str,
) -> FlaggedMessage:
    """Queue a message for review (audited with its scores and model)."""
    max_score = max(scores.values(), default=0.0)

    def work(conn: psycopg.Connection[Any]) -> FlaggedMessage:
        flagged = fetch_one(
            conn,
            FlaggedMessage,
            "INSERT INTO flagged_messages (guild_id, channel_id, message_id,"
            " author_id, content, scores, max_score, model)"
            f" VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
            (
                guild_id,
                channel_id,
                message_id,
                author_id,
                content,
                Jsonb(scores),
                max_score,
                model,
            ),
        )
        assert flagged is not None
        audit.insert(
            conn,
            audit.AuditEntry(
                table_name="flagged_messages",
                operation="flag",
                guild_id=guild_id,
                row_id=str(flagged.id),
                change={
                    "message_id": message_id,
                    "author_id": author_id,
                    "scores": scores,
                    "model": model,
                },
            ),
        )
        return flagged

    return await db.run_sync(work)


async def set_review_message(
    db: Database, flagged_id: int, review_message_id: int
) -> None:
    """Remember the log-channel message that carries the item's buttons."""
    await db.run_sync(
        lambda conn: conn.execute(
            "UPDATE flagged_messages SET review_message_id = %s WHERE id = %s",
            (review_message_id, flagged_id),
        )
    )


async def get_flagged(db: Database, flagged_id: int) -> FlaggedMessage | None:
    """One item, or None."""
    return await db.run_sync(
        fetch_one,
        FlaggedMessage,
        f"SELECT {_COLUMNS} FROM flagged_messages WHERE id = %s",
        (flagged_id,),
    )


async def decide(
    db: Database,
    flagged_id: int,
    *,
    reviewer_id: int,
    decision: str,
    case_action: str | None = None,
    reason: str = "",
    expires_at: datetime | None = None,
    duration_s: int | None = None,
) -> Decision | None:
    """Close a pending item; None when it is unknown or already decided.

    ``decision`` is free text (``delete``, ``warn``, ``mute``, ``ban``,
    ``dismiss``); ``dismiss`` marks it dismissed, anything else actioned.
    With ``case_action``, a case against the author is created in the same
    transaction and linked to the item.
    """

    def work(conn: psycopg.Connection[Any]) -> Decision | None:
        item = fetch_one(
            conn,
            FlaggedMessage,
            f"SELECT {_COLUMNS} FROM flagged_messages WHERE id = %s AND status = %s"
            " FOR UPDATE",
            (flagged_id, PENDING),
        )
        if item is None:
            return None
        case = None
        if case_action is not None:
            case = insert_case(
                conn,
                guild_id=item.guild_id,
                action=case_action,
                target_id=item.author_id,
                moderator_id=reviewer_id,
                reason=reason,
                expires_at=expires_at,
                duration_s=duration_s,
            )
        status = DISMISSED if decision == DISMISS else ACTIONED
        updated = fetch_one(
            conn,
            FlaggedMessage,
            "UPDATE flagged_messages SET status = %s, reviewer_id = %s,"
            " decision = %s, case_id = %s, decided_at = now()"
            f" WHERE id = %s RETURNING {_COLUMNS}",
            (status, reviewer_id, decision, case.id if case else None, flagged_id),
        )
        assert updated is not None
        audit.insert(
            conn,
            audit.AuditEntry(
                table_name="flagged_messages",
                operation="decide",
                actor_id=reviewer_id,
                guild_id=item.guild_id,
                row_id=str(flagged_id),
                change={
                    "decision": decision,
                    "status": status,
                    "case_number": case.number if case else None,
                },
            ),
        )
        return Decision(updated, case)

    return await db.run_sync(work)


async def pending(
    db: Database, guild_id: int | None = None, *, limit: int = 50
) -> list[FlaggedMessage]:
    """Pending items, oldest first; all guilds when ``guild_id`` is None."""
    return await db.run_sync(
        fetch_all,
        FlaggedMessage,
        f"SELECT {_COLUMNS} FROM flagged_messages WHERE status = 'pending'"
        " AND (%(guild)s::bigint IS NULL OR guild_id = %(guild)s)"
        " ORDER BY created_at, id LIMIT %(limit)s",
        {"guild": guild_id, "limit": limit},
    )
