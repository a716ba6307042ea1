"""The scene's narrator: one readable line per thing a client did."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from vsb.sandbox import Sandbox
from vsb.sandbox.narrator import Narrator, summarize
from vsb.sandbox.script import build_cast


async def test_a_deletion_names_the_author_the_channel_and_why(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    lines: list[str] = []
    narrator = Narrator(sb, lines.append)
    cast = build_cast(sb.state)
    message = await sb.post_message("buy now", author_id=cast.spammer)
    narrator.label_message(message.id, "spam burst")

    deleted = await http.delete(
        f"/channels/{cast.general_id}/messages/{message.id}",
        headers={"X-Audit-Log-Reason": "automatic: spam 0.97"},
    )
    narrator.flush()

    assert deleted.status_code == 204
    # The scene's own post is narrated by the scene, not as something the bot did.
    assert lines == [
        f"  bot deleted message {message.id} by spammer in #general (spam burst)"
        " (reason: automatic: spam 0.97)"
    ]
    narrator.flush()
    assert len(lines) == 1  # each action once


async def test_timeouts_dms_and_answers_read_as_sentences(
    sb: Sandbox, http: httpx.AsyncClient
) -> None:
    lines: list[str] = []
    narrator = Narrator(sb, lines.append)
    cast = build_cast(sb.state)
    ix = await sb.run_command("moderate", {"action": "warn", "target": cast.troll})
    narrator.label_interaction(ix.id, "/moderate warn")

    dm = await http.post("/users/@me/channels", json={"recipient_id": str(cast.troll)})
    await http.post(
        f"/channels/{dm.json()['id']}/messages", json={"content": "You were warned"}
    )
    await http.post(
        f"/interactions/{ix.id}/{ix.token}/callback",
        json={"type": 5, "data": {"flags": 64}},
    )
    await http.patch(
        f"/webhooks/{sb.application_id}/{ix.token}/messages/@original",
        json={"embeds": [{"title": "Case #1 · warn"}]},
    )
    until = datetime.fromtimestamp(sb.clock.unix() + 600, UTC)
    await http.patch(
        f"/guilds/{cast.guild_id}/members/{cast.troll}",
        json={"communication_disabled_until": until.isoformat()},
        headers={"X-Audit-Log-Reason": "mod: insults"},
    )
    narrator.flush()

    # dm.create and the deferral are plumbing: no line of their own.
    assert lines[:2] == [
        "  bot sent a DM to troll: You were warned",
        "  bot answered /moderate warn: [embed: Case #1 · warn]",
    ]
    assert len(lines) == 3
    assert lines[2].startswith("  bot timed out troll until ")
    assert lines[2].endswith(" min) (reason: mod: insults)")


def test_summarize_shows_text_embed_and_buttons() -> None:
    body = {
        "content": "Open the link\nwithin 10 minutes",
        "embeds": [{"description": "details"}],
        "components": [{"type": 1, "components": [{"type": 2, "label": "Verify"}]}],
    }
    assert summarize(body) == (
        "Open the link within 10 minutes [embed: details] [buttons: Verify]"
    )
    assert summarize({}) == "(empty)"
    assert summarize({"content": "x" * 200}).endswith("…")
