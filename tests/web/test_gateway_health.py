"""/health and /metrics over a real ShardManager connected to the sandbox,
under trio's MockClock (no database here, so autojump is safe)."""

from __future__ import annotations

import random
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from prometheus_client.parser import text_string_to_metric_families

from vsb.gateway import ShardManager
from vsb.metrics import MetricsExporter, MetricsSources
from vsb.sandbox import Sandbox, open_sandbox
from vsb.secret import Secret
from vsb.services.web import HealthCheck, WebApp, shards_probe

INTENTS = (1 << 0) | (1 << 9)


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


def _manager(sb: Sandbox) -> ShardManager:
    async def get_gateway_bot() -> dict[str, Any]:
        transport = httpx.ASGITransport(app=sb.asgi_app)
        async with httpx.AsyncClient(transport=transport) as client:
            response = await client.get(
                f"{sb.api_base}/gateway/bot",
                headers={"Authorization": f"Bot {sb.bot_token}"},
            )
            data: dict[str, Any] = response.json()
            return data

    async def ignore(shard_id: int, event_type: str, event: Any) -> None:
        del shard_id, event_type, event

    return ShardManager(
        Secret(sb.bot_token),
        INTENTS,
        get_gateway_bot=get_gateway_bot,
        on_dispatch=ignore,
        rng=random.Random(1),
    )


async def _wait_for(predicate: Any) -> None:
    with trio.fail_after(600):
        while not predicate():
            await trio.sleep(0.05)


def _shard(mgr: ShardManager) -> dict[str, Any]:
    shard: dict[str, Any] = mgr.stats()["shards"][0]
    return shard


async def test_shard_health_follows_heartbeat_acks(autojump_clock: Any) -> None:
    async with open_sandbox(serve_http=False) as sb, trio.open_nursery() as nursery:
        mgr = _manager(sb)
        await nursery.start(mgr.run)
        probe = shards_probe(mgr.stats, max_ack_age=30.0)
        app = WebApp(health=[HealthCheck("gateway", probe)])
        app.metrics = MetricsExporter(MetricsSources(gateway=mgr.stats)).render_async
        app.mark_started()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t"
        ) as client:
            await _wait_for(lambda: _shard(mgr)["last_ack_age_s"] is not None)
            healthy = await client.get("/health")
            metrics = await client.get("/metrics")

            sb.faults.stop_heartbeat_acks()
            await _wait_for(lambda: not probe()["ok"])
            stale = await client.get("/health")
        nursery.cancel_scope.cancel()

    shard = healthy.json()["checks"]["gateway"]["shards"]["0"]
    assert healthy.status_code == 200
    assert shard["ok"] and shard["state"] == "connected"
    assert shard["latency_s"] is not None and shard["last_ack_age_s"] < 30
    assert stale.status_code == 503
    assert stale.json()["checks"]["gateway"]["shards"]["0"]["ok"] is False
    families = {f.name: f for f in text_string_to_metric_families(metrics.text)}
    connected = families["bot_gateway_shard_connected"].samples[0]
    assert connected.labels == {"shard": "0"} and connected.value == 1
    events = families["bot_gateway_events"].samples
    assert any(s.labels["event_type"] == "READY" for s in events)
