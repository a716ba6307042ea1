"""Command declarations and the JSON schema Discord receives.

Owns the declarative types (:class:`Command`, :class:`SubCommand`,
:class:`SubCommandGroup`, :class:`Option`, :class:`Choice`), their checks
against Discord's limits (raised as :class:`DeclarationError` at start-up,
not as a 50035 from Discord), their JSON form for the bulk overwrite, and
the stable hash the sync compares with the database.

Limits from Discord's "Application Commands" page: names 1-32 characters
(slash command and option names lowercase, no spaces; context menu names may
hold spaces and capitals), descriptions 1-100 characters (empty for context
menus), at most 25 options, 25 choices, 25 sub-commands; required options
come before optional ones; ``choices`` and ``autocomplete`` exclude each
other; string lengths 0-6000.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import orjson

from vsb.cache.permissions import Permissions
from vsb.commands.errors import DeclarationError

if TYPE_CHECKING:
    from vsb.commands.context import AutocompleteContext, CommandContext

Handler = Callable[["CommandContext"], Awaitable[None]]
"""``async def handler(ctx: CommandContext) -> None``."""

AutocompleteHandler = Callable[["AutocompleteContext"], Awaitable[Sequence["Choice"]]]
"""``async def complete(ctx) -> [Choice, ...]`` for the focused option."""

MAX_OPTIONS: Final = 25
MAX_CHOICES: Final = 25
MAX_STRING_LENGTH: Final = 6000
_SLASH_NAME: Final = re.compile(r"^[-_\w]{1,32}$")


class CommandType(enum.IntEnum):
    """Application command types (Discord docs, Application Command Types)."""

    CHAT_INPUT = 1
    USER = 2
    MESSAGE = 3


class OptionType(enum.IntEnum):
    """Option types (Discord docs, Application Command Option Type)."""

    SUB_COMMAND = 1
    SUB_COMMAND_GROUP = 2
    STRING = 3
    INTEGER = 4
    BOOLEAN = 5
    USER = 6
    CHANNEL = 7
    ROLE = 8
    MENTIONABLE = 9
    NUMBER = 10
    ATTACHMENT = 11


#: Interaction context types: a guild, the bot's DM, a private channel.
GUILD_CONTEXT: Final = 0
ALL_CONTEXTS: Final = (0, 1, 2)


@dataclass(frozen=True, slots=True)
class Choice:
    """A fixed value the user picks by name."""

    name: str
    value: str | int | float

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value}


@dataclass(frozen=True, slots=True)
class Option:
    """A typed option of a slash command or sub-command.

    Attributes:
        min_value / max_value: range of INTEGER and NUMBER options.
        min_length / max_length: length of STRING options (0-6000).
        channel_types: CHANNEL options: the channel types offered.
        autocomplete: a coroutine suggesting choices while the user types.
    """

    name: str
    description: str
    type: OptionType
    required: bool = False
    choices: tuple[Choice, ...] = ()
    min_value: int | float | None = None
    max_value: int | float | None = None
    min_length: int | None = None
    max_length: int | None = None
    channel_types: tuple[int, ...] = ()
    autocomplete: AutocompleteHandler | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "type": int(self.type),
            "name": self.name,
            "description": self.description,
        }
        if self.required:
            data["required"] = True
        if self.choices:
            data["choices"] = [choice.to_json() for choice in self.choices]
        for key in ("min_value", "max_value", "min_length", "max_length"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        if self.channel_types:
            data["channel_types"] = list(self.channel_types)
        if self.autocomplete is not None:
            data["autocomplete"] = True
        return data

    def validate(self, where: str) -> None:
        _check_slash_name(self.name, where)
        _check_description(self.description, f"{where} option {self.name}")
        if self.type in (OptionType.SUB_COMMAND, OptionType.SUB_COMMAND_GROUP):
            raise DeclarationError(f"{where}: use SubCommand for {self.name}")
        if len(self.choices) > MAX_CHOICES:
            raise DeclarationError(f"{where} {self.name}: more than 25 choices")
        if self.choices and self.autocomplete is not None:
            raise DeclarationError(
                f"{where} {self.name}: choices and autocomplete exclude each other"
            )
        kinds = {
            OptionType.STRING: (str,),
            OptionType.INTEGER: (int,),
            OptionType.NUMBER: (int, float),
        }
        allowed = kinds.get(self.type)
        if self.choices and allowed is None:
            raise DeclarationError(
                f"{where} {self.name}: choices need a str/int/number"
            )
        for choice in self.choices:
            if allowed and not isinstance(choice.value, allowed):
                raise DeclarationError(f"{where} {self.name}: choice of wrong type")
        for length in (self.min_length, self.max_length):
            if length is not None and not 0 <= length <= MAX_STRING_LENGTH:
                raise DeclarationError(f"{where} {self.name}: length outside 0-6000")


@dataclass(frozen=True, slots=True)
class SubCommand:
    """``/command sub ...``: a sub-command with its own options and handler."""

    name: str
    description: str
    handler: Handler = field(compare=False)
    options: tuple[Option, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "type": int(OptionType.SUB_COMMAND),
            "name": self.name,
            "description": self.description,
        }
        if self.options:
            data["options"] = [option.to_json() for option in self.options]
        return data

    def validate(self, where: str) -> None:
        _check_slash_name(self.name, where)
        _check_description(self.description, f"{where} {self.name}")
        _check_options(self.options, f"{where} {self.name}")


@dataclass(frozen=True, slots=True)
class SubCommandGroup:
    """``/command group sub ...``: a group of sub-commands."""

    name: str
    description: str
    subcommands: tuple[SubCommand, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "type": int(OptionType.SUB_COMMAND_GROUP),
            "name": self.name,
            "description": self.description,
            "options": [sub.to_json() for sub in self.subcommands],
        }

    def validate(self, where: str) -> None:
        _check_slash_name(self.name, where)
        _check_description(self.description, f"{where} {self.name}")
        if not 1 <= len(self.subcommands) <= MAX_OPTIONS:
            raise DeclarationError(f"{where} {self.name}: 1-25 sub-commands")
        for sub in self.subcommands:
            sub.validate(f"{where} {self.name}")


@dataclass(frozen=True, slots=True)
class Command:
    """An application command: slash (with options or sub-commands) or menu.

    Attributes:
        handler: runs the command (slash commands without sub-commands and
            context menus); sub-commands carry their own.
        default_member_permissions: who sees the command by default
            (Discord hides it from members without these bits).
        required_permissions: checked again at run time against the
            interaction's ``member.permissions``; defaults to
            ``default_member_permissions``. Pass ``Permissions(0)`` to check
            in the handler instead (``/moderate`` checks per action).
        guild_only: offered in guilds only (``contexts: [0]``) and refused
            elsewhere.
        developer_only: only ``DEVELOPER_IDS`` may run it.
        ephemeral: answers (and the automatic deferral) are ephemeral unless
            the handler says otherwise.
        cooldown: ``(uses, seconds)`` per user, e.g. ``(1, 5.0)``.
    """

    name: str
    description: str = ""
    type: CommandType = CommandType.CHAT_INPUT
    handler: Handler | None = field(default=None, compare=False)
    options: tuple[Option, ...] = ()
    subcommands: tuple[SubCommand | SubCommandGroup, ...] = ()
    default_member_permissions: Permissions | None = None
    required_permissions: Permissions | None = None
    guild_only: bool = True
    nsfw: bool = False
    developer_only: bool = False
    ephemeral: bool = False
    cooldown: tuple[int, float] | None = None

    @property
    def key(self) -> tuple[str, int]:
        """``(name, type)``: Discord allows one name per type."""
        return (self.name, int(self.type))

    @property
    def runtime_permissions(self) -> Permissions:
        """The permissions checked when the command runs."""
        if self.required_permissions is not None:
            return self.required_permissions
        return self.default_member_permissions or Permissions(0)

    def to_json(self) -> dict[str, Any]:
        """The command as the bulk overwrite sends it."""
        data: dict[str, Any] = {"type": int(self.type), "name": self.name}
        if self.type == CommandType.CHAT_INPUT:
            data["description"] = self.description
            children = [o.to_json() for o in self.options] + [
                s.to_json() for s in self.subcommands
            ]
            if children:
                data["options"] = children
        if self.default_member_permissions is not None:
            data["default_member_permissions"] = str(
                int(self.default_member_permissions)
            )
        data["contexts"] = [GUILD_CONTEXT] if self.guild_only else list(ALL_CONTEXTS)
        if self.nsfw:
            data["nsfw"] = True
        return data

    def validate(self) -> None:
        """Check the declaration against Discord's limits.

        Raises:
            DeclarationError: naming the command and what is wrong.
        """
        where = f"command {self.name!r}"
        if self.type == CommandType.CHAT_INPUT:
            _check_slash_name(self.name, where)
            _check_description(self.description, where)
            if self.options and self.subcommands:
                raise DeclarationError(
                    f"{where}: options and sub-commands exclude each other"
                )
            if self.subcommands:
                if self.handler is not None:
                    raise DeclarationError(f"{where}: sub-commands carry the handlers")
                if len(self.subcommands) > MAX_OPTIONS:
                    raise DeclarationError(f"{where}: more than 25 sub-commands")
                for sub in self.subcommands:
                    sub.validate(where)
                return
            _check_options(self.options, where)
        else:
            if not 1 <= len(self.name) <= 32:
                raise DeclarationError(f"{where}: name must be 1-32 characters")
            if self.description or self.options or self.subcommands:
                raise DeclarationError(
                    f"{where}: context menus take no description or options"
                )
        if self.handler is None:
            raise DeclarationError(f"{where}: no handler")


def _check_slash_name(name: str, where: str) -> None:
    if not _SLASH_NAME.match(name) or name != name.lower():
        raise DeclarationError(
            f"{where}: name {name!r} must be 1-32 lowercase letters, digits, - or _"
        )


def _check_description(text: str, where: str) -> None:
    if not 1 <= len(text) <= 100:
        raise DeclarationError(f"{where}: description must be 1-100 characters")


def _check_options(options: Sequence[Option], where: str) -> None:
    if len(options) > MAX_OPTIONS:
        raise DeclarationError(f"{where}: more than 25 options")
    seen: set[str] = set()
    optional_seen = False
    for option in options:
        option.validate(where)
        if option.name in seen:
            raise DeclarationError(f"{where}: option {option.name!r} twice")
        seen.add(option.name)
        if option.required and optional_seen:
            raise DeclarationError(
                f"{where}: required option {option.name!r} after an optional one"
            )
        optional_seen = optional_seen or not option.required


def schema(commands: Sequence[Command]) -> list[dict[str, Any]]:
    """The JSON list for a bulk overwrite, in a stable order."""
    ordered = sorted(commands, key=lambda c: (int(c.type), c.name))
    return [command.to_json() for command in ordered]


def schema_hash(commands: Sequence[Command]) -> str:
    """A SHA-256 of the schema with sorted keys: equal schemas, equal hashes."""
    data = orjson.dumps(schema(commands), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(data).hexdigest()
