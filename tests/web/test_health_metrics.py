"""/health, /livez, /readyz and /metrics with sources passed in."""

from __future__ import annotations

from typing import Any

import httpx
import trio
from prometheus_client.parser import text_string_to_metric_families

from vsb.metrics import MetricsExporter, MetricsSources
from vsb.services.web import (
    HealthCheck,
    WebApp,
    breaker_probe,
    database_probe,
    shards_probe,
)

GATEWAY: dict[str, Any] = {
    "shard_count": 2,
    "shards": {
        0: {
            "state": "connected",
            "latency_s": 0.042,
            "last_ack_age_s": 10.0,
            "events": {"MESSAGE_CREATE": 5, "GUILD_CREATE": 1},
            "reconnects": {"zombie": 1},
        },
        1: {"state": "connected", "latency_s": 0.05, "events": {}, "reconnects": {}},
    },
}


def _client(app: WebApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    )


async def _ok_ping() -> None:
    await trio.sleep(0)


def _app(
    gateway: dict[str, Any] = GATEWAY, ping=_ok_ping, ai_state: str = "closed"
) -> WebApp:
    app = WebApp(
        health=[
            HealthCheck("gateway", shards_probe(lambda: gateway)),
            HealthCheck("database", database_probe(ping, lambda: {"pool_size": 2})),
            HealthCheck(
                "ai", breaker_probe(lambda: {"breaker": ai_state}), critical=False
            ),
        ]
    )
    app.mark_started()
    return app


async def test_health_all_ok() -> None:
    async with _client(_app()) as client:
        response = await client.get("/health")
        ready = await client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    checks = body["checks"]
    assert set(checks) == {"gateway", "database", "ai", "web"}
    assert checks["gateway"]["shards"]["0"] == {
        "ok": True,
        "state": "connected",
        "last_ack_age_s": 10.0,
        "latency_s": 0.042,
    }
    assert checks["database"]["pool"] == {"pool_size": 2}
    assert "select_1_ms" in checks["database"]
    assert checks["web"]["ok"] is True
    assert ready.status_code == 200 and ready.json()["failing"] == []


async def test_database_down_is_503() -> None:
    async def down() -> None:
        raise OSError("connection refused to postgresql://vsb:hunter2@db/vsb")

    async with _client(_app(ping=down)) as client:
        response = await client.get("/health")
        ready = await client.get("/readyz")
        live = await client.get("/livez")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == {
        "ok": False,
        "error": "OSError",
        "critical": True,
        "elapsed_ms": response.json()["checks"]["database"]["elapsed_ms"],
    }
    assert "hunter2" not in response.text
    assert ready.status_code == 503 and ready.json()["failing"] == ["database"]
    assert live.status_code == 200


async def test_database_hanging_times_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def hang() -> None:
        await trio.sleep_forever()

    async with _client(_app(ping=hang)) as client:
        response = await client.get("/health")
    assert response.status_code == 503
    assert response.json()["checks"]["database"]["error"] == "timeout"


async def test_shard_down_or_stale_ack_is_503() -> None:
    stale = {"shards": {0: {"state": "connected", "last_ack_age_s": 500.0}}}
    resuming = {"shards": {0: {"state": "resuming"}}}
    for gateway in (stale, resuming, {"shards": {}}):
        async with _client(_app(gateway=gateway)) as client:
            assert (await client.get("/health")).status_code == 503


async def test_open_ai_breaker_is_not_critical() -> None:
    async with _client(_app(ai_state="open")) as client:
        response = await client.get("/health")
    assert response.status_code == 200
    assert response.json()["checks"]["ai"]["ok"] is False


async def test_web_not_started_is_not_ready() -> None:
    app = WebApp()
    async with _client(app) as client:
        assert (await client.get("/readyz")).status_code == 503


def _families(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def _sample(families: dict[str, Any], name: str, sample: str, **labels: str) -> float:
    for s in families[name].samples:
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            return float(s.value)
    raise AssertionError(f"no sample {sample} {labels}")


async def test_metrics_parse_with_prometheus_parser() -> None:
    sources = MetricsSources(
        gateway=lambda: GATEWAY,
        rest={
            "requests": {"GET /channels/{channel_id}": {200: 3, 429: 1}},
            "rate_limited": {"user": 1, "global": 0},
        }.copy,
        cache=lambda: {"guilds": 2, "members": 10},
        database=lambda: {
            "size": 3,
            "idle": 2,
            "waiting": 0,
            "max_size": 10,
            "calls": 5,
            "errors": 1,
        },
        ai=lambda: {
            "requests": 4,
            "classified": 3,
            "timeouts": 1,
            "latency_sum_s": 1.5,
            "latency_count": 4,
            "cache_hits": 2,
            "breaker": {"state": "open", "times_opened": 1},
        },
        moderation=lambda: {"decisions": {"delete": 1, "timeout": 2}},
        commands=lambda: {
            "invocations": {"ban": {"ok": 2, "error": 1}},
            "durations": {"ban": {"sum_s": 0.3, "count": 3}},
        },
        active_users=lambda: 7,
    )
    app = _app()
    app.metrics = MetricsExporter(sources).render
    async with _client(app) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = _families(response.text)
    assert (
        _sample(
            families, "bot_commands", "bot_commands_total", command="ban", status="ok"
        )
        == 2
    )
    assert (
        _sample(
            families,
            "bot_command_duration_seconds",
            "bot_command_duration_seconds_count",
            command="ban",
        )
        == 3
    )
    assert _sample(families, "bot_active_users", "bot_active_users") == 7
    assert (
        _sample(
            families,
            "bot_gateway_events",
            "bot_gateway_events_total",
            shard="0",
            event_type="MESSAGE_CREATE",
        )
        == 5
    )
    assert (
        _sample(
            families,
            "bot_gateway_latency_seconds",
            "bot_gateway_latency_seconds",
            shard="0",
        )
        == 0.042
    )
    assert (
        _sample(
            families,
            "bot_gateway_reconnects",
            "bot_gateway_reconnects_total",
            reason="zombie",
        )
        == 1
    )
    assert (
        _sample(
            families,
            "bot_rest_requests",
            "bot_rest_requests_total",
            route="GET /channels/{channel_id}",
            status="429",
        )
        == 1
    )
    assert (
        _sample(
            families,
            "bot_rest_rate_limited",
            "bot_rest_rate_limited_total",
            scope="user",
        )
        == 1
    )
    assert (
        _sample(
            families,
            "bot_moderation_decisions",
            "bot_moderation_decisions_total",
            action="timeout",
        )
        == 2
    )
    assert (
        _sample(families, "bot_ai_requests", "bot_ai_requests_total") == 4
        and _sample(
            families,
            "bot_ai_request_outcomes",
            "bot_ai_request_outcomes_total",
            outcome="timeouts",
        )
        == 1
    )
    assert (
        _sample(
            families,
            "bot_ai_request_duration_seconds",
            "bot_ai_request_duration_seconds_sum",
        )
        == 1.5
    )
    assert _sample(families, "bot_ai_cache_hits", "bot_ai_cache_hits_total") == 2
    assert (
        _sample(
            families,
            "bot_db_pool_connections",
            "bot_db_pool_connections",
            state="idle",
        )
        == 2
    )
    assert (
        _sample(families, "bot_cache_objects", "bot_cache_objects", kind="members")
        == 10
    )
    assert (
        _sample(
            families, "bot_metrics_source_up", "bot_metrics_source_up", source="gateway"
        )
        == 1
    )


async def test_metrics_survive_a_failing_source() -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("stats blew up")

    exporter = MetricsExporter(
        MetricsSources(gateway=broken, cache=lambda: {"guilds": 1})
    )
    families = _families(exporter.render().decode())
    assert (
        _sample(
            families, "bot_metrics_source_up", "bot_metrics_source_up", source="gateway"
        )
        == 0
    )
    assert (
        _sample(families, "bot_cache_objects", "bot_cache_objects", kind="guilds") == 1
    )
    assert "bot_gateway_events" not in families


async def test_metrics_count_web_requests() -> None:
    app = _app()
    app.metrics = MetricsExporter(MetricsSources(web=app.stats)).render
    async with _client(app) as client:
        await client.get("/livez")
        await client.get("/nowhere/secret-path")
        response = await client.get("/metrics")
    families = _families(response.text)
    assert (
        _sample(
            families,
            "bot_web_requests",
            "bot_web_requests_total",
            route="/livez",
            status="200",
        )
        == 1
    )
    assert (
        _sample(
            families,
            "bot_web_requests",
            "bot_web_requests_total",
            route="<unmatched>",
            status="404",
        )
        == 1
    )
    assert "secret-path" not in response.text


async def test_each_exporter_has_its_own_registry() -> None:
    one = MetricsExporter(MetricsSources(active_users=lambda: 1))
    two = MetricsExporter(MetricsSources(active_users=lambda: 2))
    assert one.registry is not two.registry
    assert b"bot_active_users 1.0" in one.render()
    assert b"bot_active_users 2.0" in two.render()


async def test_metrics_from_the_real_cache_stats() -> None:
    from vsb.cache import Cache

    cache = Cache(member_cap_per_guild=10, messages_per_channel=10)
    families = _families(
        MetricsExporter(MetricsSources(cache=cache.stats)).render().decode()
    )
    assert (
        _sample(families, "bot_cache_objects", "bot_cache_objects", kind="guilds") == 0
    )
    assert (
        _sample(
            families,
            "bot_cache_events",
            "bot_cache_events_total",
            event="member_fetches",
        )
        == 0
    )
    assert "bot_cache_bytes" in families
    assert (
        _sample(
            families, "bot_metrics_source_up", "bot_metrics_source_up", source="cache"
        )
        == 1
    )


async def test_health_with_the_real_database_up_then_down(database_url: str) -> None:
    from vsb.services.database import Database

    db = Database(database_url, min_size=1, max_size=2)
    await db.open()
    app = WebApp(health=[HealthCheck("database", db.health)])
    app.metrics = MetricsExporter(MetricsSources(database=db.stats)).render
    app.mark_started()
    try:
        async with _client(app) as client:
            up = await client.get("/health")
            metrics = await client.get("/metrics")
            await db.aclose()
            down = await client.get("/health")
    finally:
        await db.aclose()
    assert up.status_code == 200, up.text
    assert up.json()["checks"]["database"]["latency_ms"] is not None
    assert down.status_code == 503
    assert down.json()["checks"]["database"]["ok"] is False
    assert down.json()["checks"]["database"]["error"] == "DatabaseUnavailable"
    families = _families(metrics.text)
    assert (
        _sample(
            families, "bot_db_pool_connections", "bot_db_pool_connections", state="max"
        )
        == 2
    )
    assert _sample(families, "bot_db_calls", "bot_db_calls_total") >= 1


async def test_metrics_from_the_real_rest_and_command_stats() -> None:
    from vsb.commands.registry import CommandRegistry
    from vsb.commands.service import CommandService
    from vsb.rest import RestClient
    from vsb.secret import Secret

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"url": "ws://127.0.0.1:1", "shards": 1})

    rest = RestClient(
        Secret("x" * 30),
        api_base="http://127.0.0.1:9/api/v10",
        transport=httpx.MockTransport(answer),
    )
    async with rest:
        await rest.get_gateway_bot()
        commands = CommandService(CommandRegistry(), rest, sync=False)
        exporter = MetricsExporter(
            MetricsSources(rest=rest.stats, commands=commands.stats)
        )
        families = _families(exporter.render().decode())
    assert (
        _sample(families, "bot_rest_requests", "bot_rest_requests_total", status="200")
        == 1
    )
    assert (
        _sample(
            families,
            "bot_command_outcomes",
            "bot_command_outcomes_total",
            outcome="received",
        )
        == 0
    )
    assert (
        _sample(
            families,
            "bot_metrics_source_up",
            "bot_metrics_source_up",
            source="commands",
        )
        == 1
    )


async def test_active_users_from_the_database(db: Any) -> None:
    import functools

    from vsb.db import users

    await users.upsert_verified(db, user_id=1, login="a")
    await users.upsert_verified(db, user_id=2, login="b")
    exporter = MetricsExporter(
        MetricsSources(active_users=functools.partial(users.count_verified, db))
    )
    app = _app()
    app.metrics = exporter.render_async
    async with _client(app) as client:
        families = _families((await client.get("/metrics")).text)
    assert _sample(families, "bot_active_users", "bot_active_users") == 2
    # A plain (sync) render cannot await the source: it says so.
    plain = _families(exporter.render().decode())
    assert "bot_active_users" not in plain
    assert (
        _sample(
            plain,
            "bot_metrics_source_up",
            "bot_metrics_source_up",
            source="active_users",
        )
        == 0
    )


async def test_metrics_and_health_from_the_real_ai_client() -> None:
    from vsb.secret import Secret
    from vsb.services.ai import GroqClient

    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500)

    ai = GroqClient(
        Secret("groq-key-for-tests-123456"),
        api_base="http://127.0.0.1:9/openai/v1",
        transport=httpx.MockTransport(refuse),
    )
    exporter = MetricsExporter(MetricsSources(ai=ai.stats))
    families = _families(exporter.render().decode())
    assert _sample(families, "bot_ai_requests", "bot_ai_requests_total") == 0
    assert _sample(families, "bot_ai_breaker_open", "bot_ai_breaker_open") == 0
    assert _sample(families, "bot_ai_cache_misses", "bot_ai_cache_misses_total") == 0
    app = WebApp(health=[HealthCheck("ai", ai.health, critical=False)])
    app.mark_started()
    async with _client(app) as client:
        body = (await client.get("/health")).json()
    assert (
        body["checks"]["ai"]["ok"] is True
        and body["checks"]["ai"]["breaker"] == "closed"
    )
    await ai.aclose()


async def test_metrics_from_moderation_stats_shape() -> None:
    from dataclasses import asdict

    from vsb.services.moderation import ModerationStats

    stats = {
        **asdict(ModerationStats(received=9, allowed=5, deleted=2, ai_failures=1)),
        "intake_queued": 3,
        "ai_queued": 0,
        "message_content_intent": True,
        "ai_enabled": False,
        "rules": {"checked": 9},
    }
    families = _families(
        MetricsExporter(MetricsSources(moderation=lambda: stats)).render().decode()
    )
    decisions = "bot_moderation_decisions"
    assert _sample(families, decisions, decisions + "_total", action="delete") == 2
    assert _sample(families, decisions, decisions + "_total", action="allow") == 5
    pipeline = "bot_moderation_pipeline"
    assert _sample(families, pipeline, pipeline + "_total", counter="ai_failures") == 1
    assert (
        _sample(
            families, "bot_moderation_queued", "bot_moderation_queued", queue="intake"
        )
        == 3
    )
