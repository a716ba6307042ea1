"""What a handler receives: the interaction, its options and how to answer.

:class:`CommandContext` is passed to every command, component and modal
handler; :class:`AutocompleteContext` to autocomplete callbacks. Answering
goes through the context's :class:`~vsb.commands.response.Responder`, so a
handler never calls the callback endpoint itself and the one-callback rule
holds whatever it does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vsb.commands.options import ResolvedUser
from vsb.commands.response import Responder
from vsb.models import Interaction, InteractionMember, Message


@dataclass
class CommandContext:
    """One running command, button press or form submission.

    Attributes:
        interaction: the decoded INTERACTION_CREATE.
        name: the command path (``"case reason"``) or the ``custom_id``.
        options: converted option values by name (slash commands); for
            modals, the submitted text inputs by ``custom_id``.
        target: the user (``ResolvedUser``) or message (``Message``) of a
            context menu; None otherwise.
        responder: the interaction's response state.
    """

    interaction: Interaction
    name: str
    responder: Responder
    options: dict[str, Any] = field(default_factory=dict)
    target: ResolvedUser | Message | None = None

    @property
    def guild_id(self) -> int | None:
        return self.interaction.guild_id

    @property
    def channel_id(self) -> int | None:
        return self.interaction.channel_id

    @property
    def member(self) -> InteractionMember | None:
        """The invoking member (None in DMs)."""
        return self.interaction.member

    @property
    def user_id(self) -> int:
        """The invoking user's id."""
        ix = self.interaction
        if ix.member is not None:
            return ix.member.user.id
        return ix.user.id if ix.user is not None else 0

    @property
    def custom_id(self) -> str:
        """Components and modals: the ``custom_id`` that was used."""
        data = self.interaction.data
        return (data.custom_id or "") if data is not None else ""

    @property
    def ephemeral(self) -> bool:
        return self.responder.ephemeral

    @ephemeral.setter
    def ephemeral(self, value: bool) -> None:
        # Say it early: an automatic deferral sent after this is ephemeral too.
        self.responder.ephemeral = value

    async def respond(
        self,
        content: str | None = None,
        *,
        embeds: Sequence[Mapping[str, Any]] | None = None,
        components: Sequence[Mapping[str, Any]] | None = None,
        ephemeral: bool | None = None,
        allowed_mentions: Mapping[str, Any] | None = None,
    ) -> None:
        """Answer; see :meth:`Responder.respond`."""
        await self.responder.respond(
            content,
            embeds=embeds,
            components=components,
            ephemeral=ephemeral,
            allowed_mentions=allowed_mentions,
        )

    async def defer(self, *, ephemeral: bool | None = None) -> bool:
        """Defer at once instead of waiting for the automatic deferral."""
        return await self.responder.defer(ephemeral=ephemeral)

    async def followup(
        self,
        content: str | None = None,
        *,
        embeds: Sequence[Mapping[str, Any]] | None = None,
        ephemeral: bool | None = None,
    ) -> None:
        """An extra message after the answer."""
        await self.responder.followup(content, embeds=embeds, ephemeral=ephemeral)

    async def update_message(
        self,
        content: str | None = None,
        *,
        embeds: Sequence[Mapping[str, Any]] | None = None,
        components: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Components: edit the message holding the component."""
        await self.responder.update_message(
            content, embeds=embeds, components=components
        )

    async def send_modal(
        self, custom_id: str, title: str, components: Sequence[Mapping[str, Any]]
    ) -> bool:
        """Open a form as the initial response."""
        return await self.responder.send_modal(custom_id, title, components)


@dataclass
class AutocompleteContext:
    """An autocomplete request for the focused option.

    Attributes:
        focused: the option being typed.
        value: what the user typed so far (a string, or a number as typed).
        options: the other options' raw values so far.
    """

    interaction: Interaction
    name: str
    focused: str
    value: Any
    options: dict[str, Any] = field(default_factory=dict)
