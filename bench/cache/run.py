"""Cache memory benchmark: VSB, discord.py and hikari loading the same guild.

Generates READY, one GUILD_CREATE and a MESSAGE_CREATE stream with the shared
harness's ``payloads.py`` (seeded, so every library and every run sees the
same bytes), then runs ``load.py`` once per library, guild size and mode in a
fresh process, and prints per-member and per-message figures side by side.

Run it with a Python that has discord.py, hikari and VSB installed (see
README.md beside this file)::

    python bench/cache/run.py [--shared ../shared/bench] [--reps 3]

Memory figures come from tracemalloc and do not vary between runs; times
are medians over ``--reps`` runs.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
LIBS = ("vsb", "discord.py", "hikari")


def generate(
    shared: pathlib.Path, members: int, messages: int, out: pathlib.Path
) -> None:
    """Write ready.json, guild.json and messages.jsonl (each event's ``d``)."""
    sys.path.insert(0, str(shared))
    import msgspec
    from payloads import Scenario

    scenario = Scenario(members=members, messages=messages)
    encode = msgspec.json.encode
    out.mkdir(parents=True, exist_ok=True)
    (out / "ready.json").write_bytes(encode(scenario.ready(1)["d"]))
    (out / "guild.json").write_bytes(encode(scenario.guild_create(2)["d"]))
    lines = (encode(scenario.message(i, 3 + i)["d"]) for i in range(messages))
    (out / "messages.jsonl").write_bytes(b"\n".join(lines))


def load(lib: str, folder: pathlib.Path, mode: str) -> dict[str, Any]:
    command = [sys.executable, str(HERE / "load.py"), lib, str(folder), mode]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{lib} {mode} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure(folder: pathlib.Path, reps: int) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for lib in LIBS:
        memory = load(lib, folder, "memory")
        times = [load(lib, folder, "time") for _ in range(reps)]
        for key in ("guild_s", "messages_s", "rss_guild_bytes", "peak_rss_kib"):
            memory[key] = statistics.median(t[key] for t in times)
        results[lib] = memory
    return results


def report(sizes: dict[int, dict[str, dict[str, Any]]], messages: int) -> str:
    lines = [
        f"{'members':>7}  {'library':<10}  {'B/member':>8}  {'x dpy':>5}  "
        f"{'B/message':>9}  {'x dpy':>5}  {'GC objects':>10}  {'peak MiB':>8}  "
        f"{'guild s':>7}  {'us/msg':>6}  {'RSS+guild MiB':>13}",
        "-" * 110,
    ]
    for members, results in sizes.items():
        base = results["discord.py"]
        for lib, r in results.items():
            per_member = r["member_bytes"] / r["members"]
            per_message = r["message_bytes"] / messages
            lines.append(
                f"{members:>7,}  {lib:<10}  {per_member:>8,.0f}  "
                f"{r['member_bytes'] / base['member_bytes']:>5.2f}  "
                f"{per_message:>9,.0f}  "
                f"{r['message_bytes'] / base['message_bytes']:>5.2f}  "
                f"{r['gc_objects']:>10,}  {r['guild_peak_bytes'] / 2**20:>8.1f}  "
                f"{r['guild_s']:>7.2f}  {r['messages_s'] / messages * 1e6:>6.1f}  "
                f"{r['rss_guild_bytes'] / 2**20:>13.1f}"
            )
    small, large = min(sizes), max(sizes)
    lines.append("")
    lines.append(
        f"marginal bytes per cached member ({large:,} minus {small:,} members):"
    )
    for lib in LIBS:
        extra = sizes[large][lib]["member_bytes"] - sizes[small][lib]["member_bytes"]
        lines.append(f"  {lib:<10} {extra / (large - small):>6,.0f} B")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--shared",
        type=pathlib.Path,
        default=HERE.parents[2] / "shared" / "bench",
        help="folder of the shared harness (holds payloads.py)",
    )
    parser.add_argument("--sizes", default="1000,100000", help="guild sizes")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=3, help="timed runs per case")
    parser.add_argument("--json", type=pathlib.Path, help="also write raw results")
    args = parser.parse_args()

    sizes: dict[int, dict[str, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="vsb-cache-bench-") as tmp:
        for members in (int(s) for s in args.sizes.split(",")):
            folder = pathlib.Path(tmp) / str(members)
            generate(args.shared, members, args.messages, folder)
            sizes[members] = measure(folder, args.reps)
    print(report(sizes, args.messages))
    if args.json:
        args.json.write_text(json.dumps(sizes, indent=2))


if __name__ == "__main__":
    main()
