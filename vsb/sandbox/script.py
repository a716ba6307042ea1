"""The scripted scene the sandbox plays to a running bot, and its checks.

:class:`Scene` drives the emulator the way members and moderators would
(:mod:`vsb.sandbox.scenario` calls, an HTTP client for the OAuth2 pages,
:mod:`vsb.sandbox.sandbox` faults for the reconnect) and, after each step,
waits up to ``step_timeout`` seconds for the action the bot should take,
recording an :class:`Outcome` either way. It never looks inside the bot:
everything it checks is what Discord would have seen (``sb.actions``,
``sb.state``) or what the bot serves over HTTP.

The steps, in order: the owner sets the verified role (``/config``); chat;
a spam burst across channels (deleted, then an escalation timeout); an
insult; a message edited into an insult; ``/moderate warn`` and ``/moderate
mute``; an invite sent to review, "Analyze Message" on it and the review
button; ``/verify`` through the OAuth2 flow; an op 7 reconnect with a
message posted meanwhile; ``/health`` and ``/metrics``; and last, that the
ordinary chat was left alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Final

import httpx
import trio

from vsb.sandbox.actions import Action
from vsb.sandbox.interactions import LOADING, Interaction
from vsb.sandbox.narrator import Narrator
from vsb.sandbox.sandbox import Sandbox
from vsb.sandbox.state import State

#: Members of the scene's guild, the bot included (the issue's "200 members").
SCENE_MEMBERS: Final = 200
#: Seconds a step waits for the bot before it counts as missing.
STEP_TIMEOUT: Final = 15.0
#: Seconds between steps at ``--speed 1``.
PAUSE: Final = 1.0
_SCAM: Final = (
    "FREE Discord Nitro for everyone who joins! Claim: https://dlscord-nitro.gift/claim"
)
# Discord's "Application Command Option Type" values the scene sends.
_SUB_COMMAND: Final = 1
_ROLE_OPTION: Final = 8
_MESSAGE_COMMAND: Final = 3
_CHANNEL_MESSAGE: Final = 4


@dataclasses.dataclass(frozen=True)
class Cast:
    """Who and where: the ids of the scene's guild."""

    guild_id: int
    owner_id: int
    moderator_id: int
    verifier_id: int
    verified_role_id: int
    general_id: int
    random_id: int
    verify_id: int
    mod_log_id: int
    alice: int
    bob: int
    carol: int
    dave: int
    spammer: int
    troll: int


def build_cast(state: State) -> Cast:
    """Grow the default guild into the scene's: a channel, members up to 200."""
    default = state.default
    assert default is not None, "the scene needs the default guild"
    guild_id = default.guild_id
    random_channel = state.add_channel(guild_id, "random")
    named = {}
    for name in ("alice", "bob", "carol", "dave", "spammer", "troll"):
        user = state.add_user(name, global_name=name.title())
        state.add_member(guild_id, user.id)
        named[name] = user.id
    missing = SCENE_MEMBERS - len(state.guilds[guild_id].members)
    state.add_members(guild_id, max(0, missing), prefix="member")
    return Cast(
        guild_id=guild_id,
        owner_id=default.owner_id,
        moderator_id=default.moderator_id,
        verifier_id=default.oauth_user_id,
        verified_role_id=default.verified_role_id,
        general_id=default.general_id,
        random_id=random_channel.id,
        verify_id=default.verify_id,
        mod_log_id=default.mod_log_id,
        **named,
    )


@dataclasses.dataclass
class Outcome:
    """One expected thing, and whether the bot did it."""

    name: str
    ok: bool
    detail: str = ""


class Scene:
    """The scripted traffic, and the check of what the bot did about it.

    Args:
        sb: the running sandbox.
        cast: the scene's ids.
        narrator: told what each message and interaction is.
        web_base: the bot's web server (``http://127.0.0.1:PORT``).
        pause: seconds between steps.
        step_timeout: seconds a step waits for the bot.
        say: where the scene's own lines go.
    """

    def __init__(
        self,
        sb: Sandbox,
        cast: Cast,
        narrator: Narrator,
        *,
        web_base: str,
        pause: float = PAUSE,
        step_timeout: float = STEP_TIMEOUT,
        say: Callable[[str], None] = print,
    ) -> None:
        self.sb = sb
        self.cast = cast
        self.narrator = narrator
        self.web_base = web_base
        self.pause = pause
        self.step_timeout = step_timeout
        self.outcomes: list[Outcome] = []
        self._say = say
        self._chat: list[int] = []

    async def wait_ready(self) -> None:
        """Wait until the bot has the guild and its commands (or time out)."""
        await self.expect("the bot connected and identified", "gateway.identify")
        await self.expect(
            "the bot registered its commands in the guild",
            "commands.overwrite",
            guild_id=self.cast.guild_id,
        )

    async def play(self) -> list[Outcome]:
        """Every step in order; returns the outcomes."""
        steps = (
            self.configure,
            self.chat,
            self.spam_burst,
            self.abuse,
            self.edit_turned_abusive,
            self.moderator_warns_and_mutes,
            self.review_and_analyze,
            self.verification,
            self.reconnect,
            self.web_endpoints,
        )
        for step in steps:
            self.narrator.flush()
            await step()
            self.narrator.flush()
            await trio.sleep(self.pause)
        self.chat_left_alone()
        return self.outcomes

    # -- steps -----------------------------------------------------------------

    async def configure(self) -> None:
        c = self.cast
        self.step("the owner sets the Verified role with /config verified_role")
        role = {"name": "role", "type": _ROLE_OPTION, "value": str(c.verified_role_id)}
        ix = await self.command(
            "/config verified_role by owner",
            "config",
            {"verified_role": {"type": _SUB_COMMAND, "options": [role]}},
            user_id=c.owner_id,
        )
        answer = await self.answer(ix)
        self.check("/config verified_role answered", _has_text(answer, "Saved"))

    async def chat(self) -> None:
        c = self.cast
        self.step("alice, bob and carol chat in #general")
        for author, text in (
            (c.alice, "morning all! anyone up for a match tonight?"),
            (c.bob, "sure, after dinner. 8pm?"),
            (c.carol, "count me in, I'll bring snacks"),
            (c.alice, "great, see you at 8 then"),
        ):
            message = await self.post(text, author, label="ordinary chat")
            self._chat.append(message)
            await trio.sleep(self.pause / 4)

    async def spam_burst(self) -> None:
        c = self.cast
        self.step("spammer posts a scam link in three channels within seconds")
        channels = (c.general_id, c.random_id, c.verify_id, c.general_id)
        posted = []
        for channel in channels:
            posted.append(
                await self.post(_SCAM, c.spammer, channel, label="spam burst")
            )
            await trio.sleep(self.pause / 10)
        for number, message in enumerate(posted, 1):
            await self.expect(
                f"spam message {number} of {len(posted)} deleted",
                "message.delete",
                message_id=message,
            )
        await self.expect(
            "spammer timed out after three deletions (escalation)",
            "member.timeout",
            user_id=c.spammer,
        )

    async def abuse(self) -> None:
        self.step("troll insults the channel")
        message = await self.post(
            "you're an idiot and this server is garbage",
            self.cast.troll,
            label="abusive message",
        )
        await self.expect(
            "abusive message deleted", "message.delete", message_id=message
        )

    async def edit_turned_abusive(self) -> None:
        self.step("dave posts something friendly, then edits it into an insult")
        message = await self.post(
            "gg everyone, that was a fun round", self.cast.dave, label="edited message"
        )
        await trio.sleep(self.pause)
        await self.sb.edit_message(
            message, "gg everyone, except you, you absolute moron"
        )
        await self.expect(
            "message edited into an insult deleted",
            "message.delete",
            message_id=message,
        )

    async def moderator_warns_and_mutes(self) -> None:
        c = self.cast
        self.step("the moderator warns troll with /moderate warn")
        warn = await self.command(
            "/moderate warn by moderator",
            "moderate",
            {"action": "warn", "target": c.troll, "reason": "insulting members"},
        )
        answer = await self.answer(warn)
        self.check("/moderate warn answered with a case", _has_text(answer, "Case"))
        await self.expect(
            "troll told of the warning by DM",
            "message.create",
            dm=True,
            predicate=lambda a: self._dm_to(a, c.troll),
        )
        await trio.sleep(self.pause)
        self.step("the moderator times troll out for 10 minutes with /moderate mute")
        await self.command(
            "/moderate mute by moderator",
            "moderate",
            {
                "action": "mute",
                "target": c.troll,
                "reason": "kept insulting after a warning",
                "duration": "10m",
            },
        )
        await self.expect(
            "troll timed out by /moderate mute",
            "member.timeout",
            user_id=c.troll,
            reason="moderator: kept insulting after a warning",
        )

    async def review_and_analyze(self) -> None:
        c = self.cast
        self.step("carol posts an invite link: not sure enough to delete, so review")
        message = await self.post(
            "come join my study group discord.gg/study123", c.carol, label="invite"
        )
        post = await self.expect(
            "invite sent to the review queue in #mod-log",
            "message.create",
            channel_id=c.mod_log_id,
            predicate=lambda a: bool(a.get("components")),
        )
        await trio.sleep(self.pause)
        self.step('the moderator runs "Analyze Message" on it')
        ix = await self.command(
            "Analyze Message by moderator",
            "Analyze Message",
            kind=_MESSAGE_COMMAND,
            target_id=message,
        )
        answer = await self.answer(ix)
        self.check('"Analyze Message" answered', _has_text(answer, "analysis"))
        await trio.sleep(self.pause)
        custom_id = _button(post, "review:delete:") if post is not None else None
        if post is None or custom_id is None:
            self.check("review post has a delete button", False)
            return
        self.step("the moderator presses Delete on the review post")
        press = await self.sb.press_button(post["message_id"], custom_id)
        self.narrator.label_interaction(press.id, "the review button Delete")
        await self.expect(
            "invite deleted from the review queue", "message.delete", message_id=message
        )

    async def verification(self) -> None:
        c = self.cast
        self.step("verifier runs /verify in #verify and follows the link")
        ix = await self.command(
            "/verify by verifier",
            "verify",
            user_id=c.verifier_id,
            channel_id=c.verify_id,
        )
        answer = await self.answer(ix)
        link = _link(answer)
        if link is None:
            self.check("/verify answered with a link", False)
            return
        self.check("/verify answered with a link", True)
        page = await self.browse(link)
        self.check(
            "the OAuth2 flow ended on the bot's success page",
            page is not None and page.status_code == 200 and "verified" in page.text,
            f"status {page.status_code if page is not None else 'none'}",
        )
        await self.expect(
            "verifier given the Verified role",
            "member.role_add",
            user_id=c.verifier_id,
            role_id=c.verified_role_id,
        )

    async def reconnect(self) -> None:
        self.step("Discord asks the bot to reconnect (op 7); bob posts meanwhile")
        identifies = len(self.sb.actions.of("gateway.identify"))
        self.sb.faults.reconnect()
        message = await self.post(
            "whatever, you scumbag", self.cast.bob, label="posted during the reconnect"
        )
        await self.expect("the bot resumed its session", "gateway.resume")
        await self.expect(
            "the message posted during the reconnect deleted",
            "message.delete",
            message_id=message,
        )
        self.check(
            "the reconnect resumed without a new IDENTIFY",
            len(self.sb.actions.of("gateway.identify")) == identifies,
        )

    async def web_endpoints(self) -> None:
        self.step(f"a monitor reads {self.web_base}/health and /metrics")
        async with httpx.AsyncClient(timeout=self.step_timeout) as client:
            try:
                health = await client.get(f"{self.web_base}/health")
                metrics = await client.get(f"{self.web_base}/metrics")
            except httpx.HTTPError as exc:
                self.check("/health and /metrics answered", False, type(exc).__name__)
                return
        checks = health.json().get("checks", {}) if _is_json(health) else {}
        states = ", ".join(f"{name} {_check_state(v)}" for name, v in checks.items())
        self._say(f"  /health: {health.status_code} ({states or 'no checks'})")
        families = sorted(
            {
                line.split()[2]
                for line in metrics.text.splitlines()
                if line.startswith("# TYPE ")
            }
        )
        self._say(f"  /metrics: {metrics.status_code}, {len(families)} metric families")
        self.check("/health says healthy (200)", health.status_code == 200)
        self.check(
            "/metrics serves the bot's metrics",
            metrics.status_code == 200 and "bot_moderation_decisions" in metrics.text,
        )

    def chat_left_alone(self) -> None:
        deleted = [
            m for m in self._chat if self.sb.actions.of("message.delete", message_id=m)
        ]
        self.check(
            "ordinary chat left alone", not deleted and bool(self._chat), f"{deleted}"
        )

    # -- helpers ---------------------------------------------------------------

    def _dm_to(self, action: Action, user_id: int) -> bool:
        channel = self.sb.state.channels.get(int(action["channel_id"]))
        return channel is not None and channel.recipients == [user_id]

    def step(self, text: str) -> None:
        self._say(f"> {text}")

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        self.outcomes.append(Outcome(name, ok, detail))

    async def expect(
        self,
        name: str,
        kind: str,
        *,
        predicate: Callable[[Action], bool] | None = None,
        **fields: Any,
    ) -> Action | None:
        """Wait for a matching action; record the outcome; return the action."""
        found = None
        with trio.move_on_after(self.step_timeout):
            while found is None:
                matches = self.sb.actions.of(kind, **fields)
                found = next(
                    (a for a in matches if predicate is None or predicate(a)), None
                )
                if found is None:
                    await trio.sleep(0.02)
        self.check(name, found is not None, "" if found else f"no {kind}")
        return found

    async def post(
        self, text: str, author: int, channel: int | None = None, *, label: str
    ) -> int:
        message = await self.sb.post_message(
            text, channel_id=channel or self.cast.general_id, author_id=author
        )
        self.narrator.label_message(message.id, label)
        return message.id

    async def command(
        self,
        label: str,
        name: str,
        options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Interaction:
        ix = await self.sb.run_command(name, options, **kwargs)
        self.narrator.label_interaction(ix.id, label)
        return ix

    async def answer(self, ix: Interaction) -> dict[str, Any] | None:
        """The bot's final answer to ``ix`` (content, embeds, components)."""
        with trio.move_on_after(self.step_timeout):
            await ix.wait_response()
            if ix.callback_type == _CHANNEL_MESSAGE:
                return ix.callback_data
            while True:
                message = self.sb.state.messages.get(ix.original_message_id or 0)
                if message is not None and not message.flags & LOADING:
                    return {
                        "content": message.content,
                        "embeds": message.embeds,
                        "components": message.components,
                    }
                await trio.sleep(0.02)
        return None

    async def browse(self, link: str) -> httpx.Response | None:
        """Follow ``link`` like a browser: the bot, the consent page, back."""
        async with httpx.AsyncClient(
            follow_redirects=True, timeout=self.step_timeout
        ) as browser:
            try:
                return await browser.get(link)
            except httpx.HTTPError:
                return None


# -- reading answers --------------------------------------------------------------


def _has_text(answer: dict[str, Any] | None, needle: str) -> bool:
    if answer is None:
        return False
    texts = [str(answer.get("content") or "")]
    for embed in answer.get("embeds") or []:
        texts.append(str(embed.get("title") or ""))
        texts.append(str(embed.get("description") or ""))
    return needle.lower() in " ".join(texts).lower()


def _link(answer: dict[str, Any] | None) -> str | None:
    for row in (answer or {}).get("components") or []:
        for component in row.get("components") or []:
            if component.get("url"):
                return str(component["url"])
    return None


def _button(action: Action, prefix: str) -> str | None:
    for row in action.get("components") or []:
        for component in row.get("components") or []:
            custom_id = str(component.get("custom_id") or "")
            if custom_id.startswith(prefix):
                return custom_id
    return None


def _is_json(response: httpx.Response) -> bool:
    content_type = str(response.headers.get("content-type", ""))
    return content_type.startswith("application/json")


def _check_state(value: Any) -> str:
    if isinstance(value, dict):
        return "ok" if value.get("ok") else "failing"
    return str(value)
