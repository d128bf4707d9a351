"""Month-end escalations beside reminders (issue 16): 5,000 overdue items climbing against 5,000 reminders, in one run.

    python -m bench.escalate [--items 5000] [--units 2000] [--rounds 3] [--database sqlite|postgresql|both]
                             [--postgres URL] [--per-item]

The city is the shipped programme run by ``--units`` synthetic units (bench/scenario.py). Each side gets its own
fresh store of the same shape: the units, contacts and duties synced, then the same injected due work
(bench/scale.py ``inject_due_work``): ``--items`` reminders whose time came a minute ago (due tomorrow) and
``--items`` overdue items whose 交办 is due, spread round-robin over the same streets. At a Tuesday 10:00 tick:

- **reminders**: the tick's ``remind`` step (claim, render each unit's digest, queue its deliveries and audit rows);
- **escalations**: the tick's ``escalate`` step and the ``queue_notices`` pass after it (claim, insert the levels,
  number the notices, audit, then group and queue the unit's messages and the lead offices' 抄送).

Goal: escalations at most 2× the reminders, median of ``--rounds``. ``--per-item`` also times the same escalations
climbed one item at a time (``ladder.climb`` per item: a claim, an insert, a number, an update, an audit row and a
commit each), the path a month-end took before the batches. Both stores by default: SQLite (the product's engine
and pragmas) and the PostgreSQL at ``--postgres`` (one new schema per store, dropped afterwards; skipped with a note
when it cannot be reached).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.scale import (
    TICK_AT,
    DueWork,
    configure_environment,
    inject_due_work,
    load,
    machine,
    mark,
    sqlite_url,
    stub_send,
)
from bench.scenario import generate

GOAL = 2.0
POSTGRES = os.environ.get("DUTIES_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@contextmanager
def fresh_store(scratch: Path, postgres: str | None) -> Iterator[str]:
    """The URL of an empty store with the product's schema: a new SQLite file, or a new PostgreSQL schema."""
    from sqlalchemy import create_engine, text

    from store.db import create_tables, make_engine

    if postgres is None:
        url = sqlite_url(scratch / f"store-{uuid.uuid4().hex[:8]}.db")
        engine = make_engine(url)
        create_tables(engine)
        engine.dispose()
        yield url
        return
    schema = f"bench_escalate_{uuid.uuid4().hex[:10]}"
    admin = create_engine(postgres)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in postgres else "?"
    url = f"{postgres}{separator}options=-csearch_path%3D{schema}"
    engine = make_engine(url)
    create_tables(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def timed_side(program: Any, work: DueWork, scratch: Path, postgres: str | None, step: Callable[..., int]) -> float:
    """Seconds of ``step(session, ctx)`` on a fresh store holding the due work; checks that it did all of it."""
    from sqlmodel import Session

    from flows.runtime import make_context
    from flows.steps import sync_program
    from store.db import make_engine

    with fresh_store(scratch, postgres) as url:
        engine = make_engine(url)
        with Session(engine, expire_on_commit=False) as session:
            sync_program(session, program, at=TICK_AT)
            ctx = make_context(session, program, send=stub_send)
            inject_due_work(session, program, work)
            session.expunge_all()  # each side starts from the store, not from the rows the injection left loaded
            started = time.perf_counter()
            done = step(session, ctx)
            elapsed = time.perf_counter() - started
        engine.dispose()
    assert done == work.reminders, (step.__name__, done, work.reminders)
    return elapsed


def reminders(session: Any, ctx: Any) -> int:
    from flows.steps import remind

    return remind(session, ctx, at=TICK_AT)


def escalations(session: Any, ctx: Any) -> int:
    from flows.ladder import escalate
    from flows.notice_batches import queue_notices

    moved = escalate(session, ctx, at=TICK_AT, notify=False)
    queue_notices(session, ctx, at=TICK_AT)
    return moved


def escalations_per_item(session: Any, ctx: Any) -> int:
    from flows.common import open_rows
    from flows.ladder import climb
    from flows.notice_batches import queue_notices

    moved = sum(climb(session, ctx, item, at=TICK_AT) for item in open_rows(session, "next_escalate_at", TICK_AT))
    queue_notices(session, ctx, at=TICK_AT)
    return moved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=5000, help="reminders, and escalations (default 5000)")
    parser.add_argument("--units", type=int, default=2000, help="units of the synthetic city (default 2000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each side, median (default 3)")
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--postgres", default=POSTGRES, help="a PostgreSQL server's URL (scratch schemas are made)")
    parser.add_argument("--per-item", action="store_true", help="also time the escalations climbed one by one")
    args = parser.parse_args()
    from calendars.loader import load_program

    with tempfile.TemporaryDirectory(prefix="bench-escalate-") as temporary:
        scratch = Path(temporary)
        configure_environment(scratch / "var")
        before = load()
        scenario = generate(scratch / "calendars", units=args.units)
        program = load_program(scenario.root)
        say(f"machine: {machine()}; {before}; {scenario.describe()}")
        for database in ("sqlite", "postgresql"):
            if args.database not in (database, "both"):
                continue
            postgres = args.postgres if database == "postgresql" else None
            problem = unreachable(postgres)
            if problem:
                print(f"\nPostgreSQL at {postgres} not reachable ({problem}): skipped")
                continue
            median = measure(args, program, scratch, postgres)
            print_report(args, "PostgreSQL" if postgres else "SQLite", scenario.describe(), median, load())


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def unreachable(postgres: str | None) -> str:
    """Why the PostgreSQL server cannot be used, or empty (also for SQLite)."""
    if postgres is None:
        return ""
    from sqlalchemy import create_engine, text

    try:
        engine = create_engine(postgres, connect_args={"connect_timeout": 2})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any failure to connect means: skip, with the reason
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return ""


def measure(args: argparse.Namespace, program: Any, scratch: Path, postgres: str | None) -> dict[str, float]:
    """The median seconds of each side, the sides taking turns in every round so that load hits them alike."""
    sides: dict[str, Callable[..., int]] = {"reminders": reminders, "escalations": escalations}
    if args.per_item:
        sides["escalations, one by one"] = escalations_per_item
    work = DueWork(args.items, args.items, 0, 0)
    times: dict[str, list[float]] = {name: [] for name in sides}
    for round_ in range(args.rounds):
        for name, step in sides.items():
            times[name].append(timed_side(program, work, scratch, postgres, step))
            say(f"{'PostgreSQL' if postgres else 'SQLite'} round {round_ + 1}: {name} {times[name][-1]:.2f} s")
    return {name: statistics.median(seconds) for name, seconds in times.items()}


def print_report(args: argparse.Namespace, store: str, city: str, median: dict[str, float], after: str) -> None:
    base = median["reminders"]
    print(f"\nMonth-end tick, {store}, {city}; median of {args.rounds} rounds; {after}\n")
    print("| step | seconds | per item | ratio to the reminders | goal |")
    print("|---|---|---|---|---|")
    for name, seconds in median.items():
        ratio = seconds / base
        goal = f"≤ {GOAL:g}× {mark(ratio <= GOAL)}" if name == "escalations" else ""
        items = f"{args.items:,} {name}"
        print(f"| {items} | {seconds:.2f} | {seconds / args.items * 1000:.2f} ms | {ratio:.2f}× | {goal} |")


if __name__ == "__main__":
    main()
