"""Which gateway events the pipeline moderates, and the moderator check."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from vsb.models import decode_event
from vsb.moderation.present import parse_review_id, review_custom_id
from vsb.moderation.subject import from_message, from_update
from vsb.services.moderation import moderator_check

AUTHOR = {"id": "42", "username": "someone"}


def message(**fields: Any) -> Any:
    payload = {
        "id": "1001",
        "channel_id": "20",
        "guild_id": "10",
        "author": AUTHOR,
        "content": "hello",
        "member": {"roles": ["7", "8"]},
        "mentions": [{"id": "1", "username": "a"}, {"id": "1", "username": "a"}],
        "mention_roles": ["9"],
    } | fields
    return decode_event("MESSAGE_CREATE", orjson.dumps(payload))


def test_a_guild_message_becomes_a_subject() -> None:
    subject = from_message(message())
    assert subject is not None
    assert (subject.guild_id, subject.channel_id, subject.author_id) == (10, 20, 42)
    assert subject.role_ids == (7, 8)
    assert subject.mentions == 2  # one distinct user + one role
    assert not subject.edited


@pytest.mark.parametrize(
    "fields",
    [
        {"guild_id": None},
        {"author": {"id": "5", "username": "b", "bot": True}},
        {"webhook_id": "77"},
        {"type": 7},  # a member join notice
    ],
)
def test_not_moderated(fields: dict[str, Any]) -> None:
    payload = message(**fields)
    assert from_message(payload) is None


def test_analyze_may_include_bots() -> None:
    bot = message(author={"id": "5", "username": "b", "bot": True})
    assert from_message(bot, include_bots=True) is not None


def test_an_update_with_content_is_an_edit() -> None:
    update = decode_event(
        "MESSAGE_UPDATE",
        orjson.dumps(
            {
                "id": "1001",
                "channel_id": "20",
                "guild_id": "10",
                "author": AUTHOR,
                "content": "edited",
            }
        ),
    )
    subject = from_update(update)
    assert subject is not None and subject.edited and subject.content == "edited"


def test_an_embed_only_update_is_skipped() -> None:
    update = decode_event(
        "MESSAGE_UPDATE",
        orjson.dumps(
            {"id": "1001", "channel_id": "20", "guild_id": "10", "embeds": []}
        ),
    )
    assert from_update(update) is None


def test_review_custom_ids_round_trip() -> None:
    assert parse_review_id(review_custom_id("ban", 12)) == ("ban", 12)
    for bad in ("review:ban", "review:nuke:1", "review:ban:x", "other:ban:1"):
        assert parse_review_id(bad) is None


@pytest.mark.parametrize(
    "custom_id",
    # superscript two (isdigit, but int() refuses it), Arabic-Indic and
    # fullwidth digits (int() would read them as 12).
    ["review:ban:\u00b2", "review:ban:\u0661\u0662", "review:ban:\uff11\uff12"],
)
def test_review_custom_ids_take_ascii_digits_only(custom_id: str) -> None:
    assert parse_review_id(custom_id) is None


class FakeCache:
    def __init__(self, permissions: int | None) -> None:
        self.permissions = permissions

    def permissions_for(self, guild_id: int, user_id: int) -> int | None:
        return self.permissions


@pytest.mark.parametrize(
    ("permissions", "expected"),
    [(None, False), (0, False), (1 << 13, True), (1 << 40, True), (1 << 3, True)],
)
def test_moderator_check(permissions: int | None, expected: bool) -> None:
    check = moderator_check(FakeCache(permissions))  # type: ignore[arg-type]
    assert check(1, 2) is expected
