"""Automatic moderation: the pure parts of the pipeline.

- :mod:`vsb.moderation.normalize`: text folding (case, accents, invisible
  characters, letter substitutions) and the content key used for caching.
- :mod:`vsb.moderation.classification`: the :class:`Classification` value
  every classifier returns, and how two of them merge.
- :mod:`vsb.moderation.rules`: the local rule classifier (always on).
- :mod:`vsb.moderation.decision`: thresholds to verdicts, and escalation.
- :mod:`vsb.moderation.breaker`: the circuit breaker in front of Groq.

The I/O lives in :mod:`vsb.services.ai` (Groq) and
:mod:`vsb.services.moderation` (the pipeline service).
"""

from vsb.moderation.classification import LOCAL_MODEL, Classification, merge
from vsb.moderation.decision import EscalationPolicy, Verdict, decide
from vsb.moderation.rules import LocalClassifier, RuleConfig

__all__ = [
    "LOCAL_MODEL",
    "Classification",
    "EscalationPolicy",
    "LocalClassifier",
    "RuleConfig",
    "Verdict",
    "decide",
    "merge",
]
