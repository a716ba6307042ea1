"""The word list of the local classifier: a small default, or a file.

A word-list file has one entry per line, ``<category> <word or phrase>``;
blank lines and lines starting with ``#`` are skipped. Categories are the
classifier's (``toxic``, ``spam``, ``nsfw``, ``hate``). The folding of
:mod:`vsb.moderation.normalize` applies, so one entry matches its
look-alike spellings.

Exceptions: :class:`WordListError` names the file and line of a bad entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final

from vsb.moderation.rules import RuleConfig

#: A deliberately short starting list of unambiguous insults. Communities
#: should bring their own with ``VSB_WORDS_FILE``.
DEFAULT_WORDS: Final[Mapping[str, str]] = {
    "idiot": "toxic",
    "moron": "toxic",
    "imbecile": "toxic",
    "scumbag": "toxic",
    "kys": "toxic",
    "kill yourself": "toxic",
}


class WordListError(ValueError):
    """A word-list file could not be read or has a bad line."""


def load_words(path: Path | None) -> dict[str, str]:
    """The word list from ``path``, or :data:`DEFAULT_WORDS` when None.

    Raises:
        WordListError: unreadable file, or a line without a known category.
    """
    if path is None:
        return dict(DEFAULT_WORDS)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WordListError(f"{path}: cannot read ({type(exc).__name__})") from None
    categories = RuleConfig().categories
    words: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        category, _, word = line.partition(" ")
        word = word.strip()
        if category not in categories or not word:
            raise WordListError(
                f"{path}:{number}: expected '<category> <word>' with a category "
                f"among {', '.join(categories)}"
            )
        words[word] = category
    return words
