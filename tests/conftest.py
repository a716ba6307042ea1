"""Shared fixtures: a PostgreSQL database per test.

- ``postgres_admin_url`` (session): the server's maintenance URL. It is
  ``VSB_TEST_DATABASE_URL`` when set (CI points it at the machine's
  PostgreSQL); otherwise an embedded PostgreSQL (pgserver) is started once
  for the session in a temporary directory and stopped at the end.
- ``migrated_template`` (session): a database migrated once, used as the
  template of every test database (copying a template is much faster than
  migrating each time).
- ``database_url`` (function): a fresh, migrated database of its own for the
  test, dropped afterwards.
- ``db`` (function): an opened :class:`vsb.services.database.Database` on
  ``database_url`` (``min_size=1, max_size=8, statement_timeout_s=10``).
- ``empty_database_url`` (function): a fresh database with no table at all.
- ``sandbox`` (function): the Discord emulator served in-process (no
  listener), and ``rest``: a :class:`vsb.rest.RestClient` talking to it
  through ``httpx.ASGITransport`` on the sandbox's clock. A directory's own
  conftest may replace either (``tests/commands`` uses a fake REST).

pytest-trio runs async fixtures per test, so the session-scoped setup here
is synchronous.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest

from vsb.db import migrate
from vsb.rest import RestClient
from vsb.sandbox import Sandbox, open_sandbox
from vsb.secret import Secret
from vsb.services.database import Database

SANDBOX_API_BASE = "http://sandbox.test/api/v10"


def with_database(url: str, name: str) -> str:
    """``url`` with its database name replaced by ``name``."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def admin_execute(admin_url: str, *statements: str) -> None:
    """Run statements outside a transaction (CREATE/DROP DATABASE need it)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


@pytest.fixture(scope="session")
def postgres_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("VSB_TEST_DATABASE_URL")
    if url:
        yield url
        return
    from vsb.db.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(Path(tmp_path_factory.mktemp("vsb-pg")))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def migrated_template(postgres_admin_url: str) -> Iterator[str]:
    name = f"vsb_template_{uuid.uuid4().hex[:12]}"
    admin_execute(postgres_admin_url, f'CREATE DATABASE "{name}"')
    try:
        migrate.up(with_database(postgres_admin_url, name))
        yield name
    finally:
        admin_execute(postgres_admin_url, f'DROP DATABASE IF EXISTS "{name}"')


@pytest.fixture
def database_url(postgres_admin_url: str, migrated_template: str) -> Iterator[str]:
    name = f"vsb_test_{uuid.uuid4().hex[:12]}"
    admin_execute(
        postgres_admin_url, f'CREATE DATABASE "{name}" TEMPLATE "{migrated_template}"'
    )
    try:
        yield with_database(postgres_admin_url, name)
    finally:
        admin_execute(
            postgres_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        )


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, min_size=1, max_size=8, statement_timeout_s=10.0)
    async with database:
        yield database


@pytest.fixture
def empty_database_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh database without any table (for migration tests)."""
    name = f"vsb_empty_{uuid.uuid4().hex[:12]}"
    admin_execute(postgres_admin_url, f'CREATE DATABASE "{name}"')
    try:
        yield with_database(postgres_admin_url, name)
    finally:
        admin_execute(
            postgres_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        )


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with open_sandbox(serve_http=False) as sb:
        yield sb


@pytest.fixture
async def rest(sandbox: Sandbox) -> AsyncIterator[RestClient]:
    client = RestClient(
        Secret(sandbox.bot_token),
        api_base=SANDBOX_API_BASE,
        transport=httpx.ASGITransport(app=sandbox.asgi_app),
        wall_clock=sandbox.clock.unix,
    )
    async with client:
        yield client
