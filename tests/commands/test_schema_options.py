"""Declarations -> JSON and hash; option parsing; durations; checks."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import trio

from vsb.cache.permissions import Permissions
from vsb.commands import (
    Choice,
    Command,
    CommandRegistry,
    CommandType,
    DeclarationError,
    Option,
    OptionError,
    OptionType,
    ResolvedUser,
    SubCommand,
    parse_duration,
)
from vsb.commands.checks import Cooldowns, require_member_permissions
from vsb.commands.errors import MissingPermissions, OnCooldown
from vsb.commands.options import parse_invocation
from vsb.commands.schema import schema_hash


async def nothing(ctx: Any) -> None:
    return None


def moderate() -> Command:
    return Command(
        name="moderate",
        description="Moderate a member",
        handler=nothing,
        options=(
            Option(
                "action",
                "What to do",
                OptionType.STRING,
                required=True,
                choices=(Choice("Warn", "warn"), Choice("Mute", "mute")),
            ),
            Option("target", "Who", OptionType.USER, required=True),
            Option("days", "Days", OptionType.INTEGER, min_value=0, max_value=7),
            Option("reason", "Why", OptionType.STRING, max_length=10),
        ),
        default_member_permissions=Permissions.MODERATE_MEMBERS,
    )


def test_schema_json_has_discord_fields() -> None:
    data = moderate().to_json()
    assert data["type"] == 1
    assert data["default_member_permissions"] == str(int(Permissions.MODERATE_MEMBERS))
    assert data["contexts"] == [0]
    action = data["options"][0]
    assert action == {
        "type": 3,
        "name": "action",
        "description": "What to do",
        "required": True,
        "choices": [
            {"name": "Warn", "value": "warn"},
            {"name": "Mute", "value": "mute"},
        ],
    }
    assert data["options"][2]["min_value"] == 0
    assert data["options"][2]["max_value"] == 7


def test_context_menu_json_has_no_description() -> None:
    menu = Command(name="Analyze Message", type=CommandType.MESSAGE, handler=nothing)
    menu.validate()
    assert menu.to_json() == {"type": 3, "name": "Analyze Message", "contexts": [0]}


def test_schema_hash_is_stable_and_order_independent() -> None:
    a = Command(name="a", description="A", handler=nothing)
    b = Command(name="b", description="B", handler=nothing)
    assert schema_hash([a, b]) == schema_hash([b, a])
    changed = Command(name="b", description="B changed", handler=nothing)
    assert schema_hash([a, b]) != schema_hash([a, changed])


@pytest.mark.parametrize(
    "command",
    [
        Command(name="Bad Name", description="x", handler=nothing),
        Command(name="ok", description="", handler=nothing),
        Command(name="ok", description="x"),
        Command(
            name="ok",
            description="x",
            handler=nothing,
            options=(
                Option("a", "a", OptionType.STRING),
                Option("b", "b", OptionType.STRING, required=True),
            ),
        ),
        Command(
            name="ok",
            description="x",
            handler=nothing,
            options=(
                Option(
                    "a",
                    "a",
                    OptionType.STRING,
                    choices=(Choice("x", "x"),),
                    autocomplete=nothing,  # type: ignore[arg-type]
                ),
            ),
        ),
        Command(
            name="ok",
            description="x",
            handler=nothing,
            options=(
                Option("n", "n", OptionType.INTEGER, choices=(Choice("x", "x"),)),
            ),
        ),
        Command(name="menu", type=CommandType.USER, description="no", handler=nothing),
    ],
)
def test_bad_declarations_are_refused(command: Command) -> None:
    with pytest.raises(DeclarationError):
        CommandRegistry().add(command)


def test_registry_refuses_duplicates_and_finds_longest_prefix() -> None:
    registry = CommandRegistry()
    registry.add(moderate())
    with pytest.raises(DeclarationError):
        registry.add(moderate())
    registry.component("review:", nothing)
    registry.component("review:approve:", nothing)
    route = registry.find_component("review:approve:12")
    assert route is not None and route.prefix == "review:approve:"
    assert registry.find_component("other") is None


def _data(make_interaction: Any, options: list[dict[str, Any]], **kw: Any) -> Any:
    return make_interaction("moderate", options, **kw).data


def test_options_are_converted(make_interaction: Any) -> None:
    data = _data(
        make_interaction,
        [
            {"name": "action", "type": 3, "value": "mute"},
            {"name": "target", "type": 6, "value": "42"},
            {"name": "days", "type": 4, "value": 3},
        ],
    )
    invocation = parse_invocation(moderate(), data)
    assert invocation.options["action"] == "mute"
    assert invocation.options["target"] == ResolvedUser(42)
    assert invocation.options["days"] == 3
    assert "reason" not in invocation.options


@pytest.mark.parametrize(
    ("options", "bad"),
    [
        ([{"name": "target", "type": 6, "value": "42"}], "action"),
        (
            [
                {"name": "action", "type": 3, "value": "explode"},
                {"name": "target", "type": 6, "value": "42"},
            ],
            "action",
        ),
        (
            [
                {"name": "action", "type": 3, "value": "warn"},
                {"name": "target", "type": 6, "value": "42"},
                {"name": "days", "type": 4, "value": 8},
            ],
            "days",
        ),
        (
            [
                {"name": "action", "type": 3, "value": "warn"},
                {"name": "target", "type": 6, "value": "42"},
                {"name": "days", "type": 4, "value": "3"},
            ],
            "days",
        ),
        (
            [
                {"name": "action", "type": 3, "value": "warn"},
                {"name": "target", "type": 6, "value": "not-an-id"},
            ],
            "target",
        ),
        (
            [
                {"name": "action", "type": 3, "value": "warn"},
                {"name": "target", "type": 6, "value": "42"},
                {"name": "reason", "type": 3, "value": "far too long a reason"},
            ],
            "reason",
        ),
        (
            [
                {"name": "action", "type": 3, "value": "warn"},
                {"name": "target", "type": 6, "value": "42"},
                {"name": "surprise", "type": 3, "value": "x"},
            ],
            "surprise",
        ),
    ],
)
def test_bad_options_name_the_option(
    make_interaction: Any, options: list[dict[str, Any]], bad: str
) -> None:
    with pytest.raises(OptionError) as caught:
        parse_invocation(moderate(), _data(make_interaction, options))
    assert caught.value.option == bad
    assert bad in str(caught.value)


@pytest.mark.parametrize(
    "value",
    ["\u0664\u0662", "\uff14\uff12", " 42", "4_2", "+42", "42\n", "\u00b2"],
)
def test_snowflakes_take_ascii_digits_only(make_interaction: Any, value: str) -> None:
    options = [
        {"name": "action", "type": 3, "value": "warn"},
        {"name": "target", "type": 6, "value": value},
    ]
    with pytest.raises(OptionError) as caught:
        parse_invocation(moderate(), _data(make_interaction, options))
    assert caught.value.option == "target"


def test_sub_commands_route_to_their_handler(make_interaction: Any) -> None:
    async def show(ctx: Any) -> None:
        return None

    case = Command(
        name="case",
        description="Cases",
        subcommands=(
            SubCommand(
                "view",
                "Show",
                show,
                (Option("number", "n", OptionType.INTEGER, required=True),),
            ),
            SubCommand("reason", "Edit", nothing),
        ),
    )
    case.validate()
    options = [
        {
            "name": "view",
            "type": 1,
            "options": [{"name": "number", "type": 4, "value": 7}],
        }
    ]
    invocation = parse_invocation(case, make_interaction("case", options).data)
    assert invocation.path == "case view"
    assert invocation.handler is show
    assert invocation.options == {"number": 7}
    with pytest.raises(OptionError):
        parse_invocation(case, make_interaction("case", []).data)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10m", timedelta(minutes=10)),
        ("2h", timedelta(hours=2)),
        ("7d", timedelta(days=7)),
        ("1w", timedelta(weeks=1)),
        ("90s", timedelta(seconds=90)),
        ("1h30m", timedelta(minutes=90)),
        (" 1d 12h ", timedelta(hours=36)),
        ("2H", timedelta(hours=2)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "10",
        "m",
        "ten minutes",
        "10x",
        "-5m",
        "0m",
        "10m extra",
        "400d",
        "5m!",
        "\u0663m",  # ARABIC-INDIC DIGIT THREE
        "\uff13m",  # FULLWIDTH DIGIT THREE
        "1\u0660m",  # ASCII 1, ARABIC-INDIC DIGIT ZERO
        "\u00b2m",  # SUPERSCRIPT TWO
    ],
)
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(OptionError) as caught:
        parse_duration(text)
    assert caught.value.option == "duration"


def test_member_permissions_come_from_the_interaction(make_interaction: Any) -> None:
    ix = make_interaction(permissions=int(Permissions.KICK_MEMBERS))
    require_member_permissions(ix, Permissions.KICK_MEMBERS)
    with pytest.raises(MissingPermissions) as caught:
        require_member_permissions(ix, Permissions.BAN_MEMBERS)
    assert caught.value.missing == ["BAN_MEMBERS"]
    admin = make_interaction(permissions=int(Permissions.ADMINISTRATOR))
    require_member_permissions(admin, Permissions.BAN_MEMBERS)


async def test_cooldown_reports_remaining_time(autojump_clock: Any) -> None:
    cooldowns = Cooldowns()
    cooldowns.hit("ping", 1, 2, 10.0)
    await trio.sleep(3)
    cooldowns.hit("ping", 1, 2, 10.0)
    with pytest.raises(OnCooldown) as caught:
        cooldowns.hit("ping", 1, 2, 10.0)
    assert caught.value.retry_after == pytest.approx(7.0)
    assert "7.0 s" in str(caught.value)
    cooldowns.hit("ping", 2, 2, 10.0)  # another user is not affected
    await trio.sleep(7)
    cooldowns.hit("ping", 1, 2, 10.0)
