"""The "Analyze Message" context menu: what moderation thinks of a message.

A moderator right-clicks a message, picks Apps > Analyze Message, and gets
an ephemeral answer with the classifier's categories and scores, the model,
the local rules that fired, and the verdict the guild's thresholds would
give (:func:`vsb.moderation.decision.decide`). Nothing is deleted or
recorded: it is a read-only look.

The classifier is passed in at construction (``classify(text) ->
Classification``); :mod:`vsb.services.moderation` supplies the real one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

from vsb.cache.permissions import Permissions
from vsb.commands.context import CommandContext
from vsb.commands.errors import CommandError
from vsb.commands.schema import Command, CommandType
from vsb.db import settings as guild_settings
from vsb.models import Message
from vsb.moderation.classification import Classification
from vsb.moderation.decision import Verdict, decide

if TYPE_CHECKING:
    from vsb.services.database import Database

Classifier = Callable[[str], Awaitable[Classification]]
"""``await classify(text)``: scores per category."""

NAME: Final = "Analyze Message"
_VERDICTS: Final = {
    Verdict.DELETE: "delete the message and record a case",
    Verdict.REVIEW: "send it to the review queue",
    Verdict.ALLOW: "allow it",
    Verdict.UNKNOWN: "none: the content was not visible",
}


class Analyze:
    """The "Analyze Message" message command.

    Args:
        classify: the moderation classifier.
        db: for the guild's thresholds.
    """

    def __init__(self, classify: Classifier, db: Database) -> None:
        self._classify = classify
        self._db = db

    def commands(self) -> list[Command]:
        """The context menu, for ``registry.add_all``."""
        return [
            Command(
                name=NAME,
                type=CommandType.MESSAGE,
                handler=self.analyze,
                default_member_permissions=Permissions.MANAGE_MESSAGES,
                ephemeral=True,
                cooldown=(3, 10.0),
            )
        ]

    async def analyze(self, ctx: CommandContext) -> None:
        """Classify the targeted message and answer with the scores."""
        message = ctx.target
        assert isinstance(message, Message)
        text = _text_of(message)
        if not text.strip():
            raise CommandError(
                "This message has no text I can read (only attachments, or the"
                " bot lacks the Message Content intent)."
            )
        result = await self._classify(text)
        found = await guild_settings.get(self._db, ctx.guild_id or 0)
        verdict = decide(
            result,
            auto_threshold=found.auto_threshold,
            review_threshold=found.review_threshold,
        )
        await ctx.respond(embeds=[_embed(message, result, verdict, found)])


def _text_of(message: Message) -> str:
    parts = [message.content]
    for embed in message.embeds:
        parts.extend(p for p in (embed.title, embed.description) if p)
    return "\n".join(parts)


def _embed(
    message: Message, result: Classification, verdict: Verdict, found: Any
) -> dict[str, Any]:
    ranked = sorted(result.scores.items(), key=lambda item: item[1], reverse=True)
    scores = "\n".join(f"`{name}` {_bar(score)} {score:.2f}" for name, score in ranked)
    fields = [
        {"name": "Scores", "value": scores or "(no category)", "inline": False},
        {
            "name": "Thresholds would",
            "value": f"{_VERDICTS[verdict]} (auto {found.auto_threshold:.2f},"
            f" review {found.review_threshold:.2f})",
            "inline": False,
        },
        {
            "name": "Model",
            "value": result.model + (" (cached)" if result.cached else ""),
            "inline": True,
        },
    ]
    if result.reasons:
        fields.append(
            {"name": "Rules", "value": ", ".join(result.reasons)[:1024], "inline": True}
        )
    return {
        "title": "Message analysis",
        "description": f"Message {message.id} by <@{message.author.id}>",
        "fields": fields,
        "color": 0xE74C3C if verdict is Verdict.DELETE else 0x5865F2,
    }


def _bar(score: float, width: int = 10) -> str:
    filled = round(max(0.0, min(1.0, score)) * width)
    return "█" * filled + "░" * (width - filled)
