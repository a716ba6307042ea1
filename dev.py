#!/usr/bin/env python3
"""Developer entry point that needs nothing but Python 3.11+.

    python3 dev.py sandbox [--once]   set up, then run the bot on an emulated Discord
    python3 dev.py test [ARGS]        set up, then run the whole test suite
    python3 dev.py setup | run | lint | bench | migrate up|down|status | check-config

`setup` makes `.venv` and installs the pinned dependencies (constraints.txt)
and the package in editable mode; every other command runs it first when
pyproject.toml or constraints.txt changed since the last install.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"
STAMP = VENV / ".vsb-installed"


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for name in ("pyproject.toml", "constraints.txt"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def setup(force: bool = False) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 (dev.py must run on older Pythons to say so)
        sys.exit("VSB needs Python 3.11 or newer; this is " + sys.version.split()[0])
    if (
        not force
        and PYTHON.exists()
        and STAMP.exists()
        and STAMP.read_text() == _fingerprint()
    ):
        return
    if not PYTHON.exists():
        print("dev.py: creating .venv", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    print("dev.py: installing pinned dependencies into .venv", file=sys.stderr)
    pip = [
        str(PYTHON),
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]
    subprocess.run(
        [*pip, "-c", str(ROOT / "constraints.txt"), "-e", f"{ROOT}[test]"], check=True
    )
    STAMP.write_text(_fingerprint())


def _exec(*args: str) -> None:
    os.chdir(ROOT)
    os.execv(str(PYTHON), [str(PYTHON), *args])


def main(argv: list[str]) -> None:
    command, rest = (argv[0], argv[1:]) if argv else ("help", [])
    if command in ("help", "-h", "--help"):
        print(__doc__)
        return
    if command == "setup":
        setup(force="--force" in rest)
        return
    setup()
    if command == "test":
        _exec("-m", "pytest", *rest)
    elif command == "lint":
        for tool in (
            ["ruff", "check", "vsb", "tests", "bench"],
            ["ruff", "format", "--check", "vsb", "tests", "bench"],
            ["mypy", "vsb"],
        ):
            subprocess.run([str(PYTHON), "-m", *tool], check=True, cwd=ROOT)
    elif command == "bench":
        _exec(str(ROOT / "bench" / "run_all.py"), *rest)
    elif command in ("run", "sandbox", "migrate", "check-config"):
        _exec("-m", "vsb", command, *rest)
    else:
        sys.exit(f"dev.py: unknown command {command!r} (see python3 dev.py help)")


if __name__ == "__main__":
    main(sys.argv[1:])
