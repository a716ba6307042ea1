"""JSON log shape and redaction of secrets."""

from __future__ import annotations

import io
import json
import logging

import pytest

from vsb.log import configure_logging
from vsb.secret import Secret

TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GAbCdE.abcdefghijklmnopqrstuvwxyz0123456789"


@pytest.fixture
def stream() -> io.StringIO:
    out = io.StringIO()
    yield out
    logging.getLogger().handlers.clear()


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_shape(stream: io.StringIO) -> None:
    configure_logging("debug", "json", stream=stream)
    logging.getLogger("vsb.gateway.shard").info(
        "gateway.hello", extra={"shard_id": 3, "heartbeat_interval": 41250}
    )
    [line] = lines(stream)
    assert list(line)[:4] == ["ts", "level", "event", "logger"]
    assert line["level"] == "info"
    assert line["event"] == "gateway.hello"
    assert line["logger"] == "vsb.gateway.shard"
    assert line["shard_id"] == 3 and line["heartbeat_interval"] == 41250
    assert (
        isinstance(line["ts"], str) and line["ts"].endswith("Z") and "T" in line["ts"]
    )


def test_level_filters_and_console_format(stream: io.StringIO) -> None:
    configure_logging("warning", "console", stream=stream)
    log = logging.getLogger("vsb.test")
    log.info("quiet.event")
    log.warning("rest.rate_limited", extra={"retry_after": 1.5, "scope": "user"})
    text = stream.getvalue()
    assert "quiet.event" not in text
    assert (
        "rest.rate_limited" in text
        and "retry_after=1.5" in text
        and 'scope="user"' in text
    )


def test_secrets_never_reach_the_log(stream: io.StringIO) -> None:
    configure_logging(
        "debug",
        "json",
        secrets=["client-secret-value", Secret("gsk_groq_key_1")],
        stream=stream,
    )
    log = logging.getLogger("vsb.test")
    log.info(
        "a.event", extra={"headers": {"Authorization": f"Bot {TOKEN}"}, "url": TOKEN}
    )
    log.info(
        "b.event",
        extra={"body": {"nested": ["client-secret-value", b"gsk_groq_key_1"]}},
    )
    log.info("c.event", extra={"text": f"header was Authorization: Bot {TOKEN}"})
    log.info("d.event", extra={"secret": Secret("whatever-secret")})
    log.info("e.event", extra={"line": "Bearer abcdefghijklmnop sent"})
    try:
        raise RuntimeError(f"request failed with token {TOKEN} and client-secret-value")
    except RuntimeError:
        log.exception("f.event")
    text = stream.getvalue()
    for secret in (
        TOKEN,
        "client-secret-value",
        "gsk_groq_key_1",
        "whatever-secret",
        "abcdefghijklmnop",
    ):
        assert secret not in text
    assert len(lines(stream)) == 6
    assert "RuntimeError" in text
