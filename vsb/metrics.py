"""Prometheus metrics, built at scrape time from the services' ``stats()``.

No module in VSB holds a global prometheus metric. Each service keeps plain
counters and exposes them through ``stats()``; :class:`MetricsExporter` owns
one :class:`prometheus_client.CollectorRegistry` (one per app, so tests and
several apps in one process never share state) with a single collector that,
on every scrape, calls the sources it was given and turns their plain data
into metric families. Counters therefore keep the services' own totals and
restart from zero with the process, as Prometheus expects.

A source that raises is skipped for that scrape and shows as
``bot_metrics_source_up{source="..."} 0``; the other sources still report.

Metrics (``shard`` is a shard id, ``route`` a REST route template)::

    bot_commands_total{command,status}            counter
    bot_command_outcomes_total{outcome}           counter (refused, errors, ...)
    bot_command_duration_seconds{command}         summary (sum, count)
    bot_command_initial_response_seconds{quantile} gauge (p50, p99)
    bot_active_users                              gauge
    bot_gateway_events_total{shard,event_type}    counter
    bot_gateway_latency_seconds{shard}            gauge (heartbeat round trip)
    bot_gateway_reconnects_total{shard,reason}    counter
    bot_gateway_shard_connected{shard}            gauge 1/0
    bot_rest_requests_total{route,status}         counter
    bot_rest_rate_limited_total{scope}            counter (429s: user, global, shared)
    bot_moderation_decisions_total{action}        counter (allow, review, delete, escalate)
    bot_moderation_pipeline_total{counter}        counter (received, exempt, ...)
    bot_moderation_queued{queue}                  gauge (intake, ai)
    bot_ai_requests_total                         counter
    bot_ai_request_outcomes_total{outcome}        counter (classified, timeouts, ...)
    bot_ai_request_duration_seconds               summary, when the AI stats
                                                  carry latency_sum_s/latency_count
    bot_ai_cache_hits_total, bot_ai_cache_misses_total
    bot_ai_breaker_open, bot_ai_breaker_opened_total
    bot_db_pool_connections{state}                gauge (size, idle, max)
    bot_db_pool_waiting, bot_db_threads_busy      gauges
    bot_db_calls_total                            counter
    bot_db_failures_total{kind}                   counter (errors, timeouts, ...)
    bot_cache_objects{kind}                       gauge (guilds, members, ...)
    bot_cache_bytes{kind}                         gauge (estimated)
    bot_cache_events_total{event}                 counter (evictions, fetches)
    bot_web_requests_total{route,status}          counter
    bot_web_rate_limited_total                    counter
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any

import trio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

StatsSource = Callable[[], Mapping[str, Any]]
"""A service's ``stats`` method: returns plain data."""


@dataclasses.dataclass(frozen=True, slots=True)
class MetricsSources:
    """Where each group of metrics comes from; None leaves the group out.

    Attributes:
        gateway: ``ShardManager.stats``.
        rest: ``RestClient.stats``.
        cache: ``Cache.stats``.
        database: ``Database.stats`` (pool statistics).
        ai: the AI service's ``stats``.
        moderation: the moderation service's ``stats``.
        commands: the command service's ``stats``.
        web: ``WebApp.stats``.
        active_users: the number of verified users (``users.count_verified``
            bound to the database); sync or async. An async source is read
            by :meth:`MetricsExporter.render_async` only.
    """

    gateway: StatsSource | None = None
    rest: StatsSource | None = None
    cache: StatsSource | None = None
    database: StatsSource | None = None
    ai: StatsSource | None = None
    moderation: StatsSource | None = None
    commands: StatsSource | None = None
    web: StatsSource | None = None
    active_users: Callable[[], Awaitable[int] | int] | None = None


class MetricsExporter:
    """Renders the Prometheus text format from :class:`MetricsSources`."""

    def __init__(self, sources: MetricsSources, *, async_timeout: float = 2.0) -> None:
        self.sources = sources
        self.registry = CollectorRegistry(auto_describe=False)
        self._collector = _StatsCollector(sources)
        self.registry.register(self._collector)
        self._async_timeout = async_timeout

    def render(self) -> bytes:
        """The current metrics in Prometheus' text exposition format.

        With an async ``active_users`` source use :meth:`render_async`
        (the web service does): here that source reports ``source_up 0``.
        """
        return generate_latest(self.registry)

    async def render_async(self) -> bytes:
        """Read the async sources (within ``async_timeout``), then render."""
        source = self.sources.active_users
        if source is not None:
            with trio.move_on_after(self._async_timeout):
                try:
                    value = source()
                    if inspect.isawaitable(value):
                        value = await value
                    self._collector.active_users = int(value)
                except Exception as exc:  # noqa: BLE001 - shows as source_up 0
                    log.warning(
                        "metrics.source_failed",
                        extra={"source": "active_users", "error": type(exc).__name__},
                    )
        try:
            return self.render()
        finally:
            self._collector.active_users = None


class _StatsCollector(Collector):
    def __init__(self, sources: MetricsSources) -> None:
        self._sources = sources
        #: ``active_users`` as read by render_async for this scrape; None: unread.
        self.active_users: int | None = None

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "bot_metrics_source_up",
            "Whether a stats source answered this scrape.",
            labels=["source"],
        )
        builders: list[tuple[str, Callable[[], Iterator[Metric]]]] = [
            ("gateway", lambda: _gateway(_call(self._sources.gateway))),
            ("rest", lambda: _rest(_call(self._sources.rest))),
            ("cache", lambda: _cache(_call(self._sources.cache))),
            ("database", lambda: _database(_call(self._sources.database))),
            ("ai", lambda: _ai(_call(self._sources.ai))),
            ("moderation", lambda: _moderation(_call(self._sources.moderation))),
            ("commands", lambda: _commands(_call(self._sources.commands))),
            ("web", lambda: _web(_call(self._sources.web))),
            ("active_users", self._active_users),
        ]
        for name, build in builders:
            if getattr(self._sources, name) is None:
                continue
            try:
                # Materialise first, so a failing source yields nothing partial.
                families = list(build())
            except Exception as exc:  # noqa: BLE001 - one bad source, not the scrape
                log.warning(
                    "metrics.source_failed",
                    extra={"source": name, "error": type(exc).__name__},
                )
                up.add_metric([name], 0)
                continue
            up.add_metric([name], 1)
            yield from families
        yield up

    def _active_users(self) -> Iterator[Metric]:
        value = self.active_users
        if value is None:
            assert self._sources.active_users is not None
            found = self._sources.active_users()
            if inspect.isawaitable(found):
                # An async source is read by render_async, never here.
                getattr(found, "close", lambda: None)()
                raise LookupError("an async active_users source needs render_async")
            value = found
        gauge = GaugeMetricFamily("bot_active_users", "Verified users.")
        gauge.add_metric([], float(value))
        yield gauge


def _call(source: StatsSource | None) -> Mapping[str, Any]:
    assert source is not None
    return source()


def _counter(name: str, doc: str, labels: list[str]) -> CounterMetricFamily:
    # prometheus-client appends "_total" itself; give the name without it.
    return CounterMetricFamily(name.removesuffix("_total"), doc, labels=labels)


def _pairs(value: Any) -> Iterator[tuple[str, Any]]:
    """Items of a ``{key: count}`` mapping with string keys."""
    if isinstance(value, Mapping):
        for key, count in value.items():
            yield str(key), count


def _rows(value: Any, labels: int) -> Iterator[tuple[list[str], Any]]:
    """``(label values, number)`` from the shapes services use for counts.

    Accepted: nested mappings (``{route: {status: n}}``), mappings keyed by
    tuples (a ``Counter`` of ``(route, status)``) and lists of rows whose
    values are the labels in order and ``count`` last.
    """
    if isinstance(value, list):
        for row in value:
            items = list(row.values()) if isinstance(row, Mapping) else list(row)
            yield [str(v) for v in items[:labels]], items[labels]
        return
    if not isinstance(value, Mapping):
        return
    for key, sub in value.items():
        if isinstance(key, tuple) and len(key) == labels:
            yield [str(k) for k in key], sub
        elif labels == 1:
            yield [str(key)], sub
        else:
            for rest, number in _rows(sub, labels - 1):
                yield [str(key), *rest], number


def _first(stats: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if name in stats:
            return stats[name]
    return None


def _gateway(stats: Mapping[str, Any]) -> Iterator[Metric]:
    events = _counter(
        "bot_gateway_events_total",
        "Gateway dispatch events received, by type.",
        ["shard", "event_type"],
    )
    latency = GaugeMetricFamily(
        "bot_gateway_latency_seconds",
        "Heartbeat round trip of each shard.",
        labels=["shard"],
    )
    reconnects = _counter(
        "bot_gateway_reconnects_total",
        "Shard reconnects, by reason.",
        ["shard", "reason"],
    )
    connected = GaugeMetricFamily(
        "bot_gateway_shard_connected",
        "1 when the shard's session is connected.",
        labels=["shard"],
    )
    for shard_id, shard in _pairs(stats.get("shards")):
        for event_type, count in _pairs(shard.get("events")):
            events.add_metric([shard_id, event_type], count)
        for reason, count in _pairs(shard.get("reconnects")):
            reconnects.add_metric([shard_id, reason], count)
        if shard.get("latency_s") is not None:
            latency.add_metric([shard_id], shard["latency_s"])
        connected.add_metric([shard_id], 1 if shard.get("state") == "connected" else 0)
    yield from (events, latency, reconnects, connected)


def _rest(stats: Mapping[str, Any]) -> Iterator[Metric]:
    requests = _counter(
        "bot_rest_requests_total",
        "REST requests, by route template and HTTP status.",
        ["route", "status"],
    )
    for labels, count in _rows(stats.get("requests"), 2):
        requests.add_metric(labels, count)
    limited = _counter(
        "bot_rest_rate_limited_total", "REST 429 answers, by scope.", ["scope"]
    )
    for labels, count in _rows(_first(stats, "rate_limited", "ratelimited"), 1):
        limited.add_metric(labels, count)
    yield from (requests, limited)


_CACHE_COUNTERS = ("member_evictions", "member_fetches", "member_fetch_misses")


def _cache(stats: Mapping[str, Any]) -> Iterator[Metric]:
    objects = GaugeMetricFamily(
        "bot_cache_objects", "Objects held in the cache, by kind.", labels=["kind"]
    )
    for kind, number in stats.items():
        if kind in _CACHE_COUNTERS or isinstance(number, bool):
            continue
        if isinstance(number, int | float):
            objects.add_metric([kind], number)
    estimated = GaugeMetricFamily(
        "bot_cache_bytes",
        "Estimated memory held by the cache, by kind.",
        labels=["kind"],
    )
    for labels, number in _rows(stats.get("bytes"), 1):
        estimated.add_metric(labels, number)
    counters = _counter(
        "bot_cache_events_total",
        "Cache events: member evictions, member fetches and their misses.",
        ["event"],
    )
    for name in _CACHE_COUNTERS:
        if name in stats:
            counters.add_metric([name], stats[name])
    yield from (objects, estimated, counters)


_DB_FAILURES = ("errors", "timeouts", "unavailable", "server_cancels")


def _database(stats: Mapping[str, Any]) -> Iterator[Metric]:
    connections = GaugeMetricFamily(
        "bot_db_pool_connections",
        "Database pool connections: size (busy and idle), idle, max.",
        labels=["state"],
    )
    for state, key in (("size", "size"), ("idle", "idle"), ("max", "max_size")):
        if key in stats:
            connections.add_metric([state], stats[key])
    waiting = GaugeMetricFamily(
        "bot_db_pool_waiting", "Callers waiting for a pool connection."
    )
    waiting.add_metric([], stats.get("waiting", 0))
    busy = GaugeMetricFamily(
        "bot_db_threads_busy", "Worker threads running a database call."
    )
    busy.add_metric([], stats.get("threads_busy", 0))
    calls = CounterMetricFamily("bot_db_calls", "Database calls made.")
    calls.add_metric([], stats.get("calls", 0))
    failures = _counter(
        "bot_db_failures_total",
        "Database calls that failed, by kind (errors, timeouts, unavailable, "
        "server_cancels).",
        ["kind"],
    )
    for kind in _DB_FAILURES:
        if kind in stats:
            failures.add_metric([kind], stats[kind])
    yield from (connections, waiting, busy, calls, failures)


_AI_OUTCOMES = (
    "classified",
    "malformed",
    "rate_limited",
    "timeouts",
    "http_errors",
    "rejected_open",
    "truncated",
)


def _ai(stats: Mapping[str, Any]) -> Iterator[Metric]:
    requests = CounterMetricFamily("bot_ai_requests", "AI classifier requests sent.")
    requests.add_metric([], stats.get("requests", 0))
    outcomes = _counter(
        "bot_ai_request_outcomes_total",
        "AI classifier requests by outcome (classified, timeouts, ...).",
        ["outcome"],
    )
    for name in _AI_OUTCOMES:
        if name in stats:
            outcomes.add_metric([name], stats[name])
    yield from (requests, outcomes, *_ai_latency(stats), *_ai_cache(stats))
    breaker = stats.get("breaker")
    if isinstance(breaker, Mapping):
        state = GaugeMetricFamily(
            "bot_ai_breaker_open", "1 while the AI circuit breaker is open."
        )
        state.add_metric([], 1 if breaker.get("state") == "open" else 0)
        opened = CounterMetricFamily(
            "bot_ai_breaker_opened", "Times the AI circuit breaker opened."
        )
        opened.add_metric([], breaker.get("times_opened", 0))
        yield from (state, opened)


def _ai_latency(stats: Mapping[str, Any]) -> Iterator[Metric]:
    count = _first(stats, "latency_count", "duration_count")
    total = _first(stats, "latency_sum_s", "duration_sum_s")
    if count is None or total is None:
        return
    duration = SummaryMetricFamily(
        "bot_ai_request_duration_seconds", "Time spent in AI classifier requests."
    )
    duration.add_metric([], count_value=count, sum_value=total)
    yield duration


def _ai_cache(stats: Mapping[str, Any]) -> Iterator[Metric]:
    cache = stats.get("cache")
    cache = cache if isinstance(cache, Mapping) else {}
    hits = CounterMetricFamily(
        "bot_ai_cache_hits", "Classifications answered from cache."
    )
    hits.add_metric([], stats.get("cache_hits", cache.get("hits", 0)))
    misses = CounterMetricFamily(
        "bot_ai_cache_misses", "Classifications not found in cache."
    )
    misses.add_metric([], cache.get("misses", stats.get("cache_misses", 0)))
    yield from (hits, misses)


#: The moderation service's decision counters and the action each stands for.
_DECISIONS = {
    "allowed": "allow",
    "reviewed": "review",
    "deleted": "delete",
    "escalated": "escalate",
}
_QUEUES = ("intake_queued", "ai_queued")


def _moderation(stats: Mapping[str, Any]) -> Iterator[Metric]:
    decisions = _counter(
        "bot_moderation_decisions_total",
        "Automatic moderation decisions, by action.",
        ["action"],
    )
    if "decisions" in stats:
        for labels, count in _rows(stats["decisions"], 1):
            decisions.add_metric(labels, count)
    else:
        for counter, action in _DECISIONS.items():
            if counter in stats:
                decisions.add_metric([action], stats[counter])
    pipeline = _counter(
        "bot_moderation_pipeline_total",
        "Moderation pipeline counters (received, exempt, ai_failures, ...).",
        ["counter"],
    )
    for name, value in stats.items():
        countable = isinstance(value, int) and not isinstance(value, bool)
        if countable and name not in _DECISIONS and name not in _QUEUES:
            pipeline.add_metric([name], value)
    queued = GaugeMetricFamily(
        "bot_moderation_queued",
        "Messages waiting in the moderation queues.",
        labels=["queue"],
    )
    for name in _QUEUES:
        if name in stats:
            queued.add_metric([name.removesuffix("_queued")], stats[name])
    yield from (decisions, pipeline, queued)


_COMMAND_TOTALS = (
    "received",
    "refused",
    "option_errors",
    "handler_errors",
    "no_answer",
    "unknown_components",
    "cooldown_refused",
    "refused_queue_full",
)


def _commands(stats: Mapping[str, Any]) -> Iterator[Metric]:
    total = _counter(
        "bot_commands_total",
        'Commands run, by command and outcome (status "all" when the service '
        "counts runs only).",
        ["command", "status"],
    )
    if "invocations" in stats:
        for labels, count in _rows(stats["invocations"], 2):
            total.add_metric(labels, count)
    else:
        for labels, count in _rows(stats.get("by_command"), 1):
            total.add_metric([*labels, "all"], count)
    outcomes = _counter(
        "bot_command_outcomes_total",
        "Interactions by what became of them (received, refused, errors, ...).",
        ["outcome"],
    )
    for name in _COMMAND_TOTALS:
        # The service counts with a Counter: an outcome not seen yet is absent.
        outcomes.add_metric([name], stats.get(name, 0))
    yield from (total, outcomes, *_command_durations(stats))


def _command_durations(stats: Mapping[str, Any]) -> Iterator[Metric]:
    duration = SummaryMetricFamily(
        "bot_command_duration_seconds",
        "Time from interaction to response, by command.",
        labels=["command"],
    )
    for command, timing in _pairs(stats.get("durations")):
        duration.add_metric(
            [command],
            count_value=timing.get("count", 0),
            sum_value=timing.get("sum_s", 0.0),
        )
    yield duration
    responses = stats.get("responses")
    latency = (
        responses.get("initial_latency_ms") if isinstance(responses, Mapping) else None
    )
    if isinstance(latency, Mapping):
        gauge = GaugeMetricFamily(
            "bot_command_initial_response_seconds",
            "Quantiles of the time to the initial interaction response.",
            labels=["quantile"],
        )
        for label, key in (("0.5", "p50"), ("0.99", "p99")):
            if latency.get(key) is not None:
                gauge.add_metric([label], latency[key] / 1000)
        yield gauge


def _web(stats: Mapping[str, Any]) -> Iterator[Metric]:
    requests = _counter(
        "bot_web_requests_total",
        "Web requests, by route and status.",
        ["route", "status"],
    )
    for labels, count in _rows(stats.get("requests"), 2):
        requests.add_metric(labels, count)
    limited = CounterMetricFamily(
        "bot_web_rate_limited", "Web requests refused by the per-IP rate limit."
    )
    limited.add_metric([], stats.get("rate_limited", 0))
    yield from (requests, limited)
