"""The review queue's buttons: ``review:<choice>:<flagged id>``.

The moderation service posts each flagged message to the log channel with
five buttons (delete, warn, mute, ban, dismiss; see
:mod:`vsb.moderation.present`). A press is routed here by its ``custom_id``
prefix and handled by :meth:`vsb.services.moderation.ModerationService.handle_review`:
the permission check per choice, the decision and its case in one
transaction (the first press wins), the Discord action, and the review post
updated in place with its buttons removed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vsb.moderation.present import REVIEW_PREFIX

if TYPE_CHECKING:
    from vsb.commands.registry import CommandRegistry
    from vsb.services.moderation import ModerationService


def register(registry: CommandRegistry, moderation: ModerationService) -> None:
    """Route review buttons to ``moderation`` (deferred as a message update)."""
    registry.component(
        REVIEW_PREFIX, moderation.handle_review, updates_message=True, ephemeral=True
    )
