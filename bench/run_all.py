#!/usr/bin/env python3
"""Run every area's benchmark in turn and print one summary table of ratios.

    python3 dev.py bench                    # quick sizes, about 2 minutes
    python3 dev.py bench --full             # each benchmark's own sizes, ~7 min
    python3 dev.py bench --only gateway,db  # some areas (--skip for the rest)

Areas, in order: gateway (VSB next to discord.py and hikari on the shared
harness), rest (a burst under Discord's limits, VSB and discord.py), db
(audit batches, the thread hop), cache (bytes per member and message, VSB,
discord.py and hikari), interactions (arrival to callback under load) and
moderation (local rules, the AI path, the AI cache). Each runs in its own
process and prints its own output; the summary at the end quotes ratios,
since absolute times move by 20-30% on a shared 2-core VM.

The comparisons with discord.py and hikari need the benchmark venv
(``--bench-python``, default ``../.venv-bench/bin/python``; see
bench/gateway/README.md to create it); without it those areas are skipped
with a message. Everything runs on 127.0.0.1. Never part of the test suite.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
AREAS = ("gateway", "rest", "db", "cache", "interactions", "moderation")


@dataclasses.dataclass
class Row:
    """One line of the summary: a VSB figure, the compared one, their ratio."""

    area: str
    measure: str
    vsb: str = ""
    other: str = ""
    ratio: str = ""
    note: str = ""


@dataclasses.dataclass
class Options:
    full: bool
    bench_python: Path
    shared: Path
    database_url: str | None
    timeout: float


class AreaFailed(Exception):
    """A benchmark exited non-zero or printed something we could not read."""


def _run(command: list[str], *, cwd: Path, timeout: float) -> str:
    """Run one benchmark, echo its output as it comes, return all of it."""
    print("$ " + " ".join(command), flush=True)
    lines: list[str] = []
    with subprocess.Popen(
        command,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        assert process.stdout is not None
        deadline = time.monotonic() + timeout
        for line in process.stdout:
            print("  " + line, end="", flush=True)
            lines.append(line)
            if time.monotonic() > deadline:
                process.kill()
                raise AreaFailed(f"killed after {timeout:.0f} s")
        code = process.wait()
    if code != 0:
        raise AreaFailed(f"exit status {code}")
    return "".join(lines)


def _search(pattern: str, text: str) -> re.Match[str]:
    found = re.search(pattern, text, re.MULTILINE)
    if found is None:
        raise AreaFailed(f"no line matching {pattern!r} in the output")
    return found


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def _have_bench_python(options: Options) -> str | None:
    """None when the benchmark venv is usable, else why it is not."""
    python = options.bench_python
    if not python.exists():
        return (
            f"no benchmark venv at {python} (create it as bench/README.md says, "
            "or pass --bench-python)"
        )
    probe = subprocess.run(
        [str(python), "-c", "import discord, hikari, vsb"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        return f"{python} cannot import discord, hikari and vsb"
    return None


# -- areas -------------------------------------------------------------------------


def bench_gateway(options: Options, tmp: Path) -> list[Row]:
    harness = options.shared / "run.py"
    if not harness.exists():
        return [Row("gateway", "events/s", note=f"skipped: no harness at {harness}")]
    missing = _have_bench_python(options)
    if missing:
        return [Row("gateway", "events/s", note=f"skipped: {missing}")]
    out = tmp / "gateway.json"
    sizes = [] if options.full else ["--messages", "20000", "--members", "1000,20000"]
    sizes += [] if options.full else ["--reps", "1"]
    _run(
        [
            str(options.bench_python),
            str(harness),
            "--add",
            f"vsb={BENCH / 'drv_vsb.py'}",
            *sizes,
            "--json",
            str(out),
        ],
        cwd=options.shared.parent,
        timeout=options.timeout,
    )
    return _gateway_rows(json.loads(out.read_text())["results"])


def _gateway_rows(results: list[dict[str, Any]]) -> list[Row]:
    by: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for result in results:
        by.setdefault((result["members"], result["driver"]), []).append(result)

    def median(
        members: int, driver: str, key: Callable[[dict[str, Any]], float]
    ) -> float:
        return statistics.median(key(r) for r in by[members, driver])

    def rate(r: dict[str, Any]) -> float:
        return float(r["events_per_s"])

    def grown(r: dict[str, Any]) -> float:
        return float((r["rss_after_guild_kib"] - r["rss_before_kib"]) * 1024)

    sizes = sorted({m for m, _ in by})
    rows = []
    for members in sizes:
        vsb_rate = median(members, "vsb", rate)
        for other in ("discord.py", "hikari", "floor-trio"):
            if (members, other) not in by:
                continue
            theirs = median(members, other, rate)
            rows.append(
                Row(
                    "gateway",
                    f"events/s, {members:,} members, vs {other}",
                    f"{vsb_rate:,.0f}",
                    f"{theirs:,.0f}",
                    _ratio(vsb_rate, theirs),
                    "goal >= 2x discord.py" if other == "discord.py" else "",
                )
            )
    if len(sizes) < 2:
        return rows
    small, large = sizes[0], sizes[-1]

    def marginal(driver: str) -> float:
        extra = median(large, driver, grown) - median(small, driver, grown)
        return extra / (large - small)

    for other in ("discord.py", "hikari"):
        if (large, other) in by and (small, other) in by:
            rows.append(
                Row(
                    "gateway",
                    f"RSS B/member ({large:,} minus {small:,}), vs {other}",
                    f"{marginal('vsb'):,.0f}",
                    f"{marginal(other):,.0f}",
                    _ratio(marginal("vsb"), marginal(other)),
                    "goal <= 700 B" if other == "discord.py" else "",
                )
            )
    return rows


def bench_rest(options: Options, tmp: Path) -> list[Row]:
    missing = _have_bench_python(options)
    if missing:
        return [Row("rest", "burst time", note=f"skipped: {missing}")]
    total = [] if options.full else ["--total", "600"]
    text = _run(
        [
            sys.executable,
            str(BENCH / "rest" / "run.py"),
            *total,
            "--dpy-python",
            str(options.bench_python),
        ],
        cwd=ROOT,
        timeout=options.timeout,
    )
    messages = _search(r"^(\d+) messages over .*minimum ([\d.]+) s", text)
    ours = _search(r"^\| VSB RestClient \| ([\d.]+) \| ([-+\d.]+%) \| (\d+)", text)
    theirs = _search(r"^\| discord\.py [^|]*\| ([\d.]+) \| ([-+\d.]+%) \| (\d+)", text)
    vsb_s, dpy_s = float(ours[1]), float(theirs[1])
    return [
        Row(
            "rest",
            f"{messages[1]} messages, s (vs discord.py)",
            f"{vsb_s:.2f}",
            f"{dpy_s:.2f}",
            _ratio(vsb_s, dpy_s),
            f"429s: VSB {ours[3]}, discord.py {theirs[3]}",
        ),
        Row(
            "rest",
            "burst time vs the limits' minimum",
            f"{vsb_s:.2f}",
            messages[2],
            _ratio(vsb_s, float(messages[2])),
            "goal within 5% (at 1,000), no 429",
        ),
    ]


def bench_db(options: Options, tmp: Path) -> list[Row]:
    command = [sys.executable, str(BENCH / "db" / "run.py")]
    if options.database_url:
        command += ["--url", options.database_url]
    if not options.full:
        command += ["--entries", "20000", "--singles", "1000", "--pings", "2000"]
    text = _run(command, cwd=ROOT, timeout=options.timeout)
    single = _number(_search(r"single INSERT \(1 task\):\s+([\d.]+)", text)[1])
    batched = _number(_search(r"AuditWriter COPY batches:\s+([\d.]+)", text)[1])
    direct = _search(r"^\s+direct\s+([\d.]+)\s+([\d.]+)", text)
    pooled = _search(r"^\s+db_run_sync\s+([\d.]+)\s+([\d.]+)", text)
    where = "PostgreSQL over TCP" if options.database_url else "embedded PostgreSQL"
    return [
        Row(
            "db",
            "audit entries/s, batched vs single INSERT",
            f"{batched:,.0f}",
            f"{single:,.0f}",
            _ratio(batched, single),
            where,
        ),
        Row(
            "db",
            "SELECT 1 ms median, db.run_sync vs direct",
            pooled[1],
            direct[1],
            _ratio(float(pooled[1]), float(direct[1])),
            f"p99 {pooled[2]} ms vs {direct[2]} ms",
        ),
    ]


def bench_cache(options: Options, tmp: Path) -> list[Row]:
    missing = _have_bench_python(options)
    if missing:
        return [Row("cache", "bytes per member", note=f"skipped: {missing}")]
    out = tmp / "cache.json"
    sizes = [] if options.full else ["--sizes", "1000,20000", "--messages", "5000"]
    sizes += [] if options.full else ["--reps", "1"]
    _run(
        [
            str(options.bench_python),
            str(BENCH / "cache" / "run.py"),
            "--shared",
            str(options.shared),
            *sizes,
            "--json",
            str(out),
        ],
        cwd=ROOT,
        timeout=options.timeout,
    )
    sizes_run = {int(k): v for k, v in json.loads(out.read_text()).items()}
    members = max(sizes_run)
    libs = sizes_run[members]
    messages = 10_000 if options.full else 5_000

    def per_member(lib: str) -> float:
        return float(libs[lib]["member_bytes"] / libs[lib]["members"])

    def per_message(lib: str) -> float:
        return float(libs[lib]["message_bytes"] / messages)

    rows = []
    for other in ("discord.py", "hikari"):
        rows.append(
            Row(
                "cache",
                f"traced B/member, {members:,} members, vs {other}",
                f"{per_member('vsb'):,.0f}",
                f"{per_member(other):,.0f}",
                _ratio(per_member("vsb"), per_member(other)),
                "goal <= 1/3 of discord.py" if other == "discord.py" else "",
            )
        )
    for other in ("discord.py", "hikari"):
        rows.append(
            Row(
                "cache",
                f"traced B/message, vs {other}",
                f"{per_message('vsb'):,.0f}",
                f"{per_message(other):,.0f}",
                _ratio(per_message("vsb"), per_message(other)),
            )
        )
    return rows


def bench_interactions(options: Options, tmp: Path) -> list[Row]:
    size = [] if options.full else ["--commands", "100"]
    text = _run(
        [sys.executable, str(BENCH / "interactions" / "run.py"), *size],
        cwd=ROOT,
        timeout=options.timeout,
    )
    result = json.loads(text[text.index("{") :])
    idle, loaded = result["idle"]["bot_ms"], result["loaded"]["bot_ms"]
    rate = result["loaded"]["message_create_per_s"]
    return [
        Row(
            "interactions",
            f"callback p99 ms, {rate:,} msg/s load vs idle",
            f"{loaded['p99']}",
            f"{idle['p99']}",
            _ratio(loaded["p99"], idle["p99"]),
            f"goal p99 < 50 ms; p50 {loaded['p50']} ms; "
            f"10062s: {result['unknown_interaction']}",
        )
    ]


def bench_moderation(options: Options, tmp: Path) -> list[Row]:
    text = _run(
        [sys.executable, str(BENCH / "moderation" / "bench_moderation.py")],
        cwd=ROOT,
        timeout=options.timeout,
    )
    local = _number(_search(r"^local rules: .*= ([\d,]+) msg/s", text)[1])
    ai = _search(r"^AI path .*limiter 64\): .*= ([\d.]+) msg/s", text)
    cache = _search(r"normalized key hit ratio ([\d.]+)%.*raw-text key ([\d.]+)%", text)
    return [
        Row(
            "moderation",
            "local rules msg/s vs the 20,000 goal",
            f"{local:,.0f}",
            "20,000",
            _ratio(local, 20_000),
        ),
        Row(
            "moderation",
            "AI path msg/s, 64 slots, 200 ms answers",
            ai[1],
            "320",
            _ratio(float(ai[1]), 320),
            "vs the ideal 64 / 0.2 s",
        ),
        Row(
            "moderation",
            "AI cache hit ratio, normalized vs raw key",
            f"{cache[1]}%",
            f"{cache[2]}%",
            _ratio(float(cache[1]), float(cache[2])),
        ),
    ]


RUNNERS: dict[str, Callable[[Options, Path], list[Row]]] = {
    "gateway": bench_gateway,
    "rest": bench_rest,
    "db": bench_db,
    "cache": bench_cache,
    "interactions": bench_interactions,
    "moderation": bench_moderation,
}


# -- the whole run -----------------------------------------------------------------


def summary(rows: list[Row]) -> str:
    header = Row("area", "measure", "VSB", "other", "VSB/other", "note")
    table = [header, *rows]
    widths = [
        max(len(getattr(r, f.name)) for r in table) for f in dataclasses.fields(Row)[:5]
    ]

    def line(row: Row) -> str:
        cells = [getattr(row, f.name) for f in dataclasses.fields(Row)]
        padded = [
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=False))
        ]
        return "  ".join([*padded, cells[5]]).rstrip()

    rule = "  ".join("-" * w for w in widths) + "  ----"
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def _areas(text: str | None) -> list[str]:
    if not text:
        return []
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in AREAS]
    if unknown:
        sys.exit(f"run_all.py: unknown area {unknown[0]!r}; areas: {', '.join(AREAS)}")
    return names


def parse_args(argv: list[str]) -> tuple[Options, list[str], Path | None]:
    parser = argparse.ArgumentParser(
        description="Run every VSB benchmark in turn and print a summary of ratios."
    )
    parser.add_argument(
        "--full", action="store_true", help="each benchmark's own (full) sizes"
    )
    parser.add_argument("--only", help=f"comma list from {','.join(AREAS)}")
    parser.add_argument("--skip", help="comma list of areas to leave out")
    parser.add_argument(
        "--bench-python",
        type=Path,
        default=Path(
            os.environ.get("VSB_BENCH_PYTHON", ROOT.parent / ".venv-bench/bin/python")
        ),
        help="Python with discord.py, hikari and vsb (default ../.venv-bench)",
    )
    parser.add_argument(
        "--shared",
        type=Path,
        default=ROOT.parent / "shared" / "bench",
        help="the shared gateway harness (default ../shared/bench)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("VSB_BENCH_DATABASE_URL")
        or os.environ.get("VSB_TEST_DATABASE_URL"),
        help="PostgreSQL for the db area (default: an embedded one)",
    )
    parser.add_argument(
        "--timeout", type=float, default=900, help="seconds per area (default 900)"
    )
    parser.add_argument("--json", type=Path, help="also write the summary rows here")
    args = parser.parse_args(argv)
    areas = _areas(args.only) or list(AREAS)
    skipped = set(_areas(args.skip))
    options = Options(
        full=args.full,
        bench_python=args.bench_python,
        shared=args.shared.resolve(),
        database_url=args.database_url,
        timeout=args.timeout,
    )
    return options, [a for a in areas if a not in skipped], args.json


def _reexec_in_venv(argv: list[str]) -> None:
    """Run under the project's .venv when started by another Python."""
    if importlib.util.find_spec("vsb") is not None:
        return
    python = ROOT / ".venv" / "bin" / "python"
    if not python.exists():
        sys.exit("run_all.py: vsb is not importable; run python3 dev.py bench")
    os.execv(str(python), [str(python), __file__, *argv])


def main(argv: list[str]) -> int:
    _reexec_in_venv(argv)
    options, areas, json_path = parse_args(argv)
    rows: list[Row] = []
    failed = 0
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="vsb-bench-") as tmp:
        for area in areas:
            print(f"\n== {area} ==", flush=True)
            area_start = time.monotonic()
            try:
                rows += RUNNERS[area](options, Path(tmp))
            except AreaFailed as exc:
                failed += 1
                rows.append(Row(area, "", note=f"FAILED: {exc}"))
            print(f"== {area}: {time.monotonic() - area_start:.0f} s", flush=True)
    print(
        f"\nSummary ({'full' if options.full else 'quick'} sizes, "
        f"{time.monotonic() - started:.0f} s; see bench/README.md for the full runs)"
    )
    print(summary(rows))
    if json_path:
        json_path.write_text(
            json.dumps([dataclasses.asdict(r) for r in rows], indent=2)
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
