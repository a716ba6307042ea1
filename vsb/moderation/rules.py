"""The local rule classifier: fast, always on, the only one without a key.

Rules, each giving a score to one category (see :class:`RuleConfig`):

- ``mention_flood`` (spam): many distinct users or roles mentioned, or
  ``@everyone``, in one message.
- ``repeat_channels`` (spam): the same normalized text from one author in
  several channels within a short window (the classic raid/scam spray);
  ``repeat_channel`` (spam): the same text many times in one channel.
- ``invite`` (spam): a Discord invite link; ``suspicious_link`` (spam): a
  link to an IP address, a punycode host, a URL shortener, a configured
  domain, or a host that imitates Discord or Steam.
- ``caps`` / ``emoji`` (spam): shouting or emoji walls.
- ``word:<category>``: a configured word or phrase, matched on the
  normalized text (:func:`vsb.moderation.normalize.normalize`), so case,
  accents, invisible characters, digit/symbol substitutions and spaced-out
  letters do not dodge it.

Scores are chosen against the default thresholds (auto 0.95, review 0.80):
floods, cross-channel sprays, suspicious links and listed words act on
their own; invites, caps and emoji walls go to review.

The classifier keeps one piece of state, the recent posts per author, for
the repeat rules; everything else is a pure function of the message. Time
comes in as ``now`` so tests drive it.
"""

from __future__ import annotations

import re
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from vsb.moderation.classification import LOCAL_MODEL, Classification
from vsb.moderation.normalize import fold, match_form, normalize, word_pattern

#: The categories every classifier reports.
DEFAULT_CATEGORIES: Final = ("toxic", "spam", "nsfw", "hate")

_URL: Final = re.compile(r"(?:https?://|www\.)([^\s/<>\"')]+)", re.IGNORECASE)
_INVITE: Final = re.compile(
    r"(?:discord(?:app)?\.com/invite|discord\.gg|dsc\.gg)/[\w-]+", re.IGNORECASE
)
_IPV4: Final = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?$")
_CUSTOM_EMOJI: Final = re.compile(r"<a?:\w{2,32}:\d{15,21}>")
_UNICODE_EMOJI: Final = re.compile(
    "[\U0001f1e6-\U0001f1ff\U0001f300-\U0001faff\u2600-\u27bf\u2b50\u2b55]"
)
_UPPER: Final = re.compile(r"[A-Z]")
_LETTER: Final = re.compile(r"[A-Za-z]")

#: Hosts that are Discord's or Steam's own (never "look-alike").
_OFFICIAL_HOSTS: Final = frozenset(
    {
        "discord.com",
        "discord.gg",
        "discordapp.com",
        "discordapp.net",
        "discord.media",
        "discord.new",
        "discord.gift",
        "discordstatus.com",
        "steamcommunity.com",
        "steampowered.com",
        "store.steampowered.com",
    }
)
_SHORTENERS: Final = frozenset(
    {"bit.ly", "tinyurl.com", "goo.gl", "cutt.ly", "is.gd", "rb.gy", "shorturl.at"}
)
# Folded host names that imitate a brand: "d1scord-nitro.gift", "steamcomnunity".
_LOOKALIKE: Final = re.compile(
    r"d[il1]s[ck]{1,2}[o0]r[dt]|st[e3][a4]m.?c[o0](?:m|rn|nn)"
)


@dataclass(frozen=True, slots=True)
class RuleConfig:
    """Limits and scores of the local rules; the defaults suit most servers.

    Attributes:
        mention_limit: distinct user and role mentions (``@everyone`` counts
            as this many) at which a message is a flood.
        repeat_window_s: how long a post is remembered for the repeat rules.
        repeat_channels: distinct channels with the same text (same author)
            at which a spray is detected.
        repeat_in_channel: the same text this many times in one channel.
        repeat_min_length: shorter texts ("ok", "lol") are not tracked.
        caps_min_letters: letters needed before the caps rule looks.
        caps_ratio: share of capitals that counts as shouting.
        emoji_limit: emoji in one message that count as a wall.
        words: a word or phrase to its category (``{"idiot": "toxic"}``);
            entries are normalized like messages.
        suspicious_domains: extra hosts to treat as suspicious.
        max_authors: authors remembered for the repeat rules (LRU).
    """

    mention_limit: int = 5
    repeat_window_s: float = 30.0
    repeat_channels: int = 3
    repeat_in_channel: int = 5
    repeat_min_length: int = 6
    caps_min_letters: int = 20
    caps_ratio: float = 0.8
    emoji_limit: int = 12
    words: Mapping[str, str] = field(default_factory=dict)
    suspicious_domains: frozenset[str] = frozenset()
    max_authors: int = 50_000
    mention_score: float = 0.99
    spray_score: float = 0.97
    repeat_score: float = 0.85
    invite_score: float = 0.85
    suspicious_link_score: float = 0.96
    flood_score: float = 0.82
    word_score: float = 0.97
    categories: tuple[str, ...] = DEFAULT_CATEGORIES


@dataclass(slots=True)
class RuleStats:
    """Counters of the local classifier."""

    messages: int = 0
    hits: dict[str, int] = field(default_factory=dict)


class LocalClassifier:
    """Scores messages with the local rules.

    Args:
        config: limits, scores and the word list.
    """

    def __init__(self, config: RuleConfig | None = None) -> None:
        self.config = config or RuleConfig()
        self._words = _compile_words(self.config.words)
        # Invariant: (guild_id, author_id) -> recent (time, text, channel),
        # least recently active author first.
        self._recent: OrderedDict[tuple[int, int], deque[tuple[float, str, int]]] = (
            OrderedDict()
        )
        self._stats = RuleStats()

    def classify(
        self,
        content: str,
        *,
        now: float,
        guild_id: int = 0,
        channel_id: int = 0,
        author_id: int = 0,
        mentions: int = 0,
        mention_everyone: bool = False,
        record: bool = True,
    ) -> Classification:
        """Score one message.

        Args:
            content: the message text (may be empty).
            now: the current time in seconds (any monotonic origin).
            guild_id / channel_id / author_id: for the repeat rules.
            mentions: distinct users and roles mentioned.
            mention_everyone: the message pings ``@everyone``/``@here``.
            record: remember this post for the repeat rules (False for edits
                and for "Analyze Message").

        Returns:
            The scores (every configured category present) and the rules
            that fired, with model ``local-rules``.
        """
        cfg = self.config
        self._stats.messages += 1
        scores = dict.fromkeys(cfg.categories, 0.0)
        reasons: list[str] = []

        if mention_everyone:
            mentions += cfg.mention_limit
        if mentions >= cfg.mention_limit:
            self._hit(scores, reasons, "spam", cfg.mention_score, "mention_flood")
        if content:
            norm = normalize(content)
            self._check_links(content, scores, reasons)
            self._check_flood(content, scores, reasons)
            self._check_words(content, scores, reasons)
            if len(norm) >= cfg.repeat_min_length:
                key = (guild_id, author_id)
                self._check_repeats(key, norm, channel_id, now, scores, reasons)
                if record:
                    self._remember(key, norm, channel_id, now)
        return Classification(scores=scores, model=LOCAL_MODEL, reasons=tuple(reasons))

    def stats(self) -> dict[str, object]:
        """Messages scored, rule hits by name, authors tracked."""
        return {
            "messages": self._stats.messages,
            "hits": dict(self._stats.hits),
            "tracked_authors": len(self._recent),
        }

    # -- rules ---------------------------------------------------------------

    def _hit(
        self,
        scores: dict[str, float],
        reasons: list[str],
        category: str,
        score: float,
        reason: str,
    ) -> None:
        if score > scores.get(category, 0.0):
            scores[category] = score
        reasons.append(reason)
        hits = self._stats.hits
        hits[reason] = hits.get(reason, 0) + 1

    def _check_links(
        self, content: str, scores: dict[str, float], reasons: list[str]
    ) -> None:
        if "." not in content:
            return
        cfg = self.config
        if _INVITE.search(content):
            self._hit(scores, reasons, "spam", cfg.invite_score, "invite")
        for match in _URL.finditer(content):
            if _suspicious_host(match.group(1), cfg.suspicious_domains):
                self._hit(
                    scores,
                    reasons,
                    "spam",
                    cfg.suspicious_link_score,
                    "suspicious_link",
                )
                return

    def _check_flood(
        self, content: str, scores: dict[str, float], reasons: list[str]
    ) -> None:
        cfg = self.config
        if len(content) >= cfg.caps_min_letters:
            letters = len(_LETTER.findall(content))
            if letters >= cfg.caps_min_letters:
                upper = len(_UPPER.findall(content))
                if upper >= letters * cfg.caps_ratio:
                    self._hit(scores, reasons, "spam", cfg.flood_score, "caps")
        if content.isascii() and "<" not in content:
            return
        emoji = len(_UNICODE_EMOJI.findall(content)) + len(
            _CUSTOM_EMOJI.findall(content)
        )
        if emoji >= cfg.emoji_limit:
            self._hit(scores, reasons, "spam", cfg.flood_score, "emoji")

    def _check_words(
        self, content: str, scores: dict[str, float], reasons: list[str]
    ) -> None:
        if not self._words:
            return
        text = match_form(content)
        for category, pattern in self._words.items():
            if pattern.search(text):
                self._hit(
                    scores,
                    reasons,
                    category,
                    self.config.word_score,
                    f"word:{category}",
                )

    def _check_repeats(
        self,
        key: tuple[int, int],
        norm: str,
        channel_id: int,
        now: float,
        scores: dict[str, float],
        reasons: list[str],
    ) -> None:
        posts = self._recent.get(key)
        if not posts:
            return
        cfg = self.config
        horizon = now - cfg.repeat_window_s
        channels = {channel_id}
        same_channel = 1
        for at, text, channel in posts:
            if at >= horizon and text == norm:
                channels.add(channel)
                same_channel += channel == channel_id
        if len(channels) >= cfg.repeat_channels:
            self._hit(scores, reasons, "spam", cfg.spray_score, "repeat_channels")
        elif same_channel >= cfg.repeat_in_channel:
            self._hit(scores, reasons, "spam", cfg.repeat_score, "repeat_channel")

    def _remember(
        self, key: tuple[int, int], norm: str, channel_id: int, now: float
    ) -> None:
        posts = self._recent.get(key)
        if posts is None:
            posts = self._recent[key] = deque(maxlen=16)
            if len(self._recent) > self.config.max_authors:
                self._recent.popitem(last=False)
        else:
            self._recent.move_to_end(key)
        posts.append((now, norm, channel_id))


def _compile_words(words: Mapping[str, str]) -> dict[str, re.Pattern[str]]:
    """One pattern per category, each letter matching its look-alikes."""
    by_category: dict[str, list[str]] = {}
    for word, category in words.items():
        folded = match_form(word)
        if folded:
            by_category.setdefault(category, []).append(word_pattern(folded))
    compiled = {}
    for category, parts in by_category.items():
        # Longest first, so a phrase wins over a word it contains. A plural
        # ("idiots") is the same insult as the listed word.
        parts.sort(key=len, reverse=True)
        compiled[category] = re.compile(
            rf"(?<![^\W\d_])(?:{'|'.join(parts)})(?:e?s)?(?![^\W\d_])"
        )
    return compiled


def _suspicious_host(raw_host: str, extra: Iterable[str]) -> bool:
    host = fold(raw_host).rstrip(".").split("@")[-1]
    if host.startswith("www."):
        host = host[4:]
    if host in _OFFICIAL_HOSTS or _parent_domain(host) in _OFFICIAL_HOSTS:
        return False
    if host in _SHORTENERS or host in extra:
        return True
    if _IPV4.match(host) or "xn--" in host:
        return True
    return _LOOKALIKE.search(host) is not None


def _parent_domain(host: str) -> str:
    """``cdn.discordapp.com`` -> ``discordapp.com`` (the last two labels)."""
    return ".".join(host.rsplit(".", 2)[-2:])
