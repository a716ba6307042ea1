"""Text normalization for matching and caching.

People dodge word filters with capitals, accents (``ïdïot``), invisible
characters (``id\u200biot``), look-alike digits and symbols (``1d10t``,
``$pam``) and spaced-out letters (``i d i o t``). :func:`normalize` folds all
of these into one plain form, so one entry of the word list matches every
variant and one cache entry serves every variant of a repeated message.

:func:`strip_invisible` only removes the invisible characters; it is what
the AI sees (digits and symbols keep their meaning there).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Final

#: Zero-width and formatting characters that render as nothing.
_INVISIBLE: Final = (
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e"
    "\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    "\u2060\u2061\u2062\u2063\u2064\u206a\u206b\u206c\u206d\u206e\u206f"
    "\u3164\ufeff\uffa0"
)
_DROP_INVISIBLE: Final = str.maketrans(dict.fromkeys(_INVISIBLE))

#: Common letter substitutions ("leetspeak"), applied after case folding.
_SUBSTITUTIONS: Final = {
    "0": "o",
    "1": "i",
    "3": "e",
    "4": "a",
    "5": "s",
    "7": "t",
    "8": "b",
    "9": "g",
    "@": "a",
    "$": "s",
    "!": "i",
    "|": "l",
    "+": "t",
    "€": "e",
}
_SUBSTITUTE: Final = str.maketrans(_SUBSTITUTIONS)

_ALIASES: dict[str, str] = {}
for _symbol, _letter in _SUBSTITUTIONS.items():
    _ALIASES[_letter] = _ALIASES.get(_letter, _letter) + _symbol
_ALIASES["l"] = _ALIASES.get("l", "l") + "1"
#: Per letter, a character class of the characters that stand for it.
_LOOKALIKES: Final = {
    letter: "[" + re.escape(chars) + "]" for letter, chars in _ALIASES.items()
}

# Three or more single letters separated by one non-word character each
# ("i d i o t", "i.d.i.o.t") are joined back into a word.
_SPACED: Final = re.compile(r"\b(?:\w[\s._\-*]){2,}\w\b")
_SEPARATORS: Final = re.compile(r"[\s._\-*]")
_WHITESPACE: Final = re.compile(r"\s+")


def strip_invisible(text: str) -> str:
    """``text`` without zero-width and other invisible characters."""
    return text.translate(_DROP_INVISIBLE)


def fold(text: str) -> str:
    """Case-fold, drop accents and invisible characters (no substitutions)."""
    text = text.translate(_DROP_INVISIBLE)
    if not text.isascii():
        # NFKD splits "é" into "e" + a combining accent and maps full-width
        # and stylised letters (𝐢𝐝𝐢𝐨𝐭) to plain ones; the accents then go.
        text = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return text.casefold()


def normalize(text: str) -> str:
    """The matching form: folded, substituted, spaced letters joined.

    >>> normalize("Y0u  \u00cfD\u200bIOT")
    'you idiot'
    """
    text = fold(text).translate(_SUBSTITUTE)
    if " " in text or "." in text or "-" in text or "*" in text or "_" in text:
        text = _SPACED.sub(lambda m: _SEPARATORS.sub("", m.group()), text)
        text = _WHITESPACE.sub(" ", text)
    return text.strip()


def match_form(text: str) -> str:
    """Folded text with spaced-out letters joined: what word patterns see.

    Unlike :func:`normalize`, digits and symbols stay (``1`` may stand for
    ``i`` or ``l``); :func:`word_pattern` accepts every look-alike instead.
    """
    text = fold(text)
    if " " in text or "." in text or "-" in text or "*" in text or "_" in text:
        text = _SPACED.sub(lambda m: _SEPARATORS.sub("", m.group()), text)
    return text


def word_pattern(word: str) -> str:
    """A regex for a folded ``word`` accepting look-alike characters.

    ``kill`` becomes ``k[i1!|][l1|][l1|]``; a space in a phrase accepts any
    run of non-word characters.
    """
    parts = []
    for ch in word:
        if ch.isspace():
            parts.append(r"\W+")
        else:
            parts.append(_LOOKALIKES.get(ch, re.escape(ch)))
    return "".join(parts)


def content_key(text: str) -> str:
    """A stable hash of the normalized text: the AI result cache key."""
    return hashlib.blake2b(normalize(text).encode(), digest_size=16).hexdigest()
