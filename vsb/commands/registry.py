"""The registry: every declared command and every component handler.

Features register here before the service starts; the service syncs the
registry's schema to Discord and dispatches interactions through it.

Component handlers (buttons, selects) and modal handlers are found by the
longest registered prefix of the ``custom_id``: a feature registering
``"review:"`` gets ``review:approve:12`` and ``review:dismiss:12``. Keep the
rest of the ``custom_id`` for your own state (Discord allows 100 characters).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from vsb.commands.errors import DeclarationError
from vsb.commands.schema import Command, CommandType, Handler, schema, schema_hash

__all__ = ["CommandRegistry", "ComponentRoute"]


@dataclass(frozen=True, slots=True)
class ComponentRoute:
    """A handler for components or modals whose ``custom_id`` starts with ``prefix``.

    Attributes:
        updates_message: components only: the automatic deferral is a
            "deferred update" of the message (type 6) rather than a new
            "thinking" message (type 5).
        ephemeral: answers are ephemeral unless the handler says otherwise.
    """

    prefix: str
    handler: Handler
    updates_message: bool = True
    ephemeral: bool = True


class CommandRegistry:
    """Commands by ``(name, type)`` and component/modal routes by prefix."""

    def __init__(self) -> None:
        self._commands: dict[tuple[str, int], Command] = {}
        self._components: dict[str, ComponentRoute] = {}
        self._modals: dict[str, ComponentRoute] = {}

    def add(self, *commands: Command) -> None:
        """Register commands (validated now).

        Raises:
            DeclarationError: a bad declaration or a name taken for that type.
        """
        for command in commands:
            command.validate()
            if command.key in self._commands:
                raise DeclarationError(f"command {command.name!r} registered twice")
            self._commands[command.key] = command

    def add_all(self, commands: Iterable[Command]) -> None:
        """Register every command of an iterable (a feature's ``commands()``)."""
        self.add(*commands)

    def component(
        self,
        prefix: str,
        handler: Handler,
        *,
        updates_message: bool = True,
        ephemeral: bool = True,
    ) -> None:
        """Route buttons and selects whose ``custom_id`` starts with ``prefix``."""
        _add_route(
            self._components,
            ComponentRoute(prefix, handler, updates_message, ephemeral),
        )

    def modal(self, prefix: str, handler: Handler, *, ephemeral: bool = True) -> None:
        """Route modal submissions whose ``custom_id`` starts with ``prefix``."""
        _add_route(self._modals, ComponentRoute(prefix, handler, False, ephemeral))

    def get(self, name: str, type_: int = CommandType.CHAT_INPUT) -> Command | None:
        """The command ``name`` of ``type_``, or None."""
        return self._commands.get((name, int(type_)))

    def find_component(self, custom_id: str) -> ComponentRoute | None:
        """The component route with the longest prefix of ``custom_id``."""
        return _longest(self._components, custom_id)

    def find_modal(self, custom_id: str) -> ComponentRoute | None:
        """The modal route with the longest prefix of ``custom_id``."""
        return _longest(self._modals, custom_id)

    @property
    def commands(self) -> list[Command]:
        """Every registered command."""
        return list(self._commands.values())

    def schema(self) -> list[dict[str, object]]:
        """The JSON of every command for a bulk overwrite."""
        return schema(self.commands)

    def schema_hash(self) -> str:
        """A stable hash of :meth:`schema`."""
        return schema_hash(self.commands)

    def __len__(self) -> int:
        return len(self._commands)


def _add_route(routes: dict[str, ComponentRoute], route: ComponentRoute) -> None:
    if not route.prefix:
        raise DeclarationError("a component prefix must not be empty")
    if route.prefix in routes:
        raise DeclarationError(f"component prefix {route.prefix!r} registered twice")
    routes[route.prefix] = route


def _longest(
    routes: dict[str, ComponentRoute], custom_id: str
) -> ComponentRoute | None:
    best: ComponentRoute | None = None
    for prefix, route in routes.items():
        if custom_id.startswith(prefix) and (
            best is None or len(prefix) > len(best.prefix)
        ):
            best = route
    return best
