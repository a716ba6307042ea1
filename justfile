# Every recipe goes through dev.py, which needs only Python 3.11+.

# make .venv and install the pinned dependencies
setup:
    python3 dev.py setup

# run the bot (needs DISCORD_BOT_TOKEN; see README)
run:
    python3 dev.py run

# run the bot against the emulated Discord and play the scene
sandbox *ARGS:
    python3 dev.py sandbox {{ARGS}}

# the whole test suite
test *ARGS:
    python3 dev.py test {{ARGS}}

# ruff, ruff format --check, mypy --strict on vsb/
lint:
    python3 dev.py lint

# every benchmark, side by side (see bench/README.md)
bench *ARGS:
    python3 dev.py bench {{ARGS}}

# apply (up), roll back (down) or list (status) migrations
migrate ACTION="up":
    python3 dev.py migrate {{ACTION}}
