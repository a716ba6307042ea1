"""The moderation pipeline: classify every guild message, decide, act, record.

Flow::

    MESSAGE_CREATE / MESSAGE_UPDATE   (router handler, inline on the shard)
      -> Subject (DMs, bots, webhooks, system, embed-only updates skipped)
      -> local rules (pure, microseconds; repeats need arrival order)
      -> intake channel (bounded; the handler waits when it is full)
    intake workers
      -> guild settings (cached), exemptions (exempt roles, moderators)
      -> decide now when the local result is decisive, the AI is off,
         unavailable (breaker open) or the content is unknown
      -> else the AI channel (bounded; when full: local rules only, counted)
    AI workers
      -> Groq classification (cached by content hash), merged with local
    decision (max score vs the guild's thresholds)
      -> audit entry with scores and model (every decision)
      -> DELETE: delete the message, case, mod-log embed, escalation
         (during a member's cool-down after an automatic timeout: only
         the deletion, see EscalationPolicy.cooldown_s)
      -> REVIEW: review-queue row, log-channel post with buttons
      -> ALLOW / UNKNOWN: nothing more

A guild message with empty content while the bot lacks the MESSAGE_CONTENT
intent is UNKNOWN, never clean (Discord empties ``content`` for such bots,
see "Message Content Intent" in the Gateway docs); ``run`` warns at start.

Review buttons (``review:<choice>:<id>``) are handled by
:meth:`ModerationService.handle_review`, registered with the command
framework; the moderator's choice becomes a case, stored with the decision.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, NamedTuple

import msgspec
import trio

from vsb.cache.ttl import TTLCache
from vsb.db import audit, cases, review, settings
from vsb.db.audit import AuditEntry
from vsb.db.settings import GuildSettings
from vsb.models import Message, MessageUpdate
from vsb.moderation import present
from vsb.moderation.classification import Classification, merge
from vsb.moderation.decision import (
    ESCALATION_COOLDOWN_S,
    EscalationPolicy,
    Verdict,
    decide,
)
from vsb.moderation.rules import LocalClassifier
from vsb.moderation.subject import Subject, from_message, from_update
from vsb.rest.errors import DiscordHTTPError, NotFound, RestError
from vsb.services.ai import AIError, GroqClient
from vsb.services.database import DatabaseError

if TYPE_CHECKING:
    from vsb.cache import Cache
    from vsb.commands.context import CommandContext
    from vsb.rest.routes import Endpoints
    from vsb.router import EventRouter
    from vsb.services.database import Database

log = logging.getLogger(__name__)

#: Router priority: after the cache (which must see the message first).
PRIORITY: Final = 50
#: The case action of an automatic deletion (also what escalation counts).
AUTO_ACTION: Final = "delete"
_MESSAGE_CONTENT_INTENT: Final = 1 << 15

# Permission bits (Discord docs, Permissions) a reviewer needs per choice.
_ADMINISTRATOR: Final = 1 << 3
_MANAGE_MESSAGES: Final = 1 << 13
_BAN_MEMBERS: Final = 1 << 2
_MODERATE_MEMBERS: Final = 1 << 40
_NEEDS: Final = {
    "delete": _MANAGE_MESSAGES,
    "dismiss": _MANAGE_MESSAGES,
    "warn": _MODERATE_MEMBERS,
    "mute": _MODERATE_MEMBERS,
    "ban": _BAN_MEMBERS,
}
#: The case action each review choice records (dismiss records none).
_CASE_ACTION: Final = {"delete": "delete", "warn": "warn", "mute": "mute", "ban": "ban"}


class Analysis(NamedTuple):
    """What "Analyze Message" shows: the scores and the would-be action."""

    classification: Classification
    verdict: Verdict


@dataclass(slots=True)
class ModerationStats:
    """Counters of the pipeline (``stats()`` returns them as plain data)."""

    received: int = 0
    skipped: int = 0
    exempt: int = 0
    allowed: int = 0
    reviewed: int = 0
    deleted: int = 0
    unknown: int = 0
    escalated: int = 0
    coalesced: int = 0
    local_decisive: int = 0
    ai_classified: int = 0
    ai_failures: int = 0
    ai_unavailable: int = 0
    ai_backpressure: int = 0
    intake_waits: int = 0
    action_failures: int = 0
    job_failures: int = 0
    reviews_decided: int = 0


@dataclass(frozen=True, slots=True)
class _Job:
    subject: Subject
    local: Classification
    settings: GuildSettings | None = None


def moderator_check(cache: Cache) -> Callable[[int, int], bool]:
    """An ``is_moderator`` built on the cache: manage messages, moderate, admin."""
    wanted = _ADMINISTRATOR | _MANAGE_MESSAGES | _MODERATE_MEMBERS

    def is_moderator(guild_id: int, user_id: int) -> bool:
        permissions = cache.permissions_for(guild_id, user_id)
        return permissions is not None and bool(int(permissions) & wanted)

    return is_moderator


class ModerationService:
    """Automatic moderation of guild messages.

    Args:
        rest: the Discord REST client.
        db: the database (settings, cases, review queue, audit).
        rules: the local classifier (always used).
        ai: the Groq client, or None without ``GROQ_API_KEY``.
        bot_user_id: the bot's user id (the moderator of automatic cases).
        intents: the gateway intents the bot connects with.
        audit_writer: batches decision audit entries; None writes each at once.
        default_log_channel_id: ``ADMIN_LOG_CHANNEL_ID``, used when a guild
            has no log channel setting.
        is_moderator: ``(guild_id, user_id) -> bool``; moderators are exempt
            (see :func:`moderator_check`).
        intake_size: messages waiting for an intake worker.
        ai_queue_size: messages waiting for the AI (full: local rules only).
        intake_workers / ai_workers: tasks per stage.
        settings_ttl_s: how long guild settings are cached.
        clock: trio's clock; wall_clock: aware UTC "now" for cases.
    """

    def __init__(
        self,
        *,
        rest: Endpoints,
        db: Database,
        rules: LocalClassifier,
        ai: GroqClient | None,
        bot_user_id: int,
        intents: int,
        audit_writer: audit.AuditWriter | None = None,
        default_log_channel_id: int | None = None,
        is_moderator: Callable[[int, int], bool] | None = None,
        intake_size: int = 1_024,
        ai_queue_size: int = 128,
        intake_workers: int = 4,
        ai_workers: int = 8,
        settings_ttl_s: float = 60.0,
        clock: Callable[[], float] = trio.current_time,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._rest = rest
        self._db = db
        self._rules = rules
        self._ai = ai
        self._bot_user_id = bot_user_id
        self._content_intent = bool(intents & _MESSAGE_CONTENT_INTENT)
        self._audit: Callable[[AuditEntry], Awaitable[None]] = (
            audit_writer.add if audit_writer is not None else self._audit_now
        )
        self._default_log_channel = default_log_channel_id
        self._is_moderator = is_moderator or (lambda guild_id, user_id: False)
        self._intake_workers = intake_workers
        self._ai_workers = ai_workers
        self._clock = clock
        self._wall_clock = wall_clock
        self._settings_cache: TTLCache[int, GuildSettings] = TTLCache(
            10_000, settings_ttl_s, clock=clock
        )
        # (guild_id, user_id) of members the bot just timed out, each kept for
        # its EscalationPolicy.cooldown_s(): one burst, one timeout.
        self._cooling: TTLCache[tuple[int, int], bool] = TTLCache(
            10_000, float(ESCALATION_COOLDOWN_S), clock=clock
        )
        self._intake_send, self._intake_receive = trio.open_memory_channel[_Job](
            intake_size
        )
        self._ai_send, self._ai_receive = trio.open_memory_channel[_Job](ai_queue_size)
        self.counters = ModerationStats()
        self._queued = 0
        self._done = 0
        self._progress = trio.Event()

    # -- wiring -----------------------------------------------------------------

    def register(self, router: EventRouter) -> None:
        """Handle MESSAGE_CREATE and MESSAGE_UPDATE (after the cache)."""
        router.register("MESSAGE_CREATE", self.on_message_create, priority=PRIORITY)
        router.register("MESSAGE_UPDATE", self.on_message_update, priority=PRIORITY)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Run the workers until cancelled.

        Known limitation: messages still queued at shutdown are not
        moderated; a restart does not revisit them.
        """
        if not self._content_intent:
            log.warning(
                "moderation.message_content_intent_missing",
                extra={
                    "intent": "MESSAGE_CONTENT",
                    "error": "guild messages arrive without content; they are"
                    " recorded as unknown, not clean",
                },
            )
        async with trio.open_nursery() as nursery:
            for _ in range(self._intake_workers):
                nursery.start_soon(self._intake_worker)
            for _ in range(self._ai_workers):
                nursery.start_soon(self._ai_worker)
            task_status.started()

    def invalidate_settings(self, guild_id: int) -> None:
        """Forget a guild's cached settings (call after ``/config`` changes)."""
        self._settings_cache.pop(guild_id)

    async def drain(self) -> None:
        """Return once every message queued so far has been handled."""
        target = self._queued
        while self._done < target:
            await self._progress.wait()

    def stats(self) -> dict[str, Any]:
        """Counters, queue depths and the local classifier's stats."""
        return {
            **asdict(self.counters),
            "intake_queued": self._intake_send.statistics().current_buffer_used,
            "ai_queued": self._ai_send.statistics().current_buffer_used,
            "message_content_intent": self._content_intent,
            "ai_enabled": self._ai is not None,
            "rules": self._rules.stats(),
        }

    # -- router handlers (inline on the shard task: keep them quick) --------------

    async def on_message_create(self, shard_id: int, event: Any) -> None:
        """MESSAGE_CREATE: score locally, queue for the workers."""
        if isinstance(event, Message):
            await self._accept(from_message(event), record=True)

    async def on_message_update(self, shard_id: int, event: Any) -> None:
        """MESSAGE_UPDATE: an edit is checked again like a new message."""
        if isinstance(event, MessageUpdate):
            await self._accept(from_update(event), record=False)

    async def _accept(self, subject: Subject | None, *, record: bool) -> None:
        self.counters.received += 1
        if subject is None or subject.author_id == self._bot_user_id:
            self.counters.skipped += 1
            return
        local = self._classify_local(subject, record=record)
        job = _Job(subject, local)
        self._queued += 1
        try:
            self._intake_send.send_nowait(job)
        except trio.WouldBlock:
            # Back-pressure reaches the shard only when the intake is full.
            self.counters.intake_waits += 1
            await self._intake_send.send(job)

    def _classify_local(self, subject: Subject, *, record: bool) -> Classification:
        local = self._rules.classify(
            subject.content,
            now=self._clock(),
            guild_id=subject.guild_id,
            channel_id=subject.channel_id,
            author_id=subject.author_id,
            mentions=subject.mentions,
            mention_everyone=subject.mention_everyone,
            record=record,
        )
        if not subject.content and not self._content_intent:
            local = msgspec.structs.replace(local, unknown=True)
        return local

    # -- workers --------------------------------------------------------------------

    async def _intake_worker(self) -> None:
        async for job in self._intake_receive:
            await self._guarded(self._intake, job)

    async def _ai_worker(self) -> None:
        async for job in self._ai_receive:
            await self._guarded(self._with_ai, job)

    async def _guarded(
        self, step: Callable[[_Job], Awaitable[bool]], job: _Job
    ) -> None:
        """Run one step; count the job done unless it moved to the AI queue."""
        handed_on = False
        try:
            handed_on = await step(job)
        except trio.Cancelled:
            raise
        except Exception as exc:
            self.counters.job_failures += 1
            log.exception(
                "moderation.job_failed",
                extra={"guild_id": job.subject.guild_id, "error": type(exc).__name__},
            )
        if not handed_on:
            self._done += 1
            self._progress.set()
            self._progress = trio.Event()

    async def _intake(self, job: _Job) -> bool:
        """Settings, exemptions, AI or not. True when queued for the AI."""
        subject = job.subject
        guild = await self._settings(subject.guild_id)
        if self._exempt(subject, guild):
            self.counters.exempt += 1
            return False
        if not self._wants_ai(job.local, guild):
            await self._conclude(subject, job.local, guild)
            return False
        try:
            self._ai_send.send_nowait(dataclasses.replace(job, settings=guild))
        except trio.WouldBlock:
            self.counters.ai_backpressure += 1
            await self._conclude(subject, job.local, guild)
            return False
        return True

    def _exempt(self, subject: Subject, guild: GuildSettings) -> bool:
        if guild.exempt_role_ids and set(subject.role_ids) & set(guild.exempt_role_ids):
            return True
        return self._is_moderator(subject.guild_id, subject.author_id)

    def _wants_ai(self, local: Classification, guild: GuildSettings) -> bool:
        if local.max_score >= guild.auto_threshold:
            self.counters.local_decisive += 1
            return False
        if self._ai is None or not guild.ai_enabled or local.unknown:
            return False
        if not self._ai.available:
            self.counters.ai_unavailable += 1
            return False
        return True

    async def _with_ai(self, job: _Job) -> bool:
        assert job.settings is not None and self._ai is not None
        result = await self._ai_classify(job.subject.content, job.local)
        await self._conclude(job.subject, result, job.settings)
        return False

    async def _ai_classify(self, content: str, local: Classification) -> Classification:
        assert self._ai is not None
        try:
            ai = await self._ai.classify(content)
        except AIError as exc:
            self.counters.ai_failures += 1
            log.info("moderation.ai_fallback", extra={"error": type(exc).__name__})
            return local
        self.counters.ai_classified += 1
        return merge(local, ai)

    async def _settings(self, guild_id: int) -> GuildSettings:
        cached = self._settings_cache.get(guild_id)
        if cached is not None:
            return cached
        try:
            found = await settings.get(self._db, guild_id)
        except DatabaseError as exc:
            # Moderating with the defaults beats not moderating at all.
            log.warning(
                "moderation.settings_unavailable",
                extra={"guild_id": guild_id, "error": type(exc).__name__},
            )
            return GuildSettings(guild_id=guild_id)
        self._settings_cache.set(guild_id, found)
        return found

    # -- decisions --------------------------------------------------------------------

    async def _conclude(
        self, subject: Subject, result: Classification, guild: GuildSettings
    ) -> None:
        verdict = decide(
            result,
            auto_threshold=guild.auto_threshold,
            review_threshold=guild.review_threshold,
        )
        await self._audit(_decision_entry(subject, result, verdict))
        if verdict is Verdict.DELETE:
            self.counters.deleted += 1
            await self._auto_delete(subject, result, guild)
        elif verdict is Verdict.REVIEW:
            self.counters.reviewed += 1
            await self._queue_review(subject, result, guild)
        elif verdict is Verdict.UNKNOWN:
            self.counters.unknown += 1
        else:
            self.counters.allowed += 1

    async def _audit_now(self, entry: AuditEntry) -> None:
        await audit.add(self._db, entry)

    async def _auto_delete(
        self, subject: Subject, result: Classification, guild: GuildSettings
    ) -> None:
        reason = _auto_reason(result)
        try:
            await self._rest.delete_message(
                subject.channel_id, subject.message_id, reason=reason
            )
        except NotFound:
            pass  # already gone: the case still records the violation
        except RestError as exc:
            # Known limitation: a deletion Discord refuses (missing Manage
            # Messages) leaves no case, only the error log and the counter.
            self._action_failed("delete", subject, exc)
            return
        if (subject.guild_id, subject.author_id) in self._cooling:
            # The rest of a burst whose author was just timed out: deleted,
            # audited as a decision, but no case of its own.
            self.counters.coalesced += 1
            log.info(
                "moderation.auto_deleted",
                extra={
                    "guild_id": subject.guild_id,
                    "user_id": subject.author_id,
                    "coalesced": True,
                },
            )
            return
        case = await cases.create_case(
            self._db,
            guild_id=subject.guild_id,
            action=AUTO_ACTION,
            target_id=subject.author_id,
            moderator_id=self._bot_user_id,
            reason=reason,
        )
        log.info(
            "moderation.auto_deleted",
            extra={"guild_id": subject.guild_id, "user_id": subject.author_id},
        )
        embed = present.auto_action_embed(
            action=AUTO_ACTION,
            case_number=case.number,
            guild_id=subject.guild_id,
            channel_id=subject.channel_id,
            message_id=subject.message_id,
            author_id=subject.author_id,
            content=subject.content,
            classification=result,
            reason=reason,
        )
        await self._post_log(guild, {"embeds": [embed]})
        await self._escalate(subject, guild)

    async def _escalate(self, subject: Subject, guild: GuildSettings) -> None:
        policy = EscalationPolicy(
            guild.escalate_after, guild.escalate_window_s, guild.escalate_timeout_s
        )
        if policy.after <= 0:
            return
        now = self._wall_clock()
        since = now - timedelta(seconds=policy.window_s)
        recent = await cases.count_since(
            self._db, subject.guild_id, subject.author_id, AUTO_ACTION, since
        )
        key = (subject.guild_id, subject.author_id)
        if not policy.escalates(recent) or key in self._cooling:
            return
        # Invariant: no await between the check above and this mark, so of
        # the workers counting the same burst only one times the member out.
        self._cooling.set(key, True, ttl=policy.cooldown_s())
        until = now + timedelta(seconds=policy.timeout_s)
        reason = f"escalation: {recent} deleted messages within {policy.window_s} s"
        try:
            await self._rest.timeout_member(
                subject.guild_id, subject.author_id, until, reason=reason
            )
        except RestError as exc:
            # Not timed out after all: the next offence records its case and
            # tries again.
            self._cooling.pop(key)
            self._action_failed("timeout", subject, exc)
            return
        case = await cases.create_case(
            self._db,
            guild_id=subject.guild_id,
            action="mute",
            target_id=subject.author_id,
            moderator_id=self._bot_user_id,
            reason=reason,
            expires_at=until,
            duration_s=policy.timeout_s,
        )
        self.counters.escalated += 1
        embed = present.auto_action_embed(
            action="mute",
            case_number=case.number,
            guild_id=subject.guild_id,
            channel_id=subject.channel_id,
            message_id=0,
            author_id=subject.author_id,
            content="",
            classification=None,
            reason=reason,
        )
        await self._post_log(guild, {"embeds": [embed]})

    async def _queue_review(
        self, subject: Subject, result: Classification, guild: GuildSettings
    ) -> None:
        flagged = await review.add_flagged(
            self._db,
            guild_id=subject.guild_id,
            channel_id=subject.channel_id,
            message_id=subject.message_id,
            author_id=subject.author_id,
            content=subject.content,
            scores=result.scores,
            model=result.model,
        )
        post = present.review_message(
            flagged_id=flagged.id,
            guild_id=subject.guild_id,
            channel_id=subject.channel_id,
            message_id=subject.message_id,
            author_id=subject.author_id,
            content=subject.content,
            classification=result,
        )
        posted = await self._post_log(guild, post)
        if posted is not None:
            await review.set_review_message(self._db, flagged.id, posted)

    async def _post_log(
        self, guild: GuildSettings, fields: dict[str, Any]
    ) -> int | None:
        """Post to the guild's log channel; the message id, or None."""
        channel_id = guild.log_channel_id or self._default_log_channel
        if channel_id is None:
            log.warning("moderation.no_log_channel", extra={"guild_id": guild.guild_id})
            return None
        try:
            message = await self._rest.create_message(channel_id, **fields)
        except RestError as exc:
            self.counters.action_failures += 1
            log.error(
                "moderation.log_post_failed",
                extra={"guild_id": guild.guild_id, "error": type(exc).__name__},
            )
            return None
        return int(message["id"])

    def _action_failed(self, action: str, subject: Subject, exc: RestError) -> None:
        self.counters.action_failures += 1
        status = exc.status if isinstance(exc, DiscordHTTPError) else None
        log.error(
            "moderation.action_failed",
            extra={
                "guild_id": subject.guild_id,
                "user_id": subject.author_id,
                "status": status,
                "error": f"{action}: {type(exc).__name__}",
            },
        )

    # -- analyze (the "Analyze Message" context menu) ---------------------------------

    async def classify(self, text: str, *, ai_enabled: bool = True) -> Classification:
        """Scores for ``text``: local rules, then the AI unless decisive.

        The contract the "Analyze Message" command uses (no guild context:
        the default auto threshold decides what is decisive; nothing is
        remembered, audited or queued).
        """
        result = self._rules.classify(text, now=self._clock(), record=False)
        defaults = GuildSettings(guild_id=0)
        if (
            result.max_score < defaults.auto_threshold
            and ai_enabled
            and self._ai is not None
            and self._ai.available
        ):
            result = await self._ai_classify(text, result)
        return result

    async def analyze(self, message: Message) -> Analysis:
        """Classify ``message`` as the pipeline would, without acting.

        The repeat rules see the message but do not remember it, and nothing
        is audited or queued.

        Raises:
            ValueError: not a guild message.
        """
        subject = from_message(message, include_bots=True)
        if subject is None:
            raise ValueError("only guild messages can be analyzed")
        guild = await self._settings(subject.guild_id)
        result = self._classify_local(subject, record=False)
        wants_ai = (
            result.max_score < guild.auto_threshold
            and self._ai is not None
            and guild.ai_enabled
            and not result.unknown
            and self._ai.available
        )
        if wants_ai:
            result = await self._ai_classify(subject.content, result)
        verdict = decide(
            result,
            auto_threshold=guild.auto_threshold,
            review_threshold=guild.review_threshold,
        )
        return Analysis(result, verdict)

    # -- review buttons ---------------------------------------------------------------

    async def handle_review(self, ctx: CommandContext) -> None:
        """A moderator pressed a review button: record the case, act, update."""
        parsed = present.parse_review_id(ctx.custom_id)
        if parsed is None:
            await ctx.respond("That review button is not one I know.", ephemeral=True)
            return
        choice, flagged_id = parsed
        member = ctx.member
        if member is None or not _may(choice, member.permissions):
            await ctx.respond(
                f"You lack the permission to {choice} from the review queue.",
                ephemeral=True,
            )
            return
        item = await review.get_flagged(self._db, flagged_id)
        if item is None or item.guild_id != ctx.guild_id:
            await ctx.respond("That review item does not exist.", ephemeral=True)
            return
        await self._decide_review(ctx, choice, item)

    async def _decide_review(
        self, ctx: CommandContext, choice: str, item: review.FlaggedMessage
    ) -> None:
        guild = await self._settings(item.guild_id)
        reason = (
            f"review #{item.id}: {present.format_scores(item.scores)} ({item.model})"
        )
        until = None
        duration = None
        if choice == "mute":
            duration = guild.escalate_timeout_s
            until = self._wall_clock() + timedelta(seconds=duration)
        decision = await review.decide(
            self._db,
            item.id,
            reviewer_id=ctx.user_id,
            decision=choice,
            case_action=_CASE_ACTION.get(choice),
            reason=reason,
            expires_at=until,
            duration_s=duration,
        )
        if decision is None:
            await ctx.respond("Someone already decided this item.", ephemeral=True)
            return
        self.counters.reviews_decided += 1
        note = await self._carry_out(choice, item, reason, until)
        embed = present.decided_embed(
            flagged_id=item.id,
            choice=choice,
            reviewer_id=ctx.user_id,
            case_number=decision.case.number if decision.case else None,
            note=note,
        )
        await ctx.update_message(embeds=[embed], components=[])

    async def _carry_out(
        self,
        choice: str,
        item: review.FlaggedMessage,
        reason: str,
        until: datetime | None,
    ) -> str:
        """The Discord side of a review choice; a note for the moderator."""
        try:
            if choice == "delete":
                await self._rest.delete_message(
                    item.channel_id, item.message_id, reason=reason
                )
            elif choice == "mute":
                await self._rest.timeout_member(
                    item.guild_id, item.author_id, until, reason=reason
                )
            elif choice == "ban":
                await self._rest.ban_member(
                    item.guild_id, item.author_id, reason=reason
                )
            elif choice == "warn":
                return await self._warn_by_dm(item, reason)
        except NotFound:
            return "The message or member was already gone."
        except RestError as exc:
            self.counters.action_failures += 1
            log.error(
                "moderation.review_action_failed",
                extra={"guild_id": item.guild_id, "error": type(exc).__name__},
            )
            return (
                f"Discord refused the {choice} ({type(exc).__name__}); the case stands."
            )
        return ""

    async def _warn_by_dm(self, item: review.FlaggedMessage, reason: str) -> str:
        try:
            channel = await self._rest.create_dm(item.author_id)
            await self._rest.create_message(
                int(channel["id"]),
                content=f"You received a warning in a server you are in: {reason}",
            )
        except RestError:
            return "The member could not be told by DM."
        return ""


def _may(choice: str, permissions: int) -> bool:
    if permissions & _ADMINISTRATOR:
        return True
    needed = _NEEDS[choice]
    return permissions & needed == needed


def _auto_reason(result: Classification) -> str:
    top = result.top_category or "unknown"
    return f"automatic: {top} {result.max_score:.2f} ({result.model})"


def _decision_entry(
    subject: Subject, result: Classification, verdict: Verdict
) -> AuditEntry:
    return AuditEntry(
        table_name="moderation",
        operation="decision",
        guild_id=subject.guild_id,
        row_id=str(subject.message_id),
        change={
            "verdict": verdict.value,
            "scores": result.scores,
            "max_score": result.max_score,
            "model": result.model,
            "reasons": list(result.reasons),
            "cached": result.cached,
            "unknown": result.unknown,
            "edited": subject.edited,
            "channel_id": subject.channel_id,
            "author_id": subject.author_id,
        },
    )
