"""OAuth2 verification, signed web tokens and role checks.

This module owns everything the web service needs to know who a visitor is:

- :class:`TokenSigner`: HS256 JWTs for the OAuth ``state`` (10 minutes, bound
  to a Discord user and guild, carrying a nonce that is stored and used once)
  and for the web session cookie (24 hours). The algorithm is pinned on
  decode; expiry and issued-at are checked against an injected clock.
- PKCE (RFC 7636, method ``S256``): the verifier is derived from the state's
  nonce with an HMAC under the JWT key, so nothing but the nonce has to be
  stored between ``/oauth/start`` and ``/oauth/callback``.
- :class:`OAuthClient`: the provider's three endpoints: the authorize URL,
  the code exchange (client authentication with HTTP Basic, RFC 6749
  section 2.3.1) and the identity fetch.
- :class:`VerificationFlow`: the callback's steps in order (state, code,
  identity, role, record) and their :class:`Outcome`, which the web layer turns
  into a page. A user is recorded as verified only after the role was given.
- :class:`AuthStore`: what the flow and the JSON API need from the database,
  with :class:`DatabaseAuthStore` over ``vsb.db``.
- Roles: :data:`MODERATOR`, :data:`ADMIN` and :func:`has_role`.

Exceptions::

    AuthError
     ├── TokenError(reason)            a state or session token is not valid
     ├── ProviderError(step, status)   the OAuth2 provider failed or refused
     └── RecordError                   a verification could not be recorded

Secrets (client secret, JWT key, access tokens, codes) are never put in an
exception message, a log field or an :class:`Outcome`.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any, Final, Protocol
from urllib.parse import quote_plus, urlencode, urlsplit, urlunsplit

import httpx
import jwt
import msgspec

from vsb.db import cases as cases_db
from vsb.db import oauth as oauth_db
from vsb.db import review as review_db
from vsb.db import settings as settings_db
from vsb.db import users as users_db
from vsb.rest.errors import Forbidden, NotFound, RestError
from vsb.secret import Secret
from vsb.services.database import Database, DatabaseError

log = logging.getLogger(__name__)

STATE_LIFETIME: Final = 600.0
SESSION_LIFETIME: Final = 86_400.0
#: Clock skew allowed on ``iat`` (a token "issued" slightly in the future).
_IAT_LEEWAY: Final = 30.0
_ISSUER: Final = "vsb"
_STATE_AUDIENCE: Final = "vsb:oauth-state"
_SESSION_AUDIENCE: Final = "vsb:session"
#: The one algorithm accepted on decode; a token naming another is refused.
_ALGORITHM: Final = "HS256"

MODERATOR: Final = "moderator"
ADMIN: Final = "admin"
#: Roles that include others: an admin may do what a moderator may.
_IMPLIED: Final[dict[str, frozenset[str]]] = {ADMIN: frozenset({MODERATOR})}


class AuthError(Exception):
    """Base of this module's errors."""


class TokenError(AuthError):
    """A state or session token is not valid.

    Attributes:
        reason: ``expired``, ``invalid`` (bad signature, algorithm, claims or
            shape) or ``not_yet_valid``.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"token {reason}")
        self.reason = reason


class ProviderError(AuthError):
    """The OAuth2 provider failed or refused a step.

    Attributes:
        step: ``exchange`` or ``identity``.
        status: the HTTP status, or None when the request itself failed.
    """

    def __init__(self, step: str, status: int | None) -> None:
        super().__init__(f"oauth provider failed at {step} (status {status})")
        self.step = step
        self.status = status


# -- tokens -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class StateClaims:
    """What an OAuth ``state`` says: who asked, for which guild, and its nonce.

    ``user_id`` and ``guild_id`` are None for a plain web login.
    """

    nonce: str
    user_id: int | None
    guild_id: int | None
    expires_at: float


@dataclasses.dataclass(frozen=True, slots=True)
class SessionClaims:
    """The signed-in web user."""

    user_id: int
    login: str
    expires_at: float


class TokenSigner:
    """Issues and checks the HS256 JWTs of the web service.

    Args:
        key: the ``JWT_SECRET``; at least 32 bytes (RFC 7518 section 3.2).
        clock: wall-clock seconds; injected so tests can move time.
        state_lifetime: seconds an OAuth state is valid.
        session_lifetime: seconds a session cookie is valid.
    """

    def __init__(
        self,
        key: Secret,
        *,
        clock: Callable[[], float] = time.time,
        state_lifetime: float = STATE_LIFETIME,
        session_lifetime: float = SESSION_LIFETIME,
    ) -> None:
        self._key = key
        self._clock = clock
        self.state_lifetime = state_lifetime
        self.session_lifetime = session_lifetime

    def now(self) -> float:
        """The signer's idea of the current time."""
        return self._clock()

    def issue_state(
        self, *, user_id: int | None, guild_id: int | None
    ) -> tuple[str, StateClaims]:
        """A fresh state token and its claims (store ``claims.nonce``)."""
        now = self._clock()
        claims = StateClaims(
            nonce=secrets.token_urlsafe(24),
            user_id=user_id,
            guild_id=guild_id,
            expires_at=now + self.state_lifetime,
        )
        payload: dict[str, Any] = {"nonce": claims.nonce}
        # Snowflakes are strings in the token, as Discord sends them: JSON
        # numbers past 2**53 are not safe in every reader.
        if user_id is not None:
            payload["sub"] = str(user_id)
        if guild_id is not None:
            payload["gid"] = str(guild_id)
        return self._encode(payload, _STATE_AUDIENCE, now, self.state_lifetime), claims

    def decode_state(self, token: str) -> StateClaims:
        """Check a state token's signature, algorithm, audience and times.

        Raises:
            TokenError: the token is not a valid, current state token.
        """
        payload = self._decode(token, _STATE_AUDIENCE)
        nonce = payload.get("nonce")
        if not isinstance(nonce, str) or not nonce:
            raise TokenError("invalid")
        return StateClaims(
            nonce=nonce,
            user_id=_snowflake_claim(payload, "sub"),
            guild_id=_snowflake_claim(payload, "gid"),
            expires_at=float(payload["exp"]),
        )

    def issue_session(self, *, user_id: int, login: str) -> str:
        """A session token for the signed-in ``user_id``."""
        payload = {"sub": str(user_id), "login": login}
        return self._encode(
            payload, _SESSION_AUDIENCE, self._clock(), self.session_lifetime
        )

    def decode_session(self, token: str) -> SessionClaims:
        """Check a session token.

        Raises:
            TokenError: the token is not a valid, current session token.
        """
        payload = self._decode(token, _SESSION_AUDIENCE)
        user_id = _snowflake_claim(payload, "sub")
        login = payload.get("login")
        if user_id is None or not isinstance(login, str):
            raise TokenError("invalid")
        return SessionClaims(
            user_id=user_id, login=login, expires_at=float(payload["exp"])
        )

    def pkce_verifier(self, nonce: str) -> str:
        """The PKCE code verifier for the state with ``nonce``.

        Derived, not stored: HMAC-SHA256 under the JWT key gives 43 base64url
        characters (RFC 7636 section 4.1 asks for 43 to 128) that nobody
        without the key can compute from the public nonce.
        """
        mac = hmac.new(self._key.reveal().encode(), b"pkce:" + nonce.encode(), "sha256")
        return _b64url(mac.digest())

    def _encode(
        self, payload: dict[str, Any], audience: str, now: float, lifetime: float
    ) -> str:
        claims = {
            **payload,
            "iss": _ISSUER,
            "aud": audience,
            "iat": int(now),
            "exp": int(now + lifetime),
        }
        return jwt.encode(claims, self._key.reveal(), algorithm=_ALGORITHM)

    def _decode(self, token: str, audience: str) -> dict[str, Any]:
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                self._key.reveal(),
                algorithms=[_ALGORITHM],
                audience=audience,
                issuer=_ISSUER,
                # Times are checked below against the injected clock.
                options={
                    "require": ["exp", "iat", "iss", "aud"],
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.InvalidTokenError as exc:
            # The message of a PyJWT error never holds the key, but it may
            # quote claims; keep only the kind.
            raise TokenError("invalid") from exc
        exp, iat = payload["exp"], payload["iat"]
        if not isinstance(exp, int | float) or not isinstance(iat, int | float):
            raise TokenError("invalid")
        now = self._clock()
        if now >= exp:
            raise TokenError("expired")
        if iat > now + _IAT_LEEWAY:
            raise TokenError("not_yet_valid")
        return payload


def _snowflake_claim(payload: Mapping[str, Any], name: str) -> int | None:
    value = payload.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{1,20}", value):
        raise TokenError("invalid")
    return int(value)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def pkce_challenge(verifier: str) -> str:
    """The ``S256`` code challenge of ``verifier`` (RFC 7636 section 4.2)."""
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


# -- the provider ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class OAuthConfig:
    """An OAuth2 client registration and its provider's endpoints.

    Attributes:
        client_id: ``OAUTH_CLIENT_ID``.
        client_secret: ``OAUTH_CLIENT_SECRET``.
        redirect_uri: ``OAUTH_REDIRECT_URI``, sent exactly as registered.
        authorize_url: ``OAUTH_AUTHORIZE_URL``.
        token_url: ``OAUTH_TOKEN_URL``.
        userinfo_url: ``OAUTH_USERINFO_URL``.
        scopes: the scopes asked for (``identify`` for Discord, ``openid``
            and friends for an OIDC provider).
        login_claim: the identity field stored as the user's login.
        id_claim: the identity field holding the account id.
        identity_is_discord: True when the provider is Discord (or its
            emulator): the account id must then be the Discord user the state
            was issued to. False for another provider, whose accounts are not
            Discord users; the state alone binds the Discord user.
    """

    client_id: str
    client_secret: Secret
    redirect_uri: str
    authorize_url: str = "https://discord.com/oauth2/authorize"
    token_url: str = "https://discord.com/api/oauth2/token"
    userinfo_url: str = "https://discord.com/api/users/@me"
    scopes: tuple[str, ...] = ("identify",)
    login_claim: str = "username"
    id_claim: str = "id"
    identity_is_discord: bool = True

    def public_base(self) -> str:
        """Where the web service is reached: the redirect URI minus its route."""
        parts = urlsplit(self.redirect_uri)
        path = parts.path.removesuffix("/oauth/callback")
        return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


@dataclasses.dataclass(frozen=True, slots=True)
class Identity:
    """Who the provider says signed in."""

    account_id: str | None
    login: str


class OAuthClient:
    """Talks to the OAuth2 provider.

    Args:
        config: the client registration.
        transport: an httpx transport for tests; None for the network.
        timeout: seconds for each provider request.
    """

    def __init__(
        self,
        config: OAuthConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.config = config
        self._transport = transport
        self._timeout = timeout

    def authorize_url(self, state: str, code_challenge: str) -> str:
        """The provider URL the browser is sent to (RFC 6749 section 4.1.1)."""
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.config.client_id,
                "redirect_uri": self.config.redirect_uri,
                "scope": " ".join(self.config.scopes),
                "state": state,
                "code_challenge": code_challenge,
                "code_challenge_method": "S256",
            }
        )
        return f"{self.config.authorize_url}?{query}"

    async def exchange_code(self, code: str, verifier: str) -> str:
        """Trade the authorization code for an access token.

        Raises:
            ProviderError: the request failed or the provider refused it.
        """
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.config.redirect_uri,
            "code_verifier": verifier,
        }
        # RFC 6749 section 2.3.1: both parts are form-encoded before Basic.
        auth = httpx.BasicAuth(
            quote_plus(self.config.client_id),
            quote_plus(self.config.client_secret.reveal()),
        )
        body = await self._request(
            "exchange", "POST", self.config.token_url, data=form, auth=auth
        )
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise ProviderError("exchange", 200)
        return token

    async def fetch_identity(self, access_token: str) -> Identity:
        """Read the signed-in account from the userinfo endpoint.

        Raises:
            ProviderError: the request failed or the answer lacks the login.
        """
        headers = {"Authorization": f"Bearer {access_token}"}
        body = await self._request(
            "identity", "GET", self.config.userinfo_url, headers=headers
        )
        login = body.get(self.config.login_claim)
        account = body.get(self.config.id_claim)
        if not isinstance(login, str) or not login:
            raise ProviderError("identity", 200)
        return Identity(
            account_id=None if account is None else str(account), login=login
        )

    async def _request(
        self, step: str, method: str, url: str, **kwargs: Any
    ) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(
                transport=self._transport, timeout=self._timeout
            ) as client:
                response = await client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            log.warning(
                "web.oauth_provider_failed",
                extra={"step": step, "error": type(exc).__name__},
            )
            raise ProviderError(step, None) from exc
        if response.status_code != 200:
            log.warning(
                "web.oauth_provider_failed",
                extra={"step": step, "status": response.status_code},
            )
            raise ProviderError(step, response.status_code)
        try:
            body = response.json()
        except ValueError as exc:
            raise ProviderError(step, response.status_code) from exc
        if not isinstance(body, dict):
            raise ProviderError(step, response.status_code)
        return body


# -- what the flow and the API need from elsewhere ------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class WebUser:
    """A user as the JSON API sees it."""

    user_id: int
    login: str | None
    verified: bool
    roles: frozenset[str]


class AuthStore(Protocol):
    """The database calls of the verification flow and the JSON API."""

    async def store_state(self, claims: StateClaims) -> None:
        """Remember an issued state's nonce until it expires."""

    async def consume_state(self, nonce: str) -> bool:
        """Use a stored nonce; False when unknown, expired or already used."""

    async def verified_role(self, guild_id: int) -> int | None:
        """The guild's verified role id, or None when none is set."""

    async def record_verification(
        self, *, user_id: int, guild_id: int, login: str, role_id: int
    ) -> None:
        """Mark the user verified with ``login`` and write the audit entry."""

    async def user(self, user_id: int) -> WebUser | None:
        """The user and their roles, or None when unknown."""

    async def cases(self, guild_id: int, limit: int) -> list[dict[str, Any]]:
        """The guild's latest moderation cases, newest first, as JSON data."""

    async def review_queue(
        self, guild_id: int | None, limit: int
    ) -> list[dict[str, Any]]:
        """Flagged messages waiting for review, as JSON data."""


class RoleGranter(Protocol):
    """Gives a member a role; :class:`vsb.rest.RestClient` is one."""

    async def add_member_role(
        self, guild_id: int, user_id: int, role_id: int, *, reason: str | None = None
    ) -> Any:
        """Add ``role_id`` to the member, with ``reason`` in the audit log."""


def has_role(roles: frozenset[str], needed: str) -> bool:
    """Whether ``roles`` include ``needed``, directly or through another role."""
    if needed in roles:
        return True
    return any(needed in _IMPLIED.get(role, frozenset()) for role in roles)


# -- the verification flow -------------------------------------------------------


class OutcomeKind(enum.Enum):
    """How one OAuth callback ended; each has its own page and log line."""

    VERIFIED = "verified"  # role given and the user recorded as verified
    SIGNED_IN = "signed_in"  # a plain web login, no guild involved
    DENIED = "denied"  # the user pressed cancel at the provider
    BAD_REQUEST = "bad_request"  # no state or no code in the callback
    STATE_INVALID = "state_invalid"  # tampered, wrong algorithm, not ours
    STATE_EXPIRED = "state_expired"  # older than its 10 minutes
    STATE_REUSED = "state_reused"  # its nonce was already used
    OTHER_BROWSER = "other_browser"  # the callback is not where the flow started
    PROVIDER_ERROR = "provider_error"  # code exchange or identity fetch failed
    WRONG_ACCOUNT = "wrong_account"  # signed in as someone else than /verify's user
    NO_ROLE_CONFIGURED = "no_role_configured"  # the guild has no verified role
    NOT_IN_GUILD = "not_in_guild"  # Discord: unknown member
    ROLE_REFUSED = "role_refused"  # Discord: missing permissions or hierarchy
    ROLE_FAILED = "role_failed"  # Discord errored or rate limited; retry later
    RECORD_PENDING = "record_pending"  # role given, database write failed

    @property
    def ok(self) -> bool:
        """True for the outcomes that sign the user in."""
        return self in (OutcomeKind.VERIFIED, OutcomeKind.SIGNED_IN)


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one callback, with no secret in it."""

    kind: OutcomeKind
    user_id: int | None = None
    guild_id: int | None = None
    login: str | None = None
    role_id: int | None = None


class RecordError(AuthError):
    """The store could not record a verification (raised by adapters)."""


class VerificationFlow:
    """The OAuth2 authorization code flow, from ``/verify`` to the callback.

    Args:
        tokens: signs and checks the state.
        oauth: the provider client.
        store: nonces, guild settings, users and audit.
        roles: gives the verified role (the REST client).
    """

    def __init__(
        self,
        *,
        tokens: TokenSigner,
        oauth: OAuthClient,
        store: AuthStore,
        roles: RoleGranter,
    ) -> None:
        self.tokens = tokens
        self.oauth = oauth
        self.store = store
        self.roles = roles

    async def verification_link(self, *, user_id: int, guild_id: int) -> str:
        """A ``/oauth/start`` link for ``/verify``; its nonce is stored first."""
        token, claims = self.tokens.issue_state(user_id=user_id, guild_id=guild_id)
        await self.store.store_state(claims)
        query = urlencode({"state": token})
        return f"{self.oauth.config.public_base()}/oauth/start?{query}"

    async def login_state(self) -> str:
        """A stored state for a plain web login (no user or guild bound yet)."""
        token, claims = self.tokens.issue_state(user_id=None, guild_id=None)
        await self.store.store_state(claims)
        return token

    def authorize_redirect(self, state: str) -> tuple[str, str]:
        """The provider URL for a state, and the state's nonce.

        The caller binds the nonce to the browser (a cookie) and passes the
        browser's nonces to :meth:`finish`, so a callback URL made in one
        browser cannot be completed in another (login CSRF).

        Raises:
            TokenError: the state is tampered with or expired.
        """
        claims = self.tokens.decode_state(state)
        challenge = pkce_challenge(self.tokens.pkce_verifier(claims.nonce))
        return self.oauth.authorize_url(state, challenge), claims.nonce

    async def finish(
        self,
        *,
        state: str | None,
        code: str | None,
        error: str | None,
        browser_nonces: Collection[str],
    ) -> Outcome:
        """Run the callback's steps and say how it ended.

        Steps, each ending the flow on failure: check the state's signature
        and expiry; check this browser started it (``browser_nonces``); use
        its nonce once; honour the provider's ``error``; exchange the code;
        fetch the identity; check it is the state's user; then, for a
        verification, give the role and record the user.
        """
        if not state:
            return _told(Outcome(OutcomeKind.BAD_REQUEST))
        try:
            claims = self.tokens.decode_state(state)
        except TokenError as exc:
            expired = exc.reason == "expired"
            kind = OutcomeKind.STATE_EXPIRED if expired else OutcomeKind.STATE_INVALID
            return _told(Outcome(kind))
        bound = Outcome(OutcomeKind.STATE_REUSED, claims.user_id, claims.guild_id)
        if claims.nonce not in browser_nonces:
            # Not consumed: the member can still finish in the right browser.
            return _told(dataclasses.replace(bound, kind=OutcomeKind.OTHER_BROWSER))
        if not await self.store.consume_state(claims.nonce):
            return _told(bound)
        if error is not None:
            kind = (
                OutcomeKind.DENIED
                if error == "access_denied"
                else OutcomeKind.PROVIDER_ERROR
            )
            return _told(dataclasses.replace(bound, kind=kind))
        if not code:
            return _told(dataclasses.replace(bound, kind=OutcomeKind.BAD_REQUEST))
        return _told(await self._signed_in(claims, code))

    async def _signed_in(self, claims: StateClaims, code: str) -> Outcome:
        outcome = Outcome(OutcomeKind.PROVIDER_ERROR, claims.user_id, claims.guild_id)
        try:
            access_token = await self.oauth.exchange_code(
                code, self.tokens.pkce_verifier(claims.nonce)
            )
            identity = await self.oauth.fetch_identity(access_token)
        except ProviderError:
            return outcome
        user_id = self._discord_user(claims, identity)
        if user_id is None:
            return dataclasses.replace(outcome, kind=OutcomeKind.WRONG_ACCOUNT)
        outcome = dataclasses.replace(outcome, user_id=user_id, login=identity.login)
        if claims.guild_id is None:
            return dataclasses.replace(outcome, kind=OutcomeKind.SIGNED_IN)
        return await self._verify(outcome, claims.guild_id, user_id, identity.login)

    def _discord_user(self, claims: StateClaims, identity: Identity) -> int | None:
        """The Discord user signing in, or None when the account does not match."""
        if not self.oauth.config.identity_is_discord:
            # Another provider's account ids are not Discord's; the signed
            # state alone says which Discord user asked.
            return claims.user_id
        account = identity.account_id
        if account is None or not (account.isascii() and account.isdigit()):
            return None
        if claims.user_id is not None and int(account) != claims.user_id:
            return None
        return int(account)

    async def _verify(
        self, outcome: Outcome, guild_id: int, user_id: int, login: str
    ) -> Outcome:
        role_id = await self.store.verified_role(guild_id)
        if role_id is None:
            return dataclasses.replace(outcome, kind=OutcomeKind.NO_ROLE_CONFIGURED)
        outcome = dataclasses.replace(outcome, role_id=role_id)
        kind = await self._give_role(guild_id, user_id, role_id, login)
        if kind is not None:
            return dataclasses.replace(outcome, kind=kind)
        try:
            await self.store.record_verification(
                user_id=user_id, guild_id=guild_id, login=login, role_id=role_id
            )
        except RecordError:
            return dataclasses.replace(outcome, kind=OutcomeKind.RECORD_PENDING)
        return dataclasses.replace(outcome, kind=OutcomeKind.VERIFIED)

    async def _give_role(
        self, guild_id: int, user_id: int, role_id: int, login: str
    ) -> OutcomeKind | None:
        """Add the verified role; None when given, else the failure's kind."""
        # The reason lands in the guild's audit log (X-Audit-Log-Reason).
        reason = f"Verified through OAuth2 as {login}"[:512]
        try:
            await self.roles.add_member_role(guild_id, user_id, role_id, reason=reason)
        except RestError as exc:
            kind = OutcomeKind.ROLE_FAILED
            if isinstance(exc, Forbidden):
                kind = OutcomeKind.ROLE_REFUSED
            elif isinstance(exc, NotFound):
                kind = OutcomeKind.NOT_IN_GUILD
            log.warning(
                "web.role_assignment_failed",
                extra={
                    "guild_id": guild_id,
                    "user_id": user_id,
                    "status": getattr(exc, "status", None),
                    "error": type(exc).__name__,
                },
            )
            return kind
        return None


def _told(outcome: Outcome) -> Outcome:
    """Log one line per callback outcome; failures at WARNING."""
    level = logging.INFO if outcome.kind.ok else logging.WARNING
    log.log(
        level,
        "web.oauth_" + outcome.kind.value,
        extra={"user_id": outcome.user_id, "guild_id": outcome.guild_id},
    )
    return outcome


# -- the database adapter ----------------------------------------------------------


class DatabaseAuthStore:
    """:class:`AuthStore` over ``vsb.db`` (oauth, settings, users, cases, review).

    Args:
        db: the opened :class:`vsb.services.database.Database`.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    async def store_state(self, claims: StateClaims) -> None:
        await oauth_db.store_state(
            self.db,
            claims.nonce,
            expires_at=datetime.fromtimestamp(claims.expires_at, UTC),
            user_id=claims.user_id,
            guild_id=claims.guild_id,
        )

    async def consume_state(self, nonce: str) -> bool:
        return await oauth_db.consume_state(self.db, nonce)

    async def verified_role(self, guild_id: int) -> int | None:
        return (await settings_db.get(self.db, guild_id)).verified_role_id

    async def record_verification(
        self, *, user_id: int, guild_id: int, login: str, role_id: int
    ) -> None:
        try:
            # The upsert and its audit entry share one transaction.
            await users_db.upsert_verified(
                self.db, user_id=user_id, login=login, guild_id=guild_id
            )
        except DatabaseError as exc:
            raise RecordError(
                f"verification not recorded: {type(exc).__name__}"
            ) from exc

    async def user(self, user_id: int) -> WebUser | None:
        row = await users_db.get(self.db, user_id)
        if row is None:
            return None
        roles = await users_db.roles_of(self.db, user_id)
        return WebUser(
            user_id=row.id, login=row.login, verified=row.verified, roles=roles
        )

    async def cases(self, guild_id: int, limit: int) -> list[dict[str, Any]]:
        rows = await cases_db.list_for_guild(self.db, guild_id, limit=limit)
        return [_json_row(row) for row in rows]

    async def review_queue(
        self, guild_id: int | None, limit: int
    ) -> list[dict[str, Any]]:
        rows = await review_db.pending(self.db, guild_id, limit=limit)
        return [_json_row(row) for row in rows]


def _json_row(row: msgspec.Struct) -> dict[str, Any]:
    """A row as JSON data; ``*_id`` snowflakes as strings, as Discord sends them."""
    data: dict[str, Any] = msgspec.to_builtins(row)
    for key, value in data.items():
        if (key.endswith("_id") or key == "revoked_by") and isinstance(value, int):
            data[key] = str(value)
    return data
