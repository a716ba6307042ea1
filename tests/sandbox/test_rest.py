"""REST rules: auth, errors, messages, members, bans, commands, audit reasons."""

from __future__ import annotations

import urllib.parse
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import trio

from vsb.sandbox import Sandbox, open_sandbox
from vsb.sandbox.permissions import Perm


def _reason(text: str) -> dict[str, str]:
    return {"X-Audit-Log-Reason": urllib.parse.quote(text, safe="")}


async def test_missing_or_wrong_token_is_401(sb: Sandbox) -> None:
    async with httpx.AsyncClient(base_url=sb.api_base) as client:
        response = await client.get("/gateway/bot")
        assert response.status_code == 401
        assert response.json() == {"message": "401: Unauthorized", "code": 0}
        response = await client.get(
            "/gateway/bot", headers={"Authorization": "Bot nope"}
        )
        assert response.status_code == 401


async def test_gateway_bot_and_application(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    gw = (await http.get("/gateway/bot")).json()
    assert gw["url"] == sb.gateway_url
    assert gw["shards"] == 1
    assert set(gw["session_start_limit"]) == {
        "total",
        "remaining",
        "reset_after",
        "max_concurrency",
    }
    app = (await http.get("/applications/@me")).json()
    assert app["id"] == str(sb.application_id)
    assert app["verify_key"] == sb.public_key


async def test_asgi_transport_works_without_network() -> None:
    async with open_sandbox(serve_http=False) as sb:
        transport = httpx.ASGITransport(app=sb.asgi_app)
        headers = {"Authorization": f"Bot {sb.bot_token}"}
        async with httpx.AsyncClient(
            transport=transport, base_url=sb.api_base, headers=headers
        ) as client:
            response = await client.get("/users/@me")
            assert response.json()["id"] == str(sb.bot_user.id)


async def test_unknown_route_and_unknown_objects(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    assert (await http.get("/nothing/here")).json() == {
        "message": "404: Not Found",
        "code": 0,
    }
    response = await http.get(f"/channels/{sb.default.general_id}/messages/1")
    assert (response.status_code, response.json()["code"]) == (404, 10008)
    response = await http.get("/channels/1/messages/1")
    assert response.json()["code"] == 10003
    response = await http.get(f"/guilds/{sb.default.guild_id}/members/1")
    assert response.json()["code"] == 10007


async def test_invalid_snowflake_is_50035(sb: Sandbox, http: httpx.AsyncClient) -> None:
    response = await http.get("/channels/abc")
    body = response.json()
    assert (response.status_code, body["code"]) == (400, 50035)
    assert body["errors"]["channel_id"]["_errors"][0]["code"] == "NUMBER_TYPE_COERCE"


async def test_message_create_get_delete_with_reason(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    channel = sb.default.general_id
    created = (
        await http.post(f"/channels/{channel}/messages", json={"content": "x"})
    ).json()
    fetched = (await http.get(f"/channels/{channel}/messages/{created['id']}")).json()
    assert fetched["content"] == "x"
    member_message = await sb.post_message("spam spam")
    response = await http.delete(
        f"/channels/{channel}/messages/{member_message.id}",
        headers=_reason("Spam — Лимит 🚫 50% off"),
    )
    assert response.status_code == 204
    action = sb.actions.last("message.delete")
    assert action is not None
    assert action["message_id"] == member_message.id
    assert action.reason == "Spam — Лимит 🚫 50% off"


async def test_empty_and_too_long_messages(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    url = f"/channels/{sb.default.general_id}/messages"
    response = await http.post(url, json={})
    assert response.json()["code"] == 50006
    response = await http.post(url, json={"content": "a" * 2001})
    body = response.json()
    assert body["code"] == 50035
    assert body["errors"]["content"]["_errors"][0]["code"] == "BASE_TYPE_MAX_LENGTH"


async def test_missing_access_and_permissions_on_channels(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    g = sb.default.guild_id
    hidden = sb.state.add_channel(
        g,
        "hidden",
        overwrites=[{"id": g, "type": 0, "allow": 0, "deny": int(Perm.VIEW_CHANNEL)}],
    )
    response = await http.post(f"/channels/{hidden.id}/messages", json={"content": "x"})
    assert (response.status_code, response.json()["code"]) == (403, 50001)
    muted = sb.state.add_channel(
        g,
        "readonly",
        overwrites=[{"id": g, "type": 0, "allow": 0, "deny": int(Perm.SEND_MESSAGES)}],
    )
    response = await http.post(f"/channels/{muted.id}/messages", json={"content": "x"})
    assert (response.status_code, response.json()["code"]) == (403, 50013)


async def test_bulk_delete_rules(
    autojump_clock, sb: Sandbox, http: httpx.AsyncClient
) -> None:
    url = f"/channels/{sb.default.general_id}/messages/bulk-delete"
    one = await sb.post_message("one")
    response = await http.post(url, json={"messages": [str(one.id)]})
    assert (
        response.json()["errors"]["messages"]["_errors"][0]["code"]
        == "BASE_TYPE_MIN_LENGTH"
    )
    await trio.sleep(1)
    response = await http.post(url, json={"messages": [str(i) for i in range(1, 102)]})
    assert (
        response.json()["errors"]["messages"]["_errors"][0]["code"]
        == "BASE_TYPE_MAX_LENGTH"
    )
    old = sb.state.add_message(sb.default.general_id, sb.default.member_id, "old")
    two = await sb.post_message("two")
    await trio.sleep(15 * 24 * 3600)  # "old" and "one" pass the 14-day line
    three = await sb.post_message("three")
    response = await http.post(url, json={"messages": [str(old.id), str(three.id)]})
    assert (response.status_code, response.json()["code"]) == (400, 50034)
    four = await sb.post_message("four")
    await trio.sleep(1)  # bulk delete allows 1 call per second per channel
    response = await http.post(
        url, json={"messages": [str(three.id), str(four.id)]}, headers=_reason("purge")
    )
    assert response.status_code == 204
    action = sb.actions.last("message.bulk_delete")
    assert (
        action is not None
        and action["message_ids"] == [three.id, four.id]
        and action.reason == "purge"
    )
    assert two.id in sb.state.messages


async def test_timeout_cap_hierarchy_and_admin(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    d = sb.default
    now = sb.clock.now()
    url = f"/guilds/{d.guild_id}/members/{d.member_id}"
    until = (now + timedelta(days=7)).isoformat()
    response = await http.patch(
        url, json={"communication_disabled_until": until}, headers=_reason("spam")
    )
    assert response.status_code == 200
    assert response.json()["communication_disabled_until"] is not None
    action = sb.actions.last("member.timeout", user_id=d.member_id)
    assert action is not None and action.reason == "spam"
    assert abs(action["until"] - (now + timedelta(days=7)).timestamp()) < 1

    too_far = (now + timedelta(days=29)).isoformat()
    response = await http.patch(url, json={"communication_disabled_until": too_far})
    assert response.json()["code"] == 50035
    assert "communication_disabled_until" in response.json()["errors"]

    owner = f"/guilds/{d.guild_id}/members/{d.owner_id}"
    response = await http.patch(owner, json={"communication_disabled_until": until})
    assert response.json()["code"] == 50013

    admin_user = sb.state.add_user("admin")
    sb.state.add_member(d.guild_id, admin_user.id, [d.admin_role_id])
    response = await http.patch(
        f"/guilds/{d.guild_id}/members/{admin_user.id}",
        json={"communication_disabled_until": until},
    )
    assert response.json()["code"] == 50013

    response = await http.patch(url, json={"communication_disabled_until": None})
    assert response.json()["communication_disabled_until"] is None


async def test_roles_kick_ban_unban(sb: Sandbox, http: httpx.AsyncClient) -> None:
    d = sb.default
    base = f"/guilds/{d.guild_id}"
    assert (
        await http.put(
            f"{base}/members/{d.member_id}/roles/{d.verified_role_id}",
            headers=_reason("verified"),
        )
    ).status_code == 204
    assert d.verified_role_id in sb.state.guilds[d.guild_id].members[d.member_id].roles
    assert sb.actions.last("member.role_add")["role_id"] == d.verified_role_id
    response = await http.put(f"{base}/members/{d.member_id}/roles/{d.admin_role_id}")
    assert response.json()["code"] == 50013  # above the bot's top role
    assert (
        await http.delete(f"{base}/members/{d.member_id}/roles/{d.verified_role_id}")
    ).status_code == 204

    response = await http.put(
        f"{base}/bans/{d.member_id}", json={"delete_message_seconds": 999_999}
    )
    assert response.json()["code"] == 50035
    spam = await sb.post_message("spam")
    response = await http.put(
        f"{base}/bans/{d.member_id}",
        json={"delete_message_seconds": 3600},
        headers=_reason("raid"),
    )
    assert response.status_code == 204
    ban = sb.actions.last("member.ban")
    assert (
        ban is not None
        and ban.reason == "raid"
        and ban["deleted_message_ids"] == [spam.id]
    )
    assert d.member_id not in sb.state.guilds[d.guild_id].members
    assert (await http.get(f"{base}/bans/{d.member_id}")).json()["reason"] == "raid"
    assert (await http.delete(f"{base}/bans/{d.member_id}")).status_code == 204
    assert (await http.delete(f"{base}/bans/{d.member_id}")).json()["code"] == 10026

    response = await http.delete(
        f"{base}/members/{d.moderator_id}", headers=_reason("bye")
    )
    assert response.status_code == 204
    assert sb.actions.last("member.kick").reason == "bye"
    assert (await http.delete(f"{base}/members/{d.owner_id}")).json()["code"] == 50013


async def test_equal_role_cannot_be_moderated(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    d = sb.default
    peer = sb.state.add_user("peer")
    sb.state.add_member(d.guild_id, peer.id, [d.bot_role_id])
    response = await http.delete(f"/guilds/{d.guild_id}/members/{peer.id}")
    assert response.json()["code"] == 50013


async def test_dm_channel_and_closed_dms(sb: Sandbox, http: httpx.AsyncClient) -> None:
    d = sb.default
    channel = (
        await http.post("/users/@me/channels", json={"recipient_id": str(d.member_id)})
    ).json()
    assert channel["type"] == 1
    assert sb.actions.last("dm.create")["user_id"] == d.member_id
    assert (
        await http.post(f"/channels/{channel['id']}/messages", json={"content": "hi"})
    ).status_code == 200
    sb.faults.close_dms(d.member_id)
    response = await http.post(
        f"/channels/{channel['id']}/messages", json={"content": "hi"}
    )
    assert (response.status_code, response.json()["code"]) == (403, 50007)


async def test_guild_roles_channels_and_members(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    d = sb.default
    roles = (await http.get(f"/guilds/{d.guild_id}/roles")).json()
    assert {r["name"] for r in roles} >= {
        "@everyone",
        "Admin",
        "VSB",
        "Moderator",
        "Verified",
    }
    channels = (await http.get(f"/guilds/{d.guild_id}/channels")).json()
    assert {c["name"] for c in channels} == {"general", "mod-log", "verify"}
    member = (await http.get(f"/guilds/{d.guild_id}/members/{d.moderator_id}")).json()
    assert member["roles"] == [str(d.moderator_role_id)]


async def test_command_bulk_overwrite_global_and_guild(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    app = sb.application_id
    commands = [
        {"name": "moderate", "description": "Moderate a member", "type": 1},
        {"name": "Analyze Message", "type": 3},
    ]
    first = (await http.put(f"/applications/{app}/commands", json=commands)).json()
    second = (await http.put(f"/applications/{app}/commands", json=commands)).json()
    assert [c["id"] for c in first] == [c["id"] for c in second]
    guild = (
        await http.put(
            f"/applications/{app}/guilds/{sb.default.guild_id}/commands",
            json=commands[:1],
        )
    ).json()
    assert guild[0]["guild_id"] == str(sb.default.guild_id)
    scopes = [a["scope"] for a in sb.actions.of("commands.overwrite")]
    assert scopes == ["global", "global", "guild"]
    bad = await http.put(
        f"/applications/{app}/commands", json=[{"name": "Bad Name", "description": "x"}]
    )
    assert bad.json()["code"] == 50035
    assert "0" in bad.json()["errors"]


async def test_audit_reason_too_long_is_refused(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    message = await sb.post_message("x")
    response = await http.delete(
        f"/channels/{sb.default.general_id}/messages/{message.id}",
        headers=_reason("a" * 513),
    )
    assert response.json()["code"] == 50035
    assert message.id in sb.state.messages


@pytest.mark.parametrize("when", [datetime(2026, 1, 1, tzinfo=UTC)])
async def test_epoch_drives_snowflakes_and_timestamps(when: datetime) -> None:
    async with open_sandbox(epoch=when.timestamp()) as sb:
        message = await sb.post_message("x")
        stamp = message.to_json(sb.state)["timestamp"]
        assert stamp.startswith("2026-01-01T00:00:00")
