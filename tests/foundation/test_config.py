"""Settings: every variable's validation, defaults, .env, redaction."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vsb.config import DEFAULT_INTENTS, INTENTS, ConfigError, load_settings
from vsb.secret import Secret

TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GAbCdE.abcdefghijklmnopqrstuvwxyz0123456789"


@pytest.fixture(autouse=True)
def _no_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def test_defaults() -> None:
    settings = load_settings({})
    assert settings.discord_bot_token is None
    assert settings.discord_api_base == "https://discord.com/api/v10"
    assert settings.discord_intents == DEFAULT_INTENTS
    assert settings.discord_intents & INTENTS["message_content"]
    assert (settings.db_pool_min, settings.db_pool_max) == (2, 10)
    assert (settings.http_host, settings.http_port) == ("127.0.0.1", 8080)
    assert str(settings.data_dir) == ".vsb"
    assert (settings.log_level, settings.log_format) == ("info", "json")
    assert settings.groq_api_base == "https://api.groq.com/openai/v1"


GOOD = [
    ("DISCORD_BOT_TOKEN", TOKEN, "discord_bot_token", Secret(TOKEN)),
    (
        "DISCORD_APPLICATION_ID",
        "123456789012345678",
        "discord_application_id",
        123456789012345678,
    ),
    ("DISCORD_GUILD_ID", "42", "discord_guild_id", 42),
    (
        "DISCORD_API_BASE",
        "http://127.0.0.1:9000/api/v10/",
        "discord_api_base",
        "http://127.0.0.1:9000/api/v10",
    ),
    ("DISCORD_INTENTS", "513", "discord_intents", 513),
    ("DISCORD_INTENTS", "guilds, guild_messages", "discord_intents", 513),
    (
        "DISCORD_GATEWAY_COMPRESS",
        "zstd-stream",
        "discord_gateway_compress",
        "zstd-stream",
    ),
    ("SHARD_COUNT", "8", "shard_count", 8),
    (
        "DATABASE_URL",
        "postgresql://u:p@h:5432/d",
        "database_url",
        Secret("postgresql://u:p@h:5432/d"),
    ),
    ("DB_POOL_MIN", "0", "db_pool_min", 0),
    ("DB_POOL_MAX", "20", "db_pool_max", 20),
    ("DB_STATEMENT_TIMEOUT", "2.5", "db_statement_timeout", 2.5),
    ("GROQ_API_KEY", "gsk_abcdef123456", "groq_api_key", Secret("gsk_abcdef123456")),
    ("ADMIN_LOG_CHANNEL_ID", "99", "admin_log_channel_id", 99),
    ("DEVELOPER_IDS", "1, 2,3", "developer_ids", frozenset({1, 2, 3})),
    ("VSB_HTTP_HOST", "0.0.0.0", "http_host", "0.0.0.0"),
    ("VSB_HTTP_PORT", "0", "http_port", 0),
    ("VSB_DATA_DIR", "/var/lib/vsb", "data_dir", Path("/var/lib/vsb")),
    ("LOG_LEVEL", "DEBUG", "log_level", "debug"),
    ("LOG_FORMAT", "console", "log_format", "console"),
    ("VSB_SHUTDOWN_TIMEOUT", "3", "shutdown_timeout", 3.0),
    ("DISCORD_PUBLIC_KEY", "ab" * 32, "discord_public_key", "ab" * 32),
]


@pytest.mark.parametrize(("name", "raw", "field", "expected"), GOOD)
def test_good_values(name: str, raw: str, field: str, expected: object) -> None:
    assert getattr(load_settings({name: raw}), field) == expected


BAD = [
    ("DISCORD_GUILD_ID", "abc", "expected a Discord snowflake (digits), got 'abc'"),
    ("DISCORD_GUILD_ID", "-5", "snowflake"),
    ("DISCORD_APPLICATION_ID", "1e9", "snowflake"),
    ("ADMIN_LOG_CHANNEL_ID", "99999999999999999999999", "snowflake"),
    ("DEVELOPER_IDS", "1,x", "comma-separated Discord snowflakes"),
    ("DISCORD_API_BASE", "discord.com/api", "http:// or https:// URL"),
    ("DISCORD_INTENTS", "guilds,nonsense", "intents"),
    ("DISCORD_INTENTS", str(1 << 40), "intents bitfield"),
    ("DISCORD_GATEWAY_COMPRESS", "gzip", "one of zlib-stream, zstd-stream, none"),
    ("SHARD_COUNT", "0", "integer from 1"),
    ("SHARD_COUNT", "many", "integer from 1"),
    ("SHARD_IDS", "3-1", "shard ids like 0-3 or 4,5"),
    ("DATABASE_URL", "mysql://x@y/z", "postgresql:// URL"),
    ("DB_POOL_MAX", "0", "integer from 1 to 1000"),
    ("DB_POOL_TIMEOUT", "-1", "seconds"),
    ("GROQ_API_BASE", "ftp://x", "http:// or https:// URL"),
    ("OAUTH_REDIRECT_URI", "not a url", "URL"),
    ("VSB_HTTP_PORT", "70000", "integer from 0 to 65535"),
    ("VSB_HTTP_HOST", "a b", "host name"),
    ("LOG_LEVEL", "loud", "one of debug, info, warning, error"),
    ("LOG_FORMAT", "xml", "one of json, console"),
    ("DISCORD_PUBLIC_KEY", "xyz", "64 hex digits"),
    ("SHARD_COUNT", "\u0663", "integer from 1"),  # an Arabic-Indic three
    ("SHARD_IDS", "\u00b2", "shard ids like 0-3 or 4,5"),
    ("DATABASE_URL", "postgresql://u@h:notaport/d", "numeric port"),
    ("VSB_WORDS_FILE", "/nonexistent/words.txt", "a readable file, got"),
]


@pytest.mark.parametrize(("name", "raw", "expected"), BAD)
def test_bad_values_name_the_variable(name: str, raw: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({name: raw})
    assert info.value.variable == name
    assert str(info.value).startswith(f"{name}: expected")
    assert expected in str(info.value)


@pytest.mark.parametrize(
    ("name", "raw"),
    [("JWT_SECRET", "short"), ("DATABASE_URL", "mysql://user:hunter2secret@h/d")],
)
def test_bad_secret_value_is_not_shown(name: str, raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({name: raw})
    assert raw not in str(info.value)
    assert str(info.value).startswith(name)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Bot abc.def", "without the 'Bot ' prefix"),
        ("caf\u00e9secret", "printable ASCII"),
        ("abc\ndef", "printable ASCII"),
        ("abc def", "printable ASCII"),
    ],
)
def test_bad_bot_token_shapes_stop_start_up(raw: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"DISCORD_BOT_TOKEN": raw})
    message = str(info.value)
    assert message.startswith("DISCORD_BOT_TOKEN: expected") and expected in message
    assert raw not in message and "\n" not in message


def test_rules_across_settings() -> None:
    with pytest.raises(ConfigError, match="^DB_POOL_MIN:"):
        load_settings({"DB_POOL_MIN": "5", "DB_POOL_MAX": "2"})
    with pytest.raises(ConfigError, match="^SHARD_IDS: expected ids below SHARD_COUNT"):
        load_settings({"SHARD_COUNT": "2", "SHARD_IDS": "0-3"})
    with pytest.raises(ConfigError, match="^SHARD_COUNT:"):
        load_settings({"SHARD_IDS": "0"})
    with pytest.raises(ConfigError, match="^OAUTH_CLIENT_SECRET: required"):
        load_settings({"OAUTH_CLIENT_ID": "1"})
    settings = load_settings({"SHARD_COUNT": "8", "SHARD_IDS": "0-2,6"})
    assert settings.shard_ids == (0, 1, 2, 6)


def test_database_url_from_parts() -> None:
    settings = load_settings(
        {
            "DB_HOST": "db",
            "DB_PORT": "6543",
            "DB_USER": "vsb",
            "DB_PASSWORD": "p@ss word",
            "DB_NAME": "bot",
        }
    )
    assert settings.database_url is not None
    assert (
        settings.database_url.reveal() == "postgresql://vsb:p%40ss%20word@db:6543/bot"
    )
    with pytest.raises(ConfigError, match="^DB_PORT:"):
        load_settings({"DB_HOST": "db", "DB_PORT": "x"})


def test_env_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / "custom.env"
    env_file.write_text(
        "# comment\nexport DISCORD_GUILD_ID=7\nLOG_LEVEL='debug'\nVSB_HTTP_PORT=\"9000\"\n"
    )
    settings = load_settings({"VSB_ENV_FILE": str(env_file), "LOG_LEVEL": "error"})
    assert settings.discord_guild_id == 7
    assert settings.http_port == 9000
    assert settings.log_level == "error"
    (tmp_path / ".env").write_text("DISCORD_GUILD_ID=8\n")
    assert load_settings({}).discord_guild_id == 8


def test_bad_env_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.env"
    bad.write_text("just words\n")
    with pytest.raises(ConfigError, match="^VSB_ENV_FILE: line 1"):
        load_settings({"VSB_ENV_FILE": str(bad)})
    with pytest.raises(ConfigError, match="^VSB_ENV_FILE: expected a readable file"):
        load_settings({"VSB_ENV_FILE": str(tmp_path / "missing.env")})
    binary = tmp_path / "binary.env"
    binary.write_bytes(b"DISCORD_BOT_TOKEN=\xff\xfe\n")
    with pytest.raises(ConfigError, match="^VSB_ENV_FILE: expected UTF-8 text"):
        load_settings({"VSB_ENV_FILE": str(binary)})


def test_redacted_settings_hold_no_secret() -> None:
    settings = load_settings(
        {
            "DISCORD_BOT_TOKEN": TOKEN,
            "DATABASE_URL": "postgresql://vsb:dbpassword123@h/d",
            "GROQ_API_KEY": "gsk_groqsecret",
            "OAUTH_CLIENT_ID": "1",
            "OAUTH_CLIENT_SECRET": "clientsecret123",
            "OAUTH_REDIRECT_URI": "http://127.0.0.1:8080/oauth/callback",
            "JWT_SECRET": "j" * 40,
        }
    )
    text = json.dumps(settings.redacted()) + repr(settings) + str(settings)
    for secret in (
        TOKEN,
        "dbpassword123",
        "gsk_groqsecret",
        "clientsecret123",
        "j" * 40,
    ):
        assert secret not in text
        assert secret in settings.secrets() or secret == "dbpassword123"
    assert "dbpassword123" in settings.secrets()
    assert settings.redacted()["database_url"] == "postgresql://vsb:<redacted>@h/d"


def _cli(
    *args: str, env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vsb", *args],
        env={"PATH": "/usr/bin:/bin", **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_config_bad_guild_id_one_line_exit_2(tmp_path: Path) -> None:
    result = _cli("check-config", env={"DISCORD_GUILD_ID": "abc"}, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "DISCORD_GUILD_ID: expected a Discord snowflake (digits), got 'abc'"
    ]


def test_check_config_prints_redacted_json(tmp_path: Path) -> None:
    result = _cli("check-config", env={"DISCORD_BOT_TOKEN": TOKEN}, cwd=tmp_path)
    assert result.returncode == 0
    assert TOKEN not in result.stdout
    assert json.loads(result.stdout)["discord_bot_token"] == "<redacted>"


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert _cli("frobnicate", env={}, cwd=tmp_path).returncode == 2
    assert _cli("migrate", "sideways", env={}, cwd=tmp_path).returncode == 2
    steps = _cli("migrate", "down", "--steps", "0", env={}, cwd=tmp_path)
    assert steps.returncode == 2 and len(steps.stderr.splitlines()) == 1
    version = _cli("--version", env={}, cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("vsb ")


def test_run_without_token_is_one_line_exit_2(tmp_path: Path) -> None:
    result = _cli("run", env={}, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "DISCORD_BOT_TOKEN: required for run"
    )


@pytest.mark.parametrize(
    ("pod", "per_pod", "expected"),
    [
        ("vsb-0", "2", (0, 1)),
        ("vsb-1", "2", (2, 3)),
        ("vsb-2", "3", (6,)),
        ("vsb-3", "1", (3,)),
    ],
)
def test_shard_ids_from_statefulset_ordinal(
    pod: str, per_pod: str, expected: tuple[int, ...]
) -> None:
    settings = load_settings(
        {
            "SHARD_COUNT": "7",
            "SHARD_IDS_FROM_ORDINAL": "per_pod",
            "SHARDS_PER_POD": per_pod,
            "POD_NAME": pod,
        }
    )
    assert settings.resolve_shard_ids() == expected


def test_shard_ids_from_ordinal_errors() -> None:
    base = {"SHARD_COUNT": "2", "SHARD_IDS_FROM_ORDINAL": "per_pod"}
    # Checked when the settings are loaded, so check-config and run stop
    # with one line (exit 2) rather than inside the running bot.
    with pytest.raises(ConfigError, match="^POD_NAME:"):
        load_settings({**base, "POD_NAME": "vsb"})
    with pytest.raises(ConfigError, match="^POD_NAME:"):
        load_settings({**base, "POD_NAME": "vsb-\u0663"})
    with pytest.raises(ConfigError, match="^SHARDS_PER_POD:"):
        load_settings({**base, "POD_NAME": "vsb-5"})
    with pytest.raises(ConfigError, match="^SHARD_IDS_FROM_ORDINAL: expected either"):
        load_settings({**base, "POD_NAME": "vsb-0", "SHARD_IDS": "0"})
    assert load_settings({}).resolve_shard_ids() is None
