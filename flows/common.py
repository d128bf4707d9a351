"""What every step shares: the context, the system actor, and the scan over open items whose moment has come."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, true
from sqlmodel import Session

from calendars.clocks import Clock, parse_windows
from calendars.loader import Program
from calendars.recurrence import Period, reminder_times
from calendars.schema import CategorySpec, DutySpec
from notify.send import Sender
from store.models import Occurrence
from store.settings import Settings

BATCH = 500
SYSTEM = "system"


@dataclass
class Context:
    """What every step needs besides the session and the time."""

    program: Program
    settings: Settings
    secret: str
    send: Sender
    seed: str = ""  # draws the days of unannounced checks

    @property
    def zone(self) -> Any:
        return self.settings.zone


def open_rows(session: Session, moment: str, at: datetime) -> Iterator[Occurrence]:
    for batch in open_batches(session, moment, at):
        yield from batch


def open_batches(session: Session, moment: str, at: datetime, *, where: Any = None) -> Iterator[list[Occurrence]]:
    """Open occurrences whose ``moment`` column has come, in batches; each batch is committed after use.

    Only the rows that are due cost anything (the column is indexed), so a tick's cost follows the work due, not
    the size of the ledger. A row another worker has just claimed may show up again: it is yielded only once.
    ``where`` narrows the rows further (the cases' supervision: case items only).
    """
    col = Occurrence.__table__.c  # type: ignore[attr-defined]
    query = (
        select(Occurrence)
        .where(col[moment] <= at, col.done_at.is_(None), col.waived_at.is_(None), col.parked_at.is_(None))
        .where(true() if where is None else where)
        .order_by(col[moment], col.id)
        .limit(BATCH)
        .execution_options(populate_existing=True)
    )
    seen: set[int] = set()
    while True:
        fresh = [row for row in session.execute(query).scalars() if row.id not in seen]
        if not fresh:
            return
        seen.update(row.id or 0 for row in fresh)
        yield fresh
        session.commit()


Row = dict[str, Any]


def occurrence_row(ctx: Context, duty: DutySpec, grace: int, period: Period, at: datetime) -> Row:
    """An occurrence of ``period`` without its unit."""
    reminders = reminder_times(duty, period.due_at, ctx.program.workdays, ctx.zone)
    return {
        "duty_id": duty.id,
        "period": period.key,
        "title": f"{duty.title}（{period_label(period.key)}）",
        "detail": "；".join(period.tasks),
        "starts_at": datetime.combine(period.starts, datetime.min.time(), tzinfo=ctx.zone),
        "due_at": period.due_at,
        "flags": list(period.flags),
        "first_remind_at": reminders[0] if reminders else period.due_at,
        "next_remind_at": reminders[0] if reminders else None,
        "next_escalate_at": workday_moment(ctx.program, period.due_at, grace),
        "visible_from": period.visible_from,
        "required": duty.required,
        "achieved": 0.0,
        "level": 0,
        "reminders_sent": 0,
        "created_at": at,
    }


def period_label(key: str) -> str:
    """2026年, 2026年2月, 2026年第7周, 2026年2月第2次."""
    base, _, number = key.partition("#")
    year, _, rest = base.partition("-")
    if not rest:
        label = f"{year}年"
    else:
        label = f"{year}年第{int(rest[1:])}周" if rest.startswith("W") else f"{year}年{int(rest)}月"
    return f"{label}第{number}次" if number else label


def workday_moment(program: Program, moment: datetime, workdays: int) -> datetime:
    """The same time of day, ``workdays`` working days after ``moment``'s date."""
    if workdays == 0:
        return moment
    day = program.workdays.add_workdays(moment.date(), workdays)
    return datetime.combine(day, moment.timetz())


def case_clock(ctx: Context, category: CategorySpec) -> Clock:
    """The clock a category's cases run on: its service hours, the office hours and the working days."""
    office = ctx.program.programme.office_hours if ctx.program.programme else DEFAULT_OFFICE_HOURS
    return Clock(
        workdays=ctx.program.workdays,
        zone=ctx.zone,
        office_hours=tuple(parse_windows(office)),
        service_hours=tuple(parse_windows(category.service_hours)) if category.service_hours else (),
    )


DEFAULT_OFFICE_HOURS = ["08:30-12:00", "13:30-17:30"]
