"""Readable lines for what a bot did to the sandbox, for ``python -m vsb sandbox``.

:class:`Narrator` follows ``sb.actions`` and prints one line per thing the
bot did (a deleted message, a timeout, a command answered, a resumed
session), naming users and channels instead of snowflakes. The scene tells
it what its messages and interactions were (``label_message``,
``label_interaction``), so a line can say *why* a message was posted, e.g.
``bot deleted message 1234 by spammer in #general (spam burst)``.

Actions the scene caused itself (``scenario.*``, ``fault.*``) and plumbing
(``dm.create``, deferrals) are left out; the scene narrates its own steps.
Nothing printed comes from a secret: actions hold ids, names, contents and
reasons, never tokens.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

import trio

from vsb.sandbox.actions import Action
from vsb.sandbox.sandbox import Sandbox

#: Kinds the scene narrates itself, or that say nothing a reader needs.
_QUIET: Final = frozenset(
    {
        "dm.create",
        "gateway.payload",
        "gateway.server_close",
        "gateway.drop",
        "interaction.delete_original",
    }
)
_CALLBACKS: Final = {
    4: "answered",
    5: None,  # a deferral: the answer follows as an edit
    6: None,
    7: "updated the message for",
    8: "suggested choices for",
    9: "opened a form for",
}
_PREVIEW: Final = 90


class Narrator:
    """Turns sandbox actions into lines on ``write``.

    Args:
        sb: the running sandbox.
        write: where each line goes (``print`` by default).
        poll: seconds between looks at the action log.
    """

    def __init__(
        self,
        sb: Sandbox,
        write: Callable[[str], None] = print,
        *,
        poll: float = 0.05,
    ) -> None:
        self._sb = sb
        self._write = write
        self._poll = poll
        self._seen = 0
        self._message_labels: dict[int, str] = {}
        self._interaction_labels: dict[int, str] = {}

    def label_message(self, message_id: int, label: str) -> None:
        """Say why the scene posted ``message_id`` when the bot acts on it."""
        self._message_labels[message_id] = label

    def label_interaction(self, interaction_id: int, label: str) -> None:
        """Name an interaction (``/moderate warn by moderator``)."""
        self._interaction_labels[interaction_id] = label

    async def follow(self) -> None:
        """Print new actions until cancelled."""
        while True:
            self.flush()
            await trio.sleep(self._poll)

    def flush(self) -> None:
        """Print every action recorded since the last call."""
        actions = list(self._sb.actions)
        for action in actions[self._seen :]:
            line = self.describe(action)
            if line is not None:
                self._write(f"  bot {line}")
        self._seen = len(actions)

    def describe(self, action: Action) -> str | None:
        """One line (without the ``bot`` prefix) for ``action``, or None."""
        kind = action.kind
        if kind in _QUIET or kind.startswith(("scenario.", "fault.")):
            return None
        describe = _DESCRIBERS.get(kind)
        if describe is None:
            return f"did {kind}"
        return describe(self, action)

    # -- names -----------------------------------------------------------------

    def user(self, user_id: Any) -> str:
        user = self._sb.state.users.get(int(user_id or 0))
        return user.username if user is not None else f"user {user_id}"

    def channel(self, channel_id: Any) -> str:
        channel = self._sb.state.channels.get(int(channel_id or 0))
        if channel is None:
            return f"channel {channel_id}"
        if channel.guild_id is None:
            names = ", ".join(self.user(u) for u in channel.recipients)
            return f"a DM with {names}"
        return f"#{channel.name}"

    def role(self, guild_id: Any, role_id: Any) -> str:
        guild = self._sb.state.guilds.get(int(guild_id or 0))
        role = guild.roles.get(int(role_id or 0)) if guild is not None else None
        return role.name if role is not None else f"role {role_id}"

    def interaction(self, interaction_id: Any) -> str:
        return self._interaction_labels.get(
            int(interaction_id or 0), f"interaction {interaction_id}"
        )

    def why(self, message_id: Any) -> str:
        label = self._message_labels.get(int(message_id or 0))
        return f" ({label})" if label else ""

    # -- one describer per kind --------------------------------------------------

    def _message_create(self, action: Action) -> str:
        summary = summarize(action.data)
        if action.get("dm"):
            channel = self._sb.state.channels.get(int(action["channel_id"]))
            to = self.user(channel.recipients[0]) if channel else "someone"
            return f"sent a DM to {to}: {summary}"
        return f"posted in {self.channel(action['channel_id'])}: {summary}"

    def _message_delete(self, action: Action) -> str:
        message_id = action["message_id"]
        return (
            f"deleted message {message_id} by {self.user(action['author_id'])} in "
            f"{self.channel(action['channel_id'])}{self.why(message_id)}"
            f"{_reason(action)}"
        )

    def _bulk_delete(self, action: Action) -> str:
        count = len(action["message_ids"])
        return f"bulk-deleted {count} messages in {self.channel(action['channel_id'])}"

    def _message_edit(self, action: Action) -> str:
        where = self.channel(action["channel_id"])
        return f"edited its message {action['message_id']} in {where}"

    def _timeout(self, action: Action) -> str:
        who = self.user(action["user_id"])
        until = action.get("until")
        if until is None:
            return f"lifted the timeout of {who}{_reason(action)}"
        return f"timed out {who} until {_clock(until)}{_reason(action)}"

    def _role_add(self, action: Action) -> str:
        role = self.role(action["guild_id"], action["role_id"])
        return f"gave {self.user(action['user_id'])} the {role} role{_reason(action)}"

    def _role_remove(self, action: Action) -> str:
        role = self.role(action["guild_id"], action["role_id"])
        return (
            f"took the {role} role from {self.user(action['user_id'])}{_reason(action)}"
        )

    def _callback(self, action: Action) -> str | None:
        verb = _CALLBACKS.get(int(action["callback_type"]))
        if verb is None:
            return None
        label = self.interaction(action["interaction_id"])
        private = " (only they see it)" if action.get("ephemeral") else ""
        return f"{verb} {label}{private}: {summarize(action.get('data') or {})}"

    def _edit_original(self, action: Action) -> str:
        label = self.interaction(action["interaction_id"])
        return f"answered {label}: {summarize(action.get('data') or {})}"

    def _followup(self, action: Action) -> str:
        label = self.interaction(action["interaction_id"])
        return f"followed up {label}: {summarize(action.get('data') or {})}"

    def _late(self, action: Action) -> str:
        label = self.interaction(action["interaction_id"])
        return f"answered {label} too late ({action['elapsed']:.1f} s): Discord refused"

    def _commands(self, action: Action) -> str:
        names = ", ".join(sorted(_command_name(n) for n in action["names"]))
        where = "globally" if action["scope"] == "global" else "in the guild"
        return f"registered {len(action['names'])} commands {where}: {names}"

    def _identify(self, action: Action) -> str:
        shard = f"{action['shard_id']}/{action['shard_count']}"
        return f"connected to the gateway and identified (shard {shard})"

    def _resume(self, action: Action) -> str:
        return (
            f"resumed its gateway session after event {action['seq']};"
            " Discord replays the events it missed"
        )

    def _resume_refused(self, action: Action) -> str:
        return "tried to resume an unknown session; Discord said identify instead"

    def _client_close(self, action: Action) -> str:
        return f"closed its gateway connection with code {action['close_code']}"

    def _oauth_authorize(self, action: Action) -> str:
        pkce = " with PKCE" if action.get("pkce") else ""
        return f"sent {self.user(action['user_id'])} through Discord's OAuth2 consent{pkce}"

    def _oauth_token(self, action: Action) -> str:
        return (
            f"exchanged the OAuth2 code of {self.user(action['user_id'])} for a token"
        )

    def _rate_limited(self, action: Action) -> str:
        return f"hit a rate limit on {action['route']} (retry after {action['retry_after']} s)"

    def _server_error(self, action: Action) -> str:
        return f"got a {action['status']} from Discord on {action['route']}"


def _member_verb(verb: str) -> Callable[[Narrator, Action], str]:
    def describe(narrator: Narrator, action: Action) -> str:
        return f"{verb} {narrator.user(action['user_id'])}{_reason(action)}"

    return describe


_DESCRIBERS: Final[dict[str, Callable[[Narrator, Action], str | None]]] = {
    "message.create": Narrator._message_create,
    "message.delete": Narrator._message_delete,
    "message.bulk_delete": Narrator._bulk_delete,
    "message.edit": Narrator._message_edit,
    "member.timeout": Narrator._timeout,
    "member.role_add": Narrator._role_add,
    "member.role_remove": Narrator._role_remove,
    "member.kick": _member_verb("kicked"),
    "member.ban": _member_verb("banned"),
    "member.unban": _member_verb("unbanned"),
    "interaction.callback": Narrator._callback,
    "interaction.edit_original": Narrator._edit_original,
    "interaction.followup": Narrator._followup,
    "interaction.late_callback": Narrator._late,
    "commands.overwrite": Narrator._commands,
    "gateway.identify": Narrator._identify,
    "gateway.resume": Narrator._resume,
    "gateway.resume_refused": Narrator._resume_refused,
    "gateway.client_close": Narrator._client_close,
    "oauth.authorize": Narrator._oauth_authorize,
    "oauth.token": Narrator._oauth_token,
    "rest.rate_limited": Narrator._rate_limited,
    "rest.server_error": Narrator._server_error,
}


def summarize(data: dict[str, Any]) -> str:
    """A short preview of a message body: its text, first embed, buttons."""
    parts = []
    content = str(data.get("content") or "").strip()
    if content:
        parts.append(_short(content))
    embeds = data.get("embeds") or []
    if embeds:
        embed = embeds[0]
        title = str(embed.get("title") or embed.get("description") or "").strip()
        parts.append(f"[embed: {_short(title)}]" if title else "[embed]")
    buttons = [
        c.get("label") or c.get("custom_id") or "?"
        for row in data.get("components") or []
        for c in row.get("components") or []
    ]
    if buttons:
        parts.append("[buttons: " + ", ".join(str(b) for b in buttons) + "]")
    return " ".join(parts) or "(empty)"


def _short(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _PREVIEW else flat[: _PREVIEW - 1] + "…"


def _reason(action: Action) -> str:
    return f" (reason: {_short(action.reason)})" if action.reason else ""


def _clock(unix: float) -> str:
    local = datetime.fromtimestamp(unix, UTC).astimezone()
    return f"{local:%H:%M:%S} ({_from_now(unix - time.time())})"


def _from_now(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= 2 * size:
            return f"in {round(seconds / size)} {unit}"
    return f"in {max(0, round(seconds))} s"


def _command_name(name: str) -> str:
    return name if " " in name or name[:1].isupper() else f"/{name}"
