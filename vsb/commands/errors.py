"""Errors of the command framework.

Each of these is answered to the user as a short ephemeral message (its
``str``) and never as a stack trace. Tree::

    CommandError                 any refusal the user should read
    ├── DeclarationError         a command declared wrongly (raised at start-up)
    ├── OptionError              an option missing, of the wrong type, out of range
    └── CheckFailure             the user may not run this now
        ├── MissingPermissions   the member lacks a permission (``missing``)
        ├── NotDeveloper         a developer-only command
        ├── GuildOnly            run outside a guild
        └── OnCooldown           too soon again (``retry_after`` seconds)

``DeclarationError`` is a programming error: it stops start-up with a message
naming the command, like a bad setting does.
"""

from __future__ import annotations


class CommandError(Exception):
    """A refusal shown to the user; the message must hold no secret."""


class DeclarationError(CommandError):
    """A command or option was declared in a way Discord would refuse."""


class OptionError(CommandError):
    """An option value is missing or invalid.

    Attributes:
        option: the option's name ("" when the whole invocation is bad).
    """

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"`{option}`: {message}" if option else message)
        self.option = option


class CheckFailure(CommandError):
    """The user may not run this command here or now."""


class MissingPermissions(CheckFailure):
    """The member lacks permissions.

    Attributes:
        missing: the names of the missing permissions.
    """

    def __init__(self, missing: list[str], *, who: str = "You") -> None:
        names = ", ".join(name.replace("_", " ").title() for name in missing)
        super().__init__(f"{who} need the {names} permission for this.")
        self.missing = missing


class NotDeveloper(CheckFailure):
    """Only the bot's developers may run this command."""

    def __init__(self) -> None:
        super().__init__("This command is for the bot's developers only.")


class GuildOnly(CheckFailure):
    """The command only works inside a server."""

    def __init__(self) -> None:
        super().__init__("This command only works inside a server.")


class OnCooldown(CheckFailure):
    """The user ran the command too recently.

    Attributes:
        retry_after: seconds until the command may be run again.
    """

    def __init__(self, retry_after: float) -> None:
        super().__init__(
            f"You are doing that too often. Try again in {retry_after:.1f} s."
        )
        self.retry_after = retry_after
