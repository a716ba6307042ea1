"""The bot assembled: every service built from the settings and supervised.

Theory of operation. :func:`run_bot` is what ``python -m vsb run`` runs:

1. the database: ``DATABASE_URL``, or an embedded PostgreSQL under
   ``VSB_DATA_DIR`` (kept running for the life of the bot); migrations are
   applied under yoyo's lock, so processes starting together are safe;
2. the REST client, and the application (``GET /applications/@me``) when
   ``DISCORD_APPLICATION_ID`` is unset: the bot's user id is the
   application's bot;
3. the components (:class:`Bot`): cache, slash commands, smart moderation,
   web server, shards, each wired to the others through plain callables;
4. a :class:`vsb.lifecycle.Supervisor` runs them in this order: database,
   audit writer, commands, expiry, moderation, web, gateway. On SIGTERM it
   drains in reverse order (the gateway first: its shards store their
   sessions and close resumably, so events stop coming in; then moderation
   and commands finish what is queued; then the audit log is flushed) and
   stops the services one by one, the database last.

With ``DATABASE_URL`` set, identify turns and gateway sessions live in
PostgreSQL (:class:`vsb.services.coordination.PostgresIdentifyLock`,
:class:`vsb.db.sessions.DatabaseSessionStore`), so several processes can
split the shards and a restarted process resumes. The embedded database
keeps sessions too (one process).

Exit status: 0 after a clean stop, 1 when a critical service failed or the
bot could not start (one ERROR log line says why).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import psycopg
import trio

from vsb import __version__
from vsb.cache import Cache
from vsb.commands import CommandRegistry, CommandService
from vsb.commands import review as review_commands
from vsb.commands.analyze import Analyze
from vsb.commands.ask import Ask
from vsb.commands.cases import CaseCommands
from vsb.commands.config import Config
from vsb.commands.debug import Debug
from vsb.commands.expiry import ExpiryScheduler
from vsb.commands.moderation import Moderation
from vsb.commands.modlog import ModLog
from vsb.commands.purge import Purge
from vsb.commands.verify import verify_commands
from vsb.config import Settings
from vsb.db import migrate, users
from vsb.db.embedded import EmbeddedError, EmbeddedPostgres
from vsb.db.sessions import DatabaseSessionStore
from vsb.gateway import ShardManager
from vsb.lifecycle import Service, Supervisor
from vsb.metrics import MetricsExporter, MetricsSources
from vsb.moderation.rules import LocalClassifier, RuleConfig
from vsb.moderation.words import WordListError, load_words
from vsb.rest import RestClient
from vsb.rest.errors import DiscordHTTPError, NotFound, RestError
from vsb.router import EventRouter
from vsb.services.ai import GroqClient, tier_models
from vsb.services.audit import AuditWriter
from vsb.services.auth import (
    DatabaseAuthStore,
    OAuthClient,
    OAuthConfig,
    TokenSigner,
    VerificationFlow,
)
from vsb.services.coordination import PostgresIdentifyLock
from vsb.services.database import Database
from vsb.services.moderation import ModerationService, moderator_check
from vsb.services.web import (
    HealthCheck,
    InteractionVerifier,
    WebApp,
    WebService,
    breaker_probe,
    shards_probe,
)

log = logging.getLogger("vsb.app")

#: Discord's own API base: without a proxy in between, processes split the
#: global rate limit between them.
DISCORD_API_BASE = Settings().discord_api_base


class StartupError(Exception):
    """The bot cannot start; the message says why, without secrets."""


async def run_bot(
    settings: Settings, *, task_status: Any = trio.TASK_STATUS_IGNORED
) -> int:
    """Run the bot until SIGINT/SIGTERM (or a fatal error); return the exit status.

    ``task_status.started(bot)`` reports the assembled :class:`Bot` once every
    service has started (used by the sandbox scene and tests).
    """
    log.info("app.starting", extra={"version": __version__})
    async with trio.open_nursery() as nursery:
        try:
            url, embedded = await _database(settings, nursery)
            await _migrate_at_start(url)
            bot = await Bot.assemble(settings, url, embedded=embedded)
        except StartupError as exc:
            log.error("app.start_failed", extra={"error": str(exc)})
            nursery.cancel_scope.cancel()
            return 1
        try:
            nursery.start_soon(_report_started, bot, task_status)
            code = await bot.supervisor.run()
        finally:
            with trio.CancelScope(shield=True):
                await bot.aclose()
        nursery.cancel_scope.cancel()
    return code


async def _report_started(bot: Bot, task_status: Any) -> None:
    await bot.supervisor.started.wait()
    task_status.started(bot)


async def _migrate_at_start(url: str) -> None:
    try:
        await trio.to_thread.run_sync(migrate.up, url)  # logs db.migrated
    except migrate.MigrationError as exc:
        raise StartupError(str(exc)) from None
    except psycopg.Error as exc:
        raise StartupError(database_error(exc, url)) from None


def database_error(exc: psycopg.Error, url: str) -> str:
    """One line saying why the database refused, without the password."""
    first = (str(exc).strip().splitlines() or [""])[0]
    password = urlsplit(url).password
    if password:
        first = first.replace(password, "***")
    detail = f": {first}" if first else ""
    return f"database error ({type(exc).__name__}{detail}); check DATABASE_URL"


async def _database(settings: Settings, nursery: trio.Nursery) -> tuple[str, bool]:
    """The database URL, starting the embedded server when none is set."""
    if settings.database_url is not None:
        return settings.database_url.reveal(), False
    try:
        url: str = await nursery.start(EmbeddedPostgres(settings.data_dir).run)
    except EmbeddedError as exc:
        raise StartupError(
            f"{exc} (set DATABASE_URL to use an external PostgreSQL)"
        ) from None
    return url, True


@dataclass(eq=False)
class Bot:
    """Every component of a running bot, wired together.

    Build it with :meth:`assemble`; :attr:`supervisor` runs it.
    """

    settings: Settings
    db: Database
    audit: AuditWriter
    rest: RestClient
    router: EventRouter
    cache: Cache
    registry: CommandRegistry
    commands: CommandService
    expiry: ExpiryScheduler
    moderation: ModerationService
    ai: GroqClient | None
    web: WebService
    webapp: WebApp
    shards: ShardManager
    identify_lock: PostgresIdentifyLock | None
    supervisor: Supervisor
    application_id: int

    @classmethod
    async def assemble(cls, s: Settings, url: str, *, embedded: bool = False) -> Bot:
        """Build every component from the settings and the database URL.

        Raises:
            StartupError: the application could not be read from Discord, or
                the word list is bad.
        """
        assert s.discord_bot_token is not None  # checked by the command line
        try:
            words = load_words(s.words_file)
        except WordListError as exc:
            raise StartupError(f"VSB_WORDS_FILE: {exc}") from None
        shard_ids = s.resolve_shard_ids()
        rest = RestClient(
            s.discord_bot_token,
            api_base=s.discord_api_base,
            global_limit=_global_limit(s, shard_ids),
        )
        try:
            application_id, bot_user_id = await _application(s, rest)
        except BaseException:
            with trio.CancelScope(shield=True):
                await rest.aclose()
            raise

        db = Database(
            url,
            min_size=s.db_pool_min,
            max_size=s.db_pool_max,
            max_lifetime_s=s.db_pool_max_lifetime,
            max_idle_s=s.db_pool_max_idle,
            pool_timeout_s=s.db_pool_timeout,
            statement_timeout_s=s.db_statement_timeout,
        )
        audit = AuditWriter(db)
        router = EventRouter()

        ai = None
        if s.groq_api_key is not None:
            ai = GroqClient(
                s.groq_api_key,
                api_base=s.groq_api_base,
                models=tier_models(
                    fast=s.groq_model_fast,
                    balanced=s.groq_model_balanced,
                    quality=s.groq_model_quality,
                ),
            )

        # The gateway is built first: the cache asks it for member chunks.
        shards_ref: list[ShardManager] = []

        async def request_members(guild_id: int) -> object:
            return await shards_ref[0].request_guild_members(guild_id)

        async def fetch_member(guild_id: int, user_id: int) -> Any:
            # The cache wants None for "not a member" (10007 Unknown Member).
            try:
                return await rest.get_member(guild_id, user_id)
            except NotFound:
                return None

        cache = Cache(
            member_cap_per_guild=s.member_cache_cap,
            messages_per_channel=100,
            fetch_member=fetch_member,
            request_guild_members=request_members,
        )
        cache.register(router)

        moderation = ModerationService(
            rest=rest,
            db=db,
            rules=LocalClassifier(RuleConfig(words=words)),
            ai=ai,
            bot_user_id=bot_user_id,
            intents=s.discord_intents,
            audit_writer=audit,
            default_log_channel_id=s.admin_log_channel_id,
            is_moderator=moderator_check(cache),
        )
        moderation.register(router)

        modlog = ModLog(rest, db, default_channel_id=s.admin_log_channel_id)
        expiry = ExpiryScheduler(rest, db, modlog=modlog)
        registry = CommandRegistry()
        registry.add_all(
            Moderation(rest, db, cache, modlog, on_expiring_case=expiry.wake).commands()
        )
        registry.add_all(CaseCommands(db, modlog).commands())
        registry.add_all(Purge(rest, cache, modlog).commands())
        registry.add_all(
            Config(db, on_change=moderation.invalidate_settings).commands()
        )
        registry.add_all(Analyze(moderation.classify, db).commands())
        review_commands.register(registry, moderation)
        if ai is not None:
            registry.add_all(Ask(ai, rest).commands())

        store = DatabaseAuthStore(db)
        flow = None
        if s.oauth_enabled:
            assert s.oauth_client_id and s.oauth_client_secret and s.jwt_secret
            assert s.oauth_redirect_uri is not None
            flow = VerificationFlow(
                tokens=TokenSigner(s.jwt_secret),
                oauth=OAuthClient(
                    OAuthConfig(
                        client_id=s.oauth_client_id,
                        client_secret=s.oauth_client_secret,
                        redirect_uri=s.oauth_redirect_uri,
                        authorize_url=s.oauth_authorize_url,
                        token_url=s.oauth_token_url,
                        userinfo_url=s.oauth_userinfo_url,
                        scopes=tuple(s.oauth_scopes.split()),
                        login_claim=s.oauth_login_claim,
                    )
                ),
                store=store,
                roles=rest,
            )
            registry.add_all(verify_commands(flow))

        commands = CommandService(
            registry,
            rest,
            db=db,
            application_id=application_id,
            guild_id=s.discord_guild_id,
            developer_ids=s.developer_ids,
        )
        commands.register(router)

        # Sessions are kept in the database, embedded or not; identify turns
        # are coordinated through it only for an external one (the embedded
        # server belongs to one process).
        identify_lock = None if embedded else PostgresIdentifyLock(url)
        shards = ShardManager(
            s.discord_bot_token,
            s.discord_intents,
            get_gateway_bot=rest.get_gateway_bot,
            on_dispatch=router.dispatch,
            shard_ids=shard_ids,
            shard_count=s.shard_count,
            compress=s.discord_gateway_compress,
            identify_lock=identify_lock,
            session_store=DatabaseSessionStore(db),
        )
        shards_ref.append(shards)

        registry.add_all(
            Debug(
                registry,
                cache=cache,
                db=db,
                shard_latencies=lambda: {i: shards.latency(i) for i in shards.shards},
            ).commands()
        )

        health = [
            HealthCheck("gateway", shards_probe(shards.stats)),
            HealthCheck("database", db.health),
        ]
        if ai is not None:
            health.append(HealthCheck("ai", breaker_probe(ai.stats), critical=False))
        webapp = WebApp(
            health=health,
            flow=flow,
            tokens=flow.tokens if flow is not None else None,
            store=store,
            interaction_verifier=(
                InteractionVerifier(s.discord_public_key)
                if s.discord_public_key
                else None
            ),
            interaction_handler=commands.answer_http,
        )
        webapp.metrics = MetricsExporter(
            MetricsSources(
                gateway=shards.stats,
                rest=rest.stats,
                cache=cache.stats,
                database=db.stats,
                ai=ai.stats if ai is not None else None,
                moderation=moderation.stats,
                commands=commands.stats,
                web=webapp.stats,
                active_users=partial(users.count_verified, db),
            )
        ).render_async
        web = WebService(webapp, host=s.http_host, port=s.http_port)

        supervisor = Supervisor(
            [
                Service("database", db.run, critical=True),
                Service("audit", audit.run, drain=audit.flush),
                Service("commands", commands.run, drain=commands.drain),
                Service("expiry", expiry.run),
                Service("moderation", moderation.run, drain=moderation.drain),
                Service("web", web.run, drain=web.drain),
                Service("gateway", shards.run, critical=True, drain=shards.stop),
            ],
            shutdown_timeout=s.shutdown_timeout,
        )
        log.info(
            "app.assembled",
            extra={
                "application_id": application_id,
                "shard_ids": list(shard_ids) if shard_ids is not None else "all",
                "shard_count": s.shard_count,
                "database": "embedded" if embedded else "external",
                "ai": "groq" if ai is not None else "local rules",
                "oauth": flow is not None,
                "commands": len(registry.commands),
            },
        )
        return cls(
            settings=s,
            db=db,
            audit=audit,
            rest=rest,
            router=router,
            cache=cache,
            registry=registry,
            commands=commands,
            expiry=expiry,
            moderation=moderation,
            ai=ai,
            web=web,
            webapp=webapp,
            shards=shards,
            identify_lock=identify_lock,
            supervisor=supervisor,
            application_id=application_id,
        )

    async def aclose(self) -> None:
        """Close the clients that hold connections outside the services."""
        await self.rest.aclose()
        if self.ai is not None:
            await self.ai.aclose()
        if self.identify_lock is not None:
            await self.identify_lock.aclose()


def _global_limit(s: Settings, shard_ids: tuple[int, ...] | None) -> float:
    """This process's share of the REST global limit.

    Through a rate-limit proxy (``DISCORD_API_BASE`` changed) the proxy holds
    the budget, so the whole limit is ours to ask; straight to Discord, the
    processes split it by the share of shards each runs.
    """
    if s.discord_api_base != DISCORD_API_BASE or not shard_ids or not s.shard_count:
        return s.rest_global_limit
    return s.rest_global_limit * len(shard_ids) / s.shard_count


async def _application(s: Settings, rest: RestClient) -> tuple[int, int]:
    """The application id and the bot's user id."""
    if s.discord_application_id is not None:
        # A bot user's id is its application's id.
        return s.discord_application_id, s.discord_application_id
    try:
        app = await rest.get_current_application()
    except DiscordHTTPError as exc:
        if exc.status == 401:
            raise StartupError(
                "DISCORD_BOT_TOKEN: Discord rejected the token (401)"
            ) from None
        raise StartupError(
            f"could not read the application from Discord ({exc.status})"
        ) from None
    except RestError as exc:
        raise StartupError(
            f"could not reach Discord at DISCORD_API_BASE ({type(exc).__name__})"
        ) from None
    application_id = int(app["id"])
    bot = app.get("bot") or {}
    return application_id, int(bot.get("id", application_id))


def migrate_command(settings: Settings, action: str, steps: int) -> int:
    """``python -m vsb migrate up|down|status``; returns the exit status."""
    server = None
    if settings.database_url is not None:
        url = settings.database_url.reveal()
    else:
        server = EmbeddedPostgres(settings.data_dir)
        try:
            url = server.start()
        except EmbeddedError as exc:
            print(
                f"vsb: {exc} (set DATABASE_URL to use an external PostgreSQL)",
                file=sys.stderr,
            )
            return 1
    try:
        if action == "up":
            applied = migrate.up(url)
            print("applied: " + (", ".join(applied) if applied else "nothing to do"))
        elif action == "down":
            rolled = migrate.down(url, steps)
            print("rolled back: " + (", ".join(rolled) if rolled else "nothing"))
        else:
            for item in migrate.status(url):
                print(f"{'applied' if item.applied else 'pending'}  {item.id}")
    except migrate.MigrationError as exc:
        print(f"vsb: {exc}", file=sys.stderr)
        return 1
    except psycopg.Error as exc:
        print(f"vsb: {database_error(exc, url)}", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            server.stop()
    return 0
