"""Structured logging: one JSON object per line on stdout, secrets removed.

Modules log with the standard library: ``log.info("gateway.hello",
extra={"shard_id": 0})``. The message is a stable event name and the
``extra`` keys become fields. :func:`configure_logging` installs one handler
on the root logger whose formatter renders each record as::

    {"ts": "2026-12-04T13:51:44.123456Z", "level": "info",
     "event": "gateway.hello", "logger": "vsb.gateway.shard", "shard_id": 0}

or, with ``LOG_FORMAT=console``, as ``ts level event key=value ...``.

Redaction runs on every record before it is rendered, on the message, every
field (nested containers included) and the formatted traceback: each
configured secret value is replaced, and so is anything shaped like a Discord
bot token or an HTTP ``Authorization`` value. A secret therefore cannot reach
the log even when a library or an exception message repeats it.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final, TextIO

import orjson

from vsb.secret import REDACTED, Secret

#: The attributes every ``LogRecord`` has; anything else came from ``extra``.
_RECORD_FIELDS: Final = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
) | {"message", "asctime", "taskName"}

# A Discord bot token is three base64url parts joined by dots: the user id,
# a timestamp and an HMAC (docs: Reference > Authentication).
_TOKEN_SHAPE: Final = re.compile(
    r"[A-Za-z0-9_-]{23,28}\.[A-Za-z0-9_-]{6,7}\.[A-Za-z0-9_-]{27,}"
)
_AUTH_VALUE: Final = re.compile(r"\b(Bot|Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_AUTH_FIELD: Final = re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)[^'\",}\s]+")


class Redactor:
    """Removes secret values and token-shaped text from strings and data."""

    def __init__(self, secrets: Iterable[str | Secret] = ()) -> None:
        self._secrets: list[str] = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | Secret) -> None:
        """Also remove ``secret`` from everything redacted from now on."""
        value = secret.reveal() if isinstance(secret, Secret) else secret
        # Very short values would blank out ordinary words; real secrets are long.
        if len(value) >= 6 and value not in self._secrets:
            self._secrets.append(value)
            self._secrets.sort(key=len, reverse=True)

    def text(self, value: str) -> str:
        """Return ``value`` with every secret replaced by a marker."""
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        if "." in value:
            value = _TOKEN_SHAPE.sub(REDACTED, value)
        if " " in value:
            value = _AUTH_VALUE.sub(lambda m: f"{m.group(1)} {REDACTED}", value)
        if "uthorization" in value:
            value = _AUTH_FIELD.sub(lambda m: m.group(1) + REDACTED, value)
        return value

    def data(self, value: Any) -> Any:
        """Redact strings inside ``value``, walking dicts, lists and tuples."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {
                key: (REDACTED if _is_auth_key(key) else self.data(item))
                for key, item in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.data(item) for item in value]
        if isinstance(value, Secret):
            return REDACTED
        if isinstance(value, bytes | bytearray):
            return self.text(bytes(value).decode("utf-8", "replace"))
        return value


def _is_auth_key(key: object) -> bool:
    return isinstance(key, str) and key.lower() in ("authorization", "token")


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra`` fields a record carries."""
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _RECORD_FIELDS and not key.startswith("_")
    }


def _default(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return repr(value)


class JsonFormatter(logging.Formatter):
    """Renders a record as one JSON object, redacted."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def payload(self, record: logging.LogRecord) -> dict[str, Any]:
        """The record as a redacted dict (also used by tests)."""
        ts = datetime.fromtimestamp(record.created, UTC)
        out: dict[str, Any] = {
            "ts": ts.isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "event": self.redactor.text(record.getMessage()),
            "logger": record.name,
        }
        for key, value in record_fields(record).items():
            out[key] = self.redactor.data(value)
        if record.exc_info:
            out["exc_info"] = self.redactor.text(self.formatException(record.exc_info))
        return out

    def format(self, record: logging.LogRecord) -> str:
        return orjson.dumps(self.payload(record), default=_default).decode()


class ConsoleFormatter(JsonFormatter):
    """Renders ``ts level event key=value ...`` for a human at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        payload = self.payload(record)
        head = f"{payload.pop('ts')[11:23]} {payload.pop('level'):<7} {payload.pop('event')}"
        payload.pop("logger")
        trace = payload.pop("exc_info", None)
        fields = " ".join(
            f"{key}={orjson.dumps(value, default=_default).decode()}"
            for key, value in payload.items()
        )
        line = f"{head} {fields}".rstrip()
        return f"{line}\n{trace}" if trace else line


def configure_logging(
    level: str = "info",
    fmt: str = "json",
    secrets: Iterable[str | Secret] = (),
    stream: TextIO | None = None,
) -> Redactor:
    """Send every log record to ``stream`` (stdout) as JSON or console lines.

    Returns:
        The redactor in use, so secrets learnt later can be added to it.
    """
    redactor = Redactor(secrets)
    handler = logging.StreamHandler(stream or sys.stdout)
    formatter = (
        ConsoleFormatter(redactor) if fmt == "console" else JsonFormatter(redactor)
    )
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Libraries that log request URLs or frames at INFO would repeat what our
    # own events say; keep them to warnings.
    for noisy in (
        "httpx",
        "httpcore",
        "hypercorn.access",
        "trio-websocket",
        "yoyo",
        "pgserver",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return redactor
