"""A wrapper for secret values whose text form never shows the value.

Every secret setting (bot token, OAuth client secret, JWT key, Groq key) is
held in a :class:`Secret`. ``repr``, ``str`` and ``format`` print a redaction
marker; only :meth:`Secret.reveal` returns the value, and the callers that
need it (an ``Authorization`` header, a signature) call it at the last moment.
"""

from __future__ import annotations

from typing import Any, Final

REDACTED: Final = "<redacted>"


class Secret:
    """A secret string that redacts itself when printed or logged."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret value itself. Never log the result."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, spec: str) -> str:
        return REDACTED

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> Any:
        raise TypeError("Secret values cannot be pickled")
