"""Scale: planning a year, re-planning, ticks over large ledgers and their memory, each beside a baseline measured
in the same run.

    python -m bench.scale [--quick] [--units 1000 10000] [--province] [--plan-only] [--tick-units 10000]
                          [--ledgers 100000 1000000] [--rounds 2] [--keep DIR]

``--quick`` is a smoke run (500 units, ledgers of 20k and 200k, one round: under a minute); the default takes
about 5 to 10 minutes on 2 cores; ``--province`` also plans a 100,000-unit province (much longer).

The programme is the shipped one (calendars/huzhou) run by a synthetic city of N units (bench/scenario.py), on a
SQLite file with the product's own engine and pragmas (WAL, synchronous=NORMAL). Time is always passed in.

- **Planning**: ``steps.plan`` over 2026, rows per second, against a raw ``executemany`` INSERT of the same rows
  (read back from the planned ledger) in one transaction into an identical fresh table (same DDL, indexes and
  foreign keys). Goal: at least 0.5 of the raw rate.
- **Re-plan** of the same year, nothing new: its time against the first plan's, and the rows it added. Goal: at
  most 0.1 of the first plan's time, 0 rows.
- **Tick** over ledgers of 100k and 1M occurrences with the same due work. The ledger is a province of
  ``--tick-units`` units just after a real tick five minutes earlier (the horizon planned, that tick's reminders
  sent), plus a fixed set of injected due work (reminders, overdue items at level 0 and 1, unacknowledged notices
  to repeat), plus history: earlier years' occurrences, done, each with one sent delivery. ``steps.tick`` runs
  whole (sync, plan of the horizon, remind, escalate, repeat_notices, dispatch to a stub sender that answers
  "sent" without any I/O), in its own process that loads the calendars from YAML as ``duties tick`` does, after
  one warm-up tick on the small base ledger. Goal: 1M within 2x of 100k. Also against a raw SQL UPDATE, in one
  transaction, that makes the same change to the same rows' columns (occurrence next_remind_at, reminders_sent,
  level, level_at, next_escalate_at; escalation repeats, next_repeat_at); it writes no deliveries, audit events,
  new escalation rows or document numbers.
- **Memory**: peak RSS (VmHWM of the tick process: calendars loaded, warm-up, ticks) at 1M rows, beside the same
  at 100k and the process's peak before its first tick. Goal: under 300 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.scenario import REPO, Scenario, generate

ZONE = ZoneInfo("Asia/Shanghai")
PLAN_START, PLAN_END = date(2026, 1, 1), date(2026, 12, 31)
PLAN_AT = datetime(2026, 1, 1, tzinfo=ZONE)
TICK_AT = datetime(2026, 3, 3, 10, 0, tzinfo=ZONE)  # a Tuesday, a working day, inside the sending window
PREVIOUS_TICK = TICK_AT - timedelta(minutes=5)
BENCH_PERIOD = "bench-"  # periods of the injected due work
OCCURRENCE_STATE = ("next_remind_at", "reminders_sent", "level", "level_at", "next_escalate_at")
ESCALATION_STATE = ("repeats", "next_repeat_at")
MEMORY_GOAL_MB = 300
STEPS = ("sync_program", "plan", "remind", "escalate", "repeat_notices", "dispatch")


def configure_environment(var_dir: Path) -> None:
    """Settings for every process of the run: nothing read from the real var/, fixed secret and seed."""
    os.environ.update(
        DUTIES_VAR_DIR=str(var_dir),
        DUTIES_SECRET_KEY="bench-scale-secret",
        DUTIES_UNANNOUNCED_SEED="bench-scale-seed",
        DUTIES_SEND_WINDOWS="true",
    )
    os.environ.pop("DUTIES_DATABASE_URL", None)
    from store.settings import get_settings

    get_settings.cache_clear()


def stub_send(url: str, title: str, body: str, *, key: str = "") -> Any:
    """A sender that answers "sent" without any I/O: the outbox's own cost stays, the network's does not."""
    from notify.send import Outcome

    return Outcome("sent", "stub")


# ---------------------------------------------------------------- SQLite files


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def raw_connect(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection with the product's pragmas (store/db.py), in autocommit so BEGIN is explicit."""
    connection = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=15000", "foreign_keys=ON"):
        connection.execute(f"PRAGMA {pragma}")
    return connection


def copy_db(source: Path, target: Path) -> None:
    """Copy a closed ledger file, its write-ahead log folded in first."""
    connection = sqlite3.connect(source)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(source, target)
    flush_to_disk(target)


def flush_to_disk(path: Path) -> None:
    """Write the file's dirty pages out now: otherwise the kernel writes a fresh 1 GB copy back while the next
    timed step runs, and the bigger ledger is charged for the copying (measured: 1.86x instead of about 1.1x)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def columns(connection: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in connection.execute(f"PRAGMA table_info({table})")]


def fresh_store(path: Path) -> None:
    """An empty ledger with the product's schema, made by the product's own engine."""
    from store.db import create_tables, make_engine

    engine = make_engine(sqlite_url(path))
    create_tables(engine)
    engine.dispose()


# ---------------------------------------------------------------- planning


@dataclass
class City:
    """A generated scenario, its programme loaded, and its ledger with 2026 planned."""

    scenario: Scenario
    program: Any
    ledger: Path
    load_s: float
    sync_s: float
    plan_rows: int = 0
    plan_s: float = 0.0
    replan_rows: int = 0
    replan_s: float = 0.0
    rescan_rows: int = 0
    rescan_s: float = 0.0
    raw_s: float = 0.0


def build_city(units: int, scratch: Path) -> City:
    from sqlmodel import Session

    from calendars.loader import load_program
    from flows.runtime import make_context
    from flows.steps import plan, sync_program
    from store.db import make_engine

    folder = scratch / f"city-{units}"
    scenario = generate(folder / "calendars", units=units)
    started = time.perf_counter()
    program = load_program(scenario.root)
    load_s = time.perf_counter() - started
    ledger = folder / "plan.db"
    fresh_store(ledger)
    engine = make_engine(sqlite_url(ledger))
    with Session(engine, expire_on_commit=False) as session:
        started = time.perf_counter()
        sync_program(session, program, at=PLAN_AT)
        city = City(scenario, program, ledger, load_s, time.perf_counter() - started)
        ctx = make_context(session, program, send=stub_send)
        flush_to_disk(ledger)
        started = time.perf_counter()
        city.plan_rows = plan(session, ctx, start=PLAN_START, end=PLAN_END, at=PLAN_AT)
        city.plan_s = time.perf_counter() - started
        flush_to_disk(ledger)
        started = time.perf_counter()
        city.replan_rows = plan(session, ctx, start=PLAN_START, end=PLAN_END, at=PLAN_AT)
        city.replan_s = time.perf_counter() - started
        # The same, without the remembered range: the path after a calendar edit, which looks up what exists.
        started = time.perf_counter()
        city.rescan_rows = plan(session, ctx, start=PLAN_START, end=PLAN_END, at=PLAN_AT, only=set(program.duties))
        city.rescan_s = time.perf_counter() - started
    engine.dispose()
    city.raw_s = raw_insert(ledger, folder / "raw.db")
    return city


def raw_insert(planned: Path, target: Path) -> float:
    """Seconds to insert the planned ledger's occurrences again with sqlite3 executemany, one transaction, into an
    identical fresh table (its units and duties copied first, for the foreign keys)."""
    fresh_store(target)
    connection = raw_connect(target)
    names = [name for name in columns(connection, "occurrence") if name != "id"]
    connection.execute("ATTACH DATABASE ? AS planned", (str(planned),))
    for table in ("unit", "duty"):
        connection.execute(f"INSERT INTO {table} SELECT * FROM planned.{table}")
    rows = connection.execute(f"SELECT {', '.join(names)} FROM planned.occurrence ORDER BY id").fetchall()
    connection.execute("DETACH DATABASE planned")
    statement = f"INSERT INTO occurrence ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    flush_to_disk(target)
    started = time.perf_counter()
    connection.execute("BEGIN")
    connection.executemany(statement, rows)
    connection.execute("COMMIT")
    elapsed = time.perf_counter() - started
    count = connection.execute("SELECT count(*) FROM occurrence").fetchone()[0]
    connection.close()
    assert count == len(rows), (count, len(rows))
    return elapsed


# ---------------------------------------------------------------- the tick's ledger


@dataclass(frozen=True)
class DueWork:
    reminders: int
    climb_from_0: int
    climb_from_1: int
    repeats: int

    @property
    def escalations(self) -> int:
        return self.climb_from_0 + self.climb_from_1


@dataclass
class Base:
    """The province's ledger just after a tick at PREVIOUS_TICK, with the due work injected for TICK_AT."""

    ledger: Path
    occurrence_ids: list[int]
    escalation_ids: list[int]
    previous_tick_s: float
    previous: dict[str, int]


def build_base(city: City, work: DueWork, scratch: Path) -> Base:
    from sqlmodel import Session

    from flows.runtime import make_context
    from flows.steps import sync_program, tick
    from store.db import make_engine

    ledger = scratch / "base.db"
    fresh_store(ledger)
    engine = make_engine(sqlite_url(ledger))
    with Session(engine, expire_on_commit=False) as session:
        sync_program(session, city.program, at=PREVIOUS_TICK)
        ctx = make_context(session, city.program, send=stub_send)
        started = time.perf_counter()
        report = tick(session, ctx, at=PREVIOUS_TICK)
        previous_s = time.perf_counter() - started
        occurrence_ids, escalation_ids = inject_due_work(session, city.program, work)
    engine.dispose()
    previous = {"planned": report.planned, "reminded": report.reminded, "sent": report.sent}
    return Base(ledger, occurrence_ids, escalation_ids, previous_s, previous)


def inject_due_work(session: Any, program: Any, work: DueWork) -> tuple[list[int], list[int]]:
    """The fixed due work of the timed tick, on the streets of the programme (duty clean-home-street):

    reminders whose time came a minute ago (due tomorrow); overdue items whose 交办 is due; items at 交办 whose
    督办 is due; items at 交办 whose unacknowledged notice is due to repeat.
    """
    from store.models import Escalation, Occurrence

    duty = program.duties["clean-home-street"]
    streets = sorted(unit.id for unit in program.units.values() if unit.kind == "street")
    minute_ago = TICK_AT - timedelta(minutes=1)
    due_tomorrow = datetime.combine(TICK_AT.date() + timedelta(days=1), duty.due.time, tzinfo=ZONE)
    overdue_since = datetime.combine(TICK_AT.date() - timedelta(days=4), duty.due.time, tzinfo=ZONE)
    plan = [("remind", work.reminders), ("climb0", work.climb_from_0), ("climb1", work.climb_from_1)]
    plan.append(("repeat", work.repeats))
    occurrences: list[Occurrence] = []
    escalations: list[Escalation] = []
    number = 0
    for kind, count in plan:
        for index in range(count):
            unit = streets[number % len(streets)]
            number += 1
            overdue = kind != "remind"
            occurrence = Occurrence(
                duty_id=duty.id,
                unit_id=unit,
                period=f"{BENCH_PERIOD}{kind}-{index}",
                title=f"{duty.title}（压测）",
                starts_at=datetime.combine(TICK_AT.date().replace(day=1), datetime.min.time(), tzinfo=ZONE),
                due_at=overdue_since if overdue else due_tomorrow,
                first_remind_at=(overdue_since if overdue else due_tomorrow) - timedelta(days=7),
                next_remind_at=None if overdue else minute_ago,
                reminders_sent=3 if overdue else 1,
                level=0 if kind == "climb0" else (1 if overdue else 0),
                level_at=TICK_AT - timedelta(days=3) if kind in ("climb1", "repeat") else None,
                next_escalate_at=(TICK_AT + timedelta(days=3) if kind == "repeat" else minute_ago) if overdue else None,
                created_at=PLAN_AT,
            )
            session.add(occurrence)
            occurrences.append(occurrence)
    session.flush()
    for occurrence in occurrences:
        if occurrence.level == 1:
            repeat_due = occurrence.period.startswith(f"{BENCH_PERIOD}repeat")
            escalation = Escalation(
                occurrence_id=occurrence.id or 0,
                level=1,
                name="交办",
                status="issued",
                at=TICK_AT - timedelta(days=3),
                deadline_at=TICK_AT + (timedelta(days=3) if repeat_due else -timedelta(minutes=1)),
                document=f"湖城管交〔2026〕{occurrence.id}号",
                next_repeat_at=minute_ago if repeat_due else TICK_AT + timedelta(days=1),
            )
            session.add(escalation)
            escalations.append(escalation)
    session.commit()
    return [o.id or 0 for o in occurrences], [e.id or 0 for e in escalations]


def grow_ledger(base: Path, planned: Path, target: Path, size: int) -> tuple[int, float]:
    """Copy the base ledger and add history until it holds ``size`` occurrences: the planned year's rows moved
    back one year at a time, done on their due date, each with one sent delivery. Returns (rows, seconds)."""
    started = time.perf_counter()
    copy_db(base, target)
    connection = raw_connect(target)
    names = [name for name in columns(connection, "occurrence") if name != "id"]
    have = connection.execute("SELECT count(*) FROM occurrence").fetchone()[0]
    first_new = connection.execute("SELECT coalesce(max(id), 0) FROM occurrence").fetchone()[0] + 1
    source = sqlite3.connect(planned)
    template = source.execute(f"SELECT {', '.join(names)} FROM occurrence ORDER BY id").fetchall()
    source.close()
    statement = f"INSERT INTO occurrence ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    connection.execute("BEGIN")
    connection.executemany(statement, _history(names, template, max(size - have, 0)))
    # One sent reminder per history item, to the unit's first contact: the outbox's tables grow with the ledger.
    connection.execute(
        """
        INSERT INTO delivery (occurrence_id, stage, contact_id, unit_id, channel, status, idempotency_key, title,
                              body, log, attempts, max_attempts, created_at, sent_at)
        SELECT o.id, 'remind:0d', (SELECT min(c.id) FROM contact c WHERE c.unit_id = o.unit_id), o.unit_id, 'json',
               'sent', lower(hex(randomblob(16))), o.title, '（历史消息）' || o.title, '', 1, 5,
               o.first_remind_at, o.first_remind_at
        FROM occurrence o WHERE o.id >= ?
        """,
        (first_new,),
    )
    connection.execute("COMMIT")
    rows = connection.execute("SELECT count(*) FROM occurrence").fetchone()[0]
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    flush_to_disk(target)
    return rows, time.perf_counter() - started


def _history(names: list[str], template: list[tuple[Any, ...]], count: int) -> Iterator[tuple[Any, ...]]:
    """``count`` rows from the template year moved back 1, 2, … years: same units and duties, closed on time."""
    at = {name: index for index, name in enumerate(names)}
    moments = [at[name] for name in ("starts_at", "due_at", "first_remind_at", "visible_from", "created_at")]
    made, back = 0, 0
    while made < count:
        back += 1
        for row in template:
            if made == count:
                return
            values = list(row)
            period = values[at["period"]]
            values[at["period"]] = f"{int(period[:4]) - back}{period[4:]}"
            for index in moments:
                if values[index] is not None:
                    values[index] = f"{int(values[index][:4]) - back}{values[index][4:]}"
            values[at["done_at"]] = values[at["due_at"]]
            values[at["achieved"]] = values[at["required"]]
            values[at["next_remind_at"]] = values[at["next_escalate_at"]] = None
            values[at["reminders_sent"]] = 1
            made += 1
            yield tuple(values)


def raw_update(ledger: Path, scratch: Path, after: dict[str, Any]) -> float:
    """Seconds for one transaction of plain UPDATEs giving the due rows the columns the tick gave them."""
    target = scratch / "raw-update.db"
    copy_db(ledger, target)
    connection = raw_connect(target)
    set_occurrence = ", ".join(f"{name} = ?" for name in OCCURRENCE_STATE)
    set_escalation = ", ".join(f"{name} = ?" for name in ESCALATION_STATE)
    started = time.perf_counter()
    connection.execute("BEGIN")
    connection.executemany(
        f"UPDATE occurrence SET {set_occurrence} WHERE id = ?", [(*row[1:], row[0]) for row in after["occurrences"]]
    )
    connection.executemany(
        f"UPDATE escalation SET {set_escalation} WHERE id = ?", [(*row[1:], row[0]) for row in after["escalations"]]
    )
    connection.execute("COMMIT")
    elapsed = time.perf_counter() - started
    connection.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    return elapsed


# ---------------------------------------------------------------- the tick process


def run_tick_process(job: dict[str, Any], scratch: Path) -> dict[str, Any]:
    path = scratch / f"job-{job['name']}.json"
    path.write_text(json.dumps(job), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "bench.scale", "--tick-process", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"tick process failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def tick_process(job_path: Path) -> None:
    """In its own process, as ``duties tick`` runs: load the calendars, a warm-up tick on the base ledger, then
    ``rounds`` ticks, each on a fresh copy of the big ledger. Prints one JSON line."""
    job = json.loads(job_path.read_text(encoding="utf-8"))
    configure_environment(Path(job["var_dir"]))
    import flows.steps as steps
    from calendars.loader import load_program

    program = load_program(Path(job["calendars"]))
    before_kb = _high_water_kb()
    timings: dict[str, float] = {}
    for name in STEPS:
        setattr(steps, name, _timed(name, getattr(steps, name), timings))
    scratch = Path(job["scratch"])
    _one_tick(program, Path(job["base"]), scratch / "warm.db", timings)
    rounds, after = [], None
    for _ in range(job["rounds"]):
        result = _one_tick(program, Path(job["ledger"]), scratch / "run.db", timings, job["due_ids"])
        after = after or result.pop("after")
        result.pop("after", None)
        rounds.append(result)
    print(json.dumps({"rounds": rounds, "after": after, "before_kb": before_kb, "peak_kb": _high_water_kb()}))


def _high_water_kb() -> int:
    """This process's peak RSS. Not ``ru_maxrss``: Linux carries the parent's peak over fork and exec into it
    (measured: 667 MB reported for a tick process whose own peak was 117 MB, the parent having planned 10,000
    units), and ``RUSAGE_CHILDREN`` is the largest of all children so far."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # pragma: no cover (not Linux)


def _timed(name: str, function: Callable[..., Any], timings: dict[str, float]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - started

    return timed


def _one_tick(
    program: Any, ledger: Path, run: Path, timings: dict[str, float], due_ids: dict[str, list[int]] | None = None
) -> dict[str, Any]:
    from sqlmodel import Session

    import flows.steps as steps
    from flows.runtime import make_context
    from store.db import make_engine

    copy_db(ledger, run)
    engine = make_engine(sqlite_url(run))
    timings.clear()
    with Session(engine, expire_on_commit=False) as session:
        ctx = make_context(session, program, send=stub_send)
        started = time.perf_counter()
        report = steps.tick(session, ctx, at=TICK_AT.astimezone(UTC))
        elapsed = time.perf_counter() - started
    engine.dispose()
    result: dict[str, Any] = {
        "seconds": elapsed,
        "steps": dict(timings),
        "report": {k: getattr(report, k) for k in ("planned", "reminded", "escalated", "repeated", "sent")},
    }
    if due_ids is not None:
        result["after"] = _state_of(run, due_ids)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{run}{suffix}").unlink(missing_ok=True)
    return result


def _state_of(ledger: Path, due_ids: dict[str, list[int]]) -> dict[str, Any]:
    """The columns the tick changed on the due rows, as stored."""
    connection = sqlite3.connect(ledger)
    found = {}
    for table, names, ids in (
        ("occurrence", OCCURRENCE_STATE, due_ids["occurrences"]),
        ("escalation", ESCALATION_STATE, due_ids["escalations"]),
    ):
        marks = ", ".join("?" * len(ids))
        query = f"SELECT id, {', '.join(names)} FROM {table} WHERE id IN ({marks}) ORDER BY id"
        found[f"{table}s"] = [list(row) for row in connection.execute(query, ids)] if ids else []
    connection.close()
    return found


# ---------------------------------------------------------------- the run


@dataclass
class TickFigures:
    rows: int
    build_s: float
    seconds: float
    steps: dict[str, float]
    report: dict[str, int]
    raw_update_s: float
    before_mb: float
    peak_mb: float
    all_seconds: list[float] = field(default_factory=list)


def measure_ticks(
    city: City, work: DueWork, sizes: list[int], rounds: int, scratch: Path, say: Callable[[str], None]
) -> tuple[Base, dict[int, TickFigures]]:
    base = build_base(city, work, scratch)
    say(
        f"base ledger: previous tick at {PREVIOUS_TICK:%H:%M} planned {base.previous['planned']}, "
        f"reminded {base.previous['reminded']}, sent {base.previous['sent']} in {base.previous_tick_s:.1f} s; "
        f"injected {len(base.occurrence_ids)} due items"
    )
    figures = {}
    for size in sizes:
        ledger = scratch / f"ledger-{size}.db"
        rows, build_s = grow_ledger(base.ledger, city.ledger, ledger, size)
        say(f"ledger of {rows:,} occurrences built in {build_s:.1f} s")
        job = {
            "name": str(size),
            "var_dir": os.environ["DUTIES_VAR_DIR"],
            "calendars": str(city.scenario.root),
            "base": str(base.ledger),
            "ledger": str(ledger),
            "scratch": str(scratch),
            "rounds": rounds,
            "due_ids": {"occurrences": base.occurrence_ids, "escalations": base.escalation_ids},
        }
        result = run_tick_process(job, scratch)
        seconds = [r["seconds"] for r in result["rounds"]]
        # The median round (of an even number, the faster middle one): its total and its steps go together.
        middle = sorted(result["rounds"], key=lambda r: r["seconds"])[(len(seconds) - 1) // 2]
        figures[size] = TickFigures(
            rows=rows,
            build_s=build_s,
            seconds=middle["seconds"],
            steps=middle["steps"],
            report=middle["report"],
            raw_update_s=raw_update(ledger, scratch, result["after"]),
            before_mb=result["before_kb"] / 1024,
            peak_mb=result["peak_kb"] / 1024,
            all_seconds=seconds,
        )
        say(f"tick at {rows:,}: {', '.join(f'{s:.2f}' for s in seconds)} s; report {middle['report']}")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{ledger}{suffix}").unlink(missing_ok=True)
    return base, figures


def machine() -> str:
    return (
        f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, {platform.system()} {platform.release()}"
    )


def load() -> str:
    """The load average: other work on the machine slows every figure, the baselines as much as the rest."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def mark(ok: bool) -> str:
    return "met" if ok else "**missed**"


def print_report(
    cities: list[City], base: Base | None, ticks: dict[int, TickFigures], work: DueWork, started: str
) -> None:
    print()
    print(f"Machine: {machine()}; {started} at the start, {load()} at the end")
    print()
    print("| measure | duties | baseline (same run) | ratio | goal | |")
    print("|---|---|---|---|---|---|")
    for city in cities:
        units = f"{city.scenario.units:,} units"
        plan_rate, raw_rate = city.plan_rows / city.plan_s, city.plan_rows / city.raw_s
        print(
            f"| plan 2026, {units}: rows/s | {plan_rate:,.0f} ({city.plan_rows:,} rows in {city.plan_s:.2f} s) "
            f"| raw executemany INSERT, one transaction: {raw_rate:,.0f} ({city.raw_s:.2f} s) "
            f"| {plan_rate / raw_rate:.3f} | ≥ 0.5 | {mark(plan_rate / raw_rate >= 0.5)} |"
        )
        ratio = city.replan_s / city.plan_s
        print(
            f"| re-plan 2026, nothing new, {units} | {city.replan_s:.2f} s, {city.replan_rows} rows added "
            f"| first plan: {city.plan_s:.2f} s | {ratio:.3f} | ≤ 0.1, 0 rows "
            f"| {mark(ratio <= 0.1 and city.replan_rows == 0)} |"
        )
        ratio = city.rescan_s / city.plan_s
        print(
            f"| re-plan 2026, every duty looked up (no remembered range), {units} | {city.rescan_s:.2f} s, "
            f"{city.rescan_rows} rows added | first plan: {city.plan_s:.2f} s | {ratio:.3f} | (reference) | |"
        )
    if ticks:
        sizes = sorted(ticks)
        small, large = ticks[sizes[0]], ticks[sizes[-1]]
        for size in sizes:
            figure = ticks[size]
            print(
                f"| tick at {figure.rows:,} occurrences ({_which(len(figure.all_seconds))}) | {figure.seconds:.2f} s "
                f"| raw UPDATE of the same rows' columns: {figure.raw_update_s * 1000:.1f} ms "
                f"| {figure.seconds / figure.raw_update_s:,.0f}x | (reference) | |"
            )
        growth = large.seconds / small.seconds
        print(
            f"| tick at {large.rows:,} vs {small.rows:,} | {large.seconds:.2f} s | {small.seconds:.2f} s "
            f"| {growth:.2f} | ≤ 2 | {mark(growth <= 2)} |"
        )
        print(
            f"| peak RSS of the tick process at {large.rows:,} | {large.peak_mb:.0f} MB "
            f"| at {small.rows:,}: {small.peak_mb:.0f} MB; before its first tick: {large.before_mb:.0f} MB "
            f"| {large.peak_mb / small.peak_mb:.2f} | < {MEMORY_GOAL_MB} MB | {mark(large.peak_mb < MEMORY_GOAL_MB)} |"
        )
        print()
        print(
            f"Tick's due work (the same at every size): {work.reminders} reminders, {work.climb_from_0} items "
            f"climbing to 交办, {work.climb_from_1} to 督办, {work.repeats} notices repeated; dispatch to a stub "
            "sender (no I/O)."
        )
        print()
        print("| tick step, seconds | " + " | ".join(f"{ticks[s].rows:,} rows" for s in sizes) + " |")
        print("|---|" + "---|" * len(sizes))
        for step in STEPS:
            print(f"| {step} | " + " | ".join(f"{ticks[s].steps.get(step, 0.0):.3f}" for s in sizes) + " |")
        print("| whole tick | " + " | ".join(f"{ticks[s].seconds:.3f}" for s in sizes) + " |")
        print("| report | " + " | ".join(_short(ticks[s].report) for s in sizes) + " |")
    print()
    print("| setup (not goals) | seconds |")
    print("|---|---|")
    for city in cities:
        print(f"| {city.scenario.describe()}: load_program | {city.load_s:.2f} |")
        print(f"| {city.scenario.units:,} units: first sync_program | {city.sync_s:.2f} |")
    if base is not None:
        print(f"| previous tick on the base ledger (plans the horizon) | {base.previous_tick_s:.2f} |")
    for size in sorted(ticks):
        print(f"| build ledger of {ticks[size].rows:,} (history + deliveries) | {ticks[size].build_s:.2f} |")


def _which(rounds: int) -> str:
    if rounds == 1:
        return "one run"
    return "faster of 2" if rounds == 2 else f"median of {rounds}"


def _short(report: dict[str, int]) -> str:
    return ", ".join(f"{key} {value}" for key, value in report.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run: small city, small ledgers, one round")
    parser.add_argument("--units", type=int, nargs="+", default=None, help="city sizes to plan (default 1000 10000)")
    parser.add_argument("--province", action="store_true", help="also plan a 100,000-unit province (long)")
    parser.add_argument("--tick-units", type=int, default=None, help="units of the ticked ledger (default 10000)")
    parser.add_argument("--ledgers", type=int, nargs="+", default=None, help="ledger sizes (default 100000 1000000)")
    parser.add_argument("--rounds", type=int, default=None, help="ticks per ledger size, median (default 2)")
    parser.add_argument("--plan-only", action="store_true", help="planning figures only, no ticks")
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    parser.add_argument("--tick-process", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tick_process:
        tick_process(args.tick_process)
        return
    units = args.units or ([500] if args.quick else [1000, 10000])
    if args.province:
        units.append(100_000)
    tick_units = args.tick_units or (units[0] if args.quick else 10000)
    sizes = args.ledgers or ([20_000, 200_000] if args.quick else [100_000, 1_000_000])
    rounds = args.rounds or (1 if args.quick else 2)
    work = DueWork(20, 10, 5, 5) if args.quick else DueWork(200, 100, 50, 50)

    def say(text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-scale-") as temporary:
        scratch = args.keep or Path(temporary)
        scratch.mkdir(parents=True, exist_ok=True)
        configure_environment(scratch / "var")
        started = load()
        say(f"machine: {machine()}; {started}")
        cities = []
        for count in dict.fromkeys([*units] if args.plan_only else [*units, tick_units]):
            city = build_city(count, scratch)
            say(
                f"{city.scenario.describe()}: loaded {city.load_s:.1f} s; planned {city.plan_rows:,} rows in "
                f"{city.plan_s:.1f} s; re-planned {city.replan_rows} in {city.replan_s:.1f} s; raw {city.raw_s:.2f} s"
            )
            cities.append(city)
        base: Base | None = None
        ticks: dict[int, TickFigures] = {}
        if not args.plan_only:
            tick_city = next(c for c in cities if c.scenario.units == tick_units)
            base, ticks = measure_ticks(tick_city, work, sizes, rounds, scratch, say)
        print_report([c for c in cities if c.scenario.units in units], base, ticks, work, started)


if __name__ == "__main__":
    main()
