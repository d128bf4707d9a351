"""The minute-level supervision when idle: what one run of the ``supervise`` deployment costs when no case is late.

    python -m bench.supervise [--rows 200000] [--runs 200]

A SQLite store of the shipped calendars, planned for 2026, grown to ``--rows`` items: half of them closed cases
(each a done item with its case row), half planned items due later in the year, with 20,000 sent deliveries.
``flows.cases.supervise`` runs at 2026-01-02 00:30, when nothing is late and nothing waits to be sent: the run a
Prefect worker makes every minute, night and day. The baseline, in the same run on the same file: the same three
reads written as plain SQL through sqlite3 (late case items, waiting notices, due deliveries), with no ORM, no
Context and no claim. Printed as the median of ``--runs`` runs each and their ratio; the figure that matters is
that idle costs stay flat as the ledger grows (try ``--rows 20000`` against the default).
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

from notify.receivers import Inbox

IDLE_AT = datetime(2026, 1, 1, 16, 30, tzinfo=UTC)  # 2026-01-02 00:30 in Shanghai
RAW_READS = (
    "SELECT * FROM occurrence WHERE case_id IS NOT NULL AND next_escalate_at <= ? AND done_at IS NULL "
    "AND waived_at IS NULL AND parked_at IS NULL ORDER BY next_escalate_at, id LIMIT 500",
    "SELECT * FROM escalation JOIN occurrence ON occurrence.id = escalation.occurrence_id "
    "WHERE escalation.status = 'issued' AND escalation.notified_at IS NULL ORDER BY occurrence.unit_id, escalation.id",
    "SELECT id FROM delivery WHERE status IN ('pending', 'retry') "
    "AND (next_attempt_at IS NULL OR next_attempt_at <= ?) ORDER BY id LIMIT 100",
)


def build(folder: Path, rows: int) -> Path:
    """The store, planned and grown; returns its file."""
    from bench.month import prepare
    from flows import runtime, steps
    from store.db import create_tables, get_engine, session_scope

    inbox = Inbox()
    prepare(folder, inbox)
    program = runtime.load_calendars()
    create_tables(get_engine())
    with session_scope() as session:
        ctx = runtime.make_context(session, program)
        steps.sync_program(session, program, at=IDLE_AT)
        steps.plan(session, ctx, start=date(2026, 1, 1), end=date(2026, 12, 31), at=IDLE_AT)
    path = folder / "var" / "duties.db"
    grow(path, rows)
    return path


def grow(path: Path, rows: int) -> None:
    """Copies of the planned items until the ledger holds ``rows`` more: every other copy a closed case."""
    connection = sqlite3.connect(path)
    columns = [row[1] for row in connection.execute("PRAGMA table_info(occurrence)") if row[1] != "id"]
    planned = connection.execute("SELECT COUNT(*) FROM occurrence").fetchone()[0]
    for copy in range(0, rows, planned):
        closed_case = {"case_id": "1", "done_at": "due_at", "next_escalate_at": "NULL", "next_remind_at": "NULL"}
        changed = {"period": f"period || '.x{copy}'", **(closed_case if copy // planned % 2 else {})}
        chosen = ", ".join(changed.get(name, name) for name in columns)
        originals = "FROM occurrence WHERE period NOT LIKE '%.x%'"
        connection.execute(f"INSERT INTO occurrence ({', '.join(columns)}) SELECT {chosen} {originals}")
    connection.execute(
        "INSERT INTO delivery (occurrence_id, stage, contact_id, unit_id, channel, status, idempotency_key, title, "
        "body, log, attempts, max_attempts, created_at, sent_at) SELECT id, 'bench', 1, unit_id, 'mailto', 'sent', "
        "'', '', '', '', 1, 5, created_at, created_at FROM occurrence LIMIT 20000"
    )
    connection.commit()
    connection.execute("ANALYZE")
    connection.close()


def median_ms(run: Callable[[], object], runs: int) -> float:
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        timings.append((time.perf_counter() - start) * 1000)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description="One idle run of the minute-level supervision against plain SQL.")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        path = build(Path(scratch), args.rows)
        from flows import cases, runtime
        from store.db import session_scope

        program = runtime.load_calendars()
        with session_scope() as session:
            ctx = runtime.make_context(session, program)
            found = cases.supervise(session, ctx, at=IDLE_AT)
            assert found.climbed == found.notices == found.sent == 0, found
            product = median_ms(lambda: cases.supervise(session, ctx, at=IDLE_AT), args.runs)
        connection = sqlite3.connect(path)
        items = connection.execute("SELECT COUNT(*) FROM occurrence").fetchone()[0]
        moment = IDLE_AT.strftime("%Y-%m-%d %H:%M:%S.%f")

        def raw() -> None:
            for statement in RAW_READS:
                connection.execute(statement, (moment,) if "?" in statement else ()).fetchall()

        baseline = median_ms(raw, args.runs)
        print(
            f"idle supervision over {items:,} items: {product:.2f} ms per run (median of {args.runs}) "
            f"vs the same three reads in plain SQL {baseline:.2f} ms: ratio {product / baseline:.1f}"
        )


if __name__ == "__main__":
    main()
