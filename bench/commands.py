"""Whole commands, as a user runs them: each ``duties`` command a process of its own, timed with its peak RSS.

    python -m bench.commands [--units 20000] [--keep DIR]

A synthetic city of N units on the shipped programme (bench/scenario.py) in a fresh var folder, in the documented
configuration (no DUTIES_SECRET_KEY, SQLite under the var folder). In order:

- ``duties init``: a new store, the calendars parsed fully (nothing compiled yet) and synced; then again;
- ``duties plan`` of a year, and its baseline: a raw sqlite3 ``executemany`` of the very rows the plan wrote, in one
  transaction, into an identical fresh store (bench/scale.py's ``raw_insert``);
- ``duties tick`` a few minutes later: it may queue what came due;
- three rounds of ``duties --help`` (the floor of any command: Python and the imports), the same ``duties plan``
  again (nothing to add) and an idle ``duties tick`` (a minute later each time, checked to have done nothing);
  the medians are compared.

Each command runs under a small launcher that times it and reads its peak RSS (ru_maxrss of its children), like
``/usr/bin/time -v``. Ratios:
plan against the raw insert (rows/s, goal ≥ 0.5), the second plan against the first (≤ 0.1), the idle tick against
``--help`` (≤ 2), and every command's peak RSS (< 300 MB; the goal is stated at 100,000 units: ``--units 100000``).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from bench.scale import MEMORY_GOAL_MB, load, machine, mark, raw_insert
from bench.scenario import REPO, generate

YEAR = 2026
PLAN_AT = f"{YEAR - 1}-12-31T20:00"  # in the evening before the year: nothing is due, nothing is in the past
TICK_AT, IDLE_AT = f"{YEAR - 1}-12-31T20:05", f"{YEAR - 1}-12-31T20:06"
ROUNDS = 3
GOALS = {"plan": 0.5, "replan": 0.1, "idle": 2.0}
IDLE_COUNTS = ("planned", "moved", "reminded", "escalated", "repeated", "sent", "failed", "retrying", "unknown")


@dataclass(frozen=True)
class Run:
    name: str
    seconds: float
    peak_mb: float
    output: str


# Each command is started by a small Python process that times it and reports its peak RSS, as /usr/bin/time does.
# Started straight from this process, a child would inherit this process's RSS as its high-water mark (Linux keeps
# it across fork and exec), and this process holds the generated city and the raw insert's rows.
LAUNCHER = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
code = subprocess.call(sys.argv[2:])
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
open(sys.argv[1], "w").write(json.dumps({"seconds": seconds, "peak_kb": peak}))
sys.exit(code)
"""


def duties(name: str, *args: str, env: dict[str, str], scratch: Path) -> Run:
    """One ``duties`` command as a process of this tree's code; its wall time and its own peak RSS."""
    log, measured = scratch / f"{name}.out", scratch / f"{name}.time.json"
    cli = [sys.executable, "-c", "from flows.cli import main; main()"]
    command = [sys.executable, "-c", LAUNCHER, str(measured), *cli]
    with log.open("wb") as output:
        done = subprocess.run([*command, *args], cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT)
    text = log.read_text(encoding="utf-8", errors="replace")
    if done.returncode != 0:
        raise SystemExit(f"duties {' '.join(args)} failed ({done.returncode}):\n{text[-3000:]}")
    figures = json.loads(measured.read_text(encoding="utf-8"))
    return Run(name, figures["seconds"], figures["peak_kb"] / 1024, text)


def environment(scratch: Path, calendars: Path) -> dict[str, str]:
    """The documented defaults, in a var folder of the run's own; nothing from the caller's DUTIES_* settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DUTIES_", "PREFECT_"))}
    env.update(
        DUTIES_VAR_DIR=str(scratch / "var"),
        DUTIES_CALENDARS=str(calendars),
        PYTHONPATH=str(REPO),
        PREFECT_HOME=str(scratch / "prefect"),
    )
    return env


def planned_rows(ledger: Path) -> int:
    with sqlite3.connect(ledger) as connection:
        return int(connection.execute("SELECT count(*) FROM occurrence").fetchone()[0])


def run(units: int, scratch: Path, say: Callable[[str], None]) -> dict[str, object]:
    scenario = generate(scratch / "calendars", units=units)
    say(f"{scenario.describe()}")
    env = environment(scratch, scenario.root)
    window = ("--from", f"{YEAR}-01-01", "--to", f"{YEAR}-12-31", "--at", PLAN_AT)
    ledger, runs = scratch / "var" / "duties.db", {}
    for name, args in (
        ("init", ("init", "--at", PLAN_AT)),
        ("init_again", ("init", "--at", PLAN_AT)),
        ("plan", ("plan", *window, "--json")),
    ):
        runs[name] = duties(name, *args, env=env, scratch=scratch)
        say(f"{name}: {runs[name].seconds:.2f} s, peak {runs[name].peak_mb:.0f} MB")
    rows = planned_rows(ledger)  # the plan's rows and nothing else: the very same rows, inserted raw
    raw_s = raw_insert(ledger, scratch / "raw.db")
    say(f"raw executemany of {rows} rows: {raw_s:.2f} s")
    runs["tick"] = duties("tick", "tick", "--at", TICK_AT, "--json", env=env, scratch=scratch)
    # The short commands alternate with their baseline, three rounds, medians: load on a shared machine changes
    # within a minute, and a baseline taken at another moment would compare the load, not the commands.
    rounds: dict[str, list[Run]] = {"help": [], "replan": [], "idle": []}
    for number in range(ROUNDS):
        idle_at = (datetime.fromisoformat(IDLE_AT) + timedelta(minutes=number)).isoformat(timespec="minutes")
        commands: tuple[tuple[str, tuple[str, ...]], ...] = (
            ("help", ("--help",)),
            ("replan", ("plan", *window, "--json")),
            ("idle", ("tick", "--at", idle_at, "--json")),
        )
        for name, arguments in commands:
            rounds[name].append(duties(f"{name}{number}", *arguments, env=env, scratch=scratch))
    for name, found in rounds.items():
        runs[name] = sorted(found, key=lambda run: run.seconds)[len(found) // 2]
        say(f"{name}: {', '.join(f'{run.seconds:.2f} s' for run in found)}; peak {runs[name].peak_mb:.0f} MB")
    added = json.loads(runs["plan"].output)["added"], max(json.loads(r.output)["added"] for r in rounds["replan"])
    if added[0] != rows:
        raise SystemExit(f"the plan reported {added[0]} rows, the ledger holds {rows}")
    reports = [json.loads(run.output) for run in rounds["idle"]]
    busy = {key: report[key] for report in reports for key in IDLE_COUNTS if report[key]}
    return {"units": scenario.units, "rows": rows, "added": added, "idle_busy": busy, "raw_s": raw_s, "runs": runs}


def report(result: dict[str, object], started: str) -> None:
    runs: dict[str, Run] = result["runs"]  # type: ignore[assignment]
    rows, raw_s = int(result["rows"]), float(result["raw_s"])  # type: ignore[call-overload,arg-type]
    plan, replan, idle, helped = runs["plan"], runs["replan"], runs["idle"], runs["help"]
    ratios = {
        "plan": (rows / plan.seconds) / (rows / raw_s),
        "replan": replan.seconds / plan.seconds,
        "idle": idle.seconds / helped.seconds,
    }
    print()
    print(f"Machine: {machine()}; {started} at the start, {load()} at the end")
    print(f"{result['units']} units; {rows} items planned for {YEAR}; rows added by plan, re-plan: {result['added']}")
    if result["idle_busy"]:
        print(f"WARNING: the idle tick was not idle: {result['idle_busy']}")
    print()
    print("| measure | duties | baseline (same run) | ratio | goal | |")
    print("|---|---|---|---|---|---|")
    print(
        f"| `duties plan` a year, as a command | {plan.seconds:.2f} s, {rows / plan.seconds:,.0f} rows/s | raw "
        f"executemany {raw_s:.2f} s, {rows / raw_s:,.0f} rows/s | {ratios['plan']:.2f} | ≥ {GOALS['plan']} | "
        f"{mark(ratios['plan'] >= GOALS['plan'])} |"
    )
    print(
        f"| second identical `duties plan` | {replan.seconds:.2f} s | first plan {plan.seconds:.2f} s | "
        f"{ratios['replan']:.3f} | ≤ {GOALS['replan']} | {mark(ratios['replan'] <= GOALS['replan'])} |"
    )
    print(
        f"| idle `duties tick` | {idle.seconds:.2f} s | `duties --help` {helped.seconds:.2f} s | {ratios['idle']:.2f} "
        f"| ≤ {GOALS['idle']} | {mark(ratios['idle'] <= GOALS['idle'])} |"
    )
    print()
    print("| command | wall | peak RSS | under 300 MB |")
    print("|---|---|---|---|")
    labels = {
        "help": "`duties --help`",
        "init": "`duties init` (new store, calendars parsed)",
        "init_again": "`duties init` again (compiled programme)",
        "plan": "`duties plan` a year",
        "replan": "the same `duties plan` again",
        "tick": "`duties tick` (first)",
        "idle": "`duties tick` (idle)",
    }
    for name, label in labels.items():
        found = runs[name]
        print(f"| {label} | {found.seconds:.2f} s | {found.peak_mb:.0f} MB | {mark(found.peak_mb < MEMORY_GOAL_MB)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, default=20_000)
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it (default: temporary)")
    args = parser.parse_args()
    started = load()

    def say(text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        report(run(args.units, args.keep, say), started)
        return
    with tempfile.TemporaryDirectory(prefix="bench-commands-") as scratch:
        report(run(args.units, Path(scratch), say), started)


if __name__ == "__main__":
    main()
