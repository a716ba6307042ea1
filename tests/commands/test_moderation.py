"""``/moderate`` end to end: the sandbox's REST, a database, the real cache.

Each test runs the command as the sandbox's users would and checks what the
bot did on (emulated) Discord, the case row, the answer and the mod log.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

from vsb.db import audit, cases


@pytest.fixture
async def h(harness: Any) -> Any:
    await harness.start()
    return harness


def moderate(
    action: str, target: int, reason: str = "spam", **extra: Any
) -> dict[str, Any]:
    return {"action": action, "target": target, "reason": reason, **extra}


async def test_warn_records_a_case_dms_and_logs(h: Any) -> None:
    member = h.sb.default.member_id
    ix = await h.command("moderate", moderate("warn", member, "rude words"))

    case = await cases.get_case(h.db, h.sb.default.guild_id, 1)
    assert case is not None
    assert (case.action, case.target_id, case.reason) == ("warn", member, "rude words")
    assert case.moderator_id == h.sb.default.moderator_id
    text = h.text(ix)
    assert "Case #1" in text and "told by DM" in text
    assert h.answer(ix)["flags"] & 64
    dm = h.sb.actions.last("message.create", dm=True)
    assert dm is not None and "rude words" in dm["content"]
    log = h.sb.actions.last("message.create", channel_id=h.sb.default.mod_log_id)
    assert log is not None and log["embeds"][0]["title"] == "Case #1 · warn"
    entries = await audit.recent(
        h.db, guild_id=h.sb.default.guild_id, table_name="mod_cases"
    )
    assert [(e.operation, e.row_id) for e in entries] == [("insert", str(case.id))]


async def test_mute_times_out_with_reason_and_expiry(h: Any) -> None:
    member = h.sb.default.member_id
    await h.command("moderate", moderate("mute", member, "flood", duration="10m"))

    timeout = h.sb.actions.last("member.timeout", user_id=member)
    assert timeout is not None
    assert timeout.reason is not None and timeout.reason.endswith(": flood")
    assert timeout["until"] == pytest.approx(h.sb.clock.unix() + 600, abs=5)
    case = await cases.get_case(h.db, h.sb.default.guild_id, 1)
    assert case is not None and case.duration_s == 600 and case.expires_at is not None


async def test_mute_longer_than_28_days_is_capped(h: Any) -> None:
    member = h.sb.default.member_id
    ix = await h.command("moderate", moderate("mute", member, duration="30d"))
    timeout = h.sb.actions.last("member.timeout", user_id=member)
    assert timeout is not None
    assert timeout["until"] == pytest.approx(h.sb.clock.unix() + 28 * 86_400, abs=5)
    assert "at most 28 days" in h.text(ix)


async def test_unmute_lifts_the_timeout_and_ends_the_mute_case(h: Any) -> None:
    member = h.sb.default.member_id
    await h.command("moderate", moderate("mute", member, duration="1h"))
    await h.command("moderate", moderate("unmute", member, "appeal"))
    timeout = h.sb.actions.last("member.timeout", user_id=member)
    assert timeout is not None and timeout["until"] is None
    mute = await cases.get_case(h.db, h.sb.default.guild_id, 1)
    unmute = await cases.get_case(h.db, h.sb.default.guild_id, 2)
    assert mute is not None and mute.revoked
    assert unmute is not None and unmute.action == "unmute"


async def test_kick_dms_first_then_kicks(h: Any) -> None:
    member = h.sb.default.member_id
    await h.command("moderate", moderate("kick", member, "raid"))
    kick = h.sb.actions.last("member.kick", user_id=member)
    dm = h.sb.actions.last("message.create", dm=True)
    assert kick is not None and kick.reason is not None and "raid" in kick.reason
    assert dm is not None and dm.at <= kick.at
    kinds = h.sb.actions.kinds()
    assert kinds.index("dm.create") < kinds.index("member.kick")
    case = await cases.get_case(h.db, h.sb.default.guild_id, 1)
    assert case is not None and case.action == "kick"


async def test_ban_deletes_messages_and_softban_unbans(h: Any) -> None:
    member = h.sb.default.member_id
    await h.command("moderate", moderate("ban", member, delete_messages=2))
    ban = h.sb.actions.last("member.ban", user_id=member)
    assert ban is not None and ban["delete_message_seconds"] == 2 * 86_400
    case = await cases.get_case(h.db, h.sb.default.guild_id, 1)
    assert case is not None and case.expires_at is None  # permanent

    other = h.sb.state.add_user("other")
    h.sb.state.add_member(h.sb.default.guild_id, other.id)
    await h.command("moderate", moderate("softban", other.id, "spam links"))
    assert (
        h.sb.actions.last("member.ban", user_id=other.id)["delete_message_seconds"]
        == 86_400
    )
    assert h.sb.actions.last("member.unban", user_id=other.id) is not None
    softban = await cases.get_case(h.db, h.sb.default.guild_id, 2)
    assert softban is not None and softban.action == "softban"


async def test_unban_ends_the_ban_case_and_refuses_when_not_banned(h: Any) -> None:
    member = h.sb.default.member_id
    await h.command("moderate", moderate("ban", member))
    await h.command("moderate", moderate("unban", member, "second chance"))
    assert h.sb.actions.last("member.unban", user_id=member) is not None
    ban = await cases.get_case(h.db, h.sb.default.guild_id, 1)
    assert ban is not None and ban.revoked

    ix = await h.command("moderate", moderate("unban", member, "again"))
    assert "is not banned" in h.text(ix)
    assert await cases.get_case(h.db, h.sb.default.guild_id, 3) is None


async def test_dm_failure_is_noted_not_an_error(h: Any) -> None:
    member = h.sb.default.member_id
    h.sb.faults.close_dms(member)
    ix = await h.command("moderate", moderate("warn", member))
    assert "could not be sent a DM" in h.text(ix)
    assert await cases.get_case(h.db, h.sb.default.guild_id, 1) is not None


@pytest.mark.parametrize(
    ("who", "target", "expected"),
    [
        ("member", "owner", "Moderate Members permission"),
        ("moderator", "owner", "owner cannot be moderated"),
        ("moderator", "moderator", "cannot moderate yourself"),
        ("moderator", "admin", "below yours"),
        ("moderator", "peer", "below yours"),
        ("owner", "admin", "My highest role"),
    ],
)
async def test_permission_and_hierarchy_refusals(
    harness: Any, who: str, target: str, expected: str
) -> None:
    sb = harness.sb
    guild = sb.default.guild_id
    admin = sb.state.add_user("admin")
    sb.state.add_member(guild, admin.id, [sb.default.admin_role_id])
    peer = sb.state.add_user("peer")
    sb.state.add_member(guild, peer.id, [sb.default.moderator_role_id])
    await harness.start()
    ids = {
        "member": sb.default.member_id,
        "owner": sb.default.owner_id,
        "moderator": sb.default.moderator_id,
        "admin": admin.id,
        "peer": peer.id,
    }
    ix = await harness.command(
        "moderate", moderate("warn", ids[target]), user_id=ids[who]
    )
    assert expected in harness.text(ix)
    assert harness.answer(ix)["flags"] & 64
    assert await cases.get_case(harness.db, guild, 1) is None
    assert sb.actions.of("message.create", dm=True) == []


async def test_kick_needs_kick_members(harness: Any) -> None:
    sb = harness.sb
    role = sb.state.add_role(
        sb.default.guild_id, "Helper", position=2, permissions=1 << 40
    )
    helper = sb.state.add_user("helper")
    sb.state.add_member(sb.default.guild_id, helper.id, [role.id])
    await harness.start()
    ix = await harness.command(
        "moderate", moderate("kick", sb.default.member_id), user_id=helper.id
    )
    assert "Kick Members" in harness.text(ix)
    assert sb.actions.of("member.kick") == []


@pytest.mark.parametrize("duration", ["10 minutes", "ten", "5x", "0m", "-1h"])
async def test_bad_duration_is_refused(h: Any, duration: str) -> None:
    member = h.sb.default.member_id
    ix = await h.command("moderate", moderate("mute", member, duration=duration))
    text = h.text(ix)
    assert "duration" in text
    assert h.answer(ix)["flags"] & 64
    assert h.sb.actions.of("member.timeout") == []
    assert await cases.get_case(h.db, h.sb.default.guild_id, 1) is None


async def test_mute_without_duration_is_refused(h: Any) -> None:
    ix = await h.command("moderate", moderate("mute", h.sb.default.member_id))
    assert "needs a `duration`" in h.text(ix)


async def test_temp_ban_expires_across_a_restart(
    db_autojump_clock: Any, harness: Any
) -> None:
    await harness.start()
    member = harness.sb.default.member_id
    async with trio.open_nursery() as first_run:
        await harness.start_expiry(first_run)
        await harness.command("moderate", moderate("ban", member, duration="1h"))
        case = await cases.get_case(harness.db, harness.sb.default.guild_id, 1)
        assert case is not None and case.expires_at is not None
        first_run.cancel_scope.cancel()  # the process stops

    await trio.sleep(2 * 3600)  # down for two hours: nobody lifts the ban
    assert harness.sb.actions.of("member.unban") == []

    async with trio.open_nursery() as second_run:
        scheduler = await harness.start_expiry(second_run)
        with trio.fail_after(60):
            unban = await harness.sb.actions.wait_for("member.unban", user_id=member)
        assert unban.reason == "Temporary ban expired"
        await trio.sleep(1)
        second_run.cancel_scope.cancel()
    assert scheduler.expired == 1
    case = await cases.get_case(harness.db, harness.sb.default.guild_id, 1)
    assert case is not None and case.revoked


async def test_temp_ban_expires_on_schedule(
    db_autojump_clock: Any, harness: Any
) -> None:
    await harness.start()
    member = harness.sb.default.member_id
    async with trio.open_nursery() as nursery:
        await harness.start_expiry(nursery, poll_interval=6 * 3600)
        await harness.command("moderate", moderate("ban", member, duration="2h"))
        banned_at = trio.current_time()
        with trio.fail_after(3 * 3600):
            unban = await harness.sb.actions.wait_for("member.unban", user_id=member)
        assert unban.at - banned_at == pytest.approx(2 * 3600, abs=5)
        nursery.cancel_scope.cancel()


async def test_case_not_saved_is_reported_with_an_error_id(
    h: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vsb.services.database import QueryTimeout

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise QueryTimeout("the query ran past its deadline")

    monkeypatch.setattr("vsb.commands.moderation.cases.create_case", broken)
    member = h.sb.default.member_id
    ix = await h.command("moderate", moderate("kick", member))
    assert h.sb.actions.last("member.kick", user_id=member) is not None
    text = h.text(ix)
    assert "was done on Discord" in text and "error id" in text


@pytest.mark.parametrize("until", [None, -60.0])
async def test_unmute_refuses_when_not_muted(harness: Any, until: float | None) -> None:
    sb = harness.sb
    member = sb.state.guilds[sb.default.guild_id].members[sb.default.member_id]
    if until is not None:
        member.communication_disabled_until = sb.clock.unix() + until  # ended
    await harness.start()
    ix = await harness.command(
        "moderate", moderate("unmute", sb.default.member_id, "appeal")
    )
    assert harness.text(ix) == f"<@{sb.default.member_id}> is not muted."
    assert harness.answer(ix)["flags"] & 64
    assert sb.actions.of("member.timeout") == []
    assert await cases.get_case(harness.db, sb.default.guild_id, 1) is None
    entries = await audit.recent(
        harness.db, guild_id=sb.default.guild_id, table_name="mod_cases"
    )
    assert entries == []


async def test_ban_by_id_of_a_user_who_left(h: Any) -> None:
    gone = h.sb.state.add_user("gone")  # no member: the REST fetch is a 404
    ix = await h.command("moderate", moderate("ban", gone.id, "ban evasion"))

    ban = h.sb.actions.last("member.ban", user_id=gone.id)
    assert ban is not None and ban.reason is not None
    assert ban.reason.endswith(": ban evasion")
    assert h.sb.actions.of("dm.create") == []  # no server shared: no DM
    case = await cases.get_case(h.db, h.sb.default.guild_id, 1)
    assert case is not None and (case.action, case.target_id) == ("ban", gone.id)
    assert "Case #1" in h.text(ix)
    assert h.cache.stats()["member_fetch_misses"] == 1


@pytest.mark.parametrize("action", ["kick", "mute", "warn", "unmute"])
async def test_member_actions_refuse_a_user_who_left(h: Any, action: str) -> None:
    gone = h.sb.state.add_user("gone")
    extra = {"duration": "10m"} if action == "mute" else {}
    ix = await h.command("moderate", moderate(action, gone.id, **extra))

    assert h.text(ix) == f"<@{gone.id}> is not a member of this server."
    assert h.cache.stats()["member_fetch_misses"] == 1
    assert h.answer(ix)["flags"] & 64
    assert h.sb.actions.of("member.kick") == []
    assert h.sb.actions.of("member.timeout") == []
    assert await cases.get_case(h.db, h.sb.default.guild_id, 1) is None
