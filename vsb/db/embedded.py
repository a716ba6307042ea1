"""The embedded default: a private PostgreSQL started with pgserver.

When no ``DATABASE_URL`` (or ``DB_*``) is set, the bot runs its own
PostgreSQL under ``VSB_DATA_DIR/pgdata``, reachable through a Unix socket
only (pgserver passes ``-k <dir>`` and no TCP port), and stops it on exit.

pgserver's traps, and what this module does about them:

- **Running as root.** PostgreSQL refuses to run as root, so pgserver creates
  a system user ``pgserver`` (``useradd``), chowns the data directory to it
  and adds ``g+rx,o+rx`` to *every parent directory* of the data directory
  and to its own binaries. We log ``db.embedded_as_root`` at WARNING saying
  so; run the bot as an ordinary user, or use ``DATABASE_URL``.
- **XDG_RUNTIME_DIR.** pgserver keeps its lock file (and, for long paths, the
  socket) under the user runtime directory, computed when pgserver is first
  imported. When the variable is missing we set it to a private
  ``/tmp/vsb-runtime-<uid>`` before importing pgserver.
- **A killed parent.** The server outlives a process killed with SIGKILL, and
  pgserver remembers the pids of its users in ``pgdata/.handle_pids.json``;
  a dead pid left there would stop the server from ever being stopped. On
  start we drop dead pids from that file; pgserver then finds the running
  server through ``postmaster.pid`` and reuses it, and the last live user
  stops it.

Exceptions: :class:`EmbeddedError` when the server cannot be started.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import trio

log = logging.getLogger(__name__)


class EmbeddedError(Exception):
    """The embedded PostgreSQL could not be started."""


class EmbeddedPostgres:
    """A pgserver-managed PostgreSQL under ``data_dir/pgdata``.

    Args:
        data_dir: the bot's data directory (``VSB_DATA_DIR``); created if
            missing.

    Use :meth:`start`/:meth:`stop` (blocking: call them in a worker thread
    from trio) or ``await nursery.start(server.run)``, which reports the URL.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.pgdata = self.data_dir / "pgdata"
        self._server: Any = None
        self.url: str | None = None

    def start(self) -> str:
        """Start (or reuse) the server and return a ``postgresql://`` URL.

        Raises:
            EmbeddedError: initdb or pg_ctl failed.
        """
        ensure_runtime_dir()
        if os.geteuid() == 0:
            log.warning(
                "db.embedded_as_root",
                extra={
                    "path": str(self.pgdata),
                    "detail": "pgserver creates system user 'pgserver', chowns "
                    "the data directory and adds o+rx to its parent directories",
                },
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        reused = _prune_dead_handles(self.pgdata)
        # Imported late: pgserver reads XDG_RUNTIME_DIR at import time.
        from pgserver.postgres_server import get_server

        try:
            self._server = get_server(self.pgdata, cleanup_mode="stop")
            self.url = str(self._server.get_uri())
        except Exception as exc:  # pgserver raises plain errors of many kinds
            raise EmbeddedError(
                f"could not start the embedded PostgreSQL in {self.pgdata}"
            ) from exc
        log.info(
            "db.embedded_started",
            extra={"path": str(self.pgdata), "reused_handles": reused},
        )
        return self.url

    def stop(self) -> None:
        """Stop the server unless another live process still uses it."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.cleanup()
        log.info("db.embedded_stopped", extra={"path": str(self.pgdata)})

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Start in a worker thread, report the URL, stop when cancelled."""
        url = await trio.to_thread.run_sync(self.start)
        try:
            task_status.started(url)
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self.stop)


def ensure_runtime_dir() -> Path:
    """Set ``XDG_RUNTIME_DIR`` to a private directory when it is missing."""
    current = os.environ.get("XDG_RUNTIME_DIR")
    if current and Path(current).is_dir():
        return Path(current)
    path = Path(tempfile.gettempdir()) / f"vsb-runtime-{os.geteuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    os.environ["XDG_RUNTIME_DIR"] = str(path)
    log.info("db.runtime_dir_set", extra={"path": str(path)})
    return path


def _prune_dead_handles(pgdata: Path) -> int:
    """Drop pids of dead processes from pgserver's handle list; return live ones."""
    handles = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return 0
    live = [pid for pid in pids if isinstance(pid, int) and _alive(pid)]
    if live != pids:
        log.warning(
            "db.embedded_stale_handles",
            extra={"path": str(pgdata), "dead": [p for p in pids if p not in live]},
        )
        handles.write_text(json.dumps(live))
    return len(live)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
