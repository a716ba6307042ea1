"""The commands service: INTERACTION_CREATE in, handlers run, answers out.

Owns :class:`CommandService`. Its router handler only stamps the arrival
time and queues the interaction (router handlers run on the shard's task
and must be quick); :meth:`CommandService.run` owns the nursery where each
interaction then runs in its own task:

1. find the command (or component/modal route), run the checks
   (guild-only, developer-only, ``member.permissions``), parse and validate
   the options, then the per-user cooldown; a refusal is one ephemeral line;
2. start the automatic deferral timer (``defer_after`` after arrival) and
   run the handler;
3. an exception in the handler becomes an ephemeral message with an error
   id; the log line ``commands.handler_failed`` has the id, command and
   traceback;
4. a handler that returns without answering gets an ephemeral "Done." so
   Discord never shows "the application did not respond".
"""

from __future__ import annotations

import functools
import logging
import secrets
from collections import Counter
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import trio

from vsb.commands.checks import (
    Cooldowns,
    require_developer,
    require_member_permissions,
)
from vsb.commands.context import AutocompleteContext, CommandContext
from vsb.commands.errors import CommandError, GuildOnly, OptionError
from vsb.commands.options import (
    Invocation,
    ResolvedUser,
    convert_options,
    parse_invocation,
)
from vsb.commands.registry import CommandRegistry, ComponentRoute
from vsb.commands.response import InitialSender, Responder, ResponseStats
from vsb.commands.schema import Command, CommandType, Handler, Option
from vsb.commands.sync import sync_commands
from vsb.models import Interaction, InteractionOption, Message
from vsb.rest.routes import Endpoints, InteractionResponseType

if TYPE_CHECKING:
    from vsb.services.database import Database

log = logging.getLogger(__name__)

#: Interaction types (Discord docs, Interaction Type).
APPLICATION_COMMAND: Final = 2
MESSAGE_COMPONENT: Final = 3
APPLICATION_COMMAND_AUTOCOMPLETE: Final = 4
MODAL_SUBMIT: Final = 5
#: The counters :meth:`CommandService.stats` always reports.
_COUNTERS: Final = (
    "received",
    "ignored",
    "option_errors",
    "refused",
    "refused_queue_full",
    "refused_shutting_down",
    "handler_errors",
    "no_answer",
    "unknown_components",
    "autocomplete_errors",
)
#: Discord's deadline for the initial response (Receiving and Responding).
INITIAL_DEADLINE: Final = 3.0
#: Autocomplete cannot be deferred; give up before Discord's 3 s.
AUTOCOMPLETE_TIMEOUT: Final = 2.5


class CommandService:
    """Dispatches interactions to the registry's handlers.

    Args:
        registry: the declared commands and component routes.
        rest: the REST client.
        db: the database, for the sync hash (None: sync every start).
        application_id: the application; None: read ``GET /applications/@me``.
        guild_id: sync commands to this guild only (``DISCORD_GUILD_ID``).
        developer_ids: who may run developer-only commands.
        defer_after: seconds after arrival when an unanswered interaction is
            deferred (Discord allows 3).
        queue_size: interactions waiting for a task before new ones are
            refused (logged, counted).
        sync: sync commands when :meth:`run` starts.
        clock: trio's clock.
    """

    def __init__(
        self,
        registry: CommandRegistry,
        rest: Endpoints,
        *,
        db: Database | None = None,
        application_id: int | None = None,
        guild_id: int | None = None,
        developer_ids: frozenset[int] = frozenset(),
        defer_after: float = 2.0,
        queue_size: int = 1000,
        sync: bool = True,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self.registry = registry
        self.application_id = application_id
        self.developer_ids = developer_ids
        self.defer_after = defer_after
        self._rest = rest
        self._db = db
        self._guild_id = guild_id
        self._sync = sync
        self._clock = clock
        self._send, self._receive = trio.open_memory_channel[tuple[Interaction, float]](
            queue_size
        )
        self.cooldowns = Cooldowns(clock)
        self.response_stats = ResponseStats()
        self._counts: Counter[str] = Counter(dict.fromkeys(_COUNTERS, 0))
        self._by_command: Counter[str] = Counter()
        # (command, status): ok, refused, option_error, error.
        self._outcomes: Counter[tuple[str, str]] = Counter()
        self.ready = trio.Event()
        self.in_flight = 0
        self._nursery: trio.Nursery | None = None
        self._draining = False
        self._idle = trio.Event()

    # -- wiring ------------------------------------------------------------------

    def register(self, router: Any, *, priority: int = 100) -> None:
        """Handle INTERACTION_CREATE from ``router`` (after the cache, priority 10)."""
        router.register("INTERACTION_CREATE", self.on_interaction, priority=priority)

    async def on_interaction(self, shard_id: int, event: Any) -> None:
        """Router handler: stamp the arrival time and queue; never blocks."""
        received_at = self._clock()
        if not isinstance(event, Interaction):
            return
        if self._draining:
            # Shutting down: Discord shows the user "did not respond"; better
            # than an answer cut off halfway by the final cancellation.
            self._counts["refused_shutting_down"] += 1
            return
        try:
            self._send.send_nowait((event, received_at))
        except trio.WouldBlock:
            self._counts["refused_queue_full"] += 1
            log.warning(
                "commands.queue_full",
                extra={"interaction_id": event.id, "shard_id": shard_id},
            )

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Sync commands, then run interactions until cancelled."""
        if self.application_id is None:
            app = await self._rest.get_current_application()
            self.application_id = int(app["id"])
        if self._sync:
            await sync_commands(
                self.registry,
                self._rest,
                self._db,
                application_id=self.application_id,
                guild_id=self._guild_id,
            )
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self.ready.set()
                task_status.started()
                async for interaction, received_at in self._receive:
                    nursery.start_soon(self.handle, interaction, received_at)
        finally:
            self._nursery = None

    async def drain(self) -> None:
        """Shutdown: take no new interactions, let those running finish."""
        self._draining = True
        while self.in_flight or self._receive.statistics().current_buffer_used:
            self._idle = trio.Event()
            with trio.move_on_after(0.1):
                await self._idle.wait()

    def stats(self) -> dict[str, Any]:
        """Counters for /metrics and /debug (plain data)."""
        return {
            "commands": len(self.registry),
            "queued": self._receive.statistics().current_buffer_used,
            "in_flight": self.in_flight,
            **dict(self._counts),
            "cooldown_refused": self.cooldowns.refused,
            "by_command": dict(self._by_command),
            "invocations": self._invocations(),
            "responses": self.response_stats.as_dict(),
        }

    def _invocations(self) -> dict[str, dict[str, int]]:
        """``{command: {status: count}}``: how each command's runs ended."""
        nested: dict[str, dict[str, int]] = {}
        for (command, status), count in self._outcomes.items():
            nested.setdefault(command, {})[status] = count
        return nested

    # -- one interaction -----------------------------------------------------------

    async def handle(
        self,
        interaction: Interaction,
        received_at: float,
        *,
        send_initial: InitialSender | None = None,
    ) -> None:
        """Run one interaction to its answer (the service's tasks call this).

        Args:
            send_initial: how the initial response travels (default: the
                REST callback endpoint; :meth:`answer_http` passes its own).
        """
        self._counts["received"] += 1
        self.in_flight += 1
        try:
            await self._dispatch(interaction, received_at, send_initial)
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self._idle.set()

    async def answer_http(self, interaction: Interaction) -> dict[str, Any]:
        """The web server's ``interaction_handler`` (Discord's HTTP interactions).

        Starts the interaction in the service's nursery and returns the body
        of its initial response (``{"type": 4, "data": ...}``) as soon as
        the handler answers or the automatic deferral fires; the handler
        goes on in the service (edits and followups use REST as usual).

        Raises:
            RuntimeError: the service is not running.
            trio.TooSlowError: no initial response within 3 s.
        """
        if self._nursery is None:
            raise RuntimeError("the commands service is not running")
        received_at = self._clock()
        send, receive = trio.open_memory_channel[dict[str, Any]](1)

        async def deliver(kind: int, data: Mapping[str, Any] | None) -> None:
            body: dict[str, Any] = {"type": int(kind)}
            if data is not None:
                body["data"] = dict(data)
            send.send_nowait(body)  # one initial response: the channel holds one

        # Known limitation: the initial response counts as sent when it is
        # handed to the web server, a moment before Discord has it; an edit
        # of @original made in that moment can be refused (10008), and is
        # then logged as commands.edit_failed.
        self._nursery.start_soon(
            functools.partial(self.handle, send_initial=deliver),
            interaction,
            received_at,
        )
        with trio.fail_after(INITIAL_DEADLINE):
            return await receive.receive()

    async def _dispatch(
        self,
        interaction: Interaction,
        received_at: float,
        send_initial: InitialSender | None,
    ) -> None:
        kind = interaction.type
        if kind == APPLICATION_COMMAND:
            await self._run_command(interaction, received_at, send_initial)
        elif kind == MESSAGE_COMPONENT:
            route = self.registry.find_component(_custom_id(interaction))
            await self._run_route(
                interaction, received_at, route, send_initial, modal=False
            )
        elif kind == MODAL_SUBMIT:
            route = self.registry.find_modal(_custom_id(interaction))
            await self._run_route(
                interaction, received_at, route, send_initial, modal=True
            )
        elif kind == APPLICATION_COMMAND_AUTOCOMPLETE:
            await self._run_autocomplete(interaction, received_at, send_initial)
        else:
            self._counts["ignored"] += 1

    def responder(
        self,
        interaction: Interaction,
        received_at: float,
        send_initial: InitialSender | None = None,
        **kw: Any,
    ) -> Responder:
        """A responder for ``interaction`` sharing this service's counters."""
        return Responder(
            interaction,
            self._rest,
            received_at=received_at,
            send_initial=send_initial,
            stats=self.response_stats,
            clock=self._clock,
            **kw,
        )

    async def _run_command(
        self,
        interaction: Interaction,
        received_at: float,
        send_initial: InitialSender | None,
    ) -> None:
        data = interaction.data
        name = (data.name or "") if data is not None else ""
        kind = (data.type or CommandType.CHAT_INPUT) if data is not None else 1
        command = self.registry.get(name, kind)
        responder = self.responder(
            interaction,
            received_at,
            send_initial,
            ephemeral=command.ephemeral if command is not None else True,
        )
        ctx = CommandContext(interaction, name, responder)
        try:
            handler = self._prepare(command, ctx)
        except CommandError as exc:
            self._refused(exc, ctx.name)
            await responder.respond(str(exc), ephemeral=True)
            return
        self._by_command[ctx.name] += 1
        await self._run_handler(ctx, handler, ctx.name)

    def _prepare(self, command: Command | None, ctx: CommandContext) -> Handler:
        """Checks and options; returns the handler to run.

        Raises:
            CommandError: unknown command, failed check or bad option.
        """
        ix = ctx.interaction
        if command is None or ix.data is None:
            raise CommandError("This command is not available any more.")
        if command.guild_only and ix.guild_id is None:
            raise GuildOnly()
        if command.developer_only:
            require_developer(ctx.user_id, self.developer_ids)
        require_member_permissions(ix, command.runtime_permissions)
        if command.type == CommandType.CHAT_INPUT:
            invocation: Invocation = parse_invocation(command, ix.data)
            ctx.name, ctx.options = invocation.path, invocation.options
            handler = invocation.handler
        else:
            ctx.target = _target(command, ix)
            assert command.handler is not None
            handler = command.handler
        if command.cooldown is not None:
            uses, per = command.cooldown
            self.cooldowns.hit(ctx.name, ctx.user_id, uses, per)
        return handler

    def _refused(self, exc: CommandError, command: str) -> None:
        key = "option_errors" if isinstance(exc, OptionError) else "refused"
        self._counts[key] += 1
        status = "option_error" if isinstance(exc, OptionError) else "refused"
        self._outcomes[command or "unknown", status] += 1

    async def _run_route(
        self,
        interaction: Interaction,
        received_at: float,
        route: ComponentRoute | None,
        send_initial: InitialSender | None,
        *,
        modal: bool,
    ) -> None:
        defer_type = InteractionResponseType.DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
        if route is not None and route.updates_message and not modal:
            defer_type = InteractionResponseType.DEFERRED_UPDATE_MESSAGE
        responder = self.responder(
            interaction,
            received_at,
            send_initial,
            ephemeral=route.ephemeral if route is not None else True,
            defer_type=defer_type,
        )
        ctx = CommandContext(interaction, _custom_id(interaction), responder)
        if route is None:
            self._counts["unknown_components"] += 1
            await responder.respond("This is no longer active.", ephemeral=True)
            return
        if modal:
            ctx.options = _modal_values(interaction)
        self._by_command[route.prefix] += 1
        await self._run_handler(ctx, route.handler, route.prefix)

    async def _run_handler(
        self, ctx: CommandContext, handler: Handler, label: str
    ) -> None:
        """Run ``handler``; ``label`` names it in the counts (a command's
        path, or a component route's prefix: never a whole custom id)."""
        responder = ctx.responder
        async with trio.open_nursery() as nursery:
            timer = trio.CancelScope()
            nursery.start_soon(self._defer_when_due, responder, timer)
            try:
                await handler(ctx)
            except CommandError as exc:
                self._refused(exc, label)
                await responder.respond(str(exc), ephemeral=True)
            except Exception as exc:  # noqa: BLE001 - one failed handler, reported
                self._outcomes[label, "error"] += 1
                await self._handler_failed(ctx, exc)
            else:
                self._outcomes[label, "ok"] += 1
            timer.cancel()
        if not responder.answered:
            self._counts["no_answer"] += 1
            log.warning(
                "commands.no_answer",
                extra={"command": ctx.name, "interaction_id": ctx.interaction.id},
            )
            await responder.respond("Done.", ephemeral=True)

    async def _defer_when_due(
        self, responder: Responder, timer: trio.CancelScope
    ) -> None:
        with timer:
            await trio.sleep_until(responder.received_at + self.defer_after)
        if not timer.cancelled_caught:
            await responder.auto_defer()

    async def _handler_failed(self, ctx: CommandContext, exc: Exception) -> None:
        error_id = secrets.token_hex(4)
        self._counts["handler_errors"] += 1
        log.error(
            "commands.handler_failed",
            exc_info=exc,
            extra={
                "error_id": error_id,
                "command": ctx.name,
                "interaction_id": ctx.interaction.id,
                "guild_id": ctx.guild_id,
                "user_id": ctx.user_id,
                "error": type(exc).__name__,
            },
        )
        await ctx.respond(
            f"Something went wrong on our side (error id `{error_id}`).",
            ephemeral=True,
        )

    async def _run_autocomplete(
        self,
        interaction: Interaction,
        received_at: float,
        send_initial: InitialSender | None,
    ) -> None:
        responder = self.responder(interaction, received_at, send_initial)
        choices: list[dict[str, Any]] = []
        try:
            choices = await self._complete(interaction)
        except Exception as exc:  # noqa: BLE001 - suggestions are best effort
            self._counts["autocomplete_errors"] += 1
            log.warning(
                "commands.autocomplete_failed",
                extra={"interaction_id": interaction.id, "error": type(exc).__name__},
            )
        await responder.autocomplete(choices)

    async def _complete(self, interaction: Interaction) -> list[dict[str, Any]]:
        data = interaction.data
        command = self.registry.get(data.name or "") if data is not None else None
        if command is None or data is None:
            return []
        declared, given = _focus_scope(command, data.options)
        focused = next((o for o in given if o.focused), None)
        option = next((o for o in declared if focused and o.name == focused.name), None)
        if focused is None or option is None or option.autocomplete is None:
            return []
        others = {o.name: o.value for o in given if not o.focused}
        ctx = AutocompleteContext(
            interaction, command.name, focused.name, focused.value, others
        )
        with trio.move_on_after(AUTOCOMPLETE_TIMEOUT):
            found = await option.autocomplete(ctx)
            return [choice.to_json() for choice in found][:25]
        return []


def _custom_id(interaction: Interaction) -> str:
    data = interaction.data
    return (data.custom_id or "") if data is not None else ""


def _modal_values(interaction: Interaction) -> dict[str, Any]:
    values: dict[str, Any] = {}
    rows = interaction.data.components if interaction.data is not None else ()
    for row in rows:
        for item in (row, *row.components):
            if item.custom_id:
                values[item.custom_id] = (
                    item.value if item.value is not None else list(item.values)
                )
    return values


def _target(command: Command, interaction: Interaction) -> ResolvedUser | Message:
    data = interaction.data
    if data is None or data.target_id is None:
        raise OptionError("", "This menu needs a target.")
    resolved = data.resolved
    target_id = data.target_id
    if command.type == CommandType.USER:
        users = resolved.users if resolved is not None else {}
        members = resolved.members if resolved is not None else {}
        return ResolvedUser(target_id, users.get(target_id), members.get(target_id))
    message = resolved.messages.get(target_id) if resolved is not None else None
    if message is None:
        raise OptionError("", "That message could not be read.")
    return message


def _focus_scope(
    command: Command, given: tuple[InteractionOption, ...]
) -> tuple[tuple[Option, ...], tuple[InteractionOption, ...]]:
    """The declared and given options at the level holding the focus."""
    declared = command.options
    children = command.subcommands
    while given and given[0].type in (1, 2):
        match = next((c for c in children if c.name == given[0].name), None)
        if match is None:
            return (), ()
        given = given[0].options
        if hasattr(match, "subcommands"):
            children = match.subcommands  # a group
        else:
            declared = match.options
    return declared, given


__all__ = ["CommandService", "convert_options"]
