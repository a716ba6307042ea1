"""A Groq emulator: the OpenAI-compatible ``POST /chat/completions``.

Tests and benchmarks point ``GROQ_API_BASE`` here instead of Groq. It serves
on 127.0.0.1 (ephemeral port) with hypercorn's trio worker, or in process
through ``httpx.ASGITransport(app=emu.asgi_app)``; delays use trio's clock,
so a ``MockClock`` drives slow answers and retry-after waits.

Answers, by default: a JSON classification whose scores are read from
markers in the user message (``toxic=0.97`` gives ``{"toxic": 0.97, ...}``;
no marker, all zeros), or, for ``"stream": true``, an SSE stream that
echoes the prompt word by word. Script the next answers with
:meth:`GroqEmulator.script`::

    async with open_groq_emulator() as emu:
        emu.script(Reply.malformed(), Reply.rate_limited(2.0), Reply.slow(30.0))
        emu.requests          # what clients sent (the key is never kept)
        emu.pause(); ...; emu.resume()   # hold answers (emu.waiting counts)

Every answer carries ``x-ratelimit-*`` headers like Groq's (values settable
in ``emu.rate_headers``).
"""

from __future__ import annotations

import itertools
import re
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

__all__ = [
    "GroqEmulator",
    "RecordedRequest",
    "Reply",
    "StreamingASGITransport",
    "open_groq_emulator",
]

#: The path prefix of Groq's OpenAI-compatible API.
API_PREFIX = "/openai/v1"
#: A base URL for ``httpx.ASGITransport`` use (never resolved).
ASGI_API_BASE = "http://groq.test/openai/v1"

_MARKER = re.compile(r"\b([a-z_]+)=(\d(?:\.\d+)?)")
_CATEGORIES = ("toxic", "spam", "nsfw", "hate")


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted answer. Build with the class methods."""

    kind: str
    scores: dict[str, float] | None = None
    content: str | None = None
    status: int = 200
    retry_after: float | None = None
    delay: float = 0.0
    chunks: tuple[str, ...] = ()
    chunk_delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, scores: dict[str, float], *, delay: float = 0.0) -> Reply:
        """A well-formed classification with these scores."""
        return cls("json", scores=scores, delay=delay)

    @classmethod
    def malformed(cls, content: str = "I think this is fine!") -> Reply:
        """A 200 whose message content is not the JSON asked for."""
        return cls("raw", content=content)

    @classmethod
    def status_code(cls, status: int) -> Reply:
        """An error answer (500, 503, 401, ...) with Groq's error body."""
        return cls("status", status=status)

    @classmethod
    def rate_limited(cls, retry_after: float) -> Reply:
        """429 with ``retry-after`` seconds."""
        return cls("status", status=429, retry_after=retry_after)

    @classmethod
    def slow(cls, delay: float, scores: dict[str, float] | None = None) -> Reply:
        """A normal answer (scores, or from markers) after ``delay`` seconds."""
        return cls("json", scores=scores, delay=delay)

    @classmethod
    def stream(cls, chunks: list[str], *, chunk_delay: float = 0.0) -> Reply:
        """An SSE stream sending ``chunks`` as content deltas."""
        return cls("stream", chunks=tuple(chunks), chunk_delay=chunk_delay)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """What a client sent (without its key)."""

    model: str
    messages: list[dict[str, Any]]
    stream: bool
    response_format: dict[str, Any] | None
    max_tokens: int | None
    authorized: bool


def marker_scores(text: str) -> dict[str, float]:
    """Scores from ``category=0.9`` markers in ``text`` (others 0.0)."""
    scores = dict.fromkeys(_CATEGORIES, 0.0)
    for name, value in _MARKER.findall(text):
        scores[name] = min(1.0, float(value))
    return scores


class GroqEmulator:
    """The emulator's state and ASGI app.

    Args:
        api_key: the key clients must send as ``Bearer``; None accepts any.
        delay: seconds before every unscripted answer (a latency model).
        scorer: turns the user message into scores for unscripted answers.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        delay: float = 0.0,
        scorer: Callable[[str], dict[str, float]] = marker_scores,
    ) -> None:
        self.api_key = api_key
        self.delay = delay
        self.scorer = scorer
        self.api_base = ASGI_API_BASE
        self.requests: list[RecordedRequest] = []
        self.rate_headers: dict[str, str] = {
            "x-ratelimit-limit-requests": "14400",
            "x-ratelimit-limit-tokens": "6000",
            "x-ratelimit-remaining-requests": "14399",
            "x-ratelimit-remaining-tokens": "5900",
            "x-ratelimit-reset-requests": "6s",
            "x-ratelimit-reset-tokens": "1s",
        }
        self._script: deque[Reply] = deque()
        self._gate: trio.Event | None = None
        self.waiting = 0
        self._ids = itertools.count(1)
        self.asgi_app = Starlette(
            routes=[
                Route(
                    f"{API_PREFIX}/chat/completions",
                    self._completions,
                    methods=["POST"],
                )
            ]
        )

    def script(self, *replies: Reply) -> None:
        """Queue answers for the next requests, in order."""
        self._script.extend(replies)

    def pause(self) -> None:
        """Hold every answer (requests are recorded, then wait) until :meth:`resume`."""
        if self._gate is None:
            self._gate = trio.Event()

    def resume(self) -> None:
        """Let held and later requests be answered."""
        if self._gate is not None:
            self._gate.set()
            self._gate = None

    @property
    def scripted(self) -> int:
        """Scripted answers not used yet."""
        return len(self._script)

    async def _completions(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        authorized = (
            self.api_key is None
            or request.headers.get("authorization") == f"Bearer {self.api_key}"
        )
        self.requests.append(
            RecordedRequest(
                model=body.get("model", ""),
                messages=body.get("messages", []),
                stream=bool(body.get("stream")),
                response_format=body.get("response_format"),
                max_tokens=body.get("max_tokens"),
                authorized=authorized,
            )
        )
        if not authorized:
            return _error(401, "Invalid API Key", "invalid_api_key")
        if self._gate is not None:
            self.waiting += 1
            await self._gate.wait()
            self.waiting -= 1
        reply = self._script.popleft() if self._script else None
        if reply is None:
            kind = "stream" if body.get("stream") else "json"
            reply = Reply(kind, delay=self.delay)
        if reply.delay:
            await trio.sleep(reply.delay)
        return self._answer(reply, body)

    def _answer(self, reply: Reply, body: dict[str, Any]) -> Response:
        headers = dict(self.rate_headers) | reply.headers
        model = body.get("model", "")
        if reply.kind == "status":
            if reply.retry_after is not None:
                headers["retry-after"] = f"{reply.retry_after:g}"
                headers["x-ratelimit-remaining-requests"] = "0"
                headers["x-ratelimit-reset-requests"] = f"{reply.retry_after:g}s"
                return _error(429, "Rate limit reached", "rate_limit_exceeded", headers)
            return _error(
                reply.status, "Internal Server Error", "server_error", headers
            )
        if reply.kind == "stream":
            chunks = list(reply.chunks) or _echo_chunks(_user_text(body))
            return StreamingResponse(
                self._sse(model, chunks, reply.chunk_delay),
                media_type="text/event-stream",
                headers=headers,
            )
        if reply.kind == "raw":
            content = reply.content or ""
        else:
            scores = reply.scores
            if scores is None:
                scores = self.scorer(_user_text(body))
            content = orjson.dumps(scores).decode()
        return JSONResponse(self._completion(model, content), headers=headers)

    def _completion(self, model: str, content: str) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(trio.current_time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70},
        }

    async def _sse(
        self, model: str, chunks: list[str], chunk_delay: float
    ) -> AsyncIterator[bytes]:
        ident = f"chatcmpl-{next(self._ids)}"
        for piece in chunks:
            if chunk_delay:
                await trio.sleep(chunk_delay)
            yield _event(ident, model, {"content": piece}, None)
        yield _event(ident, model, {}, "stop")
        yield b"data: [DONE]\n\n"


def _event(ident: str, model: str, delta: dict[str, str], finish: str | None) -> bytes:
    chunk = {
        "id": ident,
        "object": "chat.completion.chunk",
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def _user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user":
            return str(message.get("content", ""))
    return ""


def _echo_chunks(text: str) -> list[str]:
    words = f"You asked: {text}".split(" ")
    return [word + (" " if i < len(words) - 1 else "") for i, word in enumerate(words)]


def _error(
    status: int, message: str, code: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {
        "error": {"message": message, "type": "invalid_request_error", "code": code}
    }
    return JSONResponse(body, status_code=status, headers=headers)


class StreamingASGITransport(httpx.AsyncBaseTransport):
    """An in-process httpx transport that streams the response body.

    ``httpx.ASGITransport`` returns only once the app has sent the whole
    body, so an SSE stream arrives in one piece. This transport runs the
    app as a task in ``nursery`` and hands each body chunk to the client as
    it is sent, so tests see tokens arrive over (mock) time.

    Args:
        app: the ASGI app (``emu.asgi_app``).
        nursery: where each request's app task runs.
    """

    def __init__(self, app: Any, nursery: trio.Nursery) -> None:
        self._app = app
        self._nursery = nursery

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        send_chunk, receive_chunk = trio.open_memory_channel[bytes](256)
        start: dict[str, Any] = {}
        started = trio.Event()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": request.url.scheme,
            "path": request.url.path,
            "raw_path": request.url.raw_path,
            "query_string": request.url.query,
            "root_path": "",
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "server": ("groq.test", 80),
            "client": ("127.0.0.1", 1),
        }
        sent_body = False

        async def receive() -> dict[str, Any]:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            await trio.sleep_forever()
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                started.set()
            elif message["type"] == "http.response.body":
                if message.get("body"):
                    await send_chunk.send(message["body"])
                if not message.get("more_body", False):
                    await send_chunk.aclose()

        async def run_app() -> None:
            async with send_chunk:
                await self._app(scope, receive, send)

        self._nursery.start_soon(run_app)
        await started.wait()
        return httpx.Response(
            start["status"],
            headers=[(k, v) for k, v in start.get("headers", [])],
            stream=_ChannelStream(receive_chunk),
            request=request,
        )


class _ChannelStream(httpx.AsyncByteStream):
    def __init__(self, receive: trio.MemoryReceiveChannel[bytes]) -> None:
        self._receive = receive

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._receive:
            yield chunk

    async def aclose(self) -> None:
        await self._receive.aclose()


@asynccontextmanager
async def open_groq_emulator(**options: Any) -> AsyncIterator[GroqEmulator]:
    """Serve a :class:`GroqEmulator` on 127.0.0.1 (ephemeral port).

    ``emu.api_base`` is ``http://127.0.0.1:PORT/openai/v1``. Options are
    :class:`GroqEmulator`'s.
    """
    emu = GroqEmulator(**options)
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = None
    config.keep_alive_timeout = 24 * 3600
    config.graceful_timeout = 0

    async def _serve(
        *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        await serve(emu.asgi_app, config, task_status=task_status)  # type: ignore[arg-type]

    async with trio.open_nursery() as nursery:
        binds = await nursery.start(_serve)
        emu.api_base = binds[0].rstrip("/") + API_PREFIX
        try:
            yield emu
        finally:
            nursery.cancel_scope.cancel()
