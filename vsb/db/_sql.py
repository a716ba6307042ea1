"""Small helpers shared by the query modules (run inside worker threads)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import psycopg
from psycopg.rows import kwargs_row

T = TypeVar("T")


def fetch_one(
    conn: psycopg.Connection[Any], type_: type[T], query: str, params: Any = None
) -> T | None:
    """The first row of ``query`` as ``type_`` (a Struct), or None."""
    with conn.cursor(row_factory=kwargs_row(type_)) as cur:
        cur.execute(query, params)
        return cur.fetchone()


def fetch_all(
    conn: psycopg.Connection[Any], type_: type[T], query: str, params: Any = None
) -> list[T]:
    """Every row of ``query`` as ``type_``."""
    with conn.cursor(row_factory=kwargs_row(type_)) as cur:
        cur.execute(query, params)
        return cur.fetchall()


def columns(names: Sequence[str]) -> str:
    """A comma-separated column list (names are our constants, never input)."""
    return ", ".join(names)
