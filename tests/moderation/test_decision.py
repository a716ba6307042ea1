"""Thresholds, escalation and the circuit breaker (pure, no I/O)."""

from __future__ import annotations

import pytest

from vsb.moderation.breaker import BreakerState, CircuitBreaker
from vsb.moderation.classification import Classification, merge
from vsb.moderation.decision import EscalationPolicy, Verdict, decide


def scores(value: float, *, unknown: bool = False) -> Classification:
    return Classification(
        scores={"toxic": value, "spam": 0.0}, model="m", unknown=unknown
    )


@pytest.mark.parametrize(
    ("score", "verdict"),
    [
        (1.0, Verdict.DELETE),
        (0.95, Verdict.DELETE),
        (0.949, Verdict.REVIEW),
        (0.80, Verdict.REVIEW),
        (0.799, Verdict.ALLOW),
        (0.0, Verdict.ALLOW),
    ],
)
def test_default_bands(score: float, verdict: Verdict) -> None:
    assert decide(scores(score), auto_threshold=0.95, review_threshold=0.80) is verdict


def test_guild_thresholds_move_the_bands() -> None:
    assert (
        decide(scores(0.7), auto_threshold=0.9, review_threshold=0.6) is Verdict.REVIEW
    )


def test_unknown_content_is_never_clean() -> None:
    verdict = decide(
        scores(0.0, unknown=True), auto_threshold=0.95, review_threshold=0.8
    )
    assert verdict is Verdict.UNKNOWN
    # A content-free rule (a mention flood) still acts.
    flood = decide(
        scores(0.99, unknown=True), auto_threshold=0.95, review_threshold=0.8
    )
    assert flood is Verdict.DELETE


@pytest.mark.parametrize(("timeout_s", "cooldown_s"), [(3_600, 60), (60, 60), (30, 30)])
def test_the_escalation_cooldown_is_short_and_within_the_timeout(
    timeout_s: int, cooldown_s: int
) -> None:
    policy = EscalationPolicy(after=3, window_s=86_400, timeout_s=timeout_s)
    assert policy.cooldown_s() == cooldown_s


def test_merge_takes_the_higher_score_per_category() -> None:
    local = Classification(
        scores={"toxic": 0.0, "spam": 0.85}, model="local-rules", reasons=("invite",)
    )
    ai = Classification(scores={"toxic": 0.9, "spam": 0.2}, model="llm", cached=True)
    merged = merge(local, ai)
    assert merged.scores == {"toxic": 0.9, "spam": 0.85}
    assert merged.model == "local-rules+llm"
    assert merged.reasons == ("invite",) and merged.cached
    assert merged.top_category == "toxic"


@pytest.mark.parametrize(
    ("after", "count", "escalates"),
    [(3, 2, False), (3, 3, True), (3, 4, True), (0, 10, False)],
)
def test_escalation_policy(after: int, count: int, escalates: bool) -> None:
    assert EscalationPolicy(after=after).escalates(count) is escalates


def test_breaker_cycle() -> None:
    breaker = CircuitBreaker(threshold=2, cooldown_s=10.0)
    breaker.record_failure(0.0)
    assert breaker.allow(0.0)
    breaker.record_failure(1.0)
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow(5.0) and not breaker.would_allow(5.0)

    assert breaker.would_allow(11.0)
    assert breaker.allow(11.0)  # the probe
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allow(11.5)  # one probe at a time
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.allow(12.0)


def test_breaker_failed_probe_reopens_and_release_frees_the_probe() -> None:
    breaker = CircuitBreaker(threshold=1, cooldown_s=10.0)
    breaker.record_failure(0.0)
    assert breaker.allow(10.0)
    breaker.release()  # a 429: no verdict
    assert breaker.allow(10.1)
    breaker.record_failure(10.2)
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow(15.0)
    assert breaker.stats()["times_opened"] == 2


def test_a_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(threshold=2)
    breaker.record_failure(0.0)
    breaker.record_success()
    breaker.record_failure(1.0)
    assert breaker.state is BreakerState.CLOSED
