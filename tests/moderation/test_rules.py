"""The local rule classifier and text normalization (pure, no I/O)."""

from __future__ import annotations

import pytest

from vsb.moderation.normalize import content_key, normalize, strip_invisible
from vsb.moderation.rules import LocalClassifier, RuleConfig

WORDS = {"idiot": "toxic", "kill yourself": "hate", "nudes": "nsfw"}


@pytest.fixture
def rules() -> LocalClassifier:
    return LocalClassifier(RuleConfig(words=WORDS))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HeLLo", "hello"),
        ("caf\u00e9 na\u00efve", "cafe naive"),
        ("in\u200bvi\u200dsi\ufeffble", "invisible"),
        ("l33t $p34k", "leet speak"),
        ("s p a c e d", "spaced"),
        ("\U0001d422\U0001d41d\U0001d422\U0001d428\U0001d42d", "idiot"),  # bold letters
    ],
)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


def test_strip_invisible_keeps_digits() -> None:
    assert strip_invisible("a\u200b1") == "a1"


def test_content_key_is_the_same_for_variants() -> None:
    assert content_key("FREE  n\u200bitro") == content_key("free nitro")
    assert content_key("free nitro") != content_key("free pizza")


@pytest.mark.parametrize(
    "text",
    [
        "you idiot",
        "YOU IDIOT",
        "you \u00efd\u00ef\u00f6t",
        "you id\u200biot",
        "you 1d10t",
        "you !d!0t",
        "you i d i o t",
        "you i.d.i.o.t",
    ],
)
def test_word_list_sees_through_evasions(rules: LocalClassifier, text: str) -> None:
    result = rules.classify(text, now=0)

    assert result.scores["toxic"] == 0.97
    assert "word:toxic" in result.reasons


@pytest.mark.parametrize("text", ["idiotic plan", "an idiom", "skill yourself up"])
def test_word_list_matches_whole_words_only(rules: LocalClassifier, text: str) -> None:
    assert rules.classify(text, now=0).max_score == 0.0


@pytest.mark.parametrize("text", ["you're all idiots", "you 1d10ts", "YOU IDIOTS"])
def test_word_list_matches_plurals(rules: LocalClassifier, text: str) -> None:
    assert rules.classify(text, now=0).max_score == 0.97


def test_phrases_and_categories(rules: LocalClassifier) -> None:
    result = rules.classify("just k1ll y0ur$elf", now=0)
    assert result.scores["hate"] == 0.97
    assert rules.classify("send nudes", now=0).scores["nsfw"] == 0.97


def test_clean_messages_score_zero(rules: LocalClassifier) -> None:
    for text in (
        "Good morning everyone!",
        "see https://discord.com/developers/docs for the API",
        "https://cdn.discordapp.com/attachments/1/2/cat.png",
        "https://store.steampowered.com/app/1",
        "the meeting is at 10:30, room 4",
        "",
    ):
        result = rules.classify(text, now=0)
        assert result.max_score == 0.0, text
        assert set(result.scores) == {"toxic", "spam", "nsfw", "hate"}


def test_mention_flood(rules: LocalClassifier) -> None:
    assert rules.classify("hi", now=0, mentions=4).max_score == 0.0
    flood = rules.classify("hi", now=0, mentions=5)
    assert flood.scores["spam"] == 0.99 and "mention_flood" in flood.reasons
    assert rules.classify("", now=0, mention_everyone=True).scores["spam"] == 0.99


def test_invite_links_go_to_review(rules: LocalClassifier) -> None:
    for text in ("join discord.gg/abc123", "https://discord.com/invite/xyz"):
        result = rules.classify(text, now=0)
        assert result.scores["spam"] == 0.85 and "invite" in result.reasons


@pytest.mark.parametrize(
    "text",
    [
        "free nitro https://d1scord-gift.com/claim",
        "https://dlscordapp.ru/login",
        "https://steamcornmunity.com/gift",
        "look http://192.168.4.20/x",
        "https://bit.ly/3abc",
        "https://xn--dscord-3ya.com",
        "https://steamcommunity.com.trade-offer.ru/x",
    ],
)
def test_suspicious_links(rules: LocalClassifier, text: str) -> None:
    result = rules.classify(text, now=0)
    assert result.scores["spam"] == 0.96 and "suspicious_link" in result.reasons


def test_configured_suspicious_domain() -> None:
    rules = LocalClassifier(RuleConfig(suspicious_domains=frozenset({"evil.example"})))
    assert rules.classify("see https://evil.example/a", now=0).scores["spam"] == 0.96


def test_caps_and_emoji_walls(rules: LocalClassifier) -> None:
    assert (
        "caps" in rules.classify("WHY IS NOBODY ANSWERING MY QUESTION", now=0).reasons
    )
    assert rules.classify("OK NASA", now=0).max_score == 0.0  # too short to judge
    assert "emoji" in rules.classify("\U0001f389" * 12, now=0).reasons
    custom = " ".join(["<:pog:123456789012345678>"] * 12)
    assert "emoji" in rules.classify(custom, now=0).reasons


def test_the_same_text_across_channels_is_a_spray(rules: LocalClassifier) -> None:
    text = "cheap followers at my site"
    first = rules.classify(text, now=0, channel_id=1, author_id=7)
    second = rules.classify(text, now=1, channel_id=2, author_id=7)
    third = rules.classify(text, now=2, channel_id=3, author_id=7)

    assert first.max_score == 0.0 and second.max_score == 0.0
    assert third.scores["spam"] == 0.97 and "repeat_channels" in third.reasons


def test_repeats_are_per_author_and_expire(rules: LocalClassifier) -> None:
    text = "cheap followers at my site"
    rules.classify(text, now=0, channel_id=1, author_id=7)
    rules.classify(text, now=1, channel_id=2, author_id=8)  # someone else
    assert rules.classify(text, now=2, channel_id=3, author_id=9).max_score == 0.0

    rules.classify(text, now=100, channel_id=1, author_id=7)
    late = rules.classify(text, now=200, channel_id=2, author_id=7)
    assert late.max_score == 0.0  # the first post left the 30 s window


def test_repeats_in_one_channel(rules: LocalClassifier) -> None:
    text = "buy my course today"
    results = [rules.classify(text, now=i, channel_id=1, author_id=7) for i in range(5)]
    assert results[3].max_score == 0.0
    assert results[4].scores["spam"] == 0.85


def test_unrecorded_posts_do_not_count(rules: LocalClassifier) -> None:
    text = "cheap followers at my site"
    for channel in (1, 2):
        rules.classify(text, now=0, channel_id=channel, author_id=7, record=False)
    assert rules.classify(text, now=1, channel_id=3, author_id=7).max_score == 0.0


def test_tracked_authors_are_bounded() -> None:
    rules = LocalClassifier(RuleConfig(max_authors=10))
    for author in range(100):
        rules.classify("some longer message", now=0, author_id=author)
    assert rules.stats()["tracked_authors"] == 10


def test_stats_count_hits(rules: LocalClassifier) -> None:
    rules.classify("you idiot", now=0)
    rules.classify("hi", now=0, mentions=9)
    stats = rules.stats()
    assert stats["messages"] == 2
    assert stats["hits"] == {"word:toxic": 1, "mention_flood": 1}
