"""The monthly 考核 of a large ledger, beside one SQL GROUP BY pass over the same rows, measured in the same run.

    python -m bench.assess [--units 10000] [--items 1000000] [--months 10] [--rounds 3] [--keep DIR]

The calendars are a synthetic city of ``--units`` units running the shipped programme with its ``scoring:`` block
(bench/scenario.py). The ledger is written straight into a SQLite file with the product's schema and pragmas:
``--items`` occurrences spread evenly over ``--months`` months ending with November 2026 (10 per unit and month by
default, one of them a quota of 3 checks), with what a year of work leaves behind: a confirmation and an audit event
for every report, 逾期完成, still overdue, 挂账, 免除, 延期 (an audit event), failed 核查, 交办/督办/约谈 with 收到,
and spot-check results. Each outcome is drawn from a fixed seed, so every run builds the same ledger.

- **Assessment**: ``flows.assessment.assess`` of November 2026 at a moment after its cut-off, so it computes the
  month as of the cut-off, stores the frozen snapshot (scores, deductions, ranks, the summary) and queues the
  【考核公示】 to every unit with a contact: the whole product path, on a fresh copy of the ledger each round.
- **Baseline**: one SQL statement, one pass over the same month's items (by the due-date index), grouped per unit,
  computing the counts the product needs: due, on time, done late, overdue, parked, extended, rework, the highest
  level reached, quota checks done and required, each item looking up its confirmations, escalations and audit
  events by their occurrence indexes as the product's queries do. Nothing is stored, nothing is sent.
  The product's counts are checked against the baseline's before any figure is printed.

Goal (issue 14): the assessment within 3x the baseline. Prints the best of ``--rounds`` for each, and the ratio:
for ``scores.compute`` (the numbers), for the snapshot (``assess`` with its messages left out: computed, stored,
ranked, summarised) and for the whole ``assess`` with one personal 【考核公示】 per unit, whose cost per unit is
printed too: it is delivery, one message per unit like a reminder, and grows with the units, not the ledger.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.scale import configure_environment, copy_db, fresh_store, raw_connect, sqlite_url, stub_send
from bench.scenario import generate

ZONE = ZoneInfo("Asia/Shanghai")
PERIOD = "2026-11"
LAST_MONTH = date(2026, 11, 1)
CREATED_AT = datetime(2026, 1, 1, tzinfo=ZONE)
GOAL = 3.0
SEED = 14
SQLITE_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores a DateTime in SQLite (UTC, store/models.py)


def stored(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(SQLITE_FORMAT)


# ---------------------------------------------------------------- the ledger


@dataclass
class Built:
    calendars: Path
    ledger: Path
    occurrences: int
    confirmations: int
    escalations: int
    audit: int
    checks: int
    seconds: float


def months(count: int) -> list[date]:
    found, day = [], LAST_MONTH
    for _ in range(count):
        found.append(day)
        day = (day - timedelta(days=1)).replace(day=1)
    return sorted(found)


def due_days(program: Any, month: date) -> list[datetime]:
    """The month's working days at 17:00: items fall due on them in turn."""
    day, days = month, []
    while day.month == month.month:
        if program.workdays.is_workday(day):
            days.append(datetime.combine(day, datetime.min.time(), tzinfo=ZONE).replace(hour=17))
        day += timedelta(days=1)
    return days


class Writer:
    """Rows in batches, straight into SQLite with executemany: the fastest way to a big ledger."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection
        self.pending: dict[str, list[tuple[Any, ...]]] = {}
        self.statements: dict[str, str] = {}
        self.counts: dict[str, int] = {}

    def table(self, name: str, fields: tuple[str, ...]) -> None:
        marks = ", ".join("?" for _ in fields)
        self.statements[name] = f"INSERT INTO {name} ({', '.join(fields)}) VALUES ({marks})"
        self.pending[name], self.counts[name] = [], 0

    def add(self, name: str, row: tuple[Any, ...]) -> None:
        self.pending[name].append(row)
        self.counts[name] += 1
        if len(self.pending[name]) >= 50_000:
            self.close()

    def close(self) -> None:
        """Every table's batch, in the order the tables were declared: the foreign keys find their rows."""
        for name, rows in self.pending.items():
            self.connection.executemany(self.statements[name], rows)
            rows.clear()


OCCURRENCE = (
    "id",
    "duty_id",
    "unit_id",
    "period",
    "title",
    "detail",
    "starts_at",
    "due_at",
    "flags",
    "first_remind_at",
    "required",
    "achieved",
    "reminders_sent",
    "level",
    "level_at",
    "done_at",
    "parked_at",
    "review_at",
    "waived_at",
    "link_version",
    "links_revoked",
    "created_at",
)
CONFIRMATION = (
    "id",
    "occurrence_id",
    "form_id",
    "amount",
    "note",
    "evidence",
    "evidence_taken",
    "confirmed_at",
    "late",
    "client",
    "verdict",
    "verified_by",
    "verified_at",
)
ESCALATION = (
    "occurrence_id",
    "level",
    "name",
    "status",
    "at",
    "deadline_at",
    "document",
    "approved_by",
    "acknowledged_at",
    "repeats",
)
AUDIT = ("at", "actor", "action", "occurrence_id", "detail")
CHECK = ("occurrence_id", "confirmation_id", "subject_id", "passed", "problem", "at")
LEVELS = {1: "交办", 2: "督办", 3: "约谈"}


def build(folder: Path, *, units: int, items: int, month_count: int) -> Built:
    """The calendars and the ledger: units and duties synced by the product, every other row written directly.
    A ``--keep`` folder that holds the same ledger already is reused."""
    recorded = folder / f"ledger-{units}-{items}-{month_count}.json"
    if recorded.exists() and (folder / "ledger.db").exists():
        fields = json.loads(recorded.read_text())
        return Built(**{**fields, "calendars": Path(fields["calendars"]), "ledger": Path(fields["ledger"])})
    for old in folder.glob("ledger*"):
        old.unlink()
    built = _build(folder, units=units, items=items, month_count=month_count)
    recorded.write_text(json.dumps({**asdict(built), "calendars": str(built.calendars), "ledger": str(built.ledger)}))
    return built


def _build(folder: Path, *, units: int, items: int, month_count: int) -> Built:
    from sqlmodel import Session

    from calendars.loader import load_program
    from flows.steps import sync_program
    from store.db import make_engine

    started = time.perf_counter()
    scenario = generate(folder / "calendars", units=units)
    program = load_program(scenario.root)
    ledger = folder / "ledger.db"
    fresh_store(ledger)
    engine = make_engine(sqlite_url(ledger))
    with Session(engine) as session:
        sync_program(session, program, at=CREATED_AT)
    engine.dispose()
    calendar = sorted(d.id for d in program.duties.values() if d.kind == "calendar")[:9]
    quota = sorted(d.id for d in program.duties.values() if d.kind == "quota")[0]
    unit_ids = sorted(program.units)
    markets = [u for u in unit_ids if program.units[u].kind == "market"] or unit_ids
    per_unit_month = max(1, items // (len(unit_ids) * month_count))
    connection = raw_connect(ledger)
    connection.execute("BEGIN")
    writer = Writer(connection)
    for name, fields in (
        ("occurrence", OCCURRENCE),
        ("confirmation", CONFIRMATION),
        ("escalation", ESCALATION),
        ("auditevent", AUDIT),
        ("checkresult", CHECK),
    ):
        writer.table(name, fields)
    draw = random.Random(SEED)
    ids = {"occurrence": 0, "confirmation": 0}
    for month in months(month_count):
        days = due_days(program, month)
        starts = stored(datetime.combine(month, datetime.min.time(), tzinfo=ZONE))
        for unit_index, unit_id in enumerate(unit_ids):
            for slot in range(per_unit_month):
                duty = quota if slot == 0 else calendar[(slot - 1) % len(calendar)]
                due = days[(unit_index + slot * 3) % len(days)]
                _item(writer, draw, ids, duty, unit_id, month, slot, starts, due, markets)
    writer.close()
    connection.execute("COMMIT")
    connection.execute("ANALYZE")
    connection.close()
    counts = writer.counts
    return Built(
        scenario.root,
        ledger,
        counts["occurrence"],
        counts["confirmation"],
        counts["escalation"],
        counts["auditevent"],
        counts["checkresult"],
        time.perf_counter() - started,
    )


def _item(
    writer: Writer,
    draw: random.Random,
    ids: dict[str, int],
    duty: str,
    unit_id: str,
    month: date,
    slot: int,
    starts: str,
    due: datetime,
    markets: list[str],
) -> None:
    """One occurrence and what happened to it: on time 80%, late 8%, overdue 6%, parked 2%, waived 2%, extended 2%."""
    ids["occurrence"] += 1
    occurrence_id = ids["occurrence"]
    roll = draw.random()
    is_quota = slot == 0
    required = 3.0 if is_quota else 1.0
    done = parked = waived = None
    reports: list[datetime] = []
    if roll < 0.82:  # on time (the last 2% of these were 延期 first)
        done = due - timedelta(hours=2)
    elif roll < 0.90:
        done = due + timedelta(days=1, hours=1)
    elif roll < 0.96:
        pass  # overdue
    elif roll < 0.98:
        parked = due + timedelta(days=2)
    else:
        waived = due - timedelta(days=1)
    if done is not None:
        reports = [done - timedelta(days=2), done - timedelta(days=1), done] if is_quota else [done]
    elif is_quota and draw.random() < 0.5:
        reports = [due - timedelta(days=3)]  # a quota short by two checks
    level = 0
    if (done is not None and done > due) or (done is None and parked is None and waived is None):
        level = 1 if draw.random() < 0.5 else 0
        level = level + (1 if level and draw.random() < 0.3 else 0)
        level = level + (1 if level == 2 and draw.random() < 0.3 else 0)
    writer.add(
        "occurrence",
        (
            occurrence_id,
            duty,
            unit_id,
            f"bench-{month:%Y-%m}-{slot}",
            "基准事项",
            "",
            starts,
            stored(due),
            "[]",
            stored(due - timedelta(days=3)),
            required,
            float(len(reports)),
            1,
            level,
            stored(due + timedelta(days=level)) if level else None,
            stored(done) if done is not None and len(reports) >= required else None,
            stored(parked) if parked else None,
            stored(parked + timedelta(days=30)) if parked else None,
            stored(waived) if waived else None,
            0,
            0,
            stored(CREATED_AT),
        ),
    )
    for number, moment in enumerate(reports):
        ids["confirmation"] += 1
        failed = not is_quota and draw.random() < 0.01
        writer.add(
            "confirmation",
            (
                ids["confirmation"],
                occurrence_id,
                f"form-{number}",
                1.0,
                "",
                "[]",
                "{}",
                stored(moment),
                int(moment > due),
                "bench",
                "fail" if failed else "",
                "user:boss" if failed else "",
                stored(moment + timedelta(hours=3)) if failed else None,
            ),
        )
        writer.add("auditevent", (stored(moment), f"unit:{unit_id}", "confirmed", occurrence_id, "{}"))
        if is_quota:
            subject = markets[(occurrence_id + number) % len(markets)]
            passed = int(draw.random() < 0.9)
            writer.add("checkresult", (occurrence_id, ids["confirmation"], subject, passed, "", stored(moment)))
    if 0.80 <= roll < 0.82:
        extended = stored(due - timedelta(days=4))
        writer.add("auditevent", (extended, "user:boss", "extended", occurrence_id, '{"reason": "雨天"}'))
    for step in range(1, level + 1):
        issued = due + timedelta(days=step)
        acknowledged = stored(issued + timedelta(hours=draw.choice((1, 2, 5, 30)))) if draw.random() < 0.7 else None
        writer.add(
            "escalation",
            (
                occurrence_id,
                step,
                LEVELS[step],
                "issued",
                stored(issued),
                stored(issued + timedelta(days=3)),
                "",
                "",
                acknowledged,
                0,
            ),
        )


# ---------------------------------------------------------------- the two measurements


BASELINE = """
WITH m AS MATERIALIZED (
    SELECT o.unit_id, o.duty_id, o.due_at, o.done_at, o.parked_at, o.required,
           (SELECT SUM(c.amount) FROM confirmation c
             WHERE c.occurrence_id = o.id AND c.confirmed_at <= :at) AS amount,
           (SELECT COUNT(*) FROM confirmation c
             WHERE c.occurrence_id = o.id AND c.confirmed_at <= :at AND c.verdict = 'fail' AND c.verified_at <= :at
           ) AS fails,
           (SELECT MAX(e.level) FROM escalation e
             WHERE e.occurrence_id = o.id AND e.status = 'issued' AND e.at <= :at) AS level,
           EXISTS (SELECT 1 FROM auditevent a
                    WHERE a.occurrence_id = o.id AND a.action = 'extended' AND a.at <= :at) AS extended
    FROM occurrence o
    WHERE o.due_at >= :start AND o.due_at < :end AND o.created_at <= :at
      AND (o.waived_at IS NULL OR o.waived_at > :at)
)
SELECT m.unit_id,
       COUNT(*) AS due,
       SUM(CASE WHEN m.done_at <= :at AND m.done_at <= m.due_at THEN 1 ELSE 0 END) AS on_time,
       SUM(CASE WHEN m.done_at <= :at AND m.done_at > m.due_at THEN 1 ELSE 0 END) AS late_done,
       SUM(CASE WHEN (m.done_at IS NULL OR m.done_at > :at) AND m.parked_at <= :at THEN 1 ELSE 0 END) AS parked,
       SUM(CASE WHEN (m.done_at IS NULL OR m.done_at > :at) AND (m.parked_at IS NULL OR m.parked_at > :at)
                THEN 1 ELSE 0 END) AS overdue,
       SUM(m.extended) AS extended,
       SUM(m.fails) AS rework,
       SUM(CASE WHEN m.level = 1 THEN 1 ELSE 0 END) AS level_1,
       SUM(CASE WHEN m.level = 2 THEN 1 ELSE 0 END) AS level_2,
       SUM(CASE WHEN m.level = 3 THEN 1 ELSE 0 END) AS level_3,
       SUM(CASE WHEN m.duty_id = :quota THEN MIN(COALESCE(m.amount, 0), m.required) ELSE 0 END) AS quota_done,
       SUM(CASE WHEN m.duty_id = :quota THEN m.required ELSE 0 END) AS quota_required
FROM m
GROUP BY m.unit_id
"""
COUNTS = (
    "due",
    "on_time",
    "late_done",
    "parked",
    "overdue",
    "extended",
    "rework",
    "level_1",
    "level_2",
    "level_3",
    "quota_done",
    "quota_required",
)


@dataclass
class Round:
    product_s: float
    baseline_s: float
    compute_s: float
    stored_rows: int
    snapshot_s: float


def measure(built: Built, program: Any, scratch: Path, number: int, *, profile: bool) -> Round:
    """One round on a fresh copy of the ledger: the baseline, then the product, on the same warm file."""
    from sqlalchemy import text
    from sqlmodel import Session

    from flows import assessment
    from flows.runtime import make_context
    from flows.scores import compute, cutoff_of, span_of
    from store.db import make_engine

    copy = scratch / f"round-{number}.db"
    copy_db(built.ledger, copy)
    engine = make_engine(sqlite_url(copy))
    scoring = program.scoring
    cutoff = cutoff_of(program, scoring, span_of(PERIOD), ZONE)
    start, end = span_of(PERIOD).bounds(ZONE)
    quota = sorted(d.id for d in program.duties.values() if d.kind == "quota")[0]
    params = {"start": stored(start), "end": stored(end), "at": stored(cutoff), "quota": quota}
    with Session(engine, expire_on_commit=False) as session:
        started = time.perf_counter()
        baseline = {row.unit_id: row for row in session.execute(text(BASELINE), params)}
        baseline_s = time.perf_counter() - started
        session.rollback()
        started = time.perf_counter()
        compute(session, program, scoring, span_of(PERIOD), at=cutoff, zone=ZONE)  # the numbers alone
        compute_s = time.perf_counter() - started
        session.rollback()
        ctx = make_context(session, program, send=stub_send)
        at = cutoff + timedelta(hours=1)
        profiler = _profiler() if profile else None
        started = time.perf_counter()
        snapshot = assessment.assess(session, ctx, PERIOD, at=at, actor="bench")
        product_s = time.perf_counter() - started
        if profiler is not None:
            _report(profiler)
        scores = assessment.scores_of(session, snapshot.id or 0)
        _same_counts(baseline, scores)
    engine.dispose()
    _remove(copy)
    return Round(product_s, baseline_s, compute_s, len(scores), _snapshot_alone(built, program, scratch, number))


def _snapshot_alone(built: Built, program: Any, scratch: Path, number: int) -> float:
    """The same frozen ``assess`` on another fresh copy with its 【考核公示】 left out: the snapshot (computed,
    stored, ranked, summarised) apart from rendering and queuing one personal message per unit."""
    from unittest import mock

    from sqlmodel import Session

    from flows import assessment
    from flows.runtime import make_context
    from flows.scores import cutoff_of, span_of
    from store.db import make_engine

    copy = scratch / f"round-{number}-snapshot.db"
    copy_db(built.ledger, copy)
    engine = make_engine(sqlite_url(copy))
    at = cutoff_of(program, program.scoring, span_of(PERIOD), ZONE) + timedelta(hours=1)
    with Session(engine, expire_on_commit=False) as session, mock.patch.object(assessment, "_announce"):
        ctx = make_context(session, program, send=stub_send)
        started = time.perf_counter()
        assessment.assess(session, ctx, PERIOD, at=at, actor="bench")
        seconds = time.perf_counter() - started
    engine.dispose()
    _remove(copy)
    return seconds


def _remove(copy: Path) -> None:
    copy.unlink()
    for suffix in ("-wal", "-shm"):
        Path(f"{copy}{suffix}").unlink(missing_ok=True)


def _same_counts(baseline: dict[str, Any], scores: list[Any]) -> None:
    """The product and the baseline agree on every count of every unit, or the comparison means nothing."""
    product = {row.unit_id: row.indicators for row in scores}
    assert set(product) == set(baseline), (len(product), len(baseline))
    for unit_id, row in baseline.items():
        for name in COUNTS:
            assert abs(float(product[unit_id][name]) - float(getattr(row, name))) < 1e-6, (unit_id, name)


def _profiler() -> Any:
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    return profiler


def _report(profiler: Any) -> None:
    import io
    import pstats

    profiler.disable()
    buffer = io.StringIO()
    pstats.Stats(profiler, stream=buffer).sort_stats("cumulative").print_stats(30)
    print(buffer.getvalue())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--months", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile the product's last round")
    parser.add_argument("--keep", type=Path, help="build (or reuse) the ledger in this folder")
    args = parser.parse_args(argv)
    with _scratch(args.keep) as scratch:
        configure_environment(scratch / "var")
        from calendars.loader import load_program

        built = build(scratch, units=args.units, items=args.items, month_count=args.months)
        program = load_program(built.calendars)
        print(
            f"ledger: {len(program.units)} units, {built.occurrences:,} items over {args.months} months, "
            f"{built.confirmations:,} confirmations, {built.escalations:,} escalations, {built.audit:,} audit events, "
            f"{built.checks:,} spot-check results (built in {built.seconds:.1f} s)"
        )
        rounds = [
            measure(built, program, scratch, number, profile=args.profile and number == args.rounds - 1)
            for number in range(args.rounds)
        ]
    product = min(r.product_s for r in rounds)
    baseline = min(r.baseline_s for r in rounds)
    computing = min(r.compute_s for r in rounds)
    print(f"one GROUP BY pass over the same rows: best {baseline:.2f} s")
    print(f"scores.compute {PERIOD} (every unit's indicators, deductions and digest): best {computing:.2f} s")
    print(
        f"assess {PERIOD} (computed, stored, ranked, 【考核公示】 rendered for {rounds[0].stored_rows:,} units): ",
        end="",
    )
    print(f"best {product:.2f} s, median {statistics.median(r.product_s for r in rounds):.2f} s")
    snapshot = min(r.snapshot_s for r in rounds)
    print(f"the same without its messages (the snapshot alone): best {snapshot:.2f} s")
    messages = (product - snapshot) / max(rounds[0].stored_rows, 1) * 1000
    print(f"the 【考核公示】: {product - snapshot:.2f} s, {messages:.2f} ms per unit (rendered, signed link, queued)")
    for label, seconds in (("compute", computing), ("snapshot", snapshot), ("assess", product)):
        ratio = seconds / baseline
        verdict = "within" if ratio <= GOAL else "ABOVE"
        print(f"ratio {label}/GROUP BY {ratio:.2f}x ({verdict} the goal of {GOAL:g}x)")
    print("the product's counts equal the baseline's for every unit")


class _scratch:
    """``--keep DIR`` or a temporary folder removed afterwards."""

    def __init__(self, keep: Path | None) -> None:
        self.keep = keep
        self.temporary: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> Path:
        if self.keep is not None:
            self.keep.mkdir(parents=True, exist_ok=True)
            return self.keep
        self.temporary = tempfile.TemporaryDirectory(prefix="bench-assess-")
        return Path(self.temporary.name)

    def __exit__(self, *exc: object) -> None:
        if self.temporary is not None:
            self.temporary.cleanup()


if __name__ == "__main__":
    main()
