"""Application commands: declarations, registry, sync, dispatch, features.

A feature declares :class:`Command` values and registers them (and any
component or modal handlers) on a :class:`CommandRegistry`;
:class:`CommandService` syncs the registry to Discord and runs each
INTERACTION_CREATE through it. See ``docs/commands.md``::

    registry = CommandRegistry()
    registry.add(Command(name="ping", description="Check the bot",
                         handler=ping, ephemeral=True))
    registry.component("review:", on_review_button)
    service = CommandService(registry, rest, db=db, guild_id=guild_id,
                             developer_ids=developer_ids)
    service.register(router)
    await nursery.start(service.run)
"""

from vsb.commands.context import AutocompleteContext, CommandContext
from vsb.commands.errors import (
    CheckFailure,
    CommandError,
    DeclarationError,
    GuildOnly,
    MissingPermissions,
    NotDeveloper,
    OnCooldown,
    OptionError,
)
from vsb.commands.options import ResolvedUser, format_duration, parse_duration
from vsb.commands.registry import CommandRegistry, ComponentRoute
from vsb.commands.response import Responder, ResponseState, ResponseStats
from vsb.commands.schema import (
    Choice,
    Command,
    CommandType,
    Option,
    OptionType,
    SubCommand,
    SubCommandGroup,
)
from vsb.commands.service import CommandService
from vsb.commands.sync import sync_commands

__all__ = [
    "AutocompleteContext",
    "CheckFailure",
    "Choice",
    "Command",
    "CommandContext",
    "CommandError",
    "CommandRegistry",
    "CommandService",
    "CommandType",
    "ComponentRoute",
    "DeclarationError",
    "GuildOnly",
    "MissingPermissions",
    "NotDeveloper",
    "OnCooldown",
    "Option",
    "OptionError",
    "OptionType",
    "ResolvedUser",
    "Responder",
    "ResponseState",
    "ResponseStats",
    "SubCommand",
    "SubCommandGroup",
    "format_duration",
    "parse_duration",
    "sync_commands",
]
