"""Schema migrations with yoyo: up, down, status and the lock.

The SQL files live in the repository's top-level ``migrations/`` directory
(each ``NNNN_name.sql`` with its ``NNNN_name.rollback.sql``). The package
ships the same files as ``vsb/migrations/`` (a symlink in the source tree,
copied as package data into a wheel), so a non-editable install finds them
too; ``VSB_MIGRATIONS_DIR`` overrides both.

Every change runs inside yoyo's lock (a row in ``yoyo_lock``), and the list
of migrations to apply or roll back is computed *under* the lock: when two
processes start at once, the second waits, then finds nothing left to do.

A process killed while holding the lock leaves its row behind. After
``lock_timeout_s`` we raise :class:`MigrationLocked` naming the pid, when it
took the lock, and the command that clears it.

These functions block: from trio, call them with ``trio.to_thread.run_sync``.

Exceptions::

    MigrationError
     └── MigrationLocked(pid, since)   another (or a dead) process holds the lock
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import msgspec
from yoyo import get_backend, read_migrations
from yoyo.exceptions import LockTimeout

log = logging.getLogger(__name__)

#: The command an operator runs to clear a lock left by a killed process.
BREAK_LOCK_COMMAND: Final = (
    'yoyo break-lock --database "postgresql+psycopg://..." '
    "(or: psql -c 'DELETE FROM yoyo_lock')"
)


class MigrationError(Exception):
    """Base of this module's errors."""


class MigrationLocked(MigrationError):
    """The migration lock is held by another process, maybe a dead one.

    Attributes:
        pid: the process id recorded with the lock (None if unknown).
        since: when it was taken (UTC, naive as yoyo stores it), or None.
    """

    def __init__(self, pid: int | None, since: datetime | None) -> None:
        super().__init__(
            f"the migration lock is held by process {pid} since {since}; if that "
            f"process is gone, clear the lock with: {BREAK_LOCK_COMMAND}"
        )
        self.pid = pid
        self.since = since


class MigrationStatus(msgspec.Struct, frozen=True):
    """One migration and whether it is applied."""

    id: str
    applied: bool


def migrations_dir() -> Path:
    """Where the SQL files are: ``VSB_MIGRATIONS_DIR``, the package, or the repo."""
    override = os.environ.get("VSB_MIGRATIONS_DIR")
    if override:
        return Path(override)
    packaged = Path(__file__).resolve().parent.parent / "migrations"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "migrations"


def yoyo_url(url: str) -> str:
    """Rewrite a libpq URL for yoyo's psycopg 3 backend."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError("expected a postgresql:// URL")


def up(url: str, *, lock_timeout_s: float = 60.0) -> list[str]:
    """Apply every pending migration; return the ids applied (in order).

    Raises:
        MigrationLocked: the lock stayed taken for ``lock_timeout_s``.
    """
    backend = _backend(url)
    try:
        migrations = read_migrations(str(migrations_dir()))
        with _MigrationLock(backend, lock_timeout_s):
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
        applied = [m.id for m in pending]
    finally:
        backend.connection.close()
    log.info("db.migrated", extra={"applied": applied})
    return applied


def down(url: str, steps: int = 1, *, lock_timeout_s: float = 60.0) -> list[str]:
    """Roll back the last ``steps`` applied migrations; return their ids.

    Raises:
        MigrationLocked: the lock stayed taken for ``lock_timeout_s``.
    """
    if steps < 1:
        raise ValueError("steps must be at least 1")
    backend = _backend(url)
    try:
        migrations = read_migrations(str(migrations_dir()))
        with _MigrationLock(backend, lock_timeout_s):
            chosen = backend.to_rollback(migrations)[:steps]
            backend.rollback_migrations(chosen)
        rolled_back = [m.id for m in chosen]
    finally:
        backend.connection.close()
    log.info("db.rolled_back", extra={"rolled_back": rolled_back})
    return rolled_back


def status(url: str) -> list[MigrationStatus]:
    """Every known migration, in order, with whether it is applied."""
    backend = _backend(url)
    try:
        migrations = read_migrations(str(migrations_dir()))
        applied = set(backend.get_applied_migration_hashes())
        return [MigrationStatus(id=m.id, applied=m.hash in applied) for m in migrations]
    finally:
        backend.connection.close()


def apply_migrations(url: str) -> list[str]:
    """The contract's name for :func:`up`."""
    return up(url)


def break_lock(url: str) -> None:
    """Remove the migration lock row (only when its holder is known dead)."""
    backend = _backend(url)
    try:
        backend.break_lock()
    finally:
        backend.connection.close()
    log.warning("db.migration_lock_broken")


def _backend(url: str) -> Any:
    return get_backend(yoyo_url(url))


class _MigrationLock:
    """yoyo's lock, with a stale lock reported as :class:`MigrationLocked`."""

    def __init__(self, backend: Any, timeout_s: float) -> None:
        self._backend = backend
        self._timeout_s = timeout_s
        self._inner: Any = None

    def __enter__(self) -> None:
        self._inner = self._backend.lock(timeout=self._timeout_s)
        try:
            self._inner.__enter__()
        except LockTimeout as exc:
            pid, since = _lock_holder(self._backend)
            log.error(
                "db.migration_locked",
                extra={"pid": pid, "since": str(since), "fix": BREAK_LOCK_COMMAND},
            )
            raise MigrationLocked(pid, since) from exc

    def __exit__(self, *exc: Any) -> None:
        self._inner.__exit__(*exc)


def _lock_holder(backend: Any) -> tuple[int | None, datetime | None]:
    try:
        row = backend.execute("SELECT pid, ctime FROM yoyo_lock").fetchone()
    except Exception:  # the report must not hide the lock error itself
        return None, None
    return (row[0], row[1]) if row else (None, None)
