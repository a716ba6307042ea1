"""The assembled bot: word list, REST budget split, migrate command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vsb.app import DISCORD_API_BASE, _global_limit, migrate_command
from vsb.config import Settings
from vsb.moderation.rules import LocalClassifier, RuleConfig
from vsb.moderation.words import DEFAULT_WORDS, WordListError, load_words
from vsb.secret import Secret


def test_default_word_list_flags_an_insult() -> None:
    rules = LocalClassifier(RuleConfig(words=load_words(None)))
    assert load_words(None) == dict(DEFAULT_WORDS)
    verdict = rules.classify("you are an 1d1ot", author_id=1, channel_id=2, now=0.0)
    assert verdict.scores["toxic"] >= 0.9


def test_word_file_is_read_and_bad_lines_are_named(tmp_path: Path) -> None:
    good = tmp_path / "words.txt"
    good.write_text("# ours\ntoxic  dimwit\n\nhate some phrase here\n")
    assert load_words(good) == {"dimwit": "toxic", "some phrase here": "hate"}
    bad = tmp_path / "bad.txt"
    bad.write_text("toxic ok\nrude word\n")
    with pytest.raises(WordListError, match=r"bad.txt:2"):
        load_words(bad)


def test_global_limit_split_by_shard_share_only_without_proxy() -> None:
    direct = Settings(shard_count=16, shard_ids=(0, 1, 2, 3))
    assert direct.discord_api_base == DISCORD_API_BASE
    assert _global_limit(direct, direct.shard_ids) == pytest.approx(12.5)
    proxied = Settings(
        shard_count=16, shard_ids=(0, 1, 2, 3), discord_api_base="http://proxy/api/v10"
    )
    assert _global_limit(proxied, proxied.shard_ids) == 50.0
    every = Settings()
    assert _global_limit(every, None) == 50.0


def test_migrate_command_up_status_down(
    empty_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(database_url=Secret(empty_database_url))
    assert migrate_command(settings, "up", 1) == 0
    assert "applied: 0001" in capsys.readouterr().out
    assert migrate_command(settings, "status", 1) == 0
    status = capsys.readouterr().out.splitlines()
    assert status and all(line.startswith("applied") for line in status)
    assert migrate_command(settings, "down", 1) == 0
    assert "rolled back: 0002" in capsys.readouterr().out
    assert migrate_command(settings, "status", 1) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("pending")


def test_migrate_command_reports_a_bad_database(
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = Settings(
        database_url=Secret("postgresql://nobody:hunter2@127.0.0.1:1/none")
    )
    assert migrate_command(settings, "status", 1) == 1
    err = capsys.readouterr().err
    assert "check DATABASE_URL" in err and "hunter2" not in err


def test_run_with_unreachable_database_is_one_error_line_exit_1(
    tmp_path: Path,
) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "DISCORD_BOT_TOKEN": "token-that-never-leaves",
        "DATABASE_URL": "postgresql://u:pw-secret-7@127.0.0.1:1/db",
        "LOG_FORMAT": "json",
    }
    result = subprocess.run(
        [sys.executable, "-m", "vsb", "run"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert "pw-secret-7" not in output and "token-that-never-leaves" not in output
    lines = [json.loads(line) for line in output.splitlines()]
    failed = [line for line in lines if line["event"] == "app.start_failed"]
    assert len(failed) == 1 and "check DATABASE_URL" in failed[0]["error"]


def test_migrate_errors_go_to_stderr_with_the_reason(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "vsb", "migrate", "status"],
        env={
            "PATH": "/usr/bin:/bin",
            "DATABASE_URL": "postgresql://u:pw-secret-7@127.0.0.1:1/db",
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and result.stdout == ""
    assert "refused" in result.stderr.lower() and "pw-secret-7" not in result.stderr
