"""Fixtures for the web tests: an in-memory auth store, a role recorder,
a scripted OAuth2 provider, and a log capture that scans for secrets."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from vsb.rest.errors import RateLimited, error_for
from vsb.secret import Secret
from vsb.services.auth import (
    OAuthClient,
    OAuthConfig,
    RecordError,
    StateClaims,
    TokenSigner,
    VerificationFlow,
    WebUser,
)
from vsb.services.web import WebApp

JWT_KEY = "jwt-key-for-tests-0123456789abcdefghij"
CLIENT_SECRET = "client-secret-for-tests-zyxwvu"
ACCESS_TOKEN = "access-token-for-tests-qwerty"
CODE = "code-for-tests-123456"
SECRETS = (JWT_KEY, CLIENT_SECRET, ACCESS_TOKEN, CODE)
USER = 1111
GUILD = 2222
ROLE = 3333


class Clock:
    """Wall clock the tests move by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class MemoryStore:
    """An :class:`AuthStore` in memory (the database one is tested apart)."""

    def __init__(self) -> None:
        self.states: dict[str, StateClaims] = {}
        self.used: set[str] = set()
        self.roles_by_guild: dict[int, int] = {GUILD: ROLE}
        self.users: dict[int, WebUser] = {}
        self.audit: list[dict[str, Any]] = []
        self.fail_record = False
        self.case_rows: dict[int, list[dict[str, Any]]] = {}
        self.review_rows: list[dict[str, Any]] = []

    async def store_state(self, claims: StateClaims) -> None:
        self.states[claims.nonce] = claims

    async def consume_state(self, nonce: str) -> bool:
        if nonce not in self.states or nonce in self.used:
            return False
        self.used.add(nonce)
        return True

    async def verified_role(self, guild_id: int) -> int | None:
        return self.roles_by_guild.get(guild_id)

    async def record_verification(
        self, *, user_id: int, guild_id: int, login: str, role_id: int
    ) -> None:
        if self.fail_record:
            raise RecordError("database down")
        old = self.users.get(user_id)
        roles = old.roles if old else frozenset()
        self.users[user_id] = WebUser(user_id, login, True, roles)
        self.audit.append(
            {"user_id": user_id, "guild_id": guild_id, "role_id": role_id}
        )

    async def user(self, user_id: int) -> WebUser | None:
        return self.users.get(user_id)

    async def cases(self, guild_id: int, limit: int) -> list[dict[str, Any]]:
        return self.case_rows.get(guild_id, [])[:limit]

    async def review_queue(
        self, guild_id: int | None, limit: int
    ) -> list[dict[str, Any]]:
        return self.review_rows[:limit]


class Roles:
    """Records role grants; ``fail_with`` makes the next grant fail."""

    def __init__(self) -> None:
        self.given: list[tuple[int, int, int, str | None]] = []
        self.fail_with: int | None = None

    async def add_member_role(
        self, guild_id: int, user_id: int, role_id: int, *, reason: str | None = None
    ) -> None:
        if self.fail_with is not None:
            route = "PUT /guilds/{guild_id}/members/{user_id}/roles/{role_id}"
            if self.fail_with == 429:
                raise RateLimited(30.0, "user", route)
            raise error_for(self.fail_with, {"code": 0, "message": "no"}, route)
        self.given.append((guild_id, user_id, role_id, reason))


@dataclasses.dataclass
class Provider:
    """A scripted OAuth2 provider behind an httpx MockTransport."""

    account_id: str = str(USER)
    login: str = "alice"
    token_status: int = 200
    identity_status: int = 200
    requests: list[httpx.Request] = dataclasses.field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/token":
            if self.token_status != 200:
                return httpx.Response(
                    self.token_status, json={"error": "invalid_grant"}
                )
            return httpx.Response(
                200, json={"access_token": ACCESS_TOKEN, "token_type": "Bearer"}
            )
        if request.headers.get("Authorization") != f"Bearer {ACCESS_TOKEN}":
            return httpx.Response(401)
        if self.identity_status != 200:
            return httpx.Response(self.identity_status)
        return httpx.Response(200, json={"id": self.account_id, "username": self.login})


@dataclasses.dataclass
class Env:
    """Everything one web test needs; constants ride along as attributes,
    since test modules cannot import this conftest under importlib mode."""

    CODE = CODE
    USER = USER
    GUILD = GUILD
    ROLE = ROLE
    CLIENT_SECRET = CLIENT_SECRET
    ACCESS_TOKEN = ACCESS_TOKEN
    JWT_KEY = JWT_KEY

    clock: Clock
    store: MemoryStore
    roles: Roles
    provider: Provider
    tokens: TokenSigner
    flow: VerificationFlow
    app: WebApp

    @staticmethod
    def assert_no_secret(text: str, extra: tuple[str, ...] = ()) -> None:
        assert_no_secret(text, extra)

    @staticmethod
    def log_text(caplog: pytest.LogCaptureFixture) -> str:
        return log_text(caplog)

    def client(self, *, client_ip: str = "127.0.0.1") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(client_ip, 40000))
        return httpx.AsyncClient(transport=transport, base_url="https://vsb.test")


def oauth_config(**changes: Any) -> OAuthConfig:
    config = OAuthConfig(
        client_id="client-1",
        client_secret=Secret(CLIENT_SECRET),
        redirect_uri="https://vsb.test/oauth/callback",
        authorize_url="https://provider.test/authorize",
        token_url="https://provider.test/token",
        userinfo_url="https://provider.test/me",
    )
    return dataclasses.replace(config, **changes)


@pytest.fixture
async def env() -> Env:
    clock = Clock()
    store = MemoryStore()
    roles = Roles()
    provider = Provider()
    tokens = TokenSigner(Secret(JWT_KEY), clock=clock)
    oauth = OAuthClient(oauth_config(), transport=httpx.MockTransport(provider.handle))
    flow = VerificationFlow(tokens=tokens, oauth=oauth, store=store, roles=roles)
    app = WebApp(flow=flow, rate=1000, burst=1000)
    app.mark_started()
    return Env(clock, store, roles, provider, tokens, flow, app)


@pytest.fixture
def captured_logs(
    caplog: pytest.LogCaptureFixture,
) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    yield caplog


def assert_no_secret(text: str, extra: tuple[str, ...] = ()) -> None:
    for secret in (*SECRETS, *extra):
        assert secret not in text


def log_text(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured record: message, fields and exception text."""
    parts = []
    for record in caplog.records:
        # httpx logs each URL the test's own client (the browser) asks for;
        # those are the visitor's requests, not something the bot logged.
        if record.name == "httpx" and "://vsb.test" in record.getMessage():
            continue
        parts.append(record.getMessage())
        parts.append(repr(vars(record)))
    return "\n".join(parts)
