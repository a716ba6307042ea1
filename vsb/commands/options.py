"""Option parsing and validation, and the duration syntax (``10m``, ``2h``).

Owns :func:`parse_invocation`, which walks an interaction's options down to
the sub-command that runs, converts each value by its *declared* type and
checks it against the declaration (required, choices, ranges, lengths).
Discord's client checks most of this too, but the interaction payload is
input from the network, so it is checked again; every failure is an
:class:`OptionError` the user reads, never a stack trace.

USER, CHANNEL, ROLE and MENTIONABLE options arrive as snowflake strings and
their objects in ``data.resolved``; they become :class:`ResolvedUser`,
:class:`~vsb.models.PartialChannel` and :class:`~vsb.models.Role` values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from vsb.commands.errors import OptionError
from vsb.commands.schema import (
    Command,
    Handler,
    Option,
    OptionType,
    SubCommand,
    SubCommandGroup,
)
from vsb.models import (
    Attachment,
    InteractionData,
    InteractionOption,
    PartialChannel,
    PartialMember,
    Resolved,
    Role,
    User,
)

# ASCII digits only: ``\d`` would also read other scripts' digits ("٣m").
_DURATION_PART: Final = re.compile(r"([0-9]+)\s*([smhdw])")
_SNOWFLAKE: Final = re.compile(r"[0-9]{1,20}")
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
#: Longest duration accepted anywhere (temporary bans); timeouts cap at 28 d.
MAX_DURATION: Final = timedelta(days=365)


@dataclass(frozen=True, slots=True)
class ResolvedUser:
    """A USER option (or a user context-menu target).

    Attributes:
        id: the user id.
        user: the user object, when Discord resolved it.
        member: the guild member part, when the user is a member.
    """

    id: int
    user: User | None = None
    member: PartialMember | None = None

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"

    @property
    def display(self) -> str:
        """A name for embeds and audit reasons: username or the id."""
        if self.user is not None and self.user.username:
            return self.user.username
        return str(self.id)


@dataclass(frozen=True, slots=True)
class Invocation:
    """What to run and with which values.

    Attributes:
        path: ``"case reason"`` for a sub-command, else the command name.
        handler: the coroutine to run.
        options: option name to converted value (absent optional: missing).
        declared: the declared options in effect (for autocomplete).
    """

    path: str
    handler: Handler
    options: dict[str, Any]
    declared: tuple[Option, ...]


def parse_duration(text: str) -> timedelta:
    """Parse ``10m``, ``2h``, ``7d``, ``1w``, ``90s`` or a sum like ``1h30m``.

    Raises:
        OptionError: empty, unknown unit, leftover text, zero or over a year.
    """
    cleaned = text.strip().lower()
    total = 0
    position = 0
    for match in _DURATION_PART.finditer(cleaned):
        if cleaned[position : match.start()].strip():
            break
        total += int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if not cleaned or position == 0 or cleaned[position:].strip():
        raise OptionError(
            "duration",
            f"{text!r} is not a duration; use a number and a unit, like 10m, 2h or 7d",
        )
    if total <= 0:
        raise OptionError("duration", "a duration must be longer than zero")
    if total > MAX_DURATION.total_seconds():
        raise OptionError("duration", "a duration may be at most 365 days")
    return timedelta(seconds=total)


def format_duration(delta: timedelta) -> str:
    """``timedelta(hours=26)`` -> ``"1d 2h"`` (largest two units)."""
    seconds = int(delta.total_seconds())
    parts = []
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts[:2]) or "0s"


def parse_invocation(command: Command, data: InteractionData) -> Invocation:
    """Find the handler and convert the options of a slash command.

    Raises:
        OptionError: an unknown sub-command or option, a missing required
            option, or a value of the wrong type or out of range.
    """
    options = data.options
    path = command.name
    declared = command.options
    handler = command.handler
    if command.subcommands:
        sub, options = _descend(command, options)
        declared, handler = sub.options, sub.handler
        path = _sub_path(command, data)
    assert handler is not None, "validated at registration"
    values = convert_options(declared, options, data.resolved)
    return Invocation(path, handler, values, declared)


def _sub_path(command: Command, data: InteractionData) -> str:
    parts = [command.name]
    options = data.options
    while options and options[0].type in (
        OptionType.SUB_COMMAND,
        OptionType.SUB_COMMAND_GROUP,
    ):
        parts.append(options[0].name)
        options = options[0].options
    return " ".join(parts)


def _descend(
    command: Command, options: tuple[InteractionOption, ...]
) -> tuple[SubCommand, tuple[InteractionOption, ...]]:
    children: tuple[SubCommand | SubCommandGroup, ...] = command.subcommands
    while True:
        if len(options) != 1 or options[0].type not in (
            OptionType.SUB_COMMAND,
            OptionType.SUB_COMMAND_GROUP,
        ):
            raise OptionError("", "Choose a sub-command.")
        chosen = options[0]
        match = next((c for c in children if c.name == chosen.name), None)
        if match is None:
            raise OptionError("", f"Unknown sub-command {chosen.name!r}.")
        if isinstance(match, SubCommand):
            return match, chosen.options
        children = match.subcommands
        options = chosen.options


def convert_options(
    declared: tuple[Option, ...],
    given: tuple[InteractionOption, ...],
    resolved: Resolved | None,
) -> dict[str, Any]:
    """Convert and check option values against their declarations."""
    by_name = {option.name: option for option in declared}
    values: dict[str, Any] = {}
    for raw in given:
        option = by_name.get(raw.name)
        if option is None:
            raise OptionError(
                raw.name, "this option is not known (out-of-date command?)"
            )
        if raw.focused:
            values[raw.name] = raw.value  # autocomplete: partial input, unchecked
            continue
        values[raw.name] = _convert(option, raw, resolved)
    for option in declared:
        if option.required and option.name not in values:
            raise OptionError(option.name, "this option is required")
    return values


def _convert(option: Option, raw: InteractionOption, resolved: Resolved | None) -> Any:
    value = raw.value
    kind = option.type
    if kind == OptionType.STRING:
        return _check_string(option, value)
    if kind == OptionType.INTEGER:
        if isinstance(value, bool) or not isinstance(value, int):
            raise OptionError(option.name, "must be a whole number")
        return _check_number(option, value)
    if kind == OptionType.NUMBER:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise OptionError(option.name, "must be a number")
        return _check_number(option, float(value))
    if kind == OptionType.BOOLEAN:
        if not isinstance(value, bool):
            raise OptionError(option.name, "must be true or false")
        return value
    return _convert_object(option, _snowflake(option, value), resolved or Resolved())


def _check_string(option: Option, value: Any) -> str:
    if not isinstance(value, str):
        raise OptionError(option.name, "must be text")
    if option.min_length is not None and len(value) < option.min_length:
        raise OptionError(
            option.name, f"must be at least {option.min_length} characters"
        )
    if option.max_length is not None and len(value) > option.max_length:
        raise OptionError(option.name, f"may be at most {option.max_length} characters")
    _check_choice(option, value)
    return value


def _check_number(option: Option, value: int | float) -> int | float:
    if option.min_value is not None and value < option.min_value:
        raise OptionError(option.name, f"must be at least {option.min_value}")
    if option.max_value is not None and value > option.max_value:
        raise OptionError(option.name, f"may be at most {option.max_value}")
    _check_choice(option, value)
    return value


def _check_choice(option: Option, value: str | int | float) -> None:
    if option.choices and value not in {choice.value for choice in option.choices}:
        names = ", ".join(str(choice.value) for choice in option.choices)
        raise OptionError(option.name, f"must be one of: {names}")


def _snowflake(option: Option, value: Any) -> int:
    # Snowflakes arrive as strings of ASCII digits; int() alone would also
    # take " 42", "4_2", "+42" and other scripts' digits.
    if isinstance(value, int) and not isinstance(value, bool):
        snowflake = value
    elif isinstance(value, str) and _SNOWFLAKE.fullmatch(value):
        snowflake = int(value)
    else:
        raise OptionError(option.name, "is not a valid id")
    if snowflake <= 0:
        raise OptionError(option.name, "is not a valid id")
    return snowflake


def _convert_object(option: Option, snowflake: int, resolved: Resolved) -> Any:
    kind = option.type
    if kind == OptionType.USER or (
        kind == OptionType.MENTIONABLE and snowflake not in resolved.roles
    ):
        return ResolvedUser(
            snowflake, resolved.users.get(snowflake), resolved.members.get(snowflake)
        )
    if kind in (OptionType.ROLE, OptionType.MENTIONABLE):
        role = resolved.roles.get(snowflake)
        return role if role is not None else Role(id=snowflake)
    if kind == OptionType.CHANNEL:
        channel = resolved.channels.get(snowflake)
        return channel if channel is not None else PartialChannel(id=snowflake)
    attachment = resolved.attachments.get(snowflake)
    return attachment if attachment is not None else Attachment(id=snowflake)
