"""The sandbox scene: ``python -m vsb sandbox [--once] [--speed X]``.

Theory of operation. One trio loop holds everything:

1. the Discord emulator (:func:`vsb.sandbox.open_sandbox`) with the default
   guild grown to a scene of its own: a ``#random`` channel, named members
   (alice, bob, carol, dave, spammer, troll) and plain ones up to
   :data:`vsb.sandbox.script.SCENE_MEMBERS`; the Groq emulator too when ``GROQ_API_KEY`` is set
   (without a key the bot uses its local rule classifier only);
2. the real bot, started through :func:`vsb.app.run_bot` (the ``run`` path:
   embedded PostgreSQL under ``VSB_DATA_DIR`` unless ``DATABASE_URL`` is
   set, migrations, every service supervised), with settings pointing at the
   emulator: token, application id, public key, API base, OAuth2 client and
   URLs, and a JWT key generated for this run. Its web server listens on
   ``VSB_HTTP_PORT`` (another free port if that one is taken);
3. the scene (:class:`vsb.sandbox.script.Scene`): members chat, spam,
   insult and edit; the moderator runs ``/moderate``, "Analyze Message" and
   a review button; a member verifies through ``/verify`` and the OAuth2
   pages (an HTTP client follows the bot's link to the emulator's consent
   page and back to the bot's callback); the emulator forces a reconnect
   (op 7) that the bot resumes. Each step waits (at most
   :data:`vsb.sandbox.script.STEP_TIMEOUT` seconds) for what the bot should
   do, and records whether it did;
4. a :class:`vsb.sandbox.narrator.Narrator` printing one line per thing the
   bot did, read from ``sb.actions``.

The bot's JSON log goes to ``VSB_DATA_DIR/sandbox/sandbox.log`` (errors also to
stderr), so the terminal shows the scene. Without ``--once`` the bot stays up
after the scene, serving ``/health`` and ``/metrics``, until Ctrl-C (exit
0). With ``--once`` the bot is stopped after the scene and the exit status is
0 only if every expected thing happened and the bot stopped cleanly; else 1,
with one line per missing thing.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import psycopg
import trio

from vsb.config import Settings
from vsb.log import ConsoleFormatter, Redactor, configure_logging
from vsb.sandbox.narrator import Narrator
from vsb.sandbox.sandbox import Sandbox, open_sandbox
from vsb.sandbox.script import PAUSE, Cast, Outcome, Scene, build_cast
from vsb.secret import Secret

log = logging.getLogger(__name__)

#: Seconds the bot gets to stop after the scene with ``--once``, beyond
#: ``VSB_SHUTDOWN_TIMEOUT``.
_STOP_GRACE: Final = 5.0


def play(settings: Settings, *, once: bool, speed: float) -> int:
    """Run the scene; the exit status (0 done, 1 something missing, 2 usage)."""
    if not speed > 0:
        print("vsb sandbox: --speed must be greater than 0", file=sys.stderr)
        return 2
    # The scene's guild, cases and gateway sessions are not the real bot's:
    # keep them in a directory of their own under VSB_DATA_DIR.
    settings = dataclasses.replace(settings, data_dir=settings.data_dir / "sandbox")
    log_path, redactor = _log_to_file(settings)
    try:
        return trio.run(_main, settings, once, speed, log_path, redactor)
    except KeyboardInterrupt:
        # Ctrl-C in the instant before the signal receiver opened.
        return 1 if once else 0


def bot_settings(
    settings: Settings,
    sb: Sandbox,
    cast: Cast,
    *,
    port: int,
    groq_api_base: str | None,
) -> Settings:
    """The user's settings pointed at the emulator (and the Groq emulator)."""
    changes: dict[str, Any] = {
        "discord_bot_token": Secret(sb.bot_token),
        "discord_application_id": sb.application_id,
        "discord_guild_id": cast.guild_id,
        "discord_public_key": sb.public_key,
        "discord_api_base": sb.api_base,
        "shard_count": None,
        "shard_ids": None,
        "shard_ids_from_ordinal": None,
        "oauth_client_id": sb.client_id,
        "oauth_client_secret": Secret(sb.client_secret),
        "oauth_redirect_uri": f"http://127.0.0.1:{port}/oauth/callback",
        "oauth_authorize_url": sb.oauth_authorize_url,
        "oauth_token_url": sb.oauth_token_url,
        "oauth_userinfo_url": sb.oauth_userinfo_url,
        "oauth_scopes": "identify",
        "oauth_login_claim": "username",
        "jwt_secret": Secret(secrets.token_urlsafe(48)),
        "admin_log_channel_id": cast.mod_log_id,
        "http_host": "127.0.0.1",
        "http_port": port,
    }
    if groq_api_base is not None:
        changes["groq_api_base"] = groq_api_base
    return dataclasses.replace(settings, **changes)


# -- running the bot --------------------------------------------------------------


class _BotRun:
    """Runs :func:`vsb.app.run_bot` and keeps its outcome."""

    def __init__(self) -> None:
        self.bot: Any = None
        self.code: int | None = None
        self.done = trio.Event()

    async def run(self, settings: Settings, *, task_status: Any) -> None:
        from vsb.app import run_bot

        reporter = _Started(task_status)
        try:
            self.code = await run_bot(settings, task_status=reporter)
        finally:
            self.done.set()
            if not reporter.reported:
                task_status.started(None)

    def stop(self, reason: str) -> None:
        if self.bot is not None:
            self.bot.supervisor.request_shutdown(reason)


class _Started:
    """A ``task_status`` that notes the report and passes it on."""

    def __init__(self, task_status: Any) -> None:
        self._task_status = task_status
        self.reported = False

    def started(self, value: Any = None) -> None:
        self.reported = True
        self._task_status.started(value)


async def _main(
    settings: Settings, once: bool, speed: float, log_path: Path, redactor: Redactor
) -> int:
    run = _BotRun()
    code = 1 if once else 0  # what a Ctrl-C before the end means
    async with trio.open_nursery() as nursery:
        await nursery.start(_watch_signals, run, nursery.cancel_scope)
        port = free_port(settings.http_port)
        await trio.to_thread.run_sync(forget_sandbox_sessions, settings)
        async with open_sandbox() as sb, _groq(settings) as groq_base:
            cast = build_cast(sb.state)
            config = bot_settings(
                settings, sb, cast, port=port, groq_api_base=groq_base
            )
            for value in config.secrets():
                redactor.add(value)
            narrator = Narrator(sb, _say)
            _header(sb, cast, config, log_path, groq_base)
            nursery.start_soon(narrator.follow)
            code = await _with_bot(
                sb, cast, config, narrator, run, nursery, once, speed
            )
            narrator.flush()
        nursery.cancel_scope.cancel()
    return code


async def _with_bot(
    sb: Sandbox,
    cast: Cast,
    config: Settings,
    narrator: Narrator,
    run: _BotRun,
    nursery: trio.Nursery,
    once: bool,
    speed: float,
) -> int:
    _say("starting the bot ...")
    run.bot = await nursery.start(run.run, config)
    if run.bot is None:
        _say(f"the bot did not start (exit {run.code}); see the log for why")
        return 1
    web = f"http://127.0.0.1:{config.http_port}"
    scene = Scene(sb, cast, narrator, web_base=web, pause=PAUSE / speed, say=_say)
    with trio.CancelScope() as scope:
        nursery.start_soon(_cancel_when_done, run, scope)
        await scene.wait_ready()
        outcomes = await scene.play()
    if scope.cancelled_caught:
        _say(f"the bot stopped (exit {run.code}) before the scene ended")
        if once:
            _say_summary(scene.outcomes + [Outcome("the scene finished", False)])
        return 0 if not once else 1
    narrator.flush()
    if not once:
        _say_summary(outcomes)
        _say(f"the bot keeps running: {web}/health and {web}/metrics; Ctrl-C stops it")
        await run.done.wait()
        _say(f"the bot stopped (exit {run.code})")
        return 0
    return await _finish_once(run, outcomes, config)


async def _finish_once(run: _BotRun, outcomes: list[Outcome], config: Settings) -> int:
    _say("> the scene is over: stopping the bot as SIGTERM would")
    run.stop("scene finished")
    with trio.move_on_after(config.shutdown_timeout + _STOP_GRACE):
        await run.done.wait()
    outcomes.append(
        Outcome("the bot stopped cleanly (exit 0)", run.code == 0, f"exit {run.code}")
    )
    _say_summary(outcomes)
    return 0 if all(o.ok for o in outcomes) else 1


async def _cancel_when_done(run: _BotRun, scope: trio.CancelScope) -> None:
    await run.done.wait()
    scope.cancel()


async def _watch_signals(
    run: _BotRun, scope: trio.CancelScope, *, task_status: Any
) -> None:
    # While the bot runs its supervisor has its own receiver (opened later,
    # so it gets the signals) and stops gracefully; this one covers start-up
    # and the time after the bot stopped.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for _ in signals:
            if run.bot is not None and not run.done.is_set():
                run.stop("signal")
            else:
                scope.cancel()


@asynccontextmanager
async def _groq(settings: Settings) -> AsyncIterator[str | None]:
    """The Groq emulator's API base when a key is set, else None."""
    if settings.groq_api_key is None:
        yield None
        return
    from vsb.sandbox.groq import open_groq_emulator

    async with open_groq_emulator(api_key=settings.groq_api_key.reveal()) as emu:
        yield emu.api_base


def forget_sandbox_sessions(settings: Settings) -> None:
    """Drop gateway sessions an earlier scene stored (blocking).

    Every scene has a new emulator, so a session stored by the last one
    (``resume_url`` on 127.0.0.1) can never be resumed: the bot would spend
    its resume attempts, with backoff, on a port nobody listens on before
    identifying (seconds off every scene). With the embedded database this
    starts the server early; :func:`vsb.app.run_bot` then reuses it
    (pgserver keeps one server per data directory in a process).
    """
    from vsb.db.embedded import EmbeddedError, EmbeddedPostgres

    try:
        if settings.database_url is not None:
            url = settings.database_url.reveal()
        else:
            url = EmbeddedPostgres(settings.data_dir).start()
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            row = conn.execute("SELECT to_regclass('gateway_sessions')").fetchone()
            if row is not None and row[0] is not None:
                conn.execute(
                    "DELETE FROM gateway_sessions"
                    " WHERE resume_url LIKE 'ws://127.0.0.1:%%'"
                )
    except (EmbeddedError, psycopg.Error) as exc:
        # The bot's own start reports a database it cannot use.
        log.warning("sandbox.sessions_not_cleared", extra={"error": type(exc).__name__})


def free_port(preferred: int) -> int:
    """``preferred`` if it can be bound on 127.0.0.1, else any free port."""
    for port in (preferred, 0):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise OSError("no free port on 127.0.0.1")


# -- output ----------------------------------------------------------------------


def _say(line: str) -> None:
    print(line, flush=True)


def _header(
    sb: Sandbox, cast: Cast, config: Settings, log_path: Path, groq: str | None
) -> None:
    web = f"http://127.0.0.1:{config.http_port}"
    guild = sb.state.guilds[cast.guild_id]
    channels = " ".join(f"#{c.name}" for c in guild.channels.values())
    database = (
        "DATABASE_URL"
        if config.database_url is not None
        else f"embedded PostgreSQL under {config.data_dir}"
    )
    classifier = (
        f"local rules + Groq emulator at {groq}"
        if groq
        else "local rules (set GROQ_API_KEY to add the Groq emulator)"
    )
    _say("VSB sandbox: the real bot against an emulated Discord")
    for name, value in (
        ("emulated Discord", sb.api_base),
        ("bot health", f"{web}/health"),
        ("bot metrics", f"{web}/metrics"),
        ("bot log (JSON)", str(log_path)),
        ("guild", f"{guild.name}: {len(guild.members)} members, {channels}"),
        ("classifier", classifier),
        ("database", database),
    ):
        _say(f"  {name:<17} {value}")


def _say_summary(outcomes: list[Outcome]) -> None:
    missing = [o for o in outcomes if not o.ok]
    _say(f"scene checked: {len(outcomes) - len(missing)} of {len(outcomes)} expected")
    for outcome in missing:
        detail = f" ({outcome.detail})" if outcome.detail else ""
        _say(f"  MISSING: {outcome.name}{detail}")


def _log_to_file(settings: Settings) -> tuple[Path, Redactor]:
    """Send the JSON log to ``DATA_DIR/sandbox.log`` and errors to stderr."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = settings.data_dir / "sandbox.log"
    stream = path.open("w", encoding="utf-8")  # open for the life of the process
    redactor = configure_logging(
        settings.log_level, "json", settings.secrets(), stream=stream
    )
    errors = logging.StreamHandler(sys.stderr)
    errors.setLevel(logging.ERROR)
    errors.setFormatter(ConsoleFormatter(redactor))
    logging.getLogger().addHandler(errors)
    return path, redactor
