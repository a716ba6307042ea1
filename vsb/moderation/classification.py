"""The result of classifying one message, from any classifier.

A :class:`Classification` holds a score in [0, 1] per category (``toxic``,
``spam``, ``nsfw``, ``hate``, and whatever else is configured), the model
that produced it (``local-rules`` for the rule classifier, a Groq model id
for the AI), the local rules that fired, and whether the content could not
be seen at all (``unknown``: a guild message without the MESSAGE_CONTENT
intent). The pipeline decides on the highest score.
"""

from __future__ import annotations

from typing import Final

import msgspec

#: The model name the local rule classifier reports.
LOCAL_MODEL: Final = "local-rules"


class Classification(msgspec.Struct, frozen=True, kw_only=True):
    """Scores per category and where they came from.

    Attributes:
        scores: category to score in [0, 1].
        model: ``local-rules``, a Groq model id, or both joined by ``+``.
        reasons: the local rules that fired (``mention_flood``, ``word:toxic``).
        unknown: the content was not visible, so "clean" cannot be claimed.
        cached: the AI part came from the result cache.
    """

    scores: dict[str, float]
    model: str
    reasons: tuple[str, ...] = ()
    unknown: bool = False
    cached: bool = False

    @property
    def max_score(self) -> float:
        """The highest score (0.0 with no category)."""
        return max(self.scores.values(), default=0.0)

    @property
    def top_category(self) -> str | None:
        """The category with the highest score, None when all are 0."""
        if not self.scores or self.max_score <= 0.0:
            return None
        return max(self.scores, key=lambda name: self.scores[name])


def merge(local: Classification, ai: Classification) -> Classification:
    """Combine the local and AI results: the higher score per category wins."""
    scores = dict(local.scores)
    for name, value in ai.scores.items():
        scores[name] = max(value, scores.get(name, 0.0))
    return Classification(
        scores=scores,
        model=f"{local.model}+{ai.model}",
        reasons=local.reasons,
        unknown=local.unknown and ai.unknown,
        cached=ai.cached,
    )
