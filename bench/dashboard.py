"""The leaders' dashboard over ledgers of 100k and 1M items with the same units: its server time must not follow the
ledger's size (goal: 1M within 1.5x of 100k), measured in one run.

    python -m bench.dashboard [--quick] [--units 2000] [--ledgers 100000 1000000] [--requests 15] [--rounds 4]
                              [--keep DIR]

``--quick`` is a smoke run (500 units, ledgers of 20k and 200k, 5 requests, one round). With ``--keep DIR`` the
ledgers stay in DIR, and a second run with the same DIR measures them again without building them.

The city is a synthetic one running the shipped programme (bench/scenario.py), its 2026 planned on a SQLite file with
the product's engine. Three in four of the items due before the measured moment (2026-12-03 10:00) are done on
time, one in seven a day late, the rest left open. The months' snapshots are then made as the tick makes them:
each of January to October frozen by ``flows.assessment.assess`` at its cut-off (which also tells every unit its
result), November's and December's drafts by ``refresh_draft`` at the measured moment. The two ledgers are copies
of that one, grown to 100k and 1M items with history (``grow``: the planned year moved back one year at a time,
done on time): the same units, the same snapshots, a ledger ten times the size, its extra items in earlier years,
as a ledger grows.

Each ledger is measured in its own process (``--measure``): the app in-process through Starlette's TestClient with
its clock frozen, a city manager logged in, a few warm-up requests, then ``--requests`` timed GET /desk/ and GET
/api/stats; the figure is the median, of the wall clock and of the process's CPU time (which other processes on a
shared machine do not swell; the load average is printed). Rounds alternate which ledger goes first; the ratio is
the median of the rounds' ratios. The goal: both ratios at most 1.5.

Why the time stays flat: every monthly figure is read from the snapshots (units x months rows), the live queries
are bounded through indexes (items due on each of the next 7 working days on occurrence.due_at; the escalations
waiting for approval on escalation.status). See web/dashboard.py.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.scale import (
    columns,
    configure_environment,
    copy_db,
    flush_to_disk,
    fresh_store,
    raw_connect,
    sqlite_url,
    stub_send,
)
from bench.scenario import generate

ZONE = ZoneInfo("Asia/Shanghai")
AT = datetime(2026, 12, 3, 10, 0, tzinfo=ZONE)  # a Thursday: November still a draft (frozen on its cut-off)
PLAN_AT = datetime(2025, 12, 1, 8, 0, tzinfo=ZONE)
PLAN_START, PLAN_END = date(2026, 1, 1), date(2026, 12, 31)
GOAL = 1.5
WARM_UP = 3
MANAGER, PASSWORD = "bench-boss", "bench-password"


def build_base(units: int, folder: Path) -> tuple[Path, Path, dict[str, float]]:
    """The calendars and the planned ledger of a city of ``units``, with its months assessed. Returns the calendars
    folder, the ledger, and how long each stage took."""
    from sqlmodel import Session

    from calendars.loader import load_program
    from flows import assessment
    from flows.runtime import make_context
    from flows.scores import cutoff_of, span_of
    from flows.steps import plan, sync_program
    from store.db import make_engine
    from web import auth

    scenario = generate(folder / "calendars", units=units)
    program = load_program(scenario.root)
    ledger = folder / "base.db"
    fresh_store(ledger)
    engine = make_engine(sqlite_url(ledger))
    took: dict[str, float] = {}
    with Session(engine, expire_on_commit=False) as session:
        started = time.perf_counter()
        sync_program(session, program, at=PLAN_AT)
        ctx = make_context(session, program, send=stub_send)
        plan(session, ctx, start=PLAN_START, end=PLAN_END, at=PLAN_AT)
        took["plan_s"] = time.perf_counter() - started
        _close_some(ledger)
        started = time.perf_counter()
        assert program.scoring is not None
        for month in range(1, 11):  # November's cut-off (7 Dec) is after AT: a draft, as December
            span = span_of(f"2026-{month:02d}")
            assessment.assess(session, ctx, span.key, at=cutoff_of(program, program.scoring, span, ZONE))
        assessment.refresh_draft(session, ctx, AT)
        took["assess_s"] = time.perf_counter() - started
        auth.add_user(
            session, username=MANAGER, password=PASSWORD, role="city", district=None, display_name="领导", at=PLAN_AT
        )
    engine.dispose()
    return scenario.root, ledger, took


def _close_some(ledger: Path) -> None:
    """Three in four items due before AT done on time, one in seven of the rest a day late: rates that differ."""
    connection = raw_connect(ledger)
    before = AT.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%d %H:%M:%S")
    connection.execute("BEGIN")
    connection.execute("UPDATE occurrence SET done_at = due_at WHERE due_at < ? AND id % 4 != 0", (before,))
    late = "strftime('%Y-%m-%d %H:%M:%f000', due_at, '+1 day')"  # the format the engine writes
    connection.execute(
        f"UPDATE occurrence SET done_at = {late} WHERE due_at < ? AND id % 4 = 0 AND id % 7 = 0", (before,)
    )
    connection.execute("COMMIT")
    connection.close()


MOMENTS = ("starts_at", "due_at", "first_remind_at", "visible_from", "created_at", "review_at")
CLEARED = ("next_remind_at", "next_escalate_at", "level_at", "parked_at", "waived_at", "finding_id")


def grow(base: Path, target: Path, size: int) -> tuple[int, float]:
    """Copy the base ledger and add history until it holds ``size`` items: its own rows moved back one year at a
    time, done on their due date (a period already there is skipped). Plain SQL: INSERT … SELECT. Returns (rows,
    seconds). No deliveries are added: the dashboard never reads the outbox."""
    started = time.perf_counter()
    copy_db(base, target)
    connection = raw_connect(target)
    names = [name for name in columns(connection, "occurrence") if name != "id"]
    last = connection.execute("SELECT max(id) FROM occurrence").fetchone()[0]
    connection.execute("BEGIN")
    for back in range(1, 200):
        have = connection.execute("SELECT count(*) FROM occurrence").fetchone()[0]
        if have >= size:
            break
        values = ", ".join(_moved(name, back) for name in names)
        connection.execute(
            f"INSERT OR IGNORE INTO occurrence ({', '.join(names)}) SELECT {values} FROM occurrence "
            "WHERE id <= ? ORDER BY id LIMIT ?",
            (last, size - have),
        )
    connection.execute("COMMIT")
    rows = connection.execute("SELECT count(*) FROM occurrence").fetchone()[0]
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    flush_to_disk(target)
    return rows, time.perf_counter() - started


def _moved(name: str, back: int) -> str:
    """The SQL of one column of a history row ``back`` years before its template row."""

    def shifted(column: str) -> str:
        return f"printf('%04d', CAST(substr({column}, 1, 4) AS INTEGER) - {back}) || substr({column}, 5)"

    if name in MOMENTS or name == "period":
        return f"CASE WHEN {name} IS NULL THEN NULL ELSE {shifted(name)} END"
    special = {"done_at": shifted("due_at"), "achieved": "required", "reminders_sent": "1", "level": "0"}
    return special.get(name, "NULL" if name in CLEARED else name)


def measure(calendars: Path, ledger: Path, requests: int) -> dict[str, float]:
    """Median seconds of GET /desk/ and GET /api/stats on ``ledger``, in this process (``--measure``): wall clock,
    and the process's CPU time (``desk_cpu``, ``api_cpu``), which other processes on a shared machine do not swell."""
    os.environ.update(DUTIES_DATABASE_URL=sqlite_url(ledger), DUTIES_CALENDARS=str(calendars))
    from fastapi.testclient import TestClient
    from sqlmodel import Session

    from store.db import get_engine
    from store.settings import get_settings
    from web import auth
    from web.app import app, clock

    get_settings.cache_clear()
    with Session(get_engine(), expire_on_commit=False) as session:
        user = auth.find_user(session, MANAGER)
        assert user is not None
        token = auth.new_api_token(session, user)

    async def frozen() -> datetime:
        return AT

    app.dependency_overrides[clock] = frozen
    timings: dict[str, float] = {}
    with TestClient(app) as client:
        form = client.get("/desk/login").text
        csrf = form.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        client.post("/desk/login", data={"username": MANAGER, "password": PASSWORD, "csrf": csrf, "next": "/desk/"})
        for name, path, headers in (
            ("desk", "/desk/", {}),
            ("api", "/api/stats", {"Authorization": f"Bearer {token}"}),
        ):
            times, cpu = [], []
            for index in range(WARM_UP + requests):
                started, started_cpu = time.perf_counter(), time.process_time()
                response = client.get(path, headers=headers)
                elapsed, elapsed_cpu = time.perf_counter() - started, time.process_time() - started_cpu
                assert response.status_code == 200, (path, response.status_code, response.text[:300])
                if index >= WARM_UP:
                    times.append(elapsed)
                    cpu.append(elapsed_cpu)
            timings[name], timings[f"{name}_cpu"] = statistics.median(times), statistics.median(cpu)
    return timings


def run_measure(calendars: Path, ledger: Path, requests: int) -> dict[str, float]:
    command = [sys.executable, "-m", "bench.dashboard", "--measure", str(calendars), str(ledger), str(requests)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"measuring {ledger.name} failed:\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--units", type=int, default=2000)
    parser.add_argument("--ledgers", type=int, nargs=2, default=[100_000, 1_000_000])
    parser.add_argument("--requests", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--keep", type=Path)
    parser.add_argument("--measure", nargs=3, metavar=("CALENDARS", "LEDGER", "REQUESTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure[0]), Path(args.measure[1]), int(args.measure[2]))))
        return
    if args.quick:
        args.units, args.ledgers, args.requests, args.rounds = 500, [20_000, 200_000], 5, 1
    scratch = args.keep or Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    scratch.mkdir(parents=True, exist_ok=True)
    configure_environment(scratch / "var")
    say = lambda text: print(text, flush=True)  # noqa: E731
    sizes = " and ".join(f"{size:,}" for size in args.ledgers)
    say(f"dashboard: {args.units} units, ledgers of {sizes} items, at {AT:%Y-%m-%d %H:%M}")
    targets = [scratch / f"ledger-{size}.db" for size in args.ledgers]
    if all(target.exists() for target in targets) and (scratch / "calendars").is_dir():
        say(f"  reusing the ledgers in {scratch} (--keep)")  # a second look at the same ledgers
        calendars, ledgers = scratch / "calendars", list(zip(args.ledgers, targets, strict=True))
    else:
        calendars, ledgers = build(args.units, args.ledgers, scratch, say)
    report(ledgers, [_round(calendars, ledgers, args.requests, first) for first in _orders(args.rounds)])


def build(units: int, sizes: list[int], scratch: Path, say: Any) -> tuple[Path, list[tuple[int, Path]]]:
    calendars, base, took = build_base(units, scratch)
    say(f"  planned 2026 in {took['plan_s']:.1f} s; 10 months frozen, 2 drafts in {took['assess_s']:.1f} s")
    ledgers = []
    for size in sizes:
        rows, seconds = grow(base, scratch / f"ledger-{size}.db", size)
        ledgers.append((rows, scratch / f"ledger-{size}.db"))
        say(f"  ledger of {rows:,} items grown in {seconds:.1f} s")
    return calendars, ledgers


def _orders(rounds: int) -> list[int]:
    return [index % 2 for index in range(rounds)]


def _round(calendars: Path, ledgers: list[tuple[int, Path]], requests: int, first: int) -> list[dict[str, float]]:
    order = [first, 1 - first]
    found: dict[int, dict[str, float]] = {}
    for index in order:
        found[index] = run_measure(calendars, ledgers[index][1], requests)
    return [found[0], found[1]]


def report(ledgers: list[tuple[int, Path]], rounds: list[list[dict[str, float]]]) -> None:
    """Per endpoint, wall clock and CPU time: each ledger's median over the rounds, and the median of the rounds'
    ratios (1M over 100k). The load average says how much else the machine was doing."""
    small, big = ledgers[0][0], ledgers[1][0]
    print(f"  load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; {len(rounds)} rounds, alternating")
    for name, label in (("desk", "GET /desk/"), ("api", "GET /api/stats")):
        for key, kind in ((name, "wall"), (f"{name}_cpu", "cpu")):
            ratio = statistics.median(pair[1][key] / pair[0][key] for pair in rounds)
            times = [statistics.median(pair[i][key] for pair in rounds) * 1000 for i in (0, 1)]
            mark = "ok" if ratio <= GOAL else "OVER"
            print(
                f"  {label:15} {kind:4} {small:>9,} items {times[0]:7.1f} ms  {big:>9,} items {times[1]:7.1f} ms"
                f"  ratio {ratio:.2f} (goal <= {GOAL}) {mark}"
            )


if __name__ == "__main__":
    main()
