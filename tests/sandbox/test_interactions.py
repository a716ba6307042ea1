"""Interactions: dispatch, the 3-second deadline, 40060, 15-minute tokens,
deferrals, @original and followups."""

from __future__ import annotations

import httpx
import trio

from vsb.sandbox import Sandbox


def _cb(ix) -> str:
    return f"/interactions/{ix.id}/{ix.token}/callback"


def _hook(sb: Sandbox, ix) -> str:
    return f"/webhooks/{sb.application_id}/{ix.token}"


async def test_run_command_dispatches_interaction_create(sb: Sandbox, connect) -> None:
    with trio.fail_after(5):
        client, _ = await connect()
        await client.identify(sb.bot_token)
        ix = await sb.run_command(
            "moderate",
            {"action": "mute", "target": sb.default.member_id, "reason": "spam"},
        )
        event = await client.recv_dispatch("INTERACTION_CREATE")
    d = event["d"]
    assert d["id"] == str(ix.id) and d["token"] == ix.token and d["type"] == 2
    assert d["data"]["name"] == "moderate"
    options = {o["name"]: o for o in d["data"]["options"]}
    assert options["target"]["type"] == 6
    assert str(sb.default.member_id) in d["data"]["resolved"]["users"]
    assert d["member"]["user"]["id"] == str(sb.default.moderator_id)
    assert int(d["member"]["permissions"]) & (1 << 40)


async def test_message_context_menu_resolves_the_message(sb: Sandbox) -> None:
    message = await sb.post_message("suspicious")
    ix = await sb.run_command("Analyze Message", kind=3, target_id=message.id)
    data = ix.payload["data"]
    assert data["type"] == 3 and data["target_id"] == str(message.id)
    assert data["resolved"]["messages"][str(message.id)]["content"] == "suspicious"


async def test_reply_once_then_40060(sb: Sandbox, http: httpx.AsyncClient) -> None:
    ix = await sb.run_command("ping")
    response = await http.post(
        _cb(ix), json={"type": 4, "data": {"content": "pong", "flags": 64}}
    )
    assert response.status_code == 204
    assert ix.acknowledged and ix.ephemeral
    action = sb.actions.last("interaction.callback")
    assert action is not None and (action["callback_type"], action["flags"]) == (4, 64)
    again = await http.post(_cb(ix), json={"type": 4, "data": {"content": "pong"}})
    assert (again.status_code, again.json()["code"]) == (400, 40060)


async def test_three_second_deadline(
    autojump_clock, sb: Sandbox, http: httpx.AsyncClient
) -> None:
    ok = await sb.run_command("ping")
    await trio.sleep(2.9)
    assert (await http.post(_cb(ok), json={"type": 5})).status_code == 204
    late = await sb.run_command("ping")
    await trio.sleep(3.1)
    response = await http.post(_cb(late), json={"type": 5})
    assert (response.status_code, response.json()["code"]) == (404, 10062)
    assert sb.actions.last("interaction.late_callback")["interaction_id"] == late.id


async def test_unknown_interaction_token(sb: Sandbox, http: httpx.AsyncClient) -> None:
    ix = await sb.run_command("ping")
    response = await http.post(
        f"/interactions/{ix.id}/wrong/callback", json={"type": 4}
    )
    assert response.json()["code"] == 10062


async def test_deferral_then_edit_original(
    sb: Sandbox, http: httpx.AsyncClient, connect
) -> None:
    with trio.fail_after(5):
        client, _ = await connect()
        await client.identify(sb.bot_token)
        await client.recv_dispatch("GUILD_CREATE")
        ix = await sb.run_command("slow")
        response = await http.post(_cb(ix), json={"type": 5, "data": {"flags": 64}})
        assert response.status_code == 204
        original = sb.state.messages[ix.original_message_id]
        assert original.flags == 64 | 128
        edited = await http.patch(
            _hook(sb, ix) + "/messages/@original", json={"content": "done"}
        )
        assert edited.json()["content"] == "done"
        assert edited.json()["flags"] == 64
        action = sb.actions.last("interaction.edit_original")
        assert action["completed_deferral"] is True and action["ephemeral"] is True
        await sb.post_message("after")  # ephemeral messages never reach the gateway
        created = await client.recv_dispatch("MESSAGE_CREATE")
        assert created["d"]["content"] == "after"


async def test_first_followup_after_deferral_edits_it(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    ix = await sb.run_command("slow")
    assert (await http.post(_hook(sb, ix), json={"content": "too early"})).json()[
        "code"
    ] == 10015
    await http.post(_cb(ix), json={"type": 5})
    first = (await http.post(_hook(sb, ix), json={"content": "one"})).json()
    assert first["id"] == str(ix.original_message_id)
    second = (
        await http.post(_hook(sb, ix), json={"content": "two", "flags": 64})
    ).json()
    assert second["id"] != first["id"] and second["flags"] == 64
    assert len(sb.actions.of("interaction.followup", interaction_id=ix.id)) == 2


async def test_token_expires_after_15_minutes(
    autojump_clock, sb: Sandbox, http: httpx.AsyncClient
) -> None:
    ix = await sb.run_command("ping")
    await http.post(_cb(ix), json={"type": 4, "data": {"content": "hi"}})
    await trio.sleep(14 * 60)
    assert (
        await http.patch(_hook(sb, ix) + "/messages/@original", json={"content": "a"})
    ).status_code == 200
    await trio.sleep(61)
    response = await http.patch(
        _hook(sb, ix) + "/messages/@original", json={"content": "b"}
    )
    assert (response.status_code, response.json()["code"]) == (401, 50027)


async def test_button_press_and_update_message(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    buttons = [
        {
            "type": 1,
            "components": [
                {"type": 2, "style": 1, "label": "OK", "custom_id": "review:ok:1"}
            ],
        }
    ]
    posted = (
        await http.post(
            f"/channels/{sb.default.general_id}/messages",
            json={"content": "review", "components": buttons},
        )
    ).json()
    ix = await sb.press_button(int(posted["id"]), "review:ok:1")
    assert ix.payload["data"] == {"custom_id": "review:ok:1", "component_type": 2}
    assert ix.payload["message"]["id"] == posted["id"]
    response = await http.post(
        _cb(ix), json={"type": 7, "data": {"content": "approved", "components": []}}
    )
    assert response.status_code == 204
    assert sb.state.messages[int(posted["id"])].content == "approved"


async def test_callback_type_must_fit_interaction(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    ix = await sb.run_command("ping")
    response = await http.post(_cb(ix), json={"type": 7, "data": {"content": "x"}})
    assert response.json()["code"] == 50035
    assert not ix.acknowledged


async def test_with_response_returns_callback_resource(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    ix = await sb.run_command("ping")
    response = await http.post(
        _cb(ix) + "?with_response=true", json={"type": 4, "data": {"content": "pong"}}
    )
    body = response.json()
    assert body["interaction"]["id"] == str(ix.id)
    assert body["resource"]["message"]["content"] == "pong"


async def test_autocomplete_accepts_only_type_8(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    ix = await sb.autocomplete("case", {"number": "1"}, focused="number")
    assert ix.payload["type"] == 4
    assert ix.payload["data"]["options"][0]["focused"] is True
    wrong = await http.post(_cb(ix), json={"type": 4, "data": {"content": "x"}})
    assert wrong.json()["code"] == 50035
    choices = {"choices": [{"name": "Case 1", "value": "1"}]}
    assert (
        await http.post(_cb(ix), json={"type": 8, "data": choices})
    ).status_code == 204
    assert ix.callback_type == 8
