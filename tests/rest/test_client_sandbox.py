"""RestClient against the sandbox (in-process ASGI) under an autojumping MockClock."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
import trio
from trio.testing import MockClock

from vsb.rest import (
    DiscordHTTPError,
    DiscordServerError,
    Forbidden,
    NotFound,
    RateLimited,
    RestClient,
    ValidationError,
)
from vsb.sandbox import Sandbox

POST_MESSAGES = "POST /channels/{channel_id}/messages"


@pytest.fixture
def clock() -> MockClock:
    return MockClock(autojump_threshold=0)


def now_utc(sb: Sandbox) -> datetime:
    return datetime.fromtimestamp(sb.clock.unix(), UTC)


async def test_burst_on_one_channel_waits_instead_of_hitting_429(
    clock: MockClock, sandbox: Sandbox, rest: RestClient
) -> None:
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        for i in range(12):
            nursery.start_soon(
                lambda i=i: rest.create_message(
                    sandbox.default.general_id, content=f"m{i}"
                )
            )

    assert rest.stats()["rate_limited"] == {}
    assert len(sandbox.actions.of("message.create")) == 12
    # 5 per 5 s: windows open at 0, 5 and 10 s.
    assert 10.0 <= trio.current_time() - start < 10.5


async def test_case_3_reason_header_decodes_to_the_same_string(
    clock: MockClock, sandbox: Sandbox, rest: RestClient
) -> None:
    reason = "Spam — Лимит 🚫 50% off"
    until = now_utc(sandbox) + timedelta(hours=1)

    await rest.timeout_member(
        sandbox.default.guild_id, sandbox.default.member_id, until, reason=reason
    )

    action = sandbox.actions.last("member.timeout")
    assert action is not None and action.reason == reason
    assert action["user_id"] == sandbox.default.member_id


async def test_case_4_thirty_day_timeout_is_refused_before_any_request(
    clock: MockClock, sandbox: Sandbox, rest: RestClient
) -> None:
    until = now_utc(sandbox) + timedelta(days=30)

    with pytest.raises(ValidationError, match="28 days"):
        await rest.timeout_member(
            sandbox.default.guild_id, sandbox.default.member_id, until
        )

    assert rest.stats()["requests"] == {}
    assert sandbox.actions.of("member.timeout") == []


async def test_case_1_shared_429_is_waited_out_on_that_resource(
    clock: MockClock, sandbox: Sandbox, rest: RestClient
) -> None:
    sandbox.faults.fail_rest(
        1, status=429, scope="shared", retry_after=1.5, route=POST_MESSAGES
    )
    start = trio.current_time()

    await rest.create_message(sandbox.default.general_id, content="after the wait")

    assert trio.current_time() - start == pytest.approx(1.5, abs=0.05)
    stats = rest.stats()
    assert stats["rate_limited"] == {"shared": 1}
    assert stats["invalid_requests_10min"] == 0


async def test_case_2_global_429_pauses_bot_requests(
    clock: MockClock, sandbox: Sandbox, rest: RestClient
) -> None:
    sandbox.faults.fail_rest(1, status=429, scope="global", retry_after=0.8)
    start = trio.current_time()
    done: dict[str, float] = {}

    async def call(name: str) -> None:
        if name == "roles":
            await rest.get_guild_roles(sandbox.default.guild_id)
        else:
            await rest.get_guild_channels(sandbox.default.guild_id)
        done[name] = trio.current_time() - start

    async with trio.open_nursery() as nursery:
        nursery.start_soon(call, "roles")
        await trio.sleep(0.1)  # the 429 is in before the second call
        nursery.start_soon(call, "channels")

    assert rest.stats()["rate_limited"] == {"global": 1}
    assert done["channels"] >= 0.8 and done["roles"] >= 0.8


async def test_wait_over_the_cap_fails_fast(
    clock: MockClock, sandbox: Sandbox, rest: RestClient
) -> None:
    sandbox.faults.fail_rest(
        1, status=429, scope="user", retry_after=120.0, route=POST_MESSAGES
    )
    start = trio.current_time()

    with pytest.raises(RateLimited) as caught:
        await rest.create_message(sandbox.default.general_id, content="x")

    assert caught.value.scope == "user" and caught.value.retry_after > 60
    assert trio.current_time() - start < 1.0


async def test_5xx_is_retried_for_idempotent_calls_only(
    clock: MockClock, sandbox: Sandbox, rest: RestClient
) -> None:
    sandbox.faults.fail_rest(2, status=502)
    roles = await rest.get_guild_roles(sandbox.default.guild_id)
    assert isinstance(roles, list) and rest.stats()["retries"] == 2

    sandbox.faults.fail_rest(1, status=502)
    with pytest.raises(DiscordServerError) as caught:
        await rest.create_message(sandbox.default.general_id, content="once")
    assert caught.value.status == 502
    assert rest.stats()["requests"][POST_MESSAGES] == {502: 1}


async def test_404_and_403_are_typed_and_not_retried(
    clock: MockClock, sandbox: Sandbox, rest: RestClient
) -> None:
    with pytest.raises(NotFound) as missing:
        await rest.get_message(sandbox.default.general_id, 12345)
    assert missing.value.code == 10008

    with pytest.raises(Forbidden) as refused:
        await rest.kick_member(
            sandbox.default.guild_id, sandbox.default.owner_id, reason="no"
        )
    assert refused.value.code == 50013
    requests = rest.stats()["requests"]
    assert requests["DELETE /guilds/{guild_id}/members/{user_id}"] == {403: 1}
    assert rest.stats()["invalid_requests_10min"] == 1


async def test_bulk_delete_splits_and_leaves_old_messages(
    clock: MockClock, sandbox: Sandbox, rest: RestClient
) -> None:
    channel = sandbox.default.general_id
    author = sandbox.default.member_id
    old = sandbox.state.add_message(channel, author, "old")
    old_id = sandbox.clock.snowflake(sandbox.clock.unix() - 15 * 86_400)
    sandbox.state.messages[old_id] = sandbox.state.messages.pop(old.id)
    young = [sandbox.state.add_message(channel, author, f"m{i}").id for i in range(201)]

    result = await rest.bulk_delete_messages(channel, [old_id, *young], reason="raid")

    assert result.too_old == [old_id] and result.deleted == young
    bulk = sandbox.actions.of("message.bulk_delete")
    assert [len(a["message_ids"]) for a in bulk] == [100, 100]
    single = sandbox.actions.of("message.delete")
    assert [a["message_id"] for a in single] == [young[-1]]
    assert all(a.reason == "raid" for a in [*bulk, *single])


async def test_bulk_delete_needs_ids(clock: MockClock, rest: RestClient) -> None:
    with pytest.raises(ValidationError):
        await rest.bulk_delete_messages(1, [])


async def test_interaction_response_and_followups_use_no_bot_token(
    clock: MockClock, sandbox: Sandbox, rest: RestClient
) -> None:
    ix = await sandbox.run_command("moderate", {"action": "mute"})

    await rest.create_interaction_response(ix.id, ix.token, 5)
    await rest.edit_original_response(ix.application_id, ix.token, content="done")
    followup = await rest.create_followup(ix.application_id, ix.token, content="more")

    assert ix.callback_type == 5
    assert followup["content"] == "more"
    assert sandbox.actions.of("interaction.edit_original")
    with pytest.raises(ValidationError):
        await rest.create_interaction_response(ix.id, ix.token, 3)


async def test_logs_name_templates_not_paths_or_tokens(
    clock: MockClock,
    sandbox: Sandbox,
    rest: RestClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="vsb.rest")
    ix = await sandbox.run_command("moderate", {"action": "mute"})
    await rest.create_interaction_response(ix.id, ix.token, 4, {"content": "hi"})
    sandbox.faults.fail_rest(
        1, status=429, scope="user", retry_after=0.5, route=POST_MESSAGES
    )
    await rest.create_message(sandbox.default.general_id, content="x")

    records = [r for r in caplog.records if r.name == "vsb.rest.client"]
    infos = [r for r in records if r.getMessage() == "rest.request"]
    assert [r.route for r in infos] == [  # type: ignore[attr-defined]
        "POST /interactions/{interaction_id}/{interaction_token}/callback",
        POST_MESSAGES,
        POST_MESSAGES,
    ]
    assert all(hasattr(r, "elapsed_ms") and hasattr(r, "status") for r in infos)
    warning = next(r for r in records if r.getMessage() == "rest.rate_limited")
    assert warning.levelno == logging.WARNING
    assert warning.scope == "user" and warning.retry_after == 0.5  # type: ignore[attr-defined]
    text = " ".join(str(vars(r)) for r in records)
    assert ix.token not in text and sandbox.bot_token not in text


async def test_member_and_guild_endpoints(
    clock: MockClock, sandbox: Sandbox, rest: RestClient
) -> None:
    d = sandbox.default
    member = await rest.get_member(d.guild_id, d.member_id)
    assert int(member["user"]["id"]) == d.member_id

    await rest.add_member_role(
        d.guild_id, d.member_id, d.verified_role_id, reason="verified"
    )
    await rest.remove_member_role(d.guild_id, d.member_id, d.verified_role_id)
    await rest.modify_member(d.guild_id, d.member_id, nick="calm")
    await rest.ban_member(
        d.guild_id, d.member_id, delete_message_seconds=3600, reason="raid"
    )
    await rest.unban_member(d.guild_id, d.member_id)
    dm = await rest.create_dm(d.moderator_id)

    kinds = sandbox.actions.kinds()
    for kind in (
        "member.role_add",
        "member.role_remove",
        "member.nick",
        "member.ban",
        "member.unban",
    ):
        assert kind in kinds
    assert sandbox.actions.last("member.ban")["delete_message_seconds"] == 3600  # type: ignore[index]
    assert "id" in dm
    with pytest.raises(ValidationError):
        await rest.ban_member(d.guild_id, d.member_id, delete_message_seconds=700_000)


async def test_gateway_application_and_commands(
    clock: MockClock, sandbox: Sandbox, rest: RestClient
) -> None:
    gateway = await rest.get_gateway_bot()
    app = await rest.get_current_application()
    cmds = [{"name": "moderate", "description": "Moderate a member", "type": 1}]
    synced = await rest.bulk_overwrite_guild_commands(
        app["id"], sandbox.default.guild_id, cmds
    )
    synced_global = await rest.bulk_overwrite_global_commands(app["id"], cmds)

    assert "url" in gateway and "session_start_limit" in gateway
    assert int(app["id"]) == sandbox.application_id
    assert (
        [c["name"] for c in synced]
        == [c["name"] for c in synced_global]
        == ["moderate"]
    )


async def test_invalid_form_body_keeps_the_field_errors(
    clock: MockClock, sandbox: Sandbox, rest: RestClient
) -> None:
    bad = [{"name": "", "description": "empty name", "type": 1}]

    with pytest.raises(DiscordHTTPError) as caught:
        await rest.bulk_overwrite_global_commands(sandbox.application_id, bad)

    error = caught.value
    assert (error.status, error.code) == (400, 50035)
    assert error.errors["0"]["name"]["_errors"][0]["code"] == "BASE_TYPE_BAD_LENGTH"
    assert error.route == "PUT /applications/{application_id}/commands"
