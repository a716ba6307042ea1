"""The command line: ``python -m vsb [run|sandbox|migrate|check-config]``.

Exit status: 0 done, 1 runtime failure, 2 bad settings or usage. A bad
setting is reported as exactly one line on stderr naming the variable.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from vsb import __version__
from vsb.config import ConfigError, Settings, load_settings
from vsb.log import configure_logging

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

log = logging.getLogger("vsb")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse's default prints the whole usage block; one line is enough.
        self.exit(EXIT_USAGE, f"vsb: {message} (see python -m vsb --help)\n")


def _positive_int(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of at least 1, got {raw!r}"
        )
    return int(raw)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m vsb",
        description="VSB: a Discord moderation and verification bot. "
        "Settings come from the environment (see README).",
    )
    parser.add_argument("--version", action="version", version=f"vsb {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("run", help="run the bot (the default)")
    sandbox = commands.add_parser(
        "sandbox", help="run the bot against an emulated Discord and play a scene"
    )
    sandbox.add_argument(
        "--once", action="store_true", help="play the scene once, check it, exit"
    )
    sandbox.add_argument(
        "--speed", type=float, default=1.0, help="scene speed factor (default 1)"
    )
    migrate = commands.add_parser("migrate", help="apply or roll back migrations")
    migrate.add_argument("action", choices=("up", "down", "status"))
    migrate.add_argument(
        "--steps",
        type=_positive_int,
        default=1,
        help="how many to roll back with down (default 1)",
    )
    commands.add_parser(
        "check-config", help="validate settings and print them, secrets redacted"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = args.command or "run"
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE

    if command == "check-config":
        print(json.dumps(settings.redacted(), indent=2, sort_keys=True))
        return EXIT_OK

    configure_logging(settings.log_level, settings.log_format, settings.secrets())
    try:
        if command == "migrate":
            return _migrate(settings, args.action, args.steps)
        if command == "sandbox":
            from vsb.sandbox.scene import play

            return play(settings, once=args.once, speed=args.speed)
        return _run(settings)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE


def _run(settings: Settings) -> int:
    if settings.discord_bot_token is None:
        raise ConfigError(
            "DISCORD_BOT_TOKEN",
            "required for run (try VSB without Discord: python -m vsb sandbox)",
        )
    import trio

    from vsb.app import run_bot

    return trio.run(run_bot, settings)


def _migrate(settings: Settings, action: str, steps: int) -> int:
    from vsb.app import migrate_command

    return migrate_command(settings, action, steps)


if __name__ == "__main__":
    sys.exit(main())
