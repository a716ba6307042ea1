"""The response state machine and the service's dispatch, under MockClock.

Carries the issue's two cases: a 3.4 s database call (deferral before 3 s,
answer as an edit of @original) and a reply ready at the same instant as the
automatic deferral (exactly one callback; flag 64 when the reply is
ephemeral).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
import trio.testing

from vsb.cache.permissions import Permissions
from vsb.commands import (
    Command,
    CommandContext,
    CommandError,
    CommandRegistry,
    CommandService,
    Option,
    OptionType,
    Responder,
    ResponseState,
)
from vsb.commands.response import EPHEMERAL, TOKEN_LIFETIME


def service(rest: Any, *commands: Command, **kw: Any) -> CommandService:
    registry = CommandRegistry()
    registry.add(*commands)
    return CommandService(registry, rest, application_id=900, sync=False, **kw)


def slow_command(seconds: float, *, ephemeral: bool = False) -> Command:
    async def handler(ctx: CommandContext) -> None:
        await trio.sleep(seconds)  # stands for a slow database call
        await ctx.respond("done", ephemeral=ephemeral)

    return Command(name="slow", description="Slow", handler=handler)


async def test_case_1_slow_handler_is_deferred_then_edits_original(
    autojump_clock: Any, rest: Any, make_interaction: Any
) -> None:
    svc = service(rest, slow_command(3.4))
    await svc.handle(make_interaction("slow"), trio.current_time())

    callbacks = rest.of("callback")
    assert len(callbacks) == 1
    assert callbacks[0].args["type"] == 5
    assert callbacks[0].at == pytest.approx(2.0)
    assert callbacks[0].at < 3.0
    edits = rest.of("edit_original")
    assert len(edits) == 1
    assert edits[0].at == pytest.approx(3.4)
    assert edits[0].args["content"] == "done"
    assert svc.stats()["responses"]["auto_deferred"] == 1


async def test_fast_handler_answers_without_deferral(
    autojump_clock: Any, rest: Any, make_interaction: Any
) -> None:
    svc = service(rest, slow_command(0.5))
    await svc.handle(make_interaction("slow"), trio.current_time())
    assert [c.args["type"] for c in rest.of("callback")] == [4]
    assert rest.of("edit_original") == []


@pytest.mark.parametrize("deferral_first", [True, False])
async def test_case_2_reply_and_deferral_at_once_send_one_callback(
    autojump_clock: Any, rest: Any, make_interaction: Any, deferral_first: bool
) -> None:
    responder = Responder(make_interaction(), rest, received_at=0.0)
    rest.callback_gate = trio.Event()  # hold the winner inside its network call

    async def reply() -> None:
        await responder.respond("answer", ephemeral=True)

    async with trio.open_nursery() as nursery:
        first, second = (
            (responder.auto_defer, reply)
            if deferral_first
            else (reply, responder.auto_defer)
        )
        nursery.start_soon(first)
        nursery.start_soon(second)
        await trio.testing.wait_all_tasks_blocked()
        rest.callback_gate.set()

    callbacks = rest.of("callback")
    assert len(callbacks) == 1
    if callbacks[0].args["type"] == 5:
        assert callbacks[0].args["data"] == {"flags": EPHEMERAL}
        assert responder.state is ResponseState.DEFERRED
        edits = rest.of("edit_original")
        assert len(edits) == 1 and edits[0].args["content"] == "answer"
    else:
        assert callbacks[0].args["type"] == 4
        assert callbacks[0].args["data"]["flags"] == EPHEMERAL
        assert rest.of("edit_original") == []
    assert rest.of("followup") == []


async def test_case_2_through_the_service_at_the_same_instant(
    autojump_clock: Any, make_interaction: Any, rest_factory: Any
) -> None:
    # Twenty interactions whose handlers answer exactly when the deferral
    # timer fires. Trio runs tasks woken together in a random order (either
    # may win; the parametrized test above forces each order), and every
    # interaction must get exactly one callback with the flags agreed.
    fakes = [rest_factory() for _ in range(20)]
    async with trio.open_nursery() as nursery:
        for fake in fakes:
            svc = service(fake, slow_command(2.0, ephemeral=True))
            nursery.start_soon(svc.handle, make_interaction("slow"), 0.0)
    kinds = set()
    for fake in fakes:
        callbacks = fake.of("callback")
        assert len(callbacks) == 1
        kinds.add(callbacks[0].args["type"])
        if callbacks[0].args["type"] == 5:
            assert callbacks[0].args["data"] == {"flags": EPHEMERAL}
            assert len(fake.of("edit_original")) == 1
        else:
            assert callbacks[0].args["data"]["flags"] == EPHEMERAL
            assert fake.of("edit_original") == []


async def test_ephemeral_command_defers_ephemerally(
    autojump_clock: Any, rest: Any, make_interaction: Any
) -> None:
    async def handler(ctx: CommandContext) -> None:
        await trio.sleep(5)
        await ctx.respond("private")

    command = Command(name="p", description="P", handler=handler, ephemeral=True)
    await service(rest, command).handle(make_interaction("p"), 0.0)
    assert rest.of("callback")[0].args["data"] == {"flags": EPHEMERAL}


async def test_private_answer_after_public_deferral_stays_private(
    autojump_clock: Any, rest: Any, make_interaction: Any
) -> None:
    await service(rest, slow_command(2.5, ephemeral=True)).handle(
        make_interaction("slow"), 0.0
    )
    # deferral at 2.0 was public (the handler said "ephemeral" only at 2.5)
    assert rest.of("callback")[0].args["data"] == {"flags": 0}
    assert rest.of("edit_original")[0].args["content"] == "Answered privately."
    followup = rest.of("followup")[0].args
    assert followup["content"] == "done" and followup["flags"] == EPHEMERAL


async def test_unknown_interaction_is_counted_not_retried(
    autojump_clock: Any,
    rest: Any,
    make_interaction: Any,
    not_found_10062: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rest.callback_error = not_found_10062()
    svc = service(rest, slow_command(0.1))
    with caplog.at_level(logging.WARNING):
        await svc.handle(make_interaction("slow"), 0.0)
    assert len(rest.of("callback")) == 1
    assert svc.stats()["responses"]["unknown_interaction"] == 1
    assert any(r.message == "commands.unknown_interaction" for r in caplog.records)
    # the public answer still reaches the channel, with the bot token
    fallback = rest.of("create_message")
    assert len(fallback) == 1 and "done" in fallback[0].args["content"]


async def test_token_is_not_used_after_15_minutes(
    autojump_clock: Any, rest: Any, make_interaction: Any
) -> None:
    await service(rest, slow_command(TOKEN_LIFETIME + 60)).handle(
        make_interaction("slow"), 0.0
    )
    assert [c.args["type"] for c in rest.of("callback")] == [5]
    assert rest.of("edit_original") == []
    fallback = rest.of("create_message")
    assert len(fallback) == 1
    assert fallback[0].args["channel_id"] == 200
    assert fallback[0].args["content"].endswith("done")


async def test_handler_error_gets_an_error_id(
    autojump_clock: Any,
    rest: Any,
    make_interaction: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(ctx: CommandContext) -> None:
        raise RuntimeError("database exploded")

    svc = service(rest, Command(name="boom", description="B", handler=broken))
    with caplog.at_level(logging.ERROR):
        await svc.handle(make_interaction("boom"), 0.0)
    data = rest.of("callback")[0].args["data"]
    assert data["flags"] == EPHEMERAL
    assert "database exploded" not in data["content"]
    record = next(r for r in caplog.records if r.message == "commands.handler_failed")
    assert record.error_id in data["content"]  # type: ignore[attr-defined]
    assert record.command == "boom"  # type: ignore[attr-defined]
    assert record.exc_info is not None
    assert svc.stats()["invocations"] == {"boom": {"error": 1}}


async def test_bad_option_gets_an_ephemeral_error(
    autojump_clock: Any, rest: Any, make_interaction: Any
) -> None:
    command = Command(
        name="n",
        description="N",
        handler=slow_command(0).handler,
        options=(Option("count", "c", OptionType.INTEGER, required=True, max_value=5),),
    )
    svc = service(rest, command)
    await svc.handle(
        make_interaction("n", [{"name": "count", "type": 4, "value": 9}]), 0.0
    )
    data = rest.of("callback")[0].args["data"]
    assert data["flags"] == EPHEMERAL and "count" in data["content"]
    assert svc.stats()["option_errors"] == 1
    await svc.handle(
        make_interaction("n", [{"name": "count", "type": 4, "value": 2}]), 0.0
    )
    # bot_commands_total{command,status} reads these.
    assert svc.stats()["invocations"] == {"n": {"option_error": 1, "ok": 1}}


async def test_checks_refuse_ephemerally(
    autojump_clock: Any, rest: Any, make_interaction: Any
) -> None:
    async def ok(ctx: CommandContext) -> None:
        await ctx.respond("ran")

    commands = [
        Command(name="dev", description="D", handler=ok, developer_only=True),
        Command(
            name="ban",
            description="B",
            handler=ok,
            default_member_permissions=Permissions.BAN_MEMBERS,
        ),
        Command(name="cool", description="C", handler=ok, cooldown=(1, 30.0)),
    ]
    svc = service(rest, *commands, developer_ids=frozenset({1}))
    await svc.handle(make_interaction("dev"), 0.0)
    await svc.handle(make_interaction("ban", permissions=0), 0.0)
    await svc.handle(make_interaction("cool", guild=False), 0.0)
    await svc.handle(make_interaction("cool"), 0.0)
    await trio.sleep(10)
    await svc.handle(make_interaction("cool"), trio.current_time())
    texts = [c.args["data"]["content"] for c in rest.of("callback")]
    assert "developers only" in texts[0]
    assert "Ban Members" in texts[1]
    assert "only works inside a server" in texts[2]
    assert texts[3] == "ran"
    assert "20.0 s" in texts[4]


async def test_command_error_from_handler_is_shown(
    autojump_clock: Any, rest: Any, make_interaction: Any
) -> None:
    async def refuse(ctx: CommandContext) -> None:
        raise CommandError("You cannot moderate the owner.")

    svc = service(rest, Command(name="r", description="R", handler=refuse))
    await svc.handle(make_interaction("r"), 0.0)
    assert (
        rest.of("callback")[0].args["data"]["content"]
        == "You cannot moderate the owner."
    )


async def test_silent_handler_still_answers(
    autojump_clock: Any, rest: Any, make_interaction: Any
) -> None:
    async def silent(ctx: CommandContext) -> None:
        return None

    await service(rest, Command(name="s", description="S", handler=silent)).handle(
        make_interaction("s"), 0.0
    )
    assert rest.of("callback")[0].args["data"]["content"] == "Done."


async def test_components_route_by_prefix(
    autojump_clock: Any, rest: Any, make_interaction: Any
) -> None:
    seen: list[str] = []

    async def on_review(ctx: CommandContext) -> None:
        seen.append(ctx.custom_id)
        await trio.sleep(2.5)
        await ctx.update_message("approved")

    svc = service(rest)
    svc.registry.component("review:", on_review)
    press = make_interaction(
        kind=3, data={"custom_id": "review:approve:12", "component_type": 2}
    )
    await svc.handle(press, 0.0)
    assert seen == ["review:approve:12"]
    assert [c.args["type"] for c in rest.of("callback")] == [6]
    assert rest.of("edit_original")[0].args["content"] == "approved"
    stale = make_interaction(kind=3, data={"custom_id": "gone:1", "component_type": 2})
    await svc.handle(stale, 0.0)
    assert "no longer active" in rest.of("callback")[1].args["data"]["content"]


async def test_modal_values_reach_the_handler(
    autojump_clock: Any, rest: Any, make_interaction: Any
) -> None:
    seen: dict[str, Any] = {}

    async def on_submit(ctx: CommandContext) -> None:
        seen.update(ctx.options)
        await ctx.respond("saved")

    svc = service(rest)
    svc.registry.modal("case_reason:", on_submit)
    data = {
        "custom_id": "case_reason:7",
        "components": [
            {
                "type": 1,
                "components": [{"type": 4, "custom_id": "reason", "value": "x"}],
            }
        ],
    }
    await svc.handle(make_interaction(kind=5, data=data), 0.0)
    assert seen == {"reason": "x"}


async def test_autocomplete_answers_choices(
    autojump_clock: Any, rest: Any, make_interaction: Any
) -> None:
    from vsb.commands import Choice

    async def suggest(ctx: Any) -> list[Choice]:
        return [Choice(f"{ctx.value}-1", f"{ctx.value}-1")]

    command = Command(
        name="pick",
        description="P",
        handler=slow_command(0).handler,
        options=(Option("item", "i", OptionType.STRING, autocomplete=suggest),),
    )
    svc = service(rest, command)
    ix = make_interaction(
        "pick", [{"name": "item", "type": 3, "value": "ab", "focused": True}], kind=4
    )
    await svc.handle(ix, 0.0)
    callback = rest.of("callback")[0].args
    assert callback["type"] == 8
    assert callback["data"] == {"choices": [{"name": "ab-1", "value": "ab-1"}]}


async def test_run_syncs_and_dispatches_from_the_router(
    autojump_clock: Any, rest: Any, make_interaction: Any
) -> None:
    from vsb.router import EventRouter

    router = EventRouter()
    registry = CommandRegistry()
    registry.add(slow_command(0.1))
    svc = CommandService(registry, rest, guild_id=100)
    svc.register(router)
    async with trio.open_nursery() as nursery:
        await nursery.start(svc.run)
        assert svc.application_id == 900
        assert rest.of("overwrite_guild")[0].args["guild_id"] == 100
        await router.dispatch(0, "INTERACTION_CREATE", make_interaction("slow"))
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert [c.args["type"] for c in rest.of("callback")] == [4]


async def test_http_interactions_return_the_initial_response(
    autojump_clock: Any, rest: Any, make_interaction: Any
) -> None:
    registry = CommandRegistry()
    registry.add(
        slow_command(0.1),
        Command(name="s2", description="S", handler=slow_command(3.4).handler),
    )
    svc = CommandService(registry, rest, application_id=900, sync=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(svc.run)
        fast = await svc.answer_http(make_interaction("slow"))
        assert fast["type"] == 4 and fast["data"]["content"] == "done"
        deferred = await svc.answer_http(make_interaction("s2"))
        assert deferred == {"type": 5, "data": {"flags": 0}}
        await trio.sleep(5)
        nursery.cancel_scope.cancel()
    assert rest.of("callback") == []  # the HTTP answer was the callback
    assert rest.of("edit_original")[0].args["content"] == "done"


async def test_drain_lets_running_handlers_finish_and_refuses_new_ones(
    autojump_clock: Any, rest: Any, make_interaction: Any
) -> None:
    from vsb.router import EventRouter

    router = EventRouter()
    registry = CommandRegistry()
    registry.add(slow_command(2.5))
    svc = CommandService(registry, rest, application_id=900, sync=False)
    svc.register(router)
    async with trio.open_nursery() as nursery:
        await nursery.start(svc.run)
        await router.dispatch(0, "INTERACTION_CREATE", make_interaction("slow"))
        await trio.sleep(0.5)
        with trio.fail_after(10):
            await svc.drain()
        await router.dispatch(
            0, "INTERACTION_CREATE", make_interaction("slow", interaction_id=556)
        )
        nursery.cancel_scope.cancel()
    assert [c.args["type"] for c in rest.of("callback")] == [5]
    assert rest.of("edit_original")[0].args["content"] == "done"
    assert svc.stats()["refused_shutting_down"] == 1
