"""Sans-I/O rules of vsb.rest.ratelimit: inputs and timestamps in, actions out."""

from __future__ import annotations

from typing import Any

import pytest

from vsb.rest.ratelimit import (
    Outcome,
    RateLimiter,
    Refuse,
    RouteKey,
    Scope,
    Ticket,
    Wait,
)

POST_MSG = RouteKey("POST", "/channels/{channel_id}/messages")
DEL_MSG = RouteKey("DELETE", "/channels/{channel_id}/messages/{message_id}")
GET_MEMBER = RouteKey("GET", "/guilds/{guild_id}/members/{user_id}")
CALLBACK = RouteKey(
    "POST", "/interactions/{interaction_id}/{interaction_token}/callback"
)
CH1, CH2 = "channel:1", "channel:2"


def limits(
    remaining: int, reset_after: float, bucket: str = "b1", limit: int = 5
) -> dict[str, str]:
    return {
        "x-ratelimit-limit": str(limit),
        "x-ratelimit-remaining": str(remaining),
        "x-ratelimit-reset-after": str(reset_after),
        "x-ratelimit-bucket": bucket,
    }


def ticket(
    limiter: RateLimiter, route: RouteKey, resource: str, now: float, **kw: Any
) -> Ticket:
    action = limiter.acquire(route, resource, now, **kw)
    assert isinstance(action, Ticket), action
    return action


def limiter(**kw: Any) -> RateLimiter:
    kw.setdefault("reset_margin", 0.0)
    return RateLimiter(**kw)


def test_unknown_route_sends_one_request_until_its_answer() -> None:
    rl = limiter()
    first = ticket(rl, POST_MSG, CH1, 0.0)
    second = rl.acquire(POST_MSG, CH1, 0.0)
    assert isinstance(second, Wait) and second.until is None

    verdict = rl.on_response(first, 200, limits(4, 5.0), {}, 0.1)

    assert second.wake_key in verdict.wake_keys
    assert isinstance(rl.acquire(POST_MSG, CH1, 0.1), Ticket)


def test_remaining_and_reset_after_drive_the_wait_before_sending() -> None:
    rl = limiter()
    rl.on_response(ticket(rl, POST_MSG, CH1, 0.0), 200, limits(4, 5.0), {}, 0.0)
    for _ in range(4):
        ticket(rl, POST_MSG, CH1, 0.0)

    wait = rl.acquire(POST_MSG, CH1, 1.0)

    assert isinstance(wait, Wait) and wait.until == pytest.approx(5.0)
    assert wait.scope is Scope.USER
    assert isinstance(rl.acquire(POST_MSG, CH1, 5.0), Ticket)  # a new window


def test_remaining_is_reread_on_every_response() -> None:
    rl = limiter()
    rl.on_response(ticket(rl, POST_MSG, CH1, 0.0), 200, limits(4, 5.0), {}, 0.0)
    out = ticket(rl, POST_MSG, CH1, 0.0)
    # Someone else (another process on the token) used the bucket too.
    rl.on_response(out, 200, limits(0, 2.5), {}, 0.2)

    wait = rl.acquire(POST_MSG, CH1, 0.3)

    assert isinstance(wait, Wait) and wait.until == pytest.approx(2.7)


def test_resources_are_limited_independently() -> None:
    rl = limiter()
    rl.on_response(ticket(rl, POST_MSG, CH1, 0.0), 200, limits(0, 5.0), {}, 0.0)

    assert isinstance(rl.acquire(POST_MSG, CH1, 0.1), Wait)
    assert isinstance(rl.acquire(POST_MSG, CH2, 0.1), Ticket)


def test_routes_sharing_a_bucket_hash_share_its_state() -> None:
    rl = limiter()
    rl.on_response(
        ticket(rl, POST_MSG, CH1, 0.0), 200, limits(1, 5.0, "shared"), {}, 0.0
    )
    rl.on_response(
        ticket(rl, DEL_MSG, CH1, 0.0), 200, limits(0, 5.0, "shared"), {}, 0.0
    )

    assert rl.bucket_of(POST_MSG) == rl.bucket_of(DEL_MSG) == "shared"
    assert isinstance(rl.acquire(POST_MSG, CH1, 0.1), Wait)


def test_a_new_resource_of_a_known_bucket_starts_with_its_limit() -> None:
    rl = limiter()
    rl.on_response(ticket(rl, POST_MSG, CH1, 0.0), 200, limits(4, 5.0), {}, 0.0)

    granted = [rl.acquire(POST_MSG, CH2, 0.0) for _ in range(6)]

    assert [isinstance(g, Ticket) for g in granted] == [True] * 5 + [False]


def test_bucket_hash_change_loses_and_repeats_nothing() -> None:
    rl = limiter()
    rl.on_response(ticket(rl, POST_MSG, CH1, 0.0), 200, limits(4, 5.0, "old"), {}, 0.0)
    in_flight = [ticket(rl, POST_MSG, CH1, 0.1) for _ in range(2)]
    sent = 2

    # Discord moved the route to another bucket while two were out.
    first = rl.on_response(in_flight[0], 200, limits(3, 5.0, "new"), {}, 0.2)
    assert first.outcome is Outcome.DONE and rl.bucket_of(POST_MSG) == "new"
    second = rl.on_response(in_flight[1], 200, limits(2, 5.0, "new"), {}, 0.3)
    assert second.outcome is Outcome.DONE

    # Queued requests now count on the new bucket: exactly 2 more fit.
    while isinstance(rl.acquire(POST_MSG, CH1, 0.3), Ticket):
        sent += 1
    assert sent == 4


def test_a_hash_change_counts_requests_still_out_on_the_old_bucket() -> None:
    rl = limiter()
    rl.on_response(ticket(rl, POST_MSG, CH1, 0.0), 200, limits(4, 5.0, "old"), {}, 0.0)
    out = [ticket(rl, POST_MSG, CH1, 0.1) for _ in range(3)]

    rl.on_response(out[0], 200, limits(2, 5.0, "new"), {}, 0.2)

    # Two requests are still out; Discord said 2 left: nothing may go now.
    assert isinstance(rl.acquire(POST_MSG, CH1, 0.2), Wait)


def test_no_bucket_header_leaves_only_the_global_limit() -> None:
    rl = limiter(global_limit=50)
    rl.on_response(ticket(rl, GET_MEMBER, "guild:1", 0.0), 200, {}, {}, 0.0)

    granted = [rl.acquire(GET_MEMBER, "guild:1", 0.0) for _ in range(60)]

    assert sum(isinstance(g, Ticket) for g in granted) == 49  # 50 with the first


def test_global_limit_paces_bot_requests_with_a_margin() -> None:
    rl = limiter(global_limit=50, global_margin=0.05)
    for i in range(50):
        ticket(rl, GET_MEMBER, f"guild:{i}", 0.0)

    wait = rl.acquire(GET_MEMBER, "guild:99", 0.5)

    assert isinstance(wait, Wait) and wait.scope is Scope.GLOBAL
    assert wait.until == pytest.approx(1.05)
    assert isinstance(rl.acquire(GET_MEMBER, "guild:99", 1.05), Ticket)


def test_interaction_requests_skip_the_global_limit() -> None:
    rl = limiter(global_limit=2)
    ticket(rl, GET_MEMBER, "guild:1", 0.0)
    ticket(rl, GET_MEMBER, "guild:2", 0.0)
    assert isinstance(rl.acquire(GET_MEMBER, "guild:3", 0.0), Wait)

    assert isinstance(
        rl.acquire(CALLBACK, "webhook:9:x", 0.0, uses_global=False), Ticket
    )


def test_case_1_shared_429_waits_on_that_resource_only() -> None:
    rl = limiter()
    rl.on_response(ticket(rl, POST_MSG, CH1, 0.0), 200, limits(4, 5.0), {}, 0.0)
    out = ticket(rl, POST_MSG, CH1, 1.0)
    headers = {"x-ratelimit-scope": "shared", "retry-after": "2"}
    body = {
        "message": "The resource is being rate limited.",
        "retry_after": 1.5,
        "global": False,
    }

    verdict = rl.on_response(out, 429, headers, body, 1.0)

    assert verdict.outcome is Outcome.RETRY and verdict.scope is Scope.SHARED
    assert verdict.retry_after == 1.5
    wait = rl.acquire(POST_MSG, CH1, 1.0)
    assert isinstance(wait, Wait) and wait.until == pytest.approx(2.5)
    assert isinstance(rl.acquire(POST_MSG, CH2, 1.0), Ticket)  # other resource
    assert isinstance(rl.acquire(GET_MEMBER, "guild:1", 1.0), Ticket)  # other route
    assert rl.invalid_count(1.0) == 0  # not counted as invalid
    assert isinstance(rl.acquire(POST_MSG, CH1, 2.5), Ticket)


def test_shared_429_on_a_route_without_bucket_blocks_that_route_only() -> None:
    rl = limiter()
    out = ticket(rl, GET_MEMBER, "guild:1", 0.0)
    headers = {"x-ratelimit-scope": "shared", "retry-after": "2"}

    rl.on_response(out, 429, headers, {"retry_after": 1.5, "global": False}, 0.0)

    assert isinstance(rl.acquire(GET_MEMBER, "guild:1", 1.0), Wait)
    assert isinstance(rl.acquire(GET_MEMBER, "guild:2", 1.0), Ticket)
    assert isinstance(rl.acquire(POST_MSG, CH1, 1.0), Ticket)


def test_case_2_global_429_pauses_every_bot_request() -> None:
    rl = limiter()
    out = ticket(rl, POST_MSG, CH1, 0.0)
    headers = {
        "x-ratelimit-global": "true",
        "x-ratelimit-scope": "global",
        "retry-after": "1",
    }

    verdict = rl.on_response(
        out, 429, headers, {"retry_after": 0.8, "global": True}, 0.0
    )

    assert verdict.scope is Scope.GLOBAL and verdict.outcome is Outcome.RETRY
    for route, resource in [(POST_MSG, CH2), (GET_MEMBER, "guild:1")]:
        wait = rl.acquire(route, resource, 0.1)
        assert isinstance(wait, Wait) and wait.until == pytest.approx(0.8)
        assert wait.scope is Scope.GLOBAL
    # Interaction callbacks do not use the bot token and keep going.
    assert isinstance(
        rl.acquire(CALLBACK, "webhook:1:x", 0.1, uses_global=False), Ticket
    )
    assert isinstance(rl.acquire(GET_MEMBER, "guild:1", 0.8), Ticket)


def test_global_flag_in_body_alone_is_global() -> None:
    rl = limiter()
    out = ticket(rl, POST_MSG, CH1, 0.0)

    verdict = rl.on_response(out, 429, {}, {"retry_after": 0.3, "global": True}, 0.0)

    assert verdict.scope is Scope.GLOBAL


def test_user_429_blocks_the_bucket_and_counts_as_invalid() -> None:
    rl = limiter()
    rl.on_response(ticket(rl, POST_MSG, CH1, 0.0), 200, limits(4, 5.0), {}, 0.0)
    out = ticket(rl, POST_MSG, CH1, 0.0)
    headers = {**limits(0, 3.0), "x-ratelimit-scope": "user"}

    verdict = rl.on_response(
        out, 429, headers, {"retry_after": 3.0, "global": False}, 0.0
    )

    assert verdict.scope is Scope.USER
    wait = rl.acquire(POST_MSG, CH1, 0.0)
    assert isinstance(wait, Wait) and wait.until == pytest.approx(3.0)
    assert isinstance(rl.acquire(POST_MSG, CH2, 0.0), Ticket)
    assert rl.invalid_count(0.0) == 1


def test_non_json_429_is_an_ip_block_that_stops_everything() -> None:
    rl = limiter(ip_block_backoff=300.0, max_wait=60.0)
    out = ticket(rl, POST_MSG, CH1, 0.0)

    verdict = rl.on_response(out, 429, {"content-type": "text/html"}, None, 0.0)

    assert verdict.ip_blocked and verdict.scope is Scope.IP
    for route, kw in [(GET_MEMBER, {}), (CALLBACK, {"uses_global": False})]:
        refused = rl.acquire(route, "guild:5", 1.0, **kw)
        assert isinstance(refused, Refuse) and refused.scope is Scope.IP
        assert refused.retry_after == pytest.approx(299.0)
    assert isinstance(rl.acquire(GET_MEMBER, "guild:5", 300.0), Ticket)


def test_waits_over_the_cap_are_refused() -> None:
    rl = limiter(max_wait=10.0)
    rl.on_response(ticket(rl, POST_MSG, CH1, 0.0), 200, limits(0, 30.0), {}, 0.0)

    refused = rl.acquire(POST_MSG, CH1, 1.0)

    assert isinstance(refused, Refuse) and refused.scope is Scope.USER
    assert refused.retry_after == pytest.approx(29.0)


def test_invalid_request_guard_refuses_at_the_threshold() -> None:
    rl = limiter(invalid_limit=3)
    tripped = []
    for i, status in enumerate([401, 403, 403]):
        out = ticket(rl, GET_MEMBER, f"guild:{i}", float(i))
        tripped.append(
            rl.on_response(out, status, {}, {"code": 50013}, float(i)).guard_tripped
        )

    assert tripped == [False, False, True]
    refused = rl.acquire(GET_MEMBER, "guild:9", 10.0)
    assert isinstance(refused, Refuse) and refused.scope is Scope.INVALID
    assert refused.retry_after == pytest.approx(590.0)  # the first leaves at 600
    assert isinstance(rl.acquire(GET_MEMBER, "guild:9", 600.0), Ticket)


def test_shared_429s_and_other_errors_do_not_feed_the_guard() -> None:
    rl = limiter(invalid_limit=2)
    shared = {"x-ratelimit-scope": "shared"}
    for i in range(5):
        out = ticket(rl, GET_MEMBER, f"guild:{i}", 0.0)
        rl.on_response(out, 429, shared, {"retry_after": 0.1, "global": False}, 0.0)
        out = ticket(rl, DEL_MSG, f"channel:{i}", 0.0)
        rl.on_response(out, 404, {}, {"code": 10008}, 0.0)

    assert rl.invalid_count(0.0) == 0
    assert isinstance(rl.acquire(GET_MEMBER, "guild:1", 0.2), Ticket)


def test_answers_from_a_window_already_rolled_past_are_ignored() -> None:
    rl = limiter()
    rl.on_response(ticket(rl, POST_MSG, CH1, 0.0), 200, limits(4, 1.0), {}, 0.0)
    late = ticket(rl, POST_MSG, CH1, 0.5)  # answer delayed past the reset
    for _ in range(3):
        ticket(rl, POST_MSG, CH1, 0.5)
    fresh = [ticket(rl, POST_MSG, CH1, 1.0) for _ in range(5)]  # new window

    rl.on_response(late, 200, limits(0, 0.01), {}, 1.1)

    assert isinstance(rl.acquire(POST_MSG, CH1, 1.2), Wait)  # not rolled again
    rl.on_response(fresh[0], 200, limits(4, 0.9), {}, 1.2)
    wait = rl.acquire(POST_MSG, CH1, 1.3)
    assert isinstance(wait, Wait) and wait.until == pytest.approx(2.1)


def test_release_without_answer_frees_the_discovery_slot() -> None:
    rl = limiter()
    out = ticket(rl, POST_MSG, CH1, 0.0)
    waiting = rl.acquire(POST_MSG, CH1, 0.0)
    assert isinstance(waiting, Wait)

    keys = rl.release(out, 0.5)

    assert waiting.wake_key in keys
    assert isinstance(rl.acquire(POST_MSG, CH1, 0.5), Ticket)


def test_lost_answers_cannot_stall_a_bucket_forever() -> None:
    rl = limiter()
    rl.on_response(ticket(rl, POST_MSG, CH1, 0.0), 200, limits(4, 2.0), {}, 0.0)
    for left in (3, 2, 1, 0):
        rl.on_response(ticket(rl, POST_MSG, CH1, 0.0), 200, limits(left, 2.0), {}, 0.0)
    out = [ticket(rl, POST_MSG, CH1, 2.0) for _ in range(5)]  # a new window
    for t in out:
        rl.release(t, 2.5)

    wait = rl.acquire(POST_MSG, CH1, 2.5)

    assert isinstance(wait, Wait) and wait.until == pytest.approx(4.5)


def test_snapshot_is_plain_data() -> None:
    rl = limiter()
    rl.on_response(ticket(rl, POST_MSG, CH1, 0.0), 200, limits(4, 5.0), {}, 0.0)

    snap = rl.snapshot(0.0)

    assert snap["buckets"] == 1 and snap["routes_mapped"] == 1


def test_requests_sent_before_the_hash_was_known_stay_counted() -> None:
    rl = limiter()
    first = ticket(rl, POST_MSG, CH1, 0.0)
    early = ticket(rl, POST_MSG, CH2, 0.0)  # out before any answer
    rl.on_response(first, 200, limits(4, 5.0), {}, 0.1)

    more = 0
    while isinstance(rl.acquire(POST_MSG, CH2, 0.1), Ticket):
        more += 1
    assert more == 4  # 5 per window, one already out

    rl.on_response(early, 200, limits(4, 5.0), {}, 0.2)
    assert isinstance(rl.acquire(POST_MSG, CH2, 0.2), Wait)


@pytest.mark.parametrize("start", [0.1, 0.3, 7.7, 1234.567])
def test_a_wait_ends_exactly_at_its_until(start: float) -> None:
    # Regression: float rounding made "until" one ulp short, and a driver
    # sleeping until it spun forever without the clock moving.
    rl = limiter(global_limit=1, global_margin=0.05)
    ticket(rl, GET_MEMBER, "guild:1", start)
    wait = rl.acquire(GET_MEMBER, "guild:2", start)
    assert isinstance(wait, Wait) and wait.until is not None

    assert isinstance(rl.acquire(GET_MEMBER, "guild:2", wait.until), Ticket)
