"""How moderation shows up in Discord: embeds, buttons, ``custom_id``s.

Review buttons carry ``review:<choice>:<flagged id>`` (Discord allows 100
characters); the choices are :data:`REVIEW_CHOICES`.
"""

from __future__ import annotations

from typing import Any, Final

from vsb.moderation.classification import Classification

#: The ``custom_id`` prefix of review buttons.
REVIEW_PREFIX: Final = "review:"
#: Review choices, in button order, with their label and button style
#: (Discord docs, Button Styles: 1 primary, 2 secondary, 3 success, 4 danger).
REVIEW_CHOICES: Final = {
    "delete": ("Delete", 4),
    "warn": ("Warn", 1),
    "mute": ("Mute", 2),
    "ban": ("Ban", 4),
    "dismiss": ("Dismiss", 3),
}
_YELLOW: Final = 0xF1C40F
_RED: Final = 0xE74C3C
_GREEN: Final = 0x2ECC71
_GREY: Final = 0x95A5A6


def review_custom_id(choice: str, flagged_id: int) -> str:
    """The ``custom_id`` of one review button."""
    return f"{REVIEW_PREFIX}{choice}:{flagged_id}"


def parse_review_id(custom_id: str) -> tuple[str, int] | None:
    """``(choice, flagged_id)`` from a review ``custom_id``; None if malformed."""
    parts = custom_id.split(":")
    if len(parts) != 3 or parts[0] + ":" != REVIEW_PREFIX:
        return None
    digits = parts[2]
    if parts[1] not in REVIEW_CHOICES or not (digits.isascii() and digits.isdigit()):
        return None
    return parts[1], int(parts[2])


def format_scores(scores: dict[str, float]) -> str:
    """``toxic 0.91 · spam 0.10`` (highest first)."""
    ordered = sorted(scores.items(), key=lambda item: item[1], reverse=True)
    return " · ".join(f"{name} {value:.2f}" for name, value in ordered) or "none"


def jump_url(guild_id: int, channel_id: int, message_id: int) -> str:
    """The link to a message in the Discord client."""
    return f"https://discord.com/channels/{guild_id}/{channel_id}/{message_id}"


def review_message(
    *,
    flagged_id: int,
    guild_id: int,
    channel_id: int,
    message_id: int,
    author_id: int,
    content: str,
    classification: Classification,
) -> dict[str, Any]:
    """The log-channel post of a flagged message: embed and five buttons."""
    embed = {
        "title": "Message flagged for review",
        "description": _quote(content),
        "color": _YELLOW,
        "fields": [
            {"name": "Author", "value": f"<@{author_id}>", "inline": True},
            {"name": "Channel", "value": f"<#{channel_id}>", "inline": True},
            {"name": "Scores", "value": format_scores(classification.scores)},
            {"name": "Model", "value": classification.model, "inline": True},
            {"name": "Message", "value": jump_url(guild_id, channel_id, message_id)},
        ],
        "footer": {"text": f"Review #{flagged_id}"},
    }
    buttons = [
        {
            "type": 2,
            "style": style,
            "label": label,
            "custom_id": review_custom_id(choice, flagged_id),
        }
        for choice, (label, style) in REVIEW_CHOICES.items()
    ]
    return {
        "embeds": [embed],
        "components": [{"type": 1, "components": buttons}],
        "allowed_mentions": {"parse": []},
    }


def decided_embed(
    *,
    flagged_id: int,
    choice: str,
    reviewer_id: int,
    case_number: int | None,
    note: str,
) -> dict[str, Any]:
    """The review post after a moderator's choice (buttons removed)."""
    color = _GREY if choice == "dismiss" else _RED
    text = f"<@{reviewer_id}> chose **{choice}**"
    if case_number is not None:
        text += f" (case #{case_number})"
    if note:
        text += f"\n{note}"
    return {
        "title": f"Review #{flagged_id} decided",
        "description": text,
        "color": color,
    }


def auto_action_embed(
    *,
    action: str,
    case_number: int,
    guild_id: int,
    channel_id: int,
    message_id: int,
    author_id: int,
    content: str,
    classification: Classification | None,
    reason: str,
) -> dict[str, Any]:
    """The mod-log post of an automatic action (delete, escalation timeout)."""
    fields = [
        {"name": "Member", "value": f"<@{author_id}>", "inline": True},
        {"name": "Channel", "value": f"<#{channel_id}>", "inline": True},
        {"name": "Reason", "value": reason[:1024]},
    ]
    if classification is not None:
        fields.append({"name": "Scores", "value": format_scores(classification.scores)})
        fields.append({"name": "Model", "value": classification.model, "inline": True})
    if message_id:
        fields.append(
            {"name": "Message", "value": jump_url(guild_id, channel_id, message_id)}
        )
    return {
        "title": f"Case #{case_number}: automatic {action}",
        "description": _quote(content) if content else None,
        "color": _RED if action == "delete" else _GREEN,
        "fields": fields,
    }


def _quote(content: str) -> str:
    text = content if len(content) <= 1000 else content[:997] + "..."
    return "\n".join("> " + line for line in text.splitlines()) or "> (empty)"
