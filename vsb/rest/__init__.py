"""VSB's Discord REST client: rate limits, typed endpoints, clear errors.

``RestClient`` (:mod:`vsb.rest.client`) is the entry point; the rate-limit
rules live in the sans-I/O :mod:`vsb.rest.ratelimit`, the endpoints in
:mod:`vsb.rest.routes` and the exception tree in :mod:`vsb.rest.errors`.
"""

from vsb.rest.client import RestClient
from vsb.rest.errors import (
    DiscordHTTPError,
    DiscordServerError,
    Forbidden,
    NotFound,
    RateLimited,
    RequestRefused,
    RestError,
    TransportError,
    Unauthorized,
    ValidationError,
)
from vsb.rest.routes import BulkDeleteResult, InteractionResponseType

__all__ = [
    "BulkDeleteResult",
    "DiscordHTTPError",
    "DiscordServerError",
    "Forbidden",
    "InteractionResponseType",
    "NotFound",
    "RateLimited",
    "RequestRefused",
    "RestClient",
    "RestError",
    "TransportError",
    "Unauthorized",
    "ValidationError",
]
