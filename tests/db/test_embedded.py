"""The embedded default: pgserver from an empty directory, and a killed parent."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

import psycopg
import pytest
import trio

from vsb.db import migrate
from vsb.db.embedded import EmbeddedPostgres

_PARENT = """
import sys, time
from pathlib import Path
from vsb.db.embedded import EmbeddedPostgres
server = EmbeddedPostgres(Path(sys.argv[1]))
print(server.start(), flush=True)
time.sleep(600)
"""


def _postmaster_pid(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().split()[0])


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A stopped server's process may linger as a zombie of its dead parent.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


async def test_starts_from_empty_dir_and_survives_a_killed_parent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "vsb-data"  # does not exist yet
    # 1. A parent starts the server from nothing, then is killed (SIGKILL):
    #    the server outlives it and its pid stays in pgserver's handle list.
    async with trio.open_nursery() as nursery:
        proc = await nursery.start(
            lambda task_status: trio.run_process(
                [sys.executable, "-c", _PARENT, str(data_dir)],
                stdout=-1,
                check=False,
                task_status=task_status,
            )
        )
        with trio.fail_after(120):
            first_url = (await proc.stdout.receive_some()).decode().strip()
        proc.send_signal(signal.SIGKILL)
    pgdata = data_dir / "pgdata"
    postmaster = _postmaster_pid(pgdata)
    assert _running(postmaster)
    assert "?host=" in first_url  # a Unix socket, no TCP port

    # 2. The next start finds and reuses the running server.
    server = EmbeddedPostgres(data_dir)
    with caplog.at_level(logging.INFO, logger="vsb.db.embedded"):
        url = await trio.to_thread.run_sync(server.start)
    events = [r.getMessage() for r in caplog.records]
    assert "db.embedded_stale_handles" in events
    if os.geteuid() == 0:
        assert "db.embedded_as_root" in events
    assert _postmaster_pid(pgdata) == postmaster
    assert await trio.to_thread.run_sync(migrate.up, url) != []
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM mod_cases").fetchone() == (0,)

    # 3. Being the last live user, we stop it.
    await trio.to_thread.run_sync(server.stop)
    assert not _running(postmaster)
