"""Errors raised by the REST client.

Every failure of a REST call reaches the caller as one of these; none is
swallowed. Messages name the route template (never a formatted path, which
may hold an interaction token) and hold no secret. Tree::

    RestError                       anything the REST client raises
    ├── ValidationError             refused locally, no request sent (also ValueError)
    ├── RequestRefused              the invalid-request guard refuses to send
    ├── TransportError              no HTTP answer (connect, timeout), retries spent
    └── DiscordHTTPError            Discord answered with an error status
        ├── Unauthorized            401: the bot token is wrong or revoked
        ├── Forbidden               403: missing access or permissions
        ├── NotFound                404: unknown message, member, interaction...
        ├── RateLimited             429, or a wait longer than the cap (``scope``)
        └── DiscordServerError      5xx, retries spent
"""

from __future__ import annotations

from typing import Any


class RestError(Exception):
    """Base class of every error the REST client raises."""


class ValidationError(RestError, ValueError):
    """Input refused locally; no request was sent.

    Args:
        message: what is wrong and what is accepted.
    """


class RequestRefused(RestError):
    """The invalid-request guard refused to send (too many 401/403/429).

    Attributes:
        route: the route template, e.g. ``PUT /guilds/{guild_id}/bans/{user_id}``.
        retry_after: seconds until the guard could let requests through.
    """

    def __init__(self, route: str, retry_after: float, reason: str) -> None:
        super().__init__(f"{route}: not sent: {reason}")
        self.route = route
        self.retry_after = retry_after


class TransportError(RestError):
    """No HTTP answer came (connection refused, reset, timed out).

    Attributes:
        route: the route template.
    """

    def __init__(self, route: str, detail: str) -> None:
        super().__init__(f"{route}: {detail}")
        self.route = route


class DiscordHTTPError(RestError):
    """Discord answered with an error status.

    Attributes:
        status: the HTTP status.
        code: Discord's JSON error code (0 when the body had none).
        message: Discord's message.
        route: the route template.
        errors: the ``errors`` object of a 50035 (Invalid Form Body), which
            names each bad field; empty otherwise.
    """

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        route: str,
        errors: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{route}: {status} (code {code}): {message}")
        self.status = status
        self.code = code
        self.message = message
        self.route = route
        self.errors = errors or {}


class Unauthorized(DiscordHTTPError):
    """401: the bot token was refused."""


class Forbidden(DiscordHTTPError):
    """403: the bot lacks access or a permission."""


class NotFound(DiscordHTTPError):
    """404: the object does not exist (or the interaction expired)."""


class RateLimited(DiscordHTTPError):
    """A 429 that could not be waited out, or a wait over the cap.

    Attributes:
        retry_after: seconds until a request could succeed.
        scope: ``user``, ``global``, ``shared``, ``ip`` (Cloudflare block).
    """

    def __init__(
        self, retry_after: float, scope: str, route: str, message: str = ""
    ) -> None:
        text = message or f"rate limited ({scope}), retry after {retry_after:.2f} s"
        super().__init__(429, 0, text, route)
        self.retry_after = retry_after
        self.scope = scope


class DiscordServerError(DiscordHTTPError):
    """5xx after the retries allowed for the call."""


def error_for(status: int, body: Any, route: str) -> DiscordHTTPError:
    """Build the most specific error for an error answer.

    Args:
        status: HTTP status (>= 400, not 429).
        body: the decoded JSON body, or None.
        route: the route template.
    """
    code, message, errors = 0, "", None
    if isinstance(body, dict):
        raw_code = body.get("code", 0)
        code = raw_code if isinstance(raw_code, int) else 0
        message = str(body.get("message", ""))
        if isinstance(body.get("errors"), dict):
            errors = body["errors"]
    message = message or f"HTTP {status}"
    cls: type[DiscordHTTPError] = DiscordHTTPError
    if status == 401:
        cls = Unauthorized
    elif status == 403:
        cls = Forbidden
    elif status == 404:
        cls = NotFound
    elif status >= 500:
        cls = DiscordServerError
    return cls(status, code, message, route, errors)
