"""``/ask question``: a free-form answer from Groq, streamed into the reply.

The reply is deferred at once, then edited in place as the answer streams
in (server-sent events from :meth:`vsb.services.ai.GroqClient.ask`). Edits
are throttled to one per ``edit_interval_s`` (default 1.2 s): Discord
rate-limits edits of an interaction's ``@original`` message (a few per
5 seconds per webhook), so editing on every token would run into 429s. The
final text always lands in one last edit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import trio

from vsb.commands.context import CommandContext
from vsb.commands.errors import CommandError
from vsb.commands.schema import Command, Option, OptionType
from vsb.services.ai import AIError, AIRateLimited, GroqClient, PromptTooLarge

if TYPE_CHECKING:
    from vsb.rest.routes import Endpoints

#: Discord's message content limit.
_MAX_CONTENT: Final = 2000
_CURSOR: Final = " \u258c"


class Ask:
    """The ``/ask`` command.

    Args:
        ai: the Groq client.
        rest: the REST client (progress edits of ``@original``).
        edit_interval_s: least time between two edits of the reply.
        clock: trio's clock.
    """

    def __init__(
        self,
        ai: GroqClient,
        rest: Endpoints,
        *,
        edit_interval_s: float = 1.2,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self._ai = ai
        self._rest = rest
        self._interval = edit_interval_s
        self._clock = clock
        self.edits = 0

    def commands(self) -> list[Command]:
        """``/ask``, for ``registry.add_all``."""
        return [
            Command(
                name="ask",
                description="Ask the AI assistant a question",
                options=(
                    Option(
                        "question",
                        "What you want to know",
                        OptionType.STRING,
                        True,
                        max_length=1000,
                    ),
                ),
                handler=self.ask,
                cooldown=(1, 10.0),
            )
        ]

    async def ask(self, ctx: CommandContext) -> None:
        """Defer, stream the answer into the reply, finish with the full text."""
        question = str(ctx.options["question"])
        ix = ctx.interaction
        deferred = await ctx.defer()
        last_edit = self._clock()

        async def on_text(text: str) -> None:
            # Progress edits go straight to @original; the final answer goes
            # through the responder, which owns the interaction's state.
            nonlocal last_edit
            now = self._clock()
            if not deferred or now - last_edit < self._interval:
                return
            last_edit = now
            self.edits += 1
            await self._rest.edit_original_response(
                ix.application_id, ix.token, content=_fit(text, _CURSOR) + _CURSOR
            )

        try:
            answer = await self._ai.ask(question, on_text)
        except PromptTooLarge as exc:
            raise CommandError(
                "That question is too long for me; please shorten it."
            ) from exc
        except AIRateLimited as exc:
            raise CommandError(
                f"The AI is busy; try again in {max(1, round(exc.retry_after))} s."
            ) from exc
        except AIError as exc:
            raise CommandError("The AI is not available right now.") from exc
        self.edits += 1
        await ctx.respond(_fit(answer, "") or "(no answer)")


def _fit(text: str, suffix: str) -> str:
    limit = _MAX_CONTENT - len(suffix)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
