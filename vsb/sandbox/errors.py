"""Discord's JSON error answers.

Owns :class:`ApiError`, raised by route handlers and rendered by ``rest.py``
as Discord's error body ``{"code", "message"[, "errors"]}``, and the codes
the sandbox uses (Discord's "JSON Error Codes" table). Tree::

    ApiError(status, code, message, errors)
      raised for every refused REST call; 50035 carries ``errors``
"""

from __future__ import annotations

from typing import Any, Final

# Codes from Discord's "JSON Error Codes" table.
GENERAL: Final = 0
UNKNOWN_APPLICATION: Final = 10002
UNKNOWN_CHANNEL: Final = 10003
UNKNOWN_GUILD: Final = 10004
UNKNOWN_MEMBER: Final = 10007
UNKNOWN_MESSAGE: Final = 10008
UNKNOWN_ROLE: Final = 10011
UNKNOWN_USER: Final = 10013
UNKNOWN_WEBHOOK: Final = 10015
UNKNOWN_BAN: Final = 10026
UNKNOWN_INTERACTION: Final = 10062
ALREADY_ACKNOWLEDGED: Final = 40060
MISSING_ACCESS: Final = 50001
CANNOT_SEND_EMPTY_MESSAGE: Final = 50006
CANNOT_SEND_TO_USER: Final = 50007
MISSING_PERMISSIONS: Final = 50013
INVALID_TOKEN: Final = 50014
BULK_DELETE_COUNT: Final = 50016
INVALID_WEBHOOK_TOKEN: Final = 50027
BULK_DELETE_TOO_OLD: Final = 50034
INVALID_FORM_BODY: Final = 50035


class ApiError(Exception):
    """A refused REST call, answered with Discord's JSON error shape.

    Args:
        status: HTTP status.
        code: Discord's JSON error code.
        message: Discord's message text.
        errors: the nested ``errors`` object of a 50035.
    """

    def __init__(
        self, status: int, code: int, message: str, errors: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def body(self) -> dict[str, Any]:
        data: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors is not None:
            data["errors"] = self.errors
        return data


def not_found(code: int, what: str) -> ApiError:
    return ApiError(404, code, f"Unknown {what}")


def missing_permissions() -> ApiError:
    return ApiError(403, MISSING_PERMISSIONS, "Missing Permissions")


def form_error(path: str, code: str, message: str) -> ApiError:
    """A 50035 with one field error at a dotted ``path`` (``a.0.b``)."""
    errors: dict[str, Any] = {"_errors": [{"code": code, "message": message}]}
    for part in reversed(path.split(".")):
        errors = {part: errors}
    return ApiError(400, INVALID_FORM_BODY, "Invalid Form Body", errors)
