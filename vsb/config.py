"""Settings from the environment, decoded and validated once at start.

Every setting of the settings table in the README is read here, from the
process environment and, below it, an optional ``.env`` file (the environment
wins). Each raw string goes through one decoder that either returns a typed
value or raises :class:`ConfigError` naming the variable, the bad value (never
for a secret) and what was expected. The command line turns that error into
exactly one line on stderr and exit status 2.

Exceptions::

    ConfigError(variable, message)   a setting is missing or malformed

Secret settings are held in :class:`vsb.secret.Secret`, so printing a
:class:`Settings` (or ``check-config``) never shows them.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

from vsb.secret import REDACTED, Secret

T = TypeVar("T")

#: Gateway intents by Discord's names (docs: Gateway > Gateway Intents).
INTENTS: Final[dict[str, int]] = {
    "guilds": 1 << 0,
    "guild_members": 1 << 1,
    "guild_moderation": 1 << 2,
    "guild_expressions": 1 << 3,
    "guild_integrations": 1 << 4,
    "guild_webhooks": 1 << 5,
    "guild_invites": 1 << 6,
    "guild_voice_states": 1 << 7,
    "guild_presences": 1 << 8,
    "guild_messages": 1 << 9,
    "guild_message_reactions": 1 << 10,
    "guild_message_typing": 1 << 11,
    "direct_messages": 1 << 12,
    "direct_message_reactions": 1 << 13,
    "direct_message_typing": 1 << 14,
    "message_content": 1 << 15,
    "guild_scheduled_events": 1 << 16,
    "auto_moderation_configuration": 1 << 20,
    "auto_moderation_execution": 1 << 21,
    "guild_message_polls": 1 << 24,
    "direct_message_polls": 1 << 25,
}
#: Privileged intents must also be switched on in the developer portal.
PRIVILEGED_INTENTS: Final = (
    INTENTS["guild_members"] | INTENTS["guild_presences"] | INTENTS["message_content"]
)
DEFAULT_INTENTS: Final = (
    INTENTS["guilds"]
    | INTENTS["guild_members"]
    | INTENTS["guild_moderation"]
    | INTENTS["guild_messages"]
    | INTENTS["message_content"]
)
_ALL_INTENTS: Final = sum(INTENTS.values())

_SNOWFLAKE = re.compile(r"[0-9]{1,20}")
_LOG_LEVELS: Final = ("debug", "info", "warning", "error")


class ConfigError(Exception):
    """A setting is missing or malformed.

    Attributes:
        variable: the environment variable at fault.
        message: what was wrong, without the value of a secret.
    """

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable
        self.message = message


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """The decoded settings. Build with :func:`load_settings`."""

    discord_bot_token: Secret | None = None
    discord_application_id: int | None = None
    discord_guild_id: int | None = None
    discord_public_key: str | None = None
    discord_api_base: str = "https://discord.com/api/v10"
    discord_intents: int = DEFAULT_INTENTS
    discord_gateway_compress: str = "zlib-stream"
    shard_count: int | None = None
    shard_ids: tuple[int, ...] | None = None
    shard_ids_from_ordinal: str | None = None
    pod_name: str | None = None
    shards_per_pod: int = 1
    database_url: Secret | None = None
    db_pool_min: int = 2
    db_pool_max: int = 10
    db_pool_max_lifetime: float = 3600.0
    db_pool_max_idle: float = 600.0
    db_pool_timeout: float = 30.0
    db_statement_timeout: float = 30.0
    groq_api_key: Secret | None = None
    groq_api_base: str = "https://api.groq.com/openai/v1"
    groq_model_fast: str | None = None
    groq_model_balanced: str | None = None
    groq_model_quality: str | None = None
    oauth_client_id: str | None = None
    oauth_client_secret: Secret | None = None
    oauth_redirect_uri: str | None = None
    oauth_authorize_url: str = "https://discord.com/oauth2/authorize"
    oauth_token_url: str = "https://discord.com/api/oauth2/token"
    oauth_userinfo_url: str = "https://discord.com/api/users/@me"
    oauth_scopes: str = "identify"
    oauth_login_claim: str = "username"
    jwt_secret: Secret | None = None
    admin_log_channel_id: int | None = None
    developer_ids: frozenset[int] = frozenset()
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    data_dir: Path = Path(".vsb")
    log_level: str = "info"
    log_format: str = "json"
    shutdown_timeout: float = 10.0
    member_cache_cap: int = 100_000
    rest_global_limit: float = 50.0
    words_file: Path | None = None

    def resolve_shard_ids(self) -> tuple[int, ...] | None:
        """The shard ids this process runs; None means all of them.

        With ``SHARD_IDS_FROM_ORDINAL=per_pod`` the ordinal of a StatefulSet
        pod (the number after the last ``-`` of ``POD_NAME``, else of the
        host name) picks ``SHARDS_PER_POD`` consecutive shards: pod ``k``
        runs ``k*P`` to ``k*P+P-1``.

        Raises:
            ConfigError: no ordinal can be read, or it is past the shards.
        """
        if self.shard_ids is not None or self.shard_ids_from_ordinal is None:
            return self.shard_ids
        name = self.pod_name or os.environ.get("HOSTNAME") or ""
        ordinal = name.rsplit("-", 1)[-1]
        if not (ordinal.isascii() and ordinal.isdigit()):
            raise ConfigError(
                "POD_NAME", f"expected a StatefulSet pod name like vsb-0, got {name!r}"
            )
        assert self.shard_count is not None  # checked by load_settings
        first = int(ordinal) * self.shards_per_pod
        if first >= self.shard_count:
            raise ConfigError(
                "SHARDS_PER_POD",
                f"expected pod {ordinal} to get shards below SHARD_COUNT "
                f"({self.shard_count}), got first shard {first}",
            )
        last = min(first + self.shards_per_pod, self.shard_count)
        return tuple(range(first, last))

    @property
    def oauth_enabled(self) -> bool:
        """True when the OAuth2 verification flow is configured."""
        return self.oauth_client_id is not None

    def secrets(self) -> list[str]:
        """Every secret value set, for the log redactor."""
        values = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, Secret) and value.reveal():
                values.append(value.reveal())
        if self.database_url is not None:
            password = urlsplit(self.database_url.reveal()).password
            if password:
                values.append(password)
        return values

    def redacted(self) -> dict[str, Any]:
        """The settings as plain JSON-ready data with secrets redacted."""
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "database_url" and value is not None:
                value = redact_url(value.reveal())
            elif isinstance(value, Secret):
                value = REDACTED
            elif isinstance(value, frozenset | tuple):
                value = sorted(value)
            elif isinstance(value, Path):
                value = str(value)
            out[field.name] = value
        return out


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by the redaction marker."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:{REDACTED}@{netloc}"))


# -- decoders: raw string in, typed value out, ValueError(expected) on failure


def _snowflake(raw: str) -> int:
    if not _SNOWFLAKE.fullmatch(raw) or int(raw) >= 1 << 64:
        raise ValueError("a Discord snowflake (digits)")
    return int(raw)


def _snowflakes(raw: str) -> frozenset[int]:
    items = [item.strip() for item in raw.split(",") if item.strip()]
    try:
        return frozenset(_snowflake(item) for item in items)
    except ValueError:
        raise ValueError("comma-separated Discord snowflakes") from None


def _int_in(low: int, high: int) -> Callable[[str], int]:
    def decode(raw: str) -> int:
        try:
            text = raw.strip()
            if not text.isascii():
                raise ValueError
            value = int(text)
        except ValueError:
            raise ValueError(f"an integer from {low} to {high}") from None
        if not low <= value <= high:
            raise ValueError(f"an integer from {low} to {high}")
        return value

    return decode


def _positive_number(expected: str) -> Callable[[str], float]:
    def decode(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError(expected) from None
        if not 0 < value < 1e9:  # also refuses nan and inf
            raise ValueError(expected)
        return value

    return decode


_seconds = _positive_number("a number of seconds greater than 0")
_positive = _positive_number("a positive number")


def _http_url(raw: str) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("an http:// or https:// URL")
    return raw.strip().rstrip("/")


def _ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _postgres_url(raw: str) -> Secret:
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError("a postgresql:// URL")
    try:
        parts.port  # noqa: B018 (urllib checks the port when it is read)
    except ValueError:
        raise ValueError("a postgresql:// URL with a numeric port") from None
    return Secret(raw.strip())


def _bot_token(raw: str) -> Secret:
    value = raw.strip()
    if not value:
        raise ValueError("a non-empty value")
    if value.lower().startswith("bot "):
        raise ValueError("the token alone, without the 'Bot ' prefix")
    if not value.isascii() or not value.isprintable() or " " in value:
        raise ValueError("a bot token (printable ASCII, no spaces)")
    return Secret(value)


def _secret(raw: str) -> Secret:
    if not raw.strip():
        raise ValueError("a non-empty value")
    return Secret(raw.strip())


def _jwt_key(raw: str) -> Secret:
    # RFC 7518 section 3.2: an HS256 key must be at least 256 bits.
    if len(raw.strip().encode()) < 32:
        raise ValueError("at least 32 bytes of random text")
    return Secret(raw.strip())


def _intents(raw: str) -> int:
    text = raw.strip().lower()
    if text.isascii() and text.isdigit():
        value = int(text)
        if value & ~_ALL_INTENTS:
            raise ValueError("a known gateway intents bitfield")
        return value
    value = 0
    for name in (part.strip() for part in text.split(",") if part.strip()):
        if name not in INTENTS:
            raise ValueError("an intents bitfield or names like guilds,guild_members")
        value |= INTENTS[name]
    if not value:
        raise ValueError("an intents bitfield or names like guilds,guild_members")
    return value


def _shard_ids(raw: str) -> tuple[int, ...]:
    ids: set[int] = set()
    expected = "shard ids like 0-3 or 4,5"
    for part in (p.strip() for p in raw.split(",") if p.strip()):
        low, sep, high = part.partition("-")
        if not _ascii_digits(low) or (sep and not _ascii_digits(high)):
            raise ValueError(expected)
        first, last = int(low), int(high) if sep else int(low)
        if last < first or last - first > 100_000:
            raise ValueError(expected)
        ids.update(range(first, last + 1))
    if not ids:
        raise ValueError(expected)
    return tuple(sorted(ids))


def _choice(*choices: str) -> Callable[[str], str]:
    def decode(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError("one of " + ", ".join(choices))
        return value

    return decode


def _public_key(raw: str) -> str:
    value = raw.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise ValueError("the application's public key (64 hex digits)")
    return value


def _readable_file(raw: str) -> Path:
    path = Path(_text(raw))
    if not path.is_file():
        raise ValueError("a readable file")
    return path


def _text(raw: str) -> str:
    if not raw.strip():
        raise ValueError("a non-empty value")
    return raw.strip()


def _host(raw: str) -> str:
    value = raw.strip()
    if not value or any(c.isspace() for c in value) or "/" in value:
        raise ValueError("a host name or IP address")
    return value


@dataclasses.dataclass(frozen=True, slots=True)
class _Var:
    name: str
    field: str
    decode: Callable[[str], Any]
    secret: bool = False


_VARS: Final[tuple[_Var, ...]] = (
    _Var("DISCORD_BOT_TOKEN", "discord_bot_token", _bot_token, secret=True),
    _Var("DISCORD_APPLICATION_ID", "discord_application_id", _snowflake),
    _Var("DISCORD_GUILD_ID", "discord_guild_id", _snowflake),
    _Var("DISCORD_PUBLIC_KEY", "discord_public_key", _public_key),
    _Var("DISCORD_API_BASE", "discord_api_base", _http_url),
    _Var("DISCORD_INTENTS", "discord_intents", _intents),
    _Var(
        "DISCORD_GATEWAY_COMPRESS",
        "discord_gateway_compress",
        _choice("zlib-stream", "zstd-stream", "none"),
    ),
    _Var("SHARD_COUNT", "shard_count", _int_in(1, 1_000_000)),
    _Var("SHARD_IDS", "shard_ids", _shard_ids),
    _Var("SHARD_IDS_FROM_ORDINAL", "shard_ids_from_ordinal", _choice("per_pod")),
    _Var("POD_NAME", "pod_name", _text),
    _Var("SHARDS_PER_POD", "shards_per_pod", _int_in(1, 100_000)),
    _Var("DATABASE_URL", "database_url", _postgres_url, secret=True),
    _Var("DB_POOL_MIN", "db_pool_min", _int_in(0, 1000)),
    _Var("DB_POOL_MAX", "db_pool_max", _int_in(1, 1000)),
    _Var("DB_POOL_MAX_LIFETIME", "db_pool_max_lifetime", _seconds),
    _Var("DB_POOL_MAX_IDLE", "db_pool_max_idle", _seconds),
    _Var("DB_POOL_TIMEOUT", "db_pool_timeout", _seconds),
    _Var("DB_STATEMENT_TIMEOUT", "db_statement_timeout", _seconds),
    _Var("GROQ_API_KEY", "groq_api_key", _secret, secret=True),
    _Var("GROQ_API_BASE", "groq_api_base", _http_url),
    _Var("GROQ_MODEL_FAST", "groq_model_fast", _text),
    _Var("GROQ_MODEL_BALANCED", "groq_model_balanced", _text),
    _Var("GROQ_MODEL_QUALITY", "groq_model_quality", _text),
    _Var("OAUTH_CLIENT_ID", "oauth_client_id", _text),
    _Var("OAUTH_CLIENT_SECRET", "oauth_client_secret", _secret, secret=True),
    _Var("OAUTH_REDIRECT_URI", "oauth_redirect_uri", _http_url),
    _Var("OAUTH_AUTHORIZE_URL", "oauth_authorize_url", _http_url),
    _Var("OAUTH_TOKEN_URL", "oauth_token_url", _http_url),
    _Var("OAUTH_USERINFO_URL", "oauth_userinfo_url", _http_url),
    _Var("OAUTH_SCOPES", "oauth_scopes", _text),
    _Var("OAUTH_LOGIN_CLAIM", "oauth_login_claim", _text),
    _Var("JWT_SECRET", "jwt_secret", _jwt_key, secret=True),
    _Var("ADMIN_LOG_CHANNEL_ID", "admin_log_channel_id", _snowflake),
    _Var("DEVELOPER_IDS", "developer_ids", _snowflakes),
    _Var("VSB_HTTP_HOST", "http_host", _host),
    _Var("VSB_HTTP_PORT", "http_port", _int_in(0, 65535)),
    _Var("VSB_DATA_DIR", "data_dir", lambda raw: Path(_text(raw))),
    _Var("LOG_LEVEL", "log_level", _choice(*_LOG_LEVELS)),
    _Var("LOG_FORMAT", "log_format", _choice("json", "console")),
    _Var("VSB_SHUTDOWN_TIMEOUT", "shutdown_timeout", _seconds),
    _Var("VSB_MEMBER_CACHE_CAP", "member_cache_cap", _int_in(1, 100_000_000)),
    _Var("DISCORD_REST_GLOBAL_LIMIT", "rest_global_limit", _positive),
    _Var("VSB_WORDS_FILE", "words_file", _readable_file),
)
#: The names of every setting, for documentation and tests.
VARIABLES: Final = tuple(var.name for var in _VARS) + (
    "DB_HOST",
    "DB_PORT",
    "DB_NAME",
    "DB_USER",
    "DB_PASSWORD",
    "VSB_ENV_FILE",
)


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a ``.env`` file: ``NAME=value`` lines, ``#`` comments, quotes.

    Raises:
        ConfigError: a line is not of that form (named by line number).
    """
    values: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError("VSB_ENV_FILE", f"expected UTF-8 text in {path}") from None
    except OSError as exc:
        raise ConfigError(
            "VSB_ENV_FILE", f"cannot read {path} ({type(exc).__name__})"
        ) from None
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ConfigError(
                "VSB_ENV_FILE", f"line {number} of {path} is not NAME=value"
            )
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    return values


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every setting.

    Args:
        environ: the variables to read; ``os.environ`` by default. A ``.env``
            file (``VSB_ENV_FILE``, default ``./.env``) fills in the names it
            does not hold.

    Raises:
        ConfigError: the first bad setting, naming the variable.
    """
    env = dict(os.environ if environ is None else environ)
    env_file = Path(env.get("VSB_ENV_FILE") or ".env")
    if env_file.is_file():
        env = {**read_env_file(env_file), **env}
    elif "VSB_ENV_FILE" in env:
        raise ConfigError(
            "VSB_ENV_FILE", f"expected a readable file, got {str(env_file)!r}"
        )

    values: dict[str, Any] = {}
    for var in _VARS:
        raw = env.get(var.name)
        if raw is None or raw == "":
            continue
        try:
            values[var.field] = var.decode(raw)
        except ValueError as exc:
            shown = "" if var.secret else f", got {raw!r}"
            raise ConfigError(var.name, f"expected {exc}{shown}") from None

    if "database_url" not in values and env.get("DB_HOST"):
        values["database_url"] = _url_from_parts(env)
    _check_together(values)
    settings = Settings(**values)
    settings.resolve_shard_ids()  # a bad pod name stops start-up here
    return settings


def _url_from_parts(env: Mapping[str, str]) -> Secret:
    port = (
        _decode_one(env, "DB_PORT", _int_in(1, 65535)) if env.get("DB_PORT") else 5432
    )
    host = _decode_one(env, "DB_HOST", _host)
    user = quote(env.get("DB_USER") or "postgres", safe="")
    password = env.get("DB_PASSWORD") or ""
    name = quote(env.get("DB_NAME") or "vsb", safe="")
    auth = f"{user}:{quote(password, safe='')}" if password else user
    return Secret(f"postgresql://{auth}@{host}:{port}/{name}")


def _decode_one(env: Mapping[str, str], name: str, decode: Callable[[str], T]) -> T:
    try:
        return decode(env[name])
    except ValueError as exc:
        raise ConfigError(name, f"expected {exc}, got {env[name]!r}") from None


def _check_together(values: Mapping[str, Any]) -> None:
    """Rules that tie several settings together."""
    pool_min = values.get("db_pool_min", 2)
    pool_max = values.get("db_pool_max", 10)
    if pool_min > pool_max:
        raise ConfigError(
            "DB_POOL_MIN", f"expected at most DB_POOL_MAX ({pool_max}), got {pool_min}"
        )
    count, ids = values.get("shard_count"), values.get("shard_ids")
    if ids is not None and count is not None and max(ids) >= count:
        raise ConfigError(
            "SHARD_IDS", f"expected ids below SHARD_COUNT ({count}), got {max(ids)}"
        )
    if ids is not None and count is None:
        raise ConfigError("SHARD_COUNT", "expected a shard count when SHARD_IDS is set")
    if values.get("shard_ids_from_ordinal") and ids is not None:
        raise ConfigError(
            "SHARD_IDS_FROM_ORDINAL", "expected either it or SHARD_IDS, not both"
        )
    if values.get("shard_ids_from_ordinal") and count is None:
        raise ConfigError(
            "SHARD_COUNT", "expected a shard count when SHARD_IDS_FROM_ORDINAL is set"
        )
    if values.get("oauth_client_id") is not None:
        for name, field in (
            ("OAUTH_CLIENT_SECRET", "oauth_client_secret"),
            ("OAUTH_REDIRECT_URI", "oauth_redirect_uri"),
            ("JWT_SECRET", "jwt_secret"),
        ):
            if values.get(field) is None:
                raise ConfigError(name, "required when OAUTH_CLIENT_ID is set")
